/**
 * Idiomatic digest classes over core.wasm. Input of any size is copied into the module's I/O
 * region one slice at a time, so callers never see pointers and any Uint8Array works.
 *
 * Sha256 / Md5 keep their state in a slot of a per-algorithm pool (slots.ts), so any number of
 * instances may be alive and updated in any interleaving. The CRCs keep their few bytes of state
 * in JS, so they need no slot at all.
 */
import { PveS3Error } from '../util/errors.js';
import { digestCore, regions, type DigestCore } from './core.js';
import { heap } from './load.js';
import { SlotPool, type SlotOwner } from './slots.js';

export type Bytes = Uint8Array | string;

const utf8 = new TextEncoder();

function bytesOf(d: Bytes, what: string): Uint8Array {
  if (d instanceof Uint8Array) return d;
  if (typeof d === 'string') return utf8.encode(d);
  throw new PveS3Error('InvalidArgument', `invalid ${what} '${typeof d}': must be a Uint8Array or a string`);
}

// V8 first runs WASM in its baseline compiler and swaps in optimised code between calls, once a
// function has run enough. The unrolled kernels are very slow in baseline code (~20 MB/s), so the
// first MiB of a process goes in small slices: the optimised code arrives after a few of them
// instead of after a whole 1 MiB call (saves ~25-40 ms per process that hashes bulk data).
// Each kernel warms up separately, so each has its own count.
const WARM_SLICE = 16 * 1024;
const WARM_BYTES = 1 << 20;
type Kernel = 'sha256' | 'sha256x4' | 'md5' | 'crc32c' | 'crc64nvme';
const fed: Record<Kernel, number> = { sha256: 0, sha256x4: 0, md5: 0, crc32c: 0, crc64nvme: 0 };

/** Feeds `d` through the I/O region in slices, calling `step(ptr, len)` for each. */
function feed(kernel: Kernel, d: Uint8Array, step: (ptr: number, len: number) => void): void {
  const { io, ioSize } = regions();
  const mem = heap();
  for (let off = 0; off < d.length; ) {
    const slice = fed[kernel] < WARM_BYTES ? WARM_SLICE : ioSize;
    const n = Math.min(slice, d.length - off);
    mem.set(d.subarray(off, off + n), io);
    step(io, n);
    off += n;
    fed[kernel] += n;
  }
}

/** Like feed, for `len` bytes already in the core's memory at `ptr` (a bulk region): no copy. */
function feedAt(kernel: Kernel, ptr: number, len: number, step: (ptr: number, len: number) => void): void {
  for (let off = 0; off < len; ) {
    const n = fed[kernel] < WARM_BYTES ? Math.min(WARM_SLICE, len - off) : len - off;
    step(ptr + off, n);
    off += n;
    fed[kernel] += n;
  }
}

/** Refuses a range that is not inside the core's memory: a kernel would read past its end. */
function checkRange(ptr: number, len: number, what: string): void {
  if (!Number.isInteger(ptr) || !Number.isInteger(len) || ptr < 0 || len < 0 || ptr + len > heap().length) {
    throw new PveS3Error('InvalidArgument', `invalid ${what} [${String(ptr)}, +${String(len)}): must lie inside the core's memory (${heap().length} bytes)`);
  }
}

function finished(name: string): PveS3Error {
  return new PveS3Error('DigestFinished', `${name}.update()/digest() called after digest(): create a new ${name}`);
}

let shaPool: SlotPool | undefined;
let md5Pool: SlotPool | undefined;

function pools(): { sha: SlotPool; md5: SlotPool } {
  if (shaPool === undefined || md5Pool === undefined) {
    const r = regions();
    shaPool = new SlotPool(r.sha256Slots, 128, r.slotCount);
    md5Pool = new SlotPool(r.md5Slots, 128, r.slotCount);
  }
  return { sha: shaPool, md5: md5Pool };
}

/** Shared streaming logic of the block hashes: a slot, init/update/final, one digest only. */
abstract class SlotHash {
  private readonly owner: SlotOwner = { slot: -1, spill: null };
  private done = false;
  protected readonly core: DigestCore = digestCore();

  protected abstract readonly name: string;
  protected abstract readonly kernel: Kernel;
  protected abstract readonly size: number;
  protected abstract pool(): SlotPool;
  protected abstract init(ctx: number): void;
  protected abstract step(ctx: number, ptr: number, len: number): void;
  protected abstract final(ctx: number, out: number): void;

