/**
 * Typed access to the digest exports of core.wasm (docs/WASM-ABI.md). Pointers and lengths are
 * byte offsets/counts in linear memory; i64 values cross as bigint, lengths for combine as number.
 */
import { loadCore } from './load.js';

export interface DigestCore {
  ioPtr(): number;
  ioSize(): number;
  outPtr(): number;
  keyPtr(): number;
  sha256SlotsPtr(): number;
  md5SlotsPtr(): number;
  sha256x4CtxPtr(): number;
  hmacCtxPtr(): number;
  slotCount(): number;
  sha256Init(ctx: number): void;
  sha256Update(ctx: number, ptr: number, len: number): void;
  sha256Final(ctx: number, out: number): void;
  md5Init(ctx: number): void;
  md5Update(ctx: number, ptr: number, len: number): void;
  md5Final(ctx: number, out: number): void;
  hmacSha256Init(ctx: number, keyPtr: number, keyLen: number): void;
  hmacSha256Update(ctx: number, ptr: number, len: number): void;
  hmacSha256Final(ctx: number, out: number): void;
  crc32cUpdate(crc: number, ptr: number, len: number): number;
  crc32cCombine(a: number, b: number, lenB: number): number;
  crc64nvmeUpdate(crc: bigint, ptr: number, len: number): bigint;
  crc64nvmeCombine(a: bigint, b: bigint, lenB: number): bigint;
  sha256x4Init(ctx: number): void;
  sha256x4Blocks(ctx: number, p0: number, p1: number, p2: number, p3: number, blocks: number): void;
  sha256x4Extract(ctx: number, lane: number, dst: number, totalBytes: number): void;
  sha256x4Load(ctx: number, lane: number, src: number): void;
}

/** Region addresses, read once: they are fixed for the lifetime of the instance. */
export interface Regions {
  io: number;
  ioSize: number;
  out: number;
  key: number;
  sha256Slots: number;
  md5Slots: number;
  slotCount: number;
  sha256x4: number;
  hmac: number;
}

let cached: { core: DigestCore; regions: Regions } | undefined;

function init(): { core: DigestCore; regions: Regions } {
  if (cached !== undefined) return cached;
  const core = loadCore() as unknown as DigestCore;
  const regions: Regions = {
    io: core.ioPtr() >>> 0,
    ioSize: core.ioSize() >>> 0,
    out: core.outPtr() >>> 0,
    key: core.keyPtr() >>> 0,
    sha256Slots: core.sha256SlotsPtr() >>> 0,
    md5Slots: core.md5SlotsPtr() >>> 0,
    slotCount: core.slotCount() >>> 0,
    sha256x4: core.sha256x4CtxPtr() >>> 0,
    hmac: core.hmacCtxPtr() >>> 0,
  };
  cached = { core, regions };
  return cached;
}

export function digestCore(): DigestCore {
  return init().core;
}

export function regions(): Regions {
  return init().regions;
}

/** An area of the core's memory past its static layout, lent to one user at a time. */
export interface BulkRegion {
  readonly ptr: number;
  readonly size: number;
}

const PAGE = 65536;
const spareBulk: BulkRegion[] = [];

/**
 * Lends `bytes` of the core's memory for data a caller reads in to hash where it lies
 * (Sha256x4.updateAt, Crc64Nvme.updateAt): a file read straight into the core's memory saves the
 * copy through the I/O region. The memory grows for a region the first time one of its size is
 * needed; a returned region is lent again. Growth detaches earlier views of the memory: take
 * views through heap() after this call, never across it.
 */
export function lendBulk(bytes: number): BulkRegion {
  const i = spareBulk.findIndex((b) => b.size === bytes);
  if (i >= 0) return spareBulk.splice(i, 1)[0]!;
  const memory = loadCore().memory;
  const ptr = memory.buffer.byteLength;
  memory.grow(Math.ceil(bytes / PAGE));
  return { ptr, size: bytes };
}

/** Gives a region from lendBulk back for the next caller. */
export function returnBulk(b: BulkRegion): void {
  spareBulk.push(b);
}
