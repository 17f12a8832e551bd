/**
 * Reading VMA as a stream (one pass, bounded memory), checking what pve-qemu's vma-reader.c
 * checks: magic, version, header and extent MD5s, the uuid of every extent, block counts, device
 * ids, no duplicated and no missing cluster. Stored blocks go to `onData`; zero blocks and zero
 * clusters are never handed out (a sparse target already reads them as zeros).
 */
import { PveS3Error } from '../util/errors.js';
import {
  BLOCK_SIZE, BLOCKS_PER_CLUSTER, CLUSTER_SIZE, CLUSTERS_PER_EXTENT, E, EXTENT_HEADER_SIZE, EXTENT_MAGIC, H,
  HEADER_FIXED_SIZE, MAX_DEVICES, VMA_MAGIC, clusterCount, md5WithZeroField, type VmaConfig, type VmaDevice,
} from './format.js';

export interface VmaHeaderInfo {
  uuid: Buffer;
  ctime: number;
  headerSize: number;
  configs: VmaConfig[];
  /** by id */
  devices: VmaDevice[];
}

export function vmaInvalid(what: string): PveS3Error {
  return new PveS3Error('VmaInvalid', `not a valid VMA archive: ${what}`, { exitCode: 5 });
}
const bad = vmaInvalid;

/** The header's total size from its first 60 bytes (what to read before parseHeader). */
export function headerSizeOf(head: Buffer): number {
  if (head.length < 60 || !head.subarray(0, 4).equals(VMA_MAGIC)) throw bad('wrong magic number');
  const n = head.readUInt32BE(H.headerSize);
  if (n < HEADER_FIXED_SIZE || n % 512 !== 0 || n > HEADER_FIXED_SIZE + 256 * 1024 * 1024) throw bad(`wrong header size ${n}`);
  return n;
}

export function parseHeader(h: Buffer): VmaHeaderInfo {
  const headerSize = headerSizeOf(h);
  if (h.length < headerSize) throw bad('header truncated');
  h = h.subarray(0, headerSize);
  if (h.readUInt32BE(H.version) !== 1) throw bad(`version ${h.readUInt32BE(H.version)}`);
  if (!md5WithZeroField(h, H.md5).equals(h.subarray(H.md5, H.md5 + 16))) throw bad('wrong header checksum');
  const bOff = h.readUInt32BE(H.blobOffset);
  const bEnd = bOff + h.readUInt32BE(H.blobSize);
  if (bOff < HEADER_FIXED_SIZE || bEnd > headerSize) throw bad('blob buffer outside the header');
  const blob = (ptr: number): Buffer | null => {
    const at = bOff + ptr;
    if (ptr === 0 || at + 2 > bEnd) return null;
    const len = h.readUInt16LE(at);
    if (at + 2 + len > bEnd) return null;
    return h.subarray(at + 2, at + 2 + len);
  };
  const str = (ptr: number, what: string): string => {
    const b = blob(ptr);
    if (!b || b.length === 0 || b[b.length - 1] !== 0) throw bad(`${what} is not a valid string`);
    return b.subarray(0, b.length - 1).toString('utf8');
  };
  const configs: VmaConfig[] = [];
  for (let i = 0; i < 256; i++) {
    const np = h.readUInt32BE(H.configNames + 4 * i);
    const dp = h.readUInt32BE(H.configData + 4 * i);
    if (!np && !dp) continue;
    const data = blob(dp);
    if (!data) throw bad(`config ${i} has an invalid data pointer`);
    configs.push({ name: str(np, `config ${i} name`), data: Buffer.from(data) });
  }
  const devices: VmaDevice[] = [];
  for (let id = 1; id <= MAX_DEVICES; id++) {
    const at = H.devInfo + id * H.devInfoSize;
    const size = Number(h.readBigUInt64BE(at + 8));
    if (!size) continue;
    devices.push({ id, name: str(h.readUInt32BE(at), `device ${id} name`), size });
  }
  return { uuid: Buffer.from(h.subarray(H.uuid, H.uuid + 16)), ctime: Number(h.readBigInt64BE(H.ctime)), headerSize, configs, devices };
}

/** Exact-size reads from an async byte stream. */
export class StreamTaker {
  private it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  /** bytes handed out so far */
  consumed = 0;
  constructor(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>) {
    this.it = Symbol.asyncIterator in src ? src[Symbol.asyncIterator]() : (async function* () {
      yield* src;
    })()[Symbol.asyncIterator]();
  }
  /** n bytes, or fewer only at the end of the stream */
  async take(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (this.buf.length === 0) {
        const r = await this.it.next();
        if (r.done) break;
        this.buf = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        continue;
      }
      const k = Math.min(n - have, this.buf.length);
      parts.push(this.buf.subarray(0, k));
      this.buf = this.buf.subarray(k);
      have += k;
    }
    this.consumed += have;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
  }
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

export interface ReadVmaOptions {
  onHeader?(h: VmaHeaderInfo): void | Promise<void>;
  /** stored bytes of a device: a run of 4 KiB blocks that follow each other on the device, at
   *  most one extent's (cut at the device's end); a view of the stream's buffer */
  onData(dev: VmaDevice, offset: number, data: Buffer): void | Promise<void>;
}