  protected start(): void {
    this.init(this.pool().bind(this.owner));
  }

  update(data: Bytes): this {
    if (this.done) throw finished(this.name);
    const d = bytesOf(data, `${this.name} input`);
    if (d.length === 0) return this;
    // One bind per update: nothing else can use the pool until this synchronous call returns.
    const ctx = this.pool().bind(this.owner);
    feed(this.kernel, d, (ptr, len) => this.step(ctx, ptr, len));
    return this;
  }

  /** The digest; the instance is finished afterwards (its slot goes back to the pool). */
  digest(): Uint8Array {
    if (this.done) throw finished(this.name);
    const pool = this.pool();
    const { out } = regions();
    this.final(pool.bind(this.owner), out);
    const result = heap().slice(out, out + this.size);
    pool.release(this.owner);
    this.done = true;
    return result;
  }
}

export class Sha256 extends SlotHash {
  protected readonly name = 'Sha256';
  protected readonly kernel = 'sha256';
  protected readonly size = 32;
  constructor() {
    super();
    this.start();
  }
  protected pool(): SlotPool { return pools().sha; }
  protected init(ctx: number): void { this.core.sha256Init(ctx); }
  protected step(ctx: number, ptr: number, len: number): void { this.core.sha256Update(ctx, ptr, len); }
  protected final(ctx: number, out: number): void { this.core.sha256Final(ctx, out); }

  static hash(data: Bytes): Uint8Array {
    return new Sha256().update(data).digest();
  }
}

export class Md5 extends SlotHash {
  protected readonly name = 'Md5';
  protected readonly kernel = 'md5';
  protected readonly size = 16;
  constructor() {
    super();
    this.start();
  }
  protected pool(): SlotPool { return pools().md5; }
  protected init(ctx: number): void { this.core.md5Init(ctx); }
  protected step(ctx: number, ptr: number, len: number): void { this.core.md5Update(ctx, ptr, len); }
  protected final(ctx: number, out: number): void { this.core.md5Final(ctx, out); }

  static hash(data: Bytes): Uint8Array {
    return new Md5().update(data).digest();
  }
}

function checkLength(lenB: number): void {
  if (!Number.isSafeInteger(lenB) || lenB < 0) {
    throw new PveS3Error('InvalidArgument', `invalid lenB '${String(lenB)}': must be a non-negative safe integer (bytes)`);
  }
}

/**
 * CRC-32C as S3's x-amz-checksum-crc32c. digest() does not end the instance: the running value
 * can be read at any point and more data added afterwards.
 */
export class Crc32c {
  private crc = 0;

  update(data: Bytes): this {
    const core = digestCore();
    feed('crc32c', bytesOf(data, 'Crc32c input'), (ptr, len) => {
      this.crc = core.crc32cUpdate(this.crc, ptr, len) >>> 0;
    });
    return this;
  }

  digest(): number {
    return this.crc;
  }

  static hash(data: Bytes): number {
    return new Crc32c().update(data).digest();
  }

  /** crc(A ‖ B) from crc(A), crc(B) and B's length — for assembling a whole-object CRC from
   *  parts hashed separately. */
  static combine(a: number, b: number, lenB: number): number {
    for (const [k, v] of [['a', a], ['b', b]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new PveS3Error('InvalidArgument', `invalid ${k} '${String(v)}': must be a CRC-32C value, an integer 0..4294967295`);
      }
    }
    checkLength(lenB);
    return digestCore().crc32cCombine(a, b, lenB) >>> 0;
  }
}

const U64 = (1n << 64n) - 1n;

/** CRC-64/NVME as S3's x-amz-checksum-crc64nvme; same streaming rules as Crc32c. */
export class Crc64Nvme {
  private crc = 0n;

  update(data: Bytes): this {
    feed('crc64nvme', bytesOf(data, 'Crc64Nvme input'), this.step);
    return this;
  }

  /** The `len` bytes at `ptr` of the core's memory (a bulk region), where they lie. */
  updateAt(ptr: number, len: number): this {
    checkRange(ptr, len, 'Crc64Nvme range');
    feedAt('crc64nvme', ptr, len, this.step);
    return this;
  }

