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

// Round helpers; @inline makes them plain expressions in the unrolled body below.
@inline function SIG0(x: u32): u32 { return rotr<u32>(x, 2) ^ rotr<u32>(x, 13) ^ rotr<u32>(x, 22); }
@inline function SIG1(x: u32): u32 { return rotr<u32>(x, 6) ^ rotr<u32>(x, 11) ^ rotr<u32>(x, 25); }
@inline function sig0(x: u32): u32 { return rotr<u32>(x, 7) ^ rotr<u32>(x, 18) ^ (x >>> 3); }
@inline function sig1(x: u32): u32 { return rotr<u32>(x, 17) ^ rotr<u32>(x, 19) ^ (x >>> 10); }
@inline function ch(e: u32, f: u32, g: u32): u32 { return g ^ (e & (f ^ g)); }
@inline function maj(a: u32, b: u32, c: u32): u32 { return (a & b) | (c & (a | b)); }

/** Compresses `blocks` consecutive 64-byte blocks at `p` into the state at `st`.
 *
 *  Fully unrolled (mechanically: each round renames a..h instead of shifting them, and the
 *  message schedule is a 16-word ring kept in locals) because a rolled loop with W in memory
 *  runs at roughly half the speed: the win comes from the engine keeping W and the working
 *  variables in registers and folding K into immediates. */