export interface ReadVmaResult {
  header: VmaHeaderInfo;
  extents: number;
  storedBlocks: number;
  bytes: number;
}

export interface ExtentEntry {
  dev: VmaDevice;
  cluster: number;
  /** bit b set: 4 KiB block b of the cluster is stored */
  mask: number;
}

/**
 * One extent header checked as vma-reader.c checks it (magic, MD5, this archive's uuid, known
 * devices, clusters inside them); `at` (its place in the stream) is for messages only.
 */
export function parseExtentHeader(eh: Buffer, uuid: Buffer, byId: Map<number, VmaDevice>, at: number): { blockCount: number; entries: ExtentEntry[] } {
  if (eh.length < EXTENT_HEADER_SIZE) throw bad(`short extent header at byte ${at}`);
  if (!eh.subarray(0, 4).equals(EXTENT_MAGIC) || eh.readUInt16BE(4) !== 0) throw bad(`wrong extent magic at byte ${at}`);
  if (!md5WithZeroField(eh, E.md5).equals(eh.subarray(E.md5, E.md5 + 16))) throw bad(`wrong extent checksum at byte ${at}`);
  if (!eh.subarray(E.uuid, E.uuid + 16).equals(uuid)) throw bad('extent of another archive (uuid differs)');
  const entries: ExtentEntry[] = [];
  let stored = 0;
  for (let i = 0; i < CLUSTERS_PER_EXTENT; i++) {
    const info = eh.readBigUInt64BE(E.blockinfo + 8 * i);
    const devId = Number((info >> 32n) & 0xffn);
    if (!devId) continue;
    const dev = byId.get(devId);
    if (!dev) throw bad(`extent names unknown device ${devId}`);
    const cluster = Number(info & 0xffffffffn);
    if (cluster >= clusterCount(dev.size)) throw bad(`cluster ${cluster} beyond the end of '${dev.name}'`);
    const mask = Number(info >> 48n);
    for (let b = 0; b < BLOCKS_PER_CLUSTER; b++) {
      if (!(mask & (1 << b))) continue;
      if (cluster * CLUSTER_SIZE + b * BLOCK_SIZE >= dev.size) throw bad(`block beyond the end of '${dev.name}'`);
      stored++;
    }
    entries.push({ dev, cluster, mask });
  }
  const blockCount = eh.readUInt16BE(E.blockCount);
  if (stored < blockCount) throw bad('extent holds more blocks than its masks say');
  if (stored > blockCount) throw bad('extent holds fewer blocks than its masks say');
  return { blockCount, entries };
}

export async function readVma(src: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, o: ReadVmaOptions): Promise<ReadVmaResult> {
  const t = new StreamTaker(src);
  try {
    const head = await t.take(60);
    const rest = await t.take(headerSizeOf(head) - 60);
    const header = parseHeader(Buffer.concat([head, rest]));
    await o.onHeader?.(header);
    const byId = new Map(header.devices.map((d) => [d.id, d]));
    const seen = new Map(header.devices.map((d) => [d.id, new Uint8Array(Math.ceil(clusterCount(d.size) / 8))]));
    let extents = 0;
    let storedBlocks = 0;
    for (;;) {
      const eh = await t.take(EXTENT_HEADER_SIZE);
      if (eh.length === 0) break;
      const { blockCount, entries } = parseExtentHeader(eh, header.uuid, byId, t.consumed - eh.length);
      const data = await t.take(blockCount * BLOCK_SIZE);
      if (data.length < blockCount * BLOCK_SIZE) throw bad('short extent at the end of the archive');
      // blocks that follow each other on the device and in the extent go out as one run (a
      // whole extent's worth for a fully used disk): one call per run, not per 4 KiB block
      let pos = 0;
      let run: { dev: VmaDevice; off: number; start: number; len: number } | null = null;
      for (const { dev, cluster, mask } of entries) {
        const bits = seen.get(dev.id)!;
        if (bits[cluster >> 3]! & (1 << (cluster & 7))) throw bad(`duplicated cluster ${cluster} of '${dev.name}'`);
        bits[cluster >> 3]! |= 1 << (cluster & 7);
        for (let b = 0; b < BLOCKS_PER_CLUSTER; b++) {
          if (!(mask & (1 << b))) continue;
          const off = cluster * CLUSTER_SIZE + b * BLOCK_SIZE;
          const len = Math.min(BLOCK_SIZE, dev.size - off);
          if (run && run.dev === dev && run.off + run.len === off && run.start + run.len === pos) {
            run.len += len;
          } else {
            if (run) await o.onData(run.dev, run.off, data.subarray(run.start, run.start + run.len));
            run = { dev, off, start: pos, len };
          }
          pos += BLOCK_SIZE;
        }
      }
      if (run) await o.onData(run.dev, run.off, data.subarray(run.start, run.start + run.len));
      extents++;
      storedBlocks += blockCount;
    }
    for (const d of header.devices) {
      const bits = seen.get(d.id)!;
      for (let c = 0, n = clusterCount(d.size); c < n; c++) {
        if (!(bits[c >> 3]! & (1 << (c & 7)))) throw bad(`missing cluster ${c} of '${d.name}'`);
      }
    }
    return { header, extents, storedBlocks, bytes: t.consumed };
  } finally {
    await t.close();
  }
}