  private readonly step = (ptr: number, len: number): void => {
    this.crc = BigInt.asUintN(64, digestCore().crc64nvmeUpdate(this.crc, ptr, len));
  };

  digest(): bigint {
    return this.crc;
  }

  static hash(data: Bytes): bigint {
    return new Crc64Nvme().update(data).digest();
  }

  static combine(a: bigint, b: bigint, lenB: number): bigint {
    for (const [k, v] of [['a', a], ['b', b]] as const) {
      if (typeof v !== 'bigint' || v < 0n || v > U64) {
        throw new PveS3Error('InvalidArgument', `invalid ${k} '${String(v)}': must be a CRC-64/NVME value, a bigint 0..2^64-1`);
      }
    }
    checkLength(lenB);
    return BigInt.asUintN(64, digestCore().crc64nvmeCombine(a, b, lenB));
  }
}

/** HMAC-SHA256 (RFC 2104); keys longer than a block are hashed first, as the RFC requires. */
export function hmacSha256(key: Bytes, msg: Bytes): Uint8Array {
  let k = bytesOf(key, 'HMAC key');
  const m = bytesOf(msg, 'HMAC message');
  if (k.length > 64) k = Sha256.hash(k);
  const core = digestCore();
  const r = regions();
  const mem = heap();
  mem.set(k, r.key);
  core.hmacSha256Init(r.hmac, r.key, k.length);
  // Key material must not linger in shared memory longer than needed.
  mem.fill(0, r.key, r.key + 64);
  feed('sha256', m, (ptr, len) => core.hmacSha256Update(r.hmac, ptr, len));
  core.hmacSha256Final(r.hmac, r.out);
  const mac = mem.slice(r.out, r.out + 32);
  mem.fill(0, r.hmac, r.hmac + 256);
  return mac;
}

const SHA_CTX_SIZE = 128;
const SHA_CTX_TOTAL = 96;
const SHA_CTX_FILL = 104;

const EMPTY = new Uint8Array(0);

/** One lane's bytes at `ptr` of the core's memory on the scalar core (one closure for all calls). */
function scalarAt(core: DigestCore, ctx: number, ptr: number, len: number): void {
  scalarCtx = ctx;
  scalarCore = core;
  feedAt('sha256', ptr, len, scalarStep);
}
let scalarCtx = 0;
let scalarCore: DigestCore | undefined;
const scalarStep = (ptr: number, len: number): void => {
  scalarCore!.sha256Update(scalarCtx, ptr, len);
};

function checkLaneCount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 4) {
    throw new PveS3Error('InvalidArgument', `invalid ${what} '${String(n)}': must be an integer 1..4`);
  }
  return n;
}

/**
 * 1..4 independent SHA-256 streams hashed together on the 4-lane SIMD core, e.g. the parts of a
 * multipart upload read side by side. Each update() takes the next slice of every lane (any
 * lengths, `undefined` or empty for a lane with nothing new), so parts of any size stream
 * through without being held in memory.
 *
 * Between calls every lane is a plain scalar SHA-256 context kept in JS (128 bytes), so any
 * number of instances may be live and interleaved with each other and with Sha256. Within a
 * call, each lane's partial block is completed on the scalar core, then the full blocks the
 * lanes have in common run on the SIMD core (while at least two lanes have some), and what is
 * left (one lane's extra blocks, tails) goes back to the scalar core. Lanes fed equal slices
 * therefore spend nearly all their blocks in SIMD.
 */
export class Sha256x4 {
  private readonly lanes: number;
  private readonly state: Uint8Array[];
  private done = false;

  constructor(lanes = 4) {
    this.lanes = checkLaneCount(lanes, 'lanes');
    const core = digestCore();
    const r = regions();
    this.state = [];
    for (let l = 0; l < this.lanes; l++) {
      const ctx = r.sha256x4 + 128 + 128 * l;
      core.sha256Init(ctx);
      this.state.push(heap().slice(ctx, ctx + SHA_CTX_SIZE));
    }
  }

