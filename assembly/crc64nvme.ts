// CRC-64/NVME (reflected poly 0x9A6C9329AC4BC9B5, init/xorout all ones), the S3
// x-amz-checksum-crc64nvme algorithm.
//
// API (zlib-style, finished CRC values in and out; 0 is the CRC of nothing):
//   crc64nvmeUpdate(crc: u64, ptr: usize, len: usize): u64
//   crc64nvmeCombine(crcA: u64, crcB: u64, lenB: f64): u64   — crc(A ‖ B)
//
// Slicing-by-16 over u64 tables (32 KiB, built on first use), for the same reasons as
// crc32c.ts (no carry-less multiply in WebAssembly); long inputs run as two interleaved halves
// joined by the combine, which gains about a quarter here: one 64-bit chain leaves the CPU idle.

const POLY: u64 = 0x9a6c9329ac4bc9b5;
const TAB: usize = memory.data(16 * 256 * 8, 64);
const X2N: usize = memory.data(64 * 8, 16);
const TWO_WAY_MIN: usize = 16384;

function buildTables(): void {
  for (let i: u64 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = (c >> 1) ^ (POLY & (0 - (c & 1)));
    store<u64>(TAB + (<usize>i << 3), c);
  }
  for (let t: usize = 1; t < 16; t++) {
    for (let i: usize = 0; i < 256; i++) {
      const prev = load<u64>(TAB + ((t - 1) << 11) + (i << 3));
      store<u64>(TAB + (t << 11) + (i << 3), (prev >> 8) ^ load<u64>(TAB + (<usize>(prev & 0xff) << 3)));
    }
  }
  let p: u64 = 1 << 62; // x^1
  for (let k: usize = 0; k < 64; k++) {
    store<u64>(X2N + (k << 3), p);
    p = mulModP(p, p);
  }
}
// Built on the first call that needs them, not at instantiation: every process instantiates the
// core, and most (pvestatd's status every 10 s, a listing) never compute a CRC — building both
// CRC modules' tables cost each of them ~0.4 ms and 17 page faults.
let built = false;
@inline function tables(): void {
  if (!built) {
    buildTables();
    built = true;
  }
}

@inline function tab0(i: u64): u64 {
  return load<u64>(TAB + (<usize>(i & 0xff) << 3));
}

