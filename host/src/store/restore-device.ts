/**
 * One device of an indexed VM backup as an NBD export (docs/BACKUP-PROVIDER.md §6): a read is
 * answered from the frames covering it — zero frames without any request, data frames fetched
 * with a ranged GET, verified against their index record, decompressed and checked extent by
 * extent. Reads of a restore are sequential (qemu-img convert), so the frames after the last one
 * read are fetched ahead; decoded frames are kept in a small cache whose size bounds memory.
 */
import type { NbdExport, ReadPiece } from '../nbd/server.js';
import { STATE_HOLE, STATE_ZERO } from '../nbd/protocol.js';
import { CLUSTER_SIZE, type VmaDevice } from '../vma/format.js';
import { FrameKind, type FrameIndex, type FrameRecord } from '../vma/frame-index.js';
import { frameRuns, frameSpan, type FrameRuns } from '../vma/frame-decode.js';
import { fetchFrame, type FrameBuffers } from './restore-archive.js';
import { FrameDecompressor } from '../zstd/frame-decompressor.js';
import type { StoreContext } from './types.js';
import type { VolumeInfo } from '../pve/volname.js';

export interface FrameDeviceOptions {
  /** decoded bytes kept or being fetched (default 96 MiB: 6 full data frames) */
  cacheBytes?: number;
  /** data frames fetched at the same time (default 3) */
  parallel?: number;
  /** threads decompressing frames (default 2; 0: on the main thread) */
  zstdThreads?: number;
}

export interface FrameDeviceStats {
  framesFetched: number;
  /** compressed bytes of the archive fetched */
  bytesFetched: number;
  /** bytes answered as zeros without any request */
  zeroBytesServed: number;
  bytesServed: number;
}

interface Cached {
  p: Promise<FrameRuns>;
  bytes: number;
  used: number;
}

export class FrameDevice implements NbdExport {
  readonly name: string;
  readonly size: number;
  readonly stats: FrameDeviceStats = { framesFetched: 0, bytesFetched: 0, zeroBytesServed: 0, bytesServed: 0 };
  private readonly frames: FrameRecord[];
  private readonly starts: number[];
  private readonly devices: Map<number, VmaDevice>;
  private readonly cache = new Map<number, Cached>();
  private fetching = 0;
  private tick = 0;
  private readonly cacheBytes: number;
  private readonly parallel: number;
  /** buffers for compressed frames, reused: a fresh 16 MiB buffer per frame costs page faults
   *  and garbage collections; about `parallel` of them are ever in use */
  private readonly spare: Buffer[] = [];
  private readonly buffers: FrameBuffers;
  private readonly decompressor: FrameDecompressor;

  constructor(
    private readonly ctx: StoreContext,
    private readonly archive: { key: string; v: VolumeInfo },
    private readonly index: FrameIndex,
    private readonly dev: VmaDevice,
    o: FrameDeviceOptions = {},
  ) {
    this.name = dev.name;
    this.size = dev.size;
    this.frames = index.frames.filter((f) => f.devId === dev.id).sort((x, y) => x.firstCluster - y.firstCluster);
    this.starts = this.frames.map((f) => f.firstCluster * CLUSTER_SIZE);
    this.devices = new Map(index.devices.map((d) => [d.id, d]));
    this.cacheBytes = o.cacheBytes ?? 96 << 20;
    this.parallel = o.parallel ?? 3;
    const maxClen = this.frames.reduce((m, f) => Math.max(m, f.clen), 0);
    this.buffers = {
      take: (size) => {
        const b = this.spare.pop();
        return b && b.length >= size ? b : Buffer.allocUnsafeSlow(Math.max(size, maxClen));
      },
      give: (b) => {
        if (this.spare.length < this.parallel + 1) this.spare.push(b);
      },
    };
    // frames are decompressed on zstd threads: the main thread goes on receiving and answering
    this.decompressor = new FrameDecompressor({ threads: o.zstdThreads ?? 2 });
  }

  /** stops the zstd threads */
  async close(): Promise<void> {
    await this.decompressor.close();
  }

  private isZero(f: FrameRecord): boolean {
    return f.kind === FrameKind.zero || f.storedBlocks === 0;
  }