  // Per-call scratch, reused: update() is hot, and V8 recompiles a large function each time a
  // value changes shape (an array turning from small integers to doubles, a closure per call);
  // this keeps every local one type.
  private readonly data: Uint8Array[] = [EMPTY, EMPTY, EMPTY, EMPTY];
  private readonly ptrs = new Float64Array(4);
  private readonly lens = new Float64Array(4);
  private readonly pos = new Float64Array(4);
  private readonly full = new Float64Array(4);
  private readonly base = new Float64Array(4);
  private readonly active = new Int32Array(4);

  /** chunks[l] is the next slice of lane l (a missing entry or undefined: nothing this time).
   *  The slices go through the I/O region a quarter of it per lane at a time (updateAt). */
  update(chunks: Array<Bytes | undefined>): this {
    if (this.done) throw finished('Sha256x4');
    if (!Array.isArray(chunks) || chunks.length > this.lanes) {
      throw new PveS3Error('InvalidArgument', `invalid chunks (${Array.isArray(chunks) ? `length ${chunks.length}` : typeof chunks}): Sha256x4.update takes an array of at most ${this.lanes} slices, one per lane`);
    }
    const n = chunks.length;
    const { data, ptrs, lens } = this;
    let longest = 0;
    for (let l = 0; l < 4; l++) {
      const d = l < n ? chunks[l] : undefined;
      data[l] = d === undefined ? EMPTY : d instanceof Uint8Array ? d : bytesOf(d, `Sha256x4 chunks[${l}]`);
      longest = Math.max(longest, data[l]!.length);
    }
    const r = regions();
    const quarter = Math.floor(r.ioSize / 4 / 64) * 64;
    for (let off = 0; off < longest; off += quarter) {
      const mem = heap();
      for (let l = 0; l < n; l++) {
        const piece = data[l]!.subarray(Math.min(off, data[l]!.length), Math.min(off + quarter, data[l]!.length));
        ptrs[l] = r.io + l * quarter;
        lens[l] = piece.length;
        mem.set(piece, ptrs[l]!);
      }
      this.run(n);
    }
    for (let l = 0; l < 4; l++) data[l] = EMPTY;
    return this;
  }

  /**
   * Like update(), for slices already in the core's memory (a bulk region, bulkRegion()): lane l's
   * next `lens[l]` bytes are at `ptrs[l]`, and are hashed where they lie, without a copy.
   */
  updateAt(ptrs: ArrayLike<number>, lens: ArrayLike<number>): this {
    if (this.done) throw finished('Sha256x4');
    const n = lens.length;
    if (n > this.lanes || ptrs.length !== n) {
      throw new PveS3Error('InvalidArgument', `invalid lanes (${ptrs.length} pointers, ${n} lengths): Sha256x4.updateAt takes one pointer and one length per lane, at most ${this.lanes}`);
    }
    for (let l = 0; l < n; l++) {
      checkRange(ptrs[l]!, lens[l]!, `Sha256x4 lane ${l} range`);
      this.ptrs[l] = ptrs[l]!;
      this.lens[l] = lens[l]!;
    }
    this.run(n);
    return this;
  }

