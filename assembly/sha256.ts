// SHA-256 (FIPS 180-4), streaming, no allocation.
//
// Stable API for other AssemblyScript modules (sigv4.ts builds on it; keep these names):
//   sha256Init(ctx: usize): void                       — ctx: SHA256_CTX_SIZE (128) bytes, 4-aligned
//   sha256Update(ctx: usize, ptr: usize, len: usize): void   — any split, len may be 0
//   sha256Final(ctx: usize, out: usize): void          — writes 32 bytes; ctx must be re-inited after
//   sha256(ptr: usize, len: usize, out: usize): void   — one shot (uses a private ctx)
//   sha256Compress(state: usize, block: usize): void   — one 64-byte block into 8 u32 state words
//
// ctx layout: [0,32) state H0..H7 (native u32) · [32,96) partial block · [96,104) total bytes u64
//             · [104,108) bytes in partial block u32.

export const CTX_STATE: usize = 0;
export const CTX_BUF: usize = 32;
export const CTX_TOTAL: usize = 96;
export const CTX_FILL: usize = 104;

// Round constants; K is read by the compressor through a static table so the unrolled code
// folds each into an i32.const-free load at a fixed offset.
export const K256: usize = memory.data<u32>([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

const W: usize = memory.data(64 * 4, 16);
const ONE_SHOT_CTX: usize = memory.data(128, 16);

export function sha256Init(ctx: usize): void {
  store<u32>(ctx, 0x6a09e667, 0);
  store<u32>(ctx, 0xbb67ae85, 4);
  store<u32>(ctx, 0x3c6ef372, 8);
  store<u32>(ctx, 0xa54ff53a, 12);
  store<u32>(ctx, 0x510e527f, 16);
  store<u32>(ctx, 0x9b05688c, 20);
  store<u32>(ctx, 0x1f83d9ab, 24);
  store<u32>(ctx, 0x5be0cd19, 28);
  store<u64>(ctx + CTX_TOTAL, 0);
  store<u32>(ctx + CTX_FILL, 0);
}

/** Compresses `blocks` consecutive 64-byte blocks at `p` into the state at `st`. */
export function sha256Blocks(st: usize, p: usize, blocks: usize): void {
  let h0 = load<u32>(st, 0), h1 = load<u32>(st, 4), h2 = load<u32>(st, 8), h3 = load<u32>(st, 12);
  let h4 = load<u32>(st, 16), h5 = load<u32>(st, 20), h6 = load<u32>(st, 24), h7 = load<u32>(st, 28);
  for (let n: usize = 0; n < blocks; n++) {
    for (let i: usize = 0; i < 16; i++) store<u32>(W + (i << 2), bswap<u32>(load<u32>(p + (i << 2))));
    for (let i: usize = 16; i < 64; i++) {
      const w15 = load<u32>(W + ((i - 15) << 2));
      const w2 = load<u32>(W + ((i - 2) << 2));
      const s0 = rotr<u32>(w15, 7) ^ rotr<u32>(w15, 18) ^ (w15 >>> 3);
      const s1 = rotr<u32>(w2, 17) ^ rotr<u32>(w2, 19) ^ (w2 >>> 10);
      store<u32>(W + (i << 2), load<u32>(W + ((i - 16) << 2)) + s0 + load<u32>(W + ((i - 7) << 2)) + s1);
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i: usize = 0; i < 64; i++) {
      const t1 = h + (rotr<u32>(e, 6) ^ rotr<u32>(e, 11) ^ rotr<u32>(e, 25)) + ((e & f) ^ (~e & g))
        + load<u32>(K256 + (i << 2)) + load<u32>(W + (i << 2));
      const t2 = (rotr<u32>(a, 2) ^ rotr<u32>(a, 13) ^ rotr<u32>(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h0 += a; h1 += b; h2 += c; h3 += d; h4 += e; h5 += f; h6 += g; h7 += h;
    p += 64;
  }
  store<u32>(st, h0, 0); store<u32>(st, h1, 4); store<u32>(st, h2, 8); store<u32>(st, h3, 12);
  store<u32>(st, h4, 16); store<u32>(st, h5, 20); store<u32>(st, h6, 24); store<u32>(st, h7, 28);
}

export function sha256Compress(state: usize, block: usize): void {
  sha256Blocks(state, block, 1);
}

export function sha256Update(ctx: usize, ptr: usize, len: usize): void {
  if (len == 0) return;
  store<u64>(ctx + CTX_TOTAL, load<u64>(ctx + CTX_TOTAL) + <u64>len);
  let fill = <usize>load<u32>(ctx + CTX_FILL);
  const buf = ctx + CTX_BUF;
  if (fill > 0) {
    const take = min<usize>(64 - fill, len);
    memory.copy(buf + fill, ptr, take);
    fill += take; ptr += take; len -= take;
    if (fill < 64) { store<u32>(ctx + CTX_FILL, <u32>fill); return; }
    sha256Blocks(ctx, buf, 1);
    fill = 0;
  }
  const blocks = len >>> 6;
  if (blocks > 0) {
    sha256Blocks(ctx, ptr, blocks);
    ptr += blocks << 6; len -= blocks << 6;
  }
  if (len > 0) memory.copy(buf, ptr, len);
  store<u32>(ctx + CTX_FILL, <u32>len);
}

export function sha256Final(ctx: usize, out: usize): void {
  const buf = ctx + CTX_BUF;
  let fill = <usize>load<u32>(ctx + CTX_FILL);
  const bits = load<u64>(ctx + CTX_TOTAL) << 3;
  store<u8>(buf + fill, 0x80);
  fill++;
  if (fill > 56) {
    memory.fill(buf + fill, 0, 64 - fill);
    sha256Blocks(ctx, buf, 1);
    fill = 0;
  }
  memory.fill(buf + fill, 0, 56 - fill);
  store<u64>(buf + 56, bswap<u64>(bits));
  sha256Blocks(ctx, buf, 1);
  for (let i: usize = 0; i < 32; i += 4) store<u32>(out + i, bswap<u32>(load<u32>(ctx + i)));
}

export function sha256(ptr: usize, len: usize, out: usize): void {
  sha256Init(ONE_SHOT_CTX);
  sha256Update(ONE_SHOT_CTX, ptr, len);
  sha256Final(ONE_SHOT_CTX, out);
}
