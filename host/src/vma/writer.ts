/**
 * Writing VMA: the header, and extents of one device built cluster by cluster. Every cluster of
 * a device must be written exactly once and in order (vma-reader.c refuses a missing or a
 * duplicated cluster); a cluster given without data is a zero cluster (mask 0, nothing stored),
 * and in a cluster with data each all-zero 4 KiB block is left out, as vma-writer.c does.
 */
import { randomBytes } from 'node:crypto';
import { PveS3Error } from '../util/errors.js';
import {
  BLOCK_SIZE, BLOCKS_PER_CLUSTER, CLUSTER_SIZE, CLUSTERS_PER_EXTENT, E, EXTENT_HEADER_SIZE, EXTENT_MAGIC, H,
  HEADER_FIXED_SIZE, MAX_BLOB, MAX_DEVICES, VMA_MAGIC, blockinfo, md5WithZeroField, type VmaConfig, type VmaDevice,
} from './format.js';

const ZERO_BLOCK = Buffer.alloc(BLOCK_SIZE);

export function newUuid(): Buffer {
  const u = randomBytes(16);
  u[6] = (u[6]! & 0x0f) | 0x40;
  u[8] = (u[8]! & 0x3f) | 0x80;
  return u;
}

/** The VMA header: configs (name + data blobs), devices with ids 1..n, MD5 over the whole. */
export function buildHeader(o: { uuid: Buffer; ctime: number; configs: VmaConfig[]; devices: VmaDevice[] }): Buffer {
  if (o.devices.length > MAX_DEVICES) throw new PveS3Error('InvalidArgument', `a VMA archive holds at most ${MAX_DEVICES} devices, got ${o.devices.length}`);
  if (o.configs.length > 256) throw new PveS3Error('InvalidArgument', `a VMA archive holds at most 256 config files, got ${o.configs.length}`);
  const blobs: Buffer[] = [];
  let pos = 1; // blob offsets start at 1: 0 means "none"
  const blob = (data: Buffer, what: string): number => {
    if (data.length > MAX_BLOB) {
      throw new PveS3Error('InvalidArgument', `${what} is ${data.length} bytes: a VMA archive stores at most ${MAX_BLOB} bytes per config blob`);
    }
    const b = Buffer.allocUnsafe(2 + data.length);
    b.writeUInt16LE(data.length, 0);
    data.copy(b, 2);
    blobs.push(b);
    const at = pos;
    pos += b.length;
    return at;
  };
  const names: number[] = [];
  const datas: number[] = [];
  for (const c of o.configs) {
    names.push(blob(Buffer.from(c.name + '\0', 'utf8'), `config name '${c.name}'`));
    datas.push(blob(c.data, `config '${c.name}'`));
  }
  const devNames = o.devices.map((d) => blob(Buffer.from(d.name + '\0', 'utf8'), `device name '${d.name}'`));
  const blobArea = Math.ceil(pos / 512) * 512;
  const headerSize = HEADER_FIXED_SIZE + blobArea;
  const h = Buffer.alloc(headerSize);
  VMA_MAGIC.copy(h, 0);
  h.writeUInt32BE(1, H.version);
  o.uuid.copy(h, H.uuid);
  h.writeBigInt64BE(BigInt(o.ctime), H.ctime);
  h.writeUInt32BE(HEADER_FIXED_SIZE, H.blobOffset);
  h.writeUInt32BE(pos, H.blobSize);
  h.writeUInt32BE(headerSize, H.headerSize);
  names.forEach((n, i) => h.writeUInt32BE(n, H.configNames + 4 * i));
  datas.forEach((n, i) => h.writeUInt32BE(n, H.configData + 4 * i));
  o.devices.forEach((d, i) => {
    if (d.id < 1 || d.id > MAX_DEVICES) throw new PveS3Error('InternalError', `VMA device id ${d.id} out of range`);
    if (!(d.size > 0)) throw new PveS3Error('InvalidArgument', `device '${d.name}' has size ${d.size}: VMA needs a positive size`);
    const at = H.devInfo + d.id * H.devInfoSize;
    h.writeUInt32BE(devNames[i]!, at);
    h.writeBigUInt64BE(BigInt(d.size), at + 8);
  });
  let at = HEADER_FIXED_SIZE + 1;
  for (const b of blobs) {
    b.copy(h, at);
    at += b.length;
  }
  md5WithZeroField(h, H.md5).copy(h, H.md5);
  return h;
}

/**
 * Extents of one device. add() takes clusters in order; an extent is closed after 59 clusters
 * or by flush(); take() hands out the finished extent bytes.
 */
export class ExtentBuilder {
  private infos: bigint[] = [];
  private blocks: Buffer[] = [];
  private out: Buffer[] = [];
  private outBytes = 0;
  /** 4 KiB blocks stored so far (all extents) */
  storedBlocks = 0;

  constructor(
    private readonly uuid: Buffer,
    private readonly devId: number,
    private readonly devSize: number,
  ) {}

  /** cluster `n` with its bytes (≤ 64 KiB; past the device end they are ignored), or null for a zero cluster */
  add(n: number, data: Buffer | null): void {
    let mask = 0;
    if (data) {
      const start = n * CLUSTER_SIZE;
      const valid = Math.min(CLUSTER_SIZE, this.devSize - start);
      for (let i = 0; i < BLOCKS_PER_CLUSTER; i++) {
        const o = i * BLOCK_SIZE;
        if (o >= valid) break;
        const end = Math.min(o + BLOCK_SIZE, valid, data.length);
        if (end <= o) break;
        if (data.compare(ZERO_BLOCK, 0, end - o, o, end) === 0) continue;
        mask |= 1 << i;
        if (end - o === BLOCK_SIZE) this.blocks.push(data.subarray(o, end));
        else {
          // the last block of a device: what lies past its end is stored as zeros
          const b = Buffer.alloc(BLOCK_SIZE);
          data.copy(b, 0, o, end);
          this.blocks.push(b);
        }
      }
    }
    this.infos.push(blockinfo(mask, this.devId, n));
    if (this.infos.length === CLUSTERS_PER_EXTENT) this.flush();
  }

  /** closes the extent being built (if any cluster is in it) */
  flush(): void {
    if (this.infos.length === 0) return;
    const h = Buffer.alloc(EXTENT_HEADER_SIZE);
    EXTENT_MAGIC.copy(h, 0);
    h.writeUInt16BE(this.blocks.length, E.blockCount);
    this.uuid.copy(h, E.uuid);
    this.infos.forEach((v, i) => h.writeBigUInt64BE(v, E.blockinfo + 8 * i));
    md5WithZeroField(h, E.md5).copy(h, E.md5);
    this.out.push(h, ...this.blocks);
    this.outBytes += EXTENT_HEADER_SIZE + this.blocks.length * BLOCK_SIZE;
    this.storedBlocks += this.blocks.length;
    this.infos = [];
    this.blocks = [];
  }

  /** the finished extents as one buffer, and forget them */
  take(): Buffer {
    const b = Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    return b;
  }
}