  /** Hashes lanes 0..n-1's this.lens[l] bytes at this.ptrs[l] of the core's memory. */
  private run(n: number): void {
    const { ptrs, lens, pos, full, base, active } = this;
    const core = digestCore();
    const r = regions();
    const x = r.sha256x4;
    const mem = heap();
    const dv = new DataView(mem.buffer);
    for (let l = 0; l < n; l++) {
      pos[l] = 0;
      if (lens[l] === 0) continue;
      const ctx = x + 128 + 128 * l;
      mem.set(this.state[l]!, ctx);
      // Complete the lane's partial block first, so what follows starts on a block boundary.
      const fill = dv.getUint32(ctx + SHA_CTX_FILL, true);
      if (fill > 0) {
        pos[l] = Math.min(64 - fill, lens[l]!);
        scalarAt(core, ctx, ptrs[l]!, pos[l]!);
      }
    }
    let na = 0;
    for (let l = 0; l < n; l++) {
      full[l] = pos[l]! + Math.floor((lens[l]! - pos[l]!) / 64) * 64;
      if (full[l]! > pos[l]!) active[na++] = l;
    }

    if (na >= 2) {
      for (let k = 0; k < na; k++) {
        const l = active[k]!;
        const ctx = x + 128 + 128 * l;
        // total bytes so far (u64 little-endian; exact in a double up to 2^53)
        base[l] = dv.getUint32(ctx + SHA_CTX_TOTAL, true) + dv.getUint32(ctx + SHA_CTX_TOTAL + 4, true) * 4294967296 - pos[l]!;
        core.sha256x4Load(x, l, ctx);
      }
      while (na >= 2) {
        let chunk = fed.sha256x4 < WARM_BYTES ? WARM_SLICE : Infinity;
        for (let k = 0; k < na; k++) chunk = Math.min(chunk, full[active[k]!]! - pos[active[k]!]!);
        fed.sha256x4 += chunk * na;
        // Idle lanes read an active lane's bytes; their (garbage) state is never extracted.
        const idle = ptrs[active[0]!]! + pos[active[0]!]!;
        let p0 = idle;
        let p1 = idle;
        let p2 = idle;
        let p3 = idle;
        for (let k = 0; k < na; k++) {
          const l = active[k]!;
          const p = ptrs[l]! + pos[l]!;
          if (l === 0) p0 = p;
          else if (l === 1) p1 = p;
          else if (l === 2) p2 = p;
          else p3 = p;
        }
        core.sha256x4Blocks(x, p0, p1, p2, p3, chunk / 64);
        let still = 0;
        for (let k = 0; k < na; k++) {
          const l = active[k]!;
          pos[l] = pos[l]! + chunk;
          if (pos[l] === full[l]) core.sha256x4Extract(x, l, x + 128 + 128 * l, base[l]! + pos[l]!);
          else active[still++] = l;
        }
        na = still;
      }
      // The one lane still holding full blocks (if any) continues on the scalar core.
      for (let k = 0; k < na; k++) {
        const l = active[k]!;
        core.sha256x4Extract(x, l, x + 128 + 128 * l, base[l]! + pos[l]!);
      }
    }

    for (let l = 0; l < n; l++) {
      if (lens[l] === 0) continue;
      const ctx = x + 128 + 128 * l;
      if (pos[l]! < lens[l]!) scalarAt(core, ctx, ptrs[l]! + pos[l]!, lens[l]! - pos[l]!);
      this.state[l]!.set(heap().subarray(ctx, ctx + SHA_CTX_SIZE));
    }
  }

  /**
   * Lane l's digest; the lane then starts over empty while the others go on. Lets one instance
   * serve a changing set of streams (download ranges that end at different times).
   */
  digestLane(l: number): Uint8Array {
    if (this.done) throw finished('Sha256x4');
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 0 || l >= this.lanes) {
      throw new PveS3Error('InvalidArgument', `invalid lane '${String(l)}': must be an integer 0..${this.lanes - 1}`);
    }
    const core = digestCore();
    const r = regions();
    const ctx = r.sha256x4 + 128 + 128 * l;
    heap().set(this.state[l]!, ctx);
    core.sha256Final(ctx, r.out);
    const out = heap().slice(r.out, r.out + 32);
    core.sha256Init(ctx);
    this.state[l] = heap().slice(ctx, ctx + SHA_CTX_SIZE);
    return out;
  }

  /** One 32-byte digest per lane; the instance is finished afterwards. */
  digest(): Uint8Array[] {
    if (this.done) throw finished('Sha256x4');
    const core = digestCore();
    const r = regions();
    const ctx = r.sha256x4 + 128;
    const out: Uint8Array[] = [];
    for (const s of this.state) {
      heap().set(s, ctx);
      core.sha256Final(ctx, r.out);
      out.push(heap().slice(r.out, r.out + 32));
    }
    this.done = true;
    return out;
  }
}

/** SHA-256 of 1..4 whole inputs at once on the 4-lane SIMD core (one Sha256x4 update). */
export function sha256x4(inputs: Uint8Array[]): Uint8Array[] {
  if (!Array.isArray(inputs) || inputs.length < 1 || inputs.length > 4) {
    throw new PveS3Error('InvalidArgument', `invalid inputs (length ${Array.isArray(inputs) ? inputs.length : typeof inputs}): sha256x4 takes an array of 1..4 Uint8Arrays`);
  }
  inputs.forEach((d, i) => {
    if (!(d instanceof Uint8Array)) throw new PveS3Error('InvalidArgument', `invalid inputs[${i}] '${typeof d}': must be a Uint8Array`);
  });
  return new Sha256x4(inputs.length).update(inputs).digest();
}