export function sha256Blocks(st: usize, p: usize, blocks: usize): void {
  let h0 = load<u32>(st, 0), h1 = load<u32>(st, 4), h2 = load<u32>(st, 8), h3 = load<u32>(st, 12);
  let h4 = load<u32>(st, 16), h5 = load<u32>(st, 20), h6 = load<u32>(st, 24), h7 = load<u32>(st, 28);
  const end = p + (blocks << 6);
  while (p < end) {
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    let t: u32;
    let w0 = bswap<u32>(load<u32>(p, 0));
    let w1 = bswap<u32>(load<u32>(p, 4));
    let w2 = bswap<u32>(load<u32>(p, 8));
    let w3 = bswap<u32>(load<u32>(p, 12));
    let w4 = bswap<u32>(load<u32>(p, 16));
    let w5 = bswap<u32>(load<u32>(p, 20));
    let w6 = bswap<u32>(load<u32>(p, 24));
    let w7 = bswap<u32>(load<u32>(p, 28));
    let w8 = bswap<u32>(load<u32>(p, 32));
    let w9 = bswap<u32>(load<u32>(p, 36));
    let w10 = bswap<u32>(load<u32>(p, 40));
    let w11 = bswap<u32>(load<u32>(p, 44));
    let w12 = bswap<u32>(load<u32>(p, 48));
    let w13 = bswap<u32>(load<u32>(p, 52));
    let w14 = bswap<u32>(load<u32>(p, 56));
    let w15 = bswap<u32>(load<u32>(p, 60));
    t = h + SIG1(e) + ch(e, f, g) + 0x428a2f98 + w0; d += t; h = t + SIG0(a) + maj(a, b, c);
    t = g + SIG1(d) + ch(d, e, f) + 0x71374491 + w1; c += t; g = t + SIG0(h) + maj(h, a, b);
    t = f + SIG1(c) + ch(c, d, e) + 0xb5c0fbcf + w2; b += t; f = t + SIG0(g) + maj(g, h, a);
    t = e + SIG1(b) + ch(b, c, d) + 0xe9b5dba5 + w3; a += t; e = t + SIG0(f) + maj(f, g, h);
    t = d + SIG1(a) + ch(a, b, c) + 0x3956c25b + w4; h += t; d = t + SIG0(e) + maj(e, f, g);
    t = c + SIG1(h) + ch(h, a, b) + 0x59f111f1 + w5; g += t; c = t + SIG0(d) + maj(d, e, f);
    t = b + SIG1(g) + ch(g, h, a) + 0x923f82a4 + w6; f += t; b = t + SIG0(c) + maj(c, d, e);
    t = a + SIG1(f) + ch(f, g, h) + 0xab1c5ed5 + w7; e += t; a = t + SIG0(b) + maj(b, c, d);
    t = h + SIG1(e) + ch(e, f, g) + 0xd807aa98 + w8; d += t; h = t + SIG0(a) + maj(a, b, c);
    t = g + SIG1(d) + ch(d, e, f) + 0x12835b01 + w9; c += t; g = t + SIG0(h) + maj(h, a, b);
    t = f + SIG1(c) + ch(c, d, e) + 0x243185be + w10; b += t; f = t + SIG0(g) + maj(g, h, a);
    t = e + SIG1(b) + ch(b, c, d) + 0x550c7dc3 + w11; a += t; e = t + SIG0(f) + maj(f, g, h);
    t = d + SIG1(a) + ch(a, b, c) + 0x72be5d74 + w12; h += t; d = t + SIG0(e) + maj(e, f, g);
    t = c + SIG1(h) + ch(h, a, b) + 0x80deb1fe + w13; g += t; c = t + SIG0(d) + maj(d, e, f);
    t = b + SIG1(g) + ch(g, h, a) + 0x9bdc06a7 + w14; f += t; b = t + SIG0(c) + maj(c, d, e);
    t = a + SIG1(f) + ch(f, g, h) + 0xc19bf174 + w15; e += t; a = t + SIG0(b) + maj(b, c, d);
    w0 += sig0(w1) + w9 + sig1(w14);
    t = h + SIG1(e) + ch(e, f, g) + 0xe49b69c1 + w0; d += t; h = t + SIG0(a) + maj(a, b, c);
    w1 += sig0(w2) + w10 + sig1(w15);
    t = g + SIG1(d) + ch(d, e, f) + 0xefbe4786 + w1; c += t; g = t + SIG0(h) + maj(h, a, b);
    w2 += sig0(w3) + w11 + sig1(w0);
    t = f + SIG1(c) + ch(c, d, e) + 0x0fc19dc6 + w2; b += t; f = t + SIG0(g) + maj(g, h, a);
    w3 += sig0(w4) + w12 + sig1(w1);
    t = e + SIG1(b) + ch(b, c, d) + 0x240ca1cc + w3; a += t; e = t + SIG0(f) + maj(f, g, h);
    w4 += sig0(w5) + w13 + sig1(w2);
    t = d + SIG1(a) + ch(a, b, c) + 0x2de92c6f + w4; h += t; d = t + SIG0(e) + maj(e, f, g);
    w5 += sig0(w6) + w14 + sig1(w3);
    t = c + SIG1(h) + ch(h, a, b) + 0x4a7484aa + w5; g += t; c = t + SIG0(d) + maj(d, e, f);
    w6 += sig0(w7) + w15 + sig1(w4);
    t = b + SIG1(g) + ch(g, h, a) + 0x5cb0a9dc + w6; f += t; b = t + SIG0(c) + maj(c, d, e);
    w7 += sig0(w8) + w0 + sig1(w5);
    t = a + SIG1(f) + ch(f, g, h) + 0x76f988da + w7; e += t; a = t + SIG0(b) + maj(b, c, d);
    w8 += sig0(w9) + w1 + sig1(w6);
    t = h + SIG1(e) + ch(e, f, g) + 0x983e5152 + w8; d += t; h = t + SIG0(a) + maj(a, b, c);
    w9 += sig0(w10) + w2 + sig1(w7);
    t = g + SIG1(d) + ch(d, e, f) + 0xa831c66d + w9; c += t; g = t + SIG0(h) + maj(h, a, b);
    w10 += sig0(w11) + w3 + sig1(w8);
    t = f + SIG1(c) + ch(c, d, e) + 0xb00327c8 + w10; b += t; f = t + SIG0(g) + maj(g, h, a);
    w11 += sig0(w12) + w4 + sig1(w9);
    t = e + SIG1(b) + ch(b, c, d) + 0xbf597fc7 + w11; a += t; e = t + SIG0(f) + maj(f, g, h);
    w12 += sig0(w13) + w5 + sig1(w10);
    t = d + SIG1(a) + ch(a, b, c) + 0xc6e00bf3 + w12; h += t; d = t + SIG0(e) + maj(e, f, g);
    w13 += sig0(w14) + w6 + sig1(w11);
    t = c + SIG1(h) + ch(h, a, b) + 0xd5a79147 + w13; g += t; c = t + SIG0(d) + maj(d, e, f);
    w14 += sig0(w15) + w7 + sig1(w12);
    t = b + SIG1(g) + ch(g, h, a) + 0x06ca6351 + w14; f += t; b = t + SIG0(c) + maj(c, d, e);
    w15 += sig0(w0) + w8 + sig1(w13);
    t = a + SIG1(f) + ch(f, g, h) + 0x14292967 + w15; e += t; a = t + SIG0(b) + maj(b, c, d);
    w0 += sig0(w1) + w9 + sig1(w14);
    t = h + SIG1(e) + ch(e, f, g) + 0x27b70a85 + w0; d += t; h = t + SIG0(a) + maj(a, b, c);
    w1 += sig0(w2) + w10 + sig1(w15);
    t = g + SIG1(d) + ch(d, e, f) + 0x2e1b2138 + w1; c += t; g = t + SIG0(h) + maj(h, a, b);
    w2 += sig0(w3) + w11 + sig1(w0);
    t = f + SIG1(c) + ch(c, d, e) + 0x4d2c6dfc + w2; b += t; f = t + SIG0(g) + maj(g, h, a);
    w3 += sig0(w4) + w12 + sig1(w1);
    t = e + SIG1(b) + ch(b, c, d) + 0x53380d13 + w3; a += t; e = t + SIG0(f) + maj(f, g, h);
    w4 += sig0(w5) + w13 + sig1(w2);
    t = d + SIG1(a) + ch(a, b, c) + 0x650a7354 + w4; h += t; d = t + SIG0(e) + maj(e, f, g);
    w5 += sig0(w6) + w14 + sig1(w3);
    t = c + SIG1(h) + ch(h, a, b) + 0x766a0abb + w5; g += t; c = t + SIG0(d) + maj(d, e, f);
    w6 += sig0(w7) + w15 + sig1(w4);
    t = b + SIG1(g) + ch(g, h, a) + 0x81c2c92e + w6; f += t; b = t + SIG0(c) + maj(c, d, e);
    w7 += sig0(w8) + w0 + sig1(w5);
    t = a + SIG1(f) + ch(f, g, h) + 0x92722c85 + w7; e += t; a = t + SIG0(b) + maj(b, c, d);
    w8 += sig0(w9) + w1 + sig1(w6);
    t = h + SIG1(e) + ch(e, f, g) + 0xa2bfe8a1 + w8; d += t; h = t + SIG0(a) + maj(a, b, c);
    w9 += sig0(w10) + w2 + sig1(w7);
    t = g + SIG1(d) + ch(d, e, f) + 0xa81a664b + w9; c += t; g = t + SIG0(h) + maj(h, a, b);
    w10 += sig0(w11) + w3 + sig1(w8);
    t = f + SIG1(c) + ch(c, d, e) + 0xc24b8b70 + w10; b += t; f = t + SIG0(g) + maj(g, h, a);
    w11 += sig0(w12) + w4 + sig1(w9);
    t = e + SIG1(b) + ch(b, c, d) + 0xc76c51a3 + w11; a += t; e = t + SIG0(f) + maj(f, g, h);
    w12 += sig0(w13) + w5 + sig1(w10);
    t = d + SIG1(a) + ch(a, b, c) + 0xd192e819 + w12; h += t; d = t + SIG0(e) + maj(e, f, g);
    w13 += sig0(w14) + w6 + sig1(w11);
    t = c + SIG1(h) + ch(h, a, b) + 0xd6990624 + w13; g += t; c = t + SIG0(d) + maj(d, e, f);
    w14 += sig0(w15) + w7 + sig1(w12);
    t = b + SIG1(g) + ch(g, h, a) + 0xf40e3585 + w14; f += t; b = t + SIG0(c) + maj(c, d, e);
    w15 += sig0(w0) + w8 + sig1(w13);
    t = a + SIG1(f) + ch(f, g, h) + 0x106aa070 + w15; e += t; a = t + SIG0(b) + maj(b, c, d);
    w0 += sig0(w1) + w9 + sig1(w14);
    t = h + SIG1(e) + ch(e, f, g) + 0x19a4c116 + w0; d += t; h = t + SIG0(a) + maj(a, b, c);
    w1 += sig0(w2) + w10 + sig1(w15);
    t = g + SIG1(d) + ch(d, e, f) + 0x1e376c08 + w1; c += t; g = t + SIG0(h) + maj(h, a, b);
    w2 += sig0(w3) + w11 + sig1(w0);
    t = f + SIG1(c) + ch(c, d, e) + 0x2748774c + w2; b += t; f = t + SIG0(g) + maj(g, h, a);
    w3 += sig0(w4) + w12 + sig1(w1);
    t = e + SIG1(b) + ch(b, c, d) + 0x34b0bcb5 + w3; a += t; e = t + SIG0(f) + maj(f, g, h);
    w4 += sig0(w5) + w13 + sig1(w2);
    t = d + SIG1(a) + ch(a, b, c) + 0x391c0cb3 + w4; h += t; d = t + SIG0(e) + maj(e, f, g);
    w5 += sig0(w6) + w14 + sig1(w3);
    t = c + SIG1(h) + ch(h, a, b) + 0x4ed8aa4a + w5; g += t; c = t + SIG0(d) + maj(d, e, f);
    w6 += sig0(w7) + w15 + sig1(w4);
    t = b + SIG1(g) + ch(g, h, a) + 0x5b9cca4f + w6; f += t; b = t + SIG0(c) + maj(c, d, e);
    w7 += sig0(w8) + w0 + sig1(w5);
    t = a + SIG1(f) + ch(f, g, h) + 0x682e6ff3 + w7; e += t; a = t + SIG0(b) + maj(b, c, d);
    w8 += sig0(w9) + w1 + sig1(w6);
    t = h + SIG1(e) + ch(e, f, g) + 0x748f82ee + w8; d += t; h = t + SIG0(a) + maj(a, b, c);
    w9 += sig0(w10) + w2 + sig1(w7);
    t = g + SIG1(d) + ch(d, e, f) + 0x78a5636f + w9; c += t; g = t + SIG0(h) + maj(h, a, b);
    w10 += sig0(w11) + w3 + sig1(w8);
    t = f + SIG1(c) + ch(c, d, e) + 0x84c87814 + w10; b += t; f = t + SIG0(g) + maj(g, h, a);
    w11 += sig0(w12) + w4 + sig1(w9);
    t = e + SIG1(b) + ch(b, c, d) + 0x8cc70208 + w11; a += t; e = t + SIG0(f) + maj(f, g, h);
    w12 += sig0(w13) + w5 + sig1(w10);
    t = d + SIG1(a) + ch(a, b, c) + 0x90befffa + w12; h += t; d = t + SIG0(e) + maj(e, f, g);
    w13 += sig0(w14) + w6 + sig1(w11);
    t = c + SIG1(h) + ch(h, a, b) + 0xa4506ceb + w13; g += t; c = t + SIG0(d) + maj(d, e, f);
    w14 += sig0(w15) + w7 + sig1(w12);
    t = b + SIG1(g) + ch(g, h, a) + 0xbef9a3f7 + w14; f += t; b = t + SIG0(c) + maj(c, d, e);
    w15 += sig0(w0) + w8 + sig1(w13);
    t = a + SIG1(f) + ch(f, g, h) + 0xc67178f2 + w15; e += t; a = t + SIG0(b) + maj(b, c, d);

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