export function crc64nvmeUpdate(crc: u64, ptr: usize, len: usize): u64 {
  tables();
  let c = ~crc;
  while (len > 0 && (ptr & 7) != 0) {
    c = (c >> 8) ^ tab0(c ^ <u64>load<u8>(ptr));
    ptr++; len--;
  }
  if (len >= TWO_WAY_MIN) {
    // Two halves in one loop so both lookup chains overlap, joined with the combine (see crc32c.ts).
    const half = (len >>> 5) << 4;
    let q = ptr + half;
    const end = q;
    let d: u64 = 0xffffffffffffffff;
    while (ptr < end) {
      const a0 = c ^ load<u64>(ptr, 0), a1 = load<u64>(ptr, 8);
      const b0 = d ^ load<u64>(q, 0), b1 = load<u64>(q, 8);
      c = load<u64>(<usize>((a0 << 3) & 0x7f8), TAB + 30720)
        ^ load<u64>(<usize>((a0 >> 5) & 0x7f8), TAB + 28672)
        ^ load<u64>(<usize>((a0 >> 13) & 0x7f8), TAB + 26624)
        ^ load<u64>(<usize>((a0 >> 21) & 0x7f8), TAB + 24576)
        ^ load<u64>(<usize>((a0 >> 29) & 0x7f8), TAB + 22528)
        ^ load<u64>(<usize>((a0 >> 37) & 0x7f8), TAB + 20480)
        ^ load<u64>(<usize>((a0 >> 45) & 0x7f8), TAB + 18432)
        ^ load<u64>(<usize>((a0 >> 53) & 0x7f8), TAB + 16384)
        ^ load<u64>(<usize>((a1 << 3) & 0x7f8), TAB + 14336)
        ^ load<u64>(<usize>((a1 >> 5) & 0x7f8), TAB + 12288)
        ^ load<u64>(<usize>((a1 >> 13) & 0x7f8), TAB + 10240)
        ^ load<u64>(<usize>((a1 >> 21) & 0x7f8), TAB + 8192)
        ^ load<u64>(<usize>((a1 >> 29) & 0x7f8), TAB + 6144)
        ^ load<u64>(<usize>((a1 >> 37) & 0x7f8), TAB + 4096)
        ^ load<u64>(<usize>((a1 >> 45) & 0x7f8), TAB + 2048)
        ^ load<u64>(<usize>((a1 >> 53) & 0x7f8), TAB + 0);
      d = load<u64>(<usize>((b0 << 3) & 0x7f8), TAB + 30720)
        ^ load<u64>(<usize>((b0 >> 5) & 0x7f8), TAB + 28672)
        ^ load<u64>(<usize>((b0 >> 13) & 0x7f8), TAB + 26624)
        ^ load<u64>(<usize>((b0 >> 21) & 0x7f8), TAB + 24576)
        ^ load<u64>(<usize>((b0 >> 29) & 0x7f8), TAB + 22528)
        ^ load<u64>(<usize>((b0 >> 37) & 0x7f8), TAB + 20480)
        ^ load<u64>(<usize>((b0 >> 45) & 0x7f8), TAB + 18432)
        ^ load<u64>(<usize>((b0 >> 53) & 0x7f8), TAB + 16384)
        ^ load<u64>(<usize>((b1 << 3) & 0x7f8), TAB + 14336)
        ^ load<u64>(<usize>((b1 >> 5) & 0x7f8), TAB + 12288)
        ^ load<u64>(<usize>((b1 >> 13) & 0x7f8), TAB + 10240)
        ^ load<u64>(<usize>((b1 >> 21) & 0x7f8), TAB + 8192)
        ^ load<u64>(<usize>((b1 >> 29) & 0x7f8), TAB + 6144)
        ^ load<u64>(<usize>((b1 >> 37) & 0x7f8), TAB + 4096)
        ^ load<u64>(<usize>((b1 >> 45) & 0x7f8), TAB + 2048)
        ^ load<u64>(<usize>((b1 >> 53) & 0x7f8), TAB + 0);
      ptr += 16; q += 16;
    }
    c = ~crc64nvmeCombine(~c, ~d, <f64>half);
    ptr = q;
    len -= half << 1;
  }
  while (len >= 16) {
    const w0 = c ^ load<u64>(ptr, 0);
    const w1 = load<u64>(ptr, 8);
    c = load<u64>(<usize>((w0 << 3) & 0x7f8), TAB + 30720)
      ^ load<u64>(<usize>((w0 >> 5) & 0x7f8), TAB + 28672)
      ^ load<u64>(<usize>((w0 >> 13) & 0x7f8), TAB + 26624)
      ^ load<u64>(<usize>((w0 >> 21) & 0x7f8), TAB + 24576)
      ^ load<u64>(<usize>((w0 >> 29) & 0x7f8), TAB + 22528)
      ^ load<u64>(<usize>((w0 >> 37) & 0x7f8), TAB + 20480)
      ^ load<u64>(<usize>((w0 >> 45) & 0x7f8), TAB + 18432)
      ^ load<u64>(<usize>((w0 >> 53) & 0x7f8), TAB + 16384)
      ^ load<u64>(<usize>((w1 << 3) & 0x7f8), TAB + 14336)
      ^ load<u64>(<usize>((w1 >> 5) & 0x7f8), TAB + 12288)
      ^ load<u64>(<usize>((w1 >> 13) & 0x7f8), TAB + 10240)
      ^ load<u64>(<usize>((w1 >> 21) & 0x7f8), TAB + 8192)
      ^ load<u64>(<usize>((w1 >> 29) & 0x7f8), TAB + 6144)
      ^ load<u64>(<usize>((w1 >> 37) & 0x7f8), TAB + 4096)
      ^ load<u64>(<usize>((w1 >> 45) & 0x7f8), TAB + 2048)
      ^ load<u64>(<usize>((w1 >> 53) & 0x7f8), TAB + 0);
    ptr += 16; len -= 16;
  }
  while (len > 0) {
    c = (c >> 8) ^ tab0(c ^ <u64>load<u8>(ptr));
    ptr++; len--;
  }
  return ~c;
}

/** a·b mod P in the reflected representation (bit 63 is x^0). */
function mulModP(a: u64, b: u64): u64 {
  let m: u64 = 1 << 63;
  let p: u64 = 0;
  while (m != 0 && a != 0) {
    if (a & m) { p ^= b; a ^= m; }
    m >>= 1;
    b = (b >> 1) ^ (POLY & (0 - (b & 1)));
  }
  return p;
}

/** x^(8·n) mod P by square-and-multiply over the bits of n. */
function xPow8n(n: u64): u64 {
  let p: u64 = 1 << 63; // x^0
  let k: usize = 3;
  while (n != 0) {
    if (n & 1) p = mulModP(load<u64>(X2N + (k << 3)), p);
    n >>= 1;
    k++;
  }
  return p;
}

export function crc64nvmeCombine(crcA: u64, crcB: u64, lenB: f64): u64 {
  tables();
  // init and xorout are both all ones, so they cancel: shift crcA by lenB zero bytes, add crcB.
  return mulModP(xPow8n(<u64>lenB), crcA) ^ crcB;
}
