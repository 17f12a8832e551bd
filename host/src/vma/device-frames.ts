/**
 * One device of a VM backup, read from its NBD export and cut into the frames of
 * docs/BACKUP-PROVIDER.md §4: data frames (≤ 256 clusters, short zero runs inline) and zero
 * frames (runs of ≥ 256 clusters that block status reports as zero; ≤ 65536 clusters). Ranges
 * block status reports as zero are never read; each frame lists the byte ranges it read, which
 * may be discarded once the frame is stored.
 */
import type { NbdClient, NbdExtent } from '../nbd/client.js';
import { STATE_ZERO } from '../nbd/protocol.js';
import { CLUSTER_SIZE, clusterCount, type VmaDevice } from './format.js';
import { FrameKind } from './frame-index.js';
import { ExtentBuilder } from './writer.js';

export const DATA_FRAME_CLUSTERS = 256;
export const ZERO_FRAME_CLUSTERS = 65536;
const READ_CLUSTERS = 64; // 4 MiB per NBD read
const STATUS_WINDOW = 1 << 30;

export interface RawFrame {
  devId: number;
  kind: FrameKind;
  firstCluster: number;
  clusterCount: number;
  storedBlocks: number;
  /** whole extents */
  data: Buffer;
  /** byte ranges read from the export (to discard once stored) */
  read: Array<[offset: number, length: number]>;
}

/** base:allocation of an export, fetched lazily in order; asked about increasing offsets. */
class AllocationMap {
  private extents: NbdExtent[] = [];
  private loadedEnd = 0;
  private at = 0;

  constructor(
    private readonly client: NbdClient,
    private readonly size: number,
  ) {}

  private async ensure(end: number): Promise<void> {
    end = Math.min(end, this.size);
    while (this.loadedEnd < end) {
      const got = await this.client.blockStatus(this.loadedEnd, Math.min(STATUS_WINDOW, this.size - this.loadedEnd));
      if (got.length === 0) throw new Error(`block status at ${this.loadedEnd} described nothing`);
      for (const e of got) {
        if (e.length === 0) continue;
        this.extents.push(e);
        this.loadedEnd = e.offset + e.length;
      }
    }
    // forget what lies behind the cursor
    if (this.at > 4096) {
      this.extents.splice(0, this.at);
      this.at = 0;
    }
  }

  /** clusters from cluster c on that read as zero, at most max */
  async zeroRun(c: number, max: number): Promise<number> {
    const n = clusterCount(this.size);
    const start = c * CLUSTER_SIZE;
    await this.ensure(start + max * CLUSTER_SIZE);
    while (this.at < this.extents.length && this.extents[this.at]!.offset + this.extents[this.at]!.length <= start) this.at++;
    let i = this.at;
    let zeroEnd = start;
    while (i < this.extents.length && this.extents[i]!.flags & STATE_ZERO && zeroEnd < start + max * CLUSTER_SIZE) {
      zeroEnd = this.extents[i]!.offset + this.extents[i]!.length;
      i++;
    }
    if (zeroEnd <= start) return 0;
    const run = zeroEnd >= this.size ? n - c : Math.floor((zeroEnd - start) / CLUSTER_SIZE);
    return Math.min(run, max);
  }
}

export interface DeviceFramesOptions {
  client: NbdClient;
  dev: VmaDevice;
  uuid: Buffer;
  /** bytes read from the export and bytes skipped as zero, as they happen */
  onProgress?(read: number, zero: number): void;
}

export async function* deviceFrames(o: DeviceFramesOptions): AsyncGenerator<RawFrame> {
  const { client, dev } = o;
  const n = clusterCount(dev.size);
  const map = new AllocationMap(client, dev.size);
  const builder = new ExtentBuilder(o.uuid, dev.id, dev.size);
  const clusterBytes = (c: number): number => Math.min(CLUSTER_SIZE, dev.size - c * CLUSTER_SIZE);
  let c = 0;
  while (c < n) {
    const run = await map.zeroRun(c, ZERO_FRAME_CLUSTERS);
    if (run >= DATA_FRAME_CLUSTERS) {
      let zeroBytes = 0;
      for (let k = 0; k < run; k++) {
        builder.add(c + k, null);
        zeroBytes += clusterBytes(c + k);
      }
      builder.flush();
      o.onProgress?.(0, zeroBytes);
      yield { devId: dev.id, kind: FrameKind.zero, firstCluster: c, clusterCount: run, storedBlocks: 0, data: builder.take(), read: [] };
      c += run;
      continue;
    }
    // a data frame: clusters [c, end), zero runs shorter than a zero frame stay inline
    const plan: Array<{ first: number; count: number; zero: boolean }> = [];
    let j = c;
    while (j < n && j - c < DATA_FRAME_CLUSTERS) {
      const z = await map.zeroRun(j, DATA_FRAME_CLUSTERS);
      if (z >= DATA_FRAME_CLUSTERS && j > c) break;
      const last = plan[plan.length - 1];
      if (z > 0) {
        const k = Math.min(z, c + DATA_FRAME_CLUSTERS - j);
        plan.push({ first: j, count: k, zero: true });
        j += k;
      } else if (last && !last.zero && last.count < READ_CLUSTERS) {
        last.count++;
        j++;
      } else {
        plan.push({ first: j, count: 1, zero: false });
        j++;
      }
    }
    const reads = plan.map((p) => (p.zero ? null : client.read(p.first * CLUSTER_SIZE, Math.min(p.count * CLUSTER_SIZE, dev.size - p.first * CLUSTER_SIZE))));
    // all of them fail together when the connection breaks: the first awaited one reports it
    for (const r of reads) r?.catch(() => undefined);
    const before = builder.storedBlocks;
    const read: Array<[number, number]> = [];
    let readBytes = 0;
    let zeroBytes = 0;
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i]!;
      const buf = reads[i] ? await reads[i]! : null;
      for (let k = 0; k < p.count; k++) {
        const cl = p.first + k;
        if (buf) builder.add(cl, buf.subarray(k * CLUSTER_SIZE, (k + 1) * CLUSTER_SIZE));
        else builder.add(cl, null);
      }
      if (buf) {
        read.push([p.first * CLUSTER_SIZE, buf.length]);
        readBytes += buf.length;
      } else {
        for (let k = 0; k < p.count; k++) zeroBytes += clusterBytes(p.first + k);
      }
    }
    builder.flush();
    o.onProgress?.(readBytes, zeroBytes);
    const stored = builder.storedBlocks - before;
    yield { devId: dev.id, kind: stored ? FrameKind.data : FrameKind.zero, firstCluster: c, clusterCount: j - c, storedBlocks: stored, data: builder.take(), read };
    c = j;
  }
}