  /** the frame holding device byte `off` */
  private frameAt(off: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= off) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  async read(offset: number, length: number): Promise<ReadPiece[]> {
    const end = offset + length;
    // in device order: zeros at once, a data frame's pieces once it is there
    const parts: Array<ReadPiece | Promise<ReadPiece[]>> = [];
    let i = this.frameAt(offset);
    let pos = offset;
    while (pos < end) {
      const f = this.frames[i]!;
      const fStart = this.starts[i]!;
      const take = Math.min(end, fStart + frameSpan(f, this.dev)) - pos;
      if (this.isZero(f)) {
        parts.push({ offset: pos, zero: take });
        this.stats.zeroBytesServed += take;
      } else {
        const at = pos;
        parts.push(this.frame(i).then((r) => piecesOf(r, at - fStart, take, at)));
      }
      pos += take;
      i++;
    }
    this.prefetch(i);
    const pieces = (await Promise.all(parts)).flat();
    this.stats.bytesServed += length;
    return pieces;
  }

  blockStatus(offset: number, length: number): Array<{ length: number; flags: number }> {
    const out: Array<{ length: number; flags: number }> = [];
    const end = Math.min(this.size, offset + length);
    let pos = offset;
    for (let i = this.frameAt(offset); pos < end && i < this.frames.length; i++) {
      const f = this.frames[i]!;
      const take = Math.min(end, this.starts[i]! + frameSpan(f, this.dev)) - pos;
      const flags = this.isZero(f) ? STATE_HOLE | STATE_ZERO : 0;
      const last = out[out.length - 1];
      // descriptor lengths are 32-bit
      if (last && last.flags === flags && last.length + take <= 0xffff0000) last.length += take;
      else out.push({ length: take, flags });
      pos += take;
    }
    return out;
  }

  private frame(i: number): Promise<FrameRuns> {
    const c = this.cache.get(i);
    if (c) {
      c.used = ++this.tick;
      return c.p;
    }
    return this.load(i);
  }

  private load(i: number): Promise<FrameRuns> {
    const f = this.frames[i]!;
    this.fetching++;
    const p = fetchFrame(this.ctx, this.archive, f, this.ctx.signal, { buffers: this.buffers, decompressor: this.decompressor })
      .then((vma) => {
        this.stats.framesFetched++;
        this.stats.bytesFetched += f.clen;
        return frameRuns(f, vma, this.dev, this.devices, this.index.uuid);
      })
      .finally(() => {
        this.fetching--;
      });
    // a failed frame is not kept: a later read tries again and reports its own failure
    p.catch(() => this.cache.delete(i));
    this.cache.set(i, { p, bytes: f.ulen, used: ++this.tick });
    this.evict(i);
    return p;
  }

  /** the data frames after the last one read, as far as the cache and the parallel fetches allow */
  private prefetch(from: number): void {
    let budget = this.cacheBytes - this.cached();
    for (let i = from; i < this.frames.length && this.fetching < this.parallel; i++) {
      const f = this.frames[i]!;
      if (this.isZero(f) || this.cache.has(i)) continue;
      if (f.ulen > budget) break;
      budget -= f.ulen;
      this.load(i).catch(() => undefined);
    }
  }

  private cached(): number {
    let n = 0;
    for (const c of this.cache.values()) n += c.bytes;
    return n;
  }

  /** drops the least recently used frames (never `keep`) until the cache fits */
  private evict(keep: number): void {
    let total = this.cached();
    while (total > this.cacheBytes) {
      let victim = -1;
      let oldest = Infinity;
      for (const [i, c] of this.cache) {
        if (i !== keep && c.used < oldest) {
          oldest = c.used;
          victim = i;
        }
      }
      if (victim < 0) return;
      total -= this.cache.get(victim)!.bytes;
      this.cache.delete(victim);
    }
  }
}

/** the bytes [from, from+take) of a frame (device offset `at` on) as pieces: views of its VMA, or zeros */
function piecesOf(r: FrameRuns, from: number, take: number, at: number): ReadPiece[] {
  const out: ReadPiece[] = [];
  // the last run starting at or before `from`
  let lo = 0;
  let hi = r.at.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (r.at[mid]! <= from) lo = mid;
    else hi = mid - 1;
  }
  const end = from + take;
  for (let k = lo, pos = from; pos < end; k++) {
    const n = Math.min(end, r.at[k]! + r.len[k]!) - pos;
    const src = r.src[k]!;
    if (src < 0) out.push({ offset: at + (pos - from), zero: n });
    else {
      const o = src + (pos - r.at[k]!);
      out.push({ offset: at + (pos - from), data: r.vma.subarray(o, o + n) });
    }
    pos += n;
  }
  return out;
}
