// 4-lane multi-buffer SHA-256 on WebAssembly SIMD: four independent messages advance one block
// each per call step, one message per 32-bit lane of each v128. Used to hash multipart parts in
// parallel inside one thread (the host's sha256x4()).
//
// API:
//   sha256x4Init(ctx: usize): void        — ctx: SHA256X4_CTX_SIZE bytes, 16-aligned; all lanes at IV
//   sha256x4Blocks(ctx, p0, p1, p2, p3: usize, blocks: usize): void
//       — compresses `blocks` full 64-byte blocks from each of p0..p3 (one pointer per lane). A
//         lane whose message has no more full blocks may point anywhere readable; its state is
//         garbage afterwards, so extract it first.
//   sha256x4Extract(ctx, lane: i32, dst: usize, totalBytes: f64): void
//       — turns lane `lane` into a scalar SHA-256 ctx at `dst` (see sha256.ts) that has absorbed
//         `totalBytes` bytes; finish it with sha256Update/sha256Final (the tail and padding are
//         at most a few blocks, not worth vectorising).
//   sha256x4Load(ctx, lane: i32, src: usize): void
//       — the reverse: puts the chaining state of the scalar ctx at `src` (whose partial block
//         must be empty) into lane `lane`, so a stream can move between the scalar and the SIMD
//         core at any block boundary (the host's streaming Sha256x4).
//
// ctx layout: [0,128) state words H0..H7, each a v128 holding lanes 0..3.

import { CTX_TOTAL, CTX_FILL, K256 } from './sha256';

const IV: usize = memory.data<u32>([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
/** K with every constant splatted over 4 lanes, so each round adds it straight from memory. */
const KX4: usize = memory.data(64 * 16, 16);

function buildKx4(): void {
  for (let i: usize = 0; i < 64; i++) v128.store(KX4 + (i << 4), i32x4.splat(load<i32>(K256 + (i << 2))));
}
buildKx4();

@inline function add4(a: v128, b: v128): v128 { return i32x4.add(a, b); }
@inline function rotr4(x: v128, n: i32): v128 { return v128.or(i32x4.shr_u(x, n), i32x4.shl(x, 32 - n)); }
@inline function SIG0x(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 2), rotr4(x, 13)), rotr4(x, 22)); }
@inline function SIG1x(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 6), rotr4(x, 11)), rotr4(x, 25)); }
@inline function sig0x(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 7), rotr4(x, 18)), i32x4.shr_u(x, 3)); }
@inline function sig1x(x: v128): v128 { return v128.xor(v128.xor(rotr4(x, 17), rotr4(x, 19)), i32x4.shr_u(x, 10)); }
/** Big-endian words → native, per 32-bit lane (one pshufb on x86). */
@inline function bswap4(v: v128): v128 {
  return i8x16.shuffle(v, v, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12);
}

export function sha256x4Init(ctx: usize): void {
  for (let j: usize = 0; j < 8; j++) v128.store(ctx + (j << 4), i32x4.splat(load<i32>(IV + (j << 2))));
}

/** Unrolled like sha256Blocks; message words are loaded per lane and transposed so that w_j
 *  holds word j of all four messages. Unlike the scalar core, the schedule stays in locals:
 *  here everything already runs on the vector units, and a W buffer in memory measured ~10%
 *  slower. */
export function sha256x4Blocks(ctx: usize, p0: usize, p1: usize, p2: usize, p3: usize, blocks: usize): void {
  let h0 = v128.load(ctx, 0), h1 = v128.load(ctx, 16), h2 = v128.load(ctx, 32), h3 = v128.load(ctx, 48);
  let h4 = v128.load(ctx, 64), h5 = v128.load(ctx, 80), h6 = v128.load(ctx, 96), h7 = v128.load(ctx, 112);
  for (let n: usize = 0; n < blocks; n++) {
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    let t: v128, t0: v128, t1: v128, t2: v128, t3: v128;
    // Maj(a,b,c) = b ^ ((a^b) & (b^c)); this round's b^c is the previous round's a^b.
    let x: v128, y: v128 = v128.xor(b, c);
    const m0_0 = bswap4(v128.load(p0, 0));
    const m1_0 = bswap4(v128.load(p1, 0));
    const m2_0 = bswap4(v128.load(p2, 0));
    const m3_0 = bswap4(v128.load(p3, 0));
    const m0_1 = bswap4(v128.load(p0, 16));
    const m1_1 = bswap4(v128.load(p1, 16));
    const m2_1 = bswap4(v128.load(p2, 16));
    const m3_1 = bswap4(v128.load(p3, 16));
    const m0_2 = bswap4(v128.load(p0, 32));
    const m1_2 = bswap4(v128.load(p1, 32));
    const m2_2 = bswap4(v128.load(p2, 32));
    const m3_2 = bswap4(v128.load(p3, 32));
    const m0_3 = bswap4(v128.load(p0, 48));
    const m1_3 = bswap4(v128.load(p1, 48));
    const m2_3 = bswap4(v128.load(p2, 48));
    const m3_3 = bswap4(v128.load(p3, 48));
    t0 = i32x4.shuffle(m0_0, m1_0, 0, 4, 1, 5); t1 = i32x4.shuffle(m0_0, m1_0, 2, 6, 3, 7);
    t2 = i32x4.shuffle(m2_0, m3_0, 0, 4, 1, 5); t3 = i32x4.shuffle(m2_0, m3_0, 2, 6, 3, 7);
    let w0 = i64x2.shuffle(t0, t2, 0, 2); let w1 = i64x2.shuffle(t0, t2, 1, 3);
    let w2 = i64x2.shuffle(t1, t3, 0, 2); let w3 = i64x2.shuffle(t1, t3, 1, 3);
    t0 = i32x4.shuffle(m0_1, m1_1, 0, 4, 1, 5); t1 = i32x4.shuffle(m0_1, m1_1, 2, 6, 3, 7);
    t2 = i32x4.shuffle(m2_1, m3_1, 0, 4, 1, 5); t3 = i32x4.shuffle(m2_1, m3_1, 2, 6, 3, 7);
    let w4 = i64x2.shuffle(t0, t2, 0, 2); let w5 = i64x2.shuffle(t0, t2, 1, 3);
    let w6 = i64x2.shuffle(t1, t3, 0, 2); let w7 = i64x2.shuffle(t1, t3, 1, 3);
    t0 = i32x4.shuffle(m0_2, m1_2, 0, 4, 1, 5); t1 = i32x4.shuffle(m0_2, m1_2, 2, 6, 3, 7);
    t2 = i32x4.shuffle(m2_2, m3_2, 0, 4, 1, 5); t3 = i32x4.shuffle(m2_2, m3_2, 2, 6, 3, 7);
    let w8 = i64x2.shuffle(t0, t2, 0, 2); let w9 = i64x2.shuffle(t0, t2, 1, 3);
    let w10 = i64x2.shuffle(t1, t3, 0, 2); let w11 = i64x2.shuffle(t1, t3, 1, 3);
    t0 = i32x4.shuffle(m0_3, m1_3, 0, 4, 1, 5); t1 = i32x4.shuffle(m0_3, m1_3, 2, 6, 3, 7);
    t2 = i32x4.shuffle(m2_3, m3_3, 0, 4, 1, 5); t3 = i32x4.shuffle(m2_3, m3_3, 2, 6, 3, 7);
    let w12 = i64x2.shuffle(t0, t2, 0, 2); let w13 = i64x2.shuffle(t0, t2, 1, 3);
    let w14 = i64x2.shuffle(t1, t3, 0, 2); let w15 = i64x2.shuffle(t1, t3, 1, 3);
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 0), w0)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 16), w1)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 32), w2)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 48), w3)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 64), w4)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 80), w5)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 96), w6)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 112), w7)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 128), w8)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 144), w9)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 160), w10)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 176), w11)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 192), w12)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 208), w13)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 224), w14)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 240), w15)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w0 = add4(add4(w0, sig0x(w1)), add4(w9, sig1x(w14)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 256), w0)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w1 = add4(add4(w1, sig0x(w2)), add4(w10, sig1x(w15)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 272), w1)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w2 = add4(add4(w2, sig0x(w3)), add4(w11, sig1x(w0)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 288), w2)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w3 = add4(add4(w3, sig0x(w4)), add4(w12, sig1x(w1)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 304), w3)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w4 = add4(add4(w4, sig0x(w5)), add4(w13, sig1x(w2)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 320), w4)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w5 = add4(add4(w5, sig0x(w6)), add4(w14, sig1x(w3)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 336), w5)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w6 = add4(add4(w6, sig0x(w7)), add4(w15, sig1x(w4)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 352), w6)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w7 = add4(add4(w7, sig0x(w8)), add4(w0, sig1x(w5)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 368), w7)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w8 = add4(add4(w8, sig0x(w9)), add4(w1, sig1x(w6)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 384), w8)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w9 = add4(add4(w9, sig0x(w10)), add4(w2, sig1x(w7)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 400), w9)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w10 = add4(add4(w10, sig0x(w11)), add4(w3, sig1x(w8)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 416), w10)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w11 = add4(add4(w11, sig0x(w12)), add4(w4, sig1x(w9)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 432), w11)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w12 = add4(add4(w12, sig0x(w13)), add4(w5, sig1x(w10)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 448), w12)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w13 = add4(add4(w13, sig0x(w14)), add4(w6, sig1x(w11)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 464), w13)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w14 = add4(add4(w14, sig0x(w15)), add4(w7, sig1x(w12)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 480), w14)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w15 = add4(add4(w15, sig0x(w0)), add4(w8, sig1x(w13)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 496), w15)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w0 = add4(add4(w0, sig0x(w1)), add4(w9, sig1x(w14)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 512), w0)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w1 = add4(add4(w1, sig0x(w2)), add4(w10, sig1x(w15)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 528), w1)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w2 = add4(add4(w2, sig0x(w3)), add4(w11, sig1x(w0)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 544), w2)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w3 = add4(add4(w3, sig0x(w4)), add4(w12, sig1x(w1)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 560), w3)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w4 = add4(add4(w4, sig0x(w5)), add4(w13, sig1x(w2)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 576), w4)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w5 = add4(add4(w5, sig0x(w6)), add4(w14, sig1x(w3)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 592), w5)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w6 = add4(add4(w6, sig0x(w7)), add4(w15, sig1x(w4)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 608), w6)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w7 = add4(add4(w7, sig0x(w8)), add4(w0, sig1x(w5)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 624), w7)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w8 = add4(add4(w8, sig0x(w9)), add4(w1, sig1x(w6)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 640), w8)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w9 = add4(add4(w9, sig0x(w10)), add4(w2, sig1x(w7)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 656), w9)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w10 = add4(add4(w10, sig0x(w11)), add4(w3, sig1x(w8)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 672), w10)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w11 = add4(add4(w11, sig0x(w12)), add4(w4, sig1x(w9)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 688), w11)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w12 = add4(add4(w12, sig0x(w13)), add4(w5, sig1x(w10)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 704), w12)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w13 = add4(add4(w13, sig0x(w14)), add4(w6, sig1x(w11)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 720), w13)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w14 = add4(add4(w14, sig0x(w15)), add4(w7, sig1x(w12)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 736), w14)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w15 = add4(add4(w15, sig0x(w0)), add4(w8, sig1x(w13)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 752), w15)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w0 = add4(add4(w0, sig0x(w1)), add4(w9, sig1x(w14)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 768), w0)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w1 = add4(add4(w1, sig0x(w2)), add4(w10, sig1x(w15)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 784), w1)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w2 = add4(add4(w2, sig0x(w3)), add4(w11, sig1x(w0)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 800), w2)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w3 = add4(add4(w3, sig0x(w4)), add4(w12, sig1x(w1)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 816), w3)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w4 = add4(add4(w4, sig0x(w5)), add4(w13, sig1x(w2)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 832), w4)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w5 = add4(add4(w5, sig0x(w6)), add4(w14, sig1x(w3)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 848), w5)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w6 = add4(add4(w6, sig0x(w7)), add4(w15, sig1x(w4)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 864), w6)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w7 = add4(add4(w7, sig0x(w8)), add4(w0, sig1x(w5)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 880), w7)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));
    w8 = add4(add4(w8, sig0x(w9)), add4(w1, sig1x(w6)));
    t = add4(add4(h, SIG1x(e)), add4(v128.bitselect(f, g, e), add4(v128.load(KX4, 896), w8)));
    d = add4(d, t); x = v128.xor(a, b); h = add4(add4(t, SIG0x(a)), v128.xor(b, v128.and(x, y)));
    w9 = add4(add4(w9, sig0x(w10)), add4(w2, sig1x(w7)));
    t = add4(add4(g, SIG1x(d)), add4(v128.bitselect(e, f, d), add4(v128.load(KX4, 912), w9)));
    c = add4(c, t); y = v128.xor(h, a); g = add4(add4(t, SIG0x(h)), v128.xor(a, v128.and(y, x)));
    w10 = add4(add4(w10, sig0x(w11)), add4(w3, sig1x(w8)));
    t = add4(add4(f, SIG1x(c)), add4(v128.bitselect(d, e, c), add4(v128.load(KX4, 928), w10)));
    b = add4(b, t); x = v128.xor(g, h); f = add4(add4(t, SIG0x(g)), v128.xor(h, v128.and(x, y)));
    w11 = add4(add4(w11, sig0x(w12)), add4(w4, sig1x(w9)));
    t = add4(add4(e, SIG1x(b)), add4(v128.bitselect(c, d, b), add4(v128.load(KX4, 944), w11)));
    a = add4(a, t); y = v128.xor(f, g); e = add4(add4(t, SIG0x(f)), v128.xor(g, v128.and(y, x)));
    w12 = add4(add4(w12, sig0x(w13)), add4(w5, sig1x(w10)));
    t = add4(add4(d, SIG1x(a)), add4(v128.bitselect(b, c, a), add4(v128.load(KX4, 960), w12)));
    h = add4(h, t); x = v128.xor(e, f); d = add4(add4(t, SIG0x(e)), v128.xor(f, v128.and(x, y)));
    w13 = add4(add4(w13, sig0x(w14)), add4(w6, sig1x(w11)));
    t = add4(add4(c, SIG1x(h)), add4(v128.bitselect(a, b, h), add4(v128.load(KX4, 976), w13)));
    g = add4(g, t); y = v128.xor(d, e); c = add4(add4(t, SIG0x(d)), v128.xor(e, v128.and(y, x)));
    w14 = add4(add4(w14, sig0x(w15)), add4(w7, sig1x(w12)));
    t = add4(add4(b, SIG1x(g)), add4(v128.bitselect(h, a, g), add4(v128.load(KX4, 992), w14)));
    f = add4(f, t); x = v128.xor(c, d); b = add4(add4(t, SIG0x(c)), v128.xor(d, v128.and(x, y)));
    w15 = add4(add4(w15, sig0x(w0)), add4(w8, sig1x(w13)));
    t = add4(add4(a, SIG1x(f)), add4(v128.bitselect(g, h, f), add4(v128.load(KX4, 1008), w15)));
    e = add4(e, t); y = v128.xor(b, c); a = add4(add4(t, SIG0x(b)), v128.xor(c, v128.and(y, x)));

    h0 = add4(h0, a); h1 = add4(h1, b); h2 = add4(h2, c); h3 = add4(h3, d);
    h4 = add4(h4, e); h5 = add4(h5, f); h6 = add4(h6, g); h7 = add4(h7, h);
    p0 += 64; p1 += 64; p2 += 64; p3 += 64;
  }
  v128.store(ctx, h0, 0); v128.store(ctx, h1, 16); v128.store(ctx, h2, 32); v128.store(ctx, h3, 48);
  v128.store(ctx, h4, 64); v128.store(ctx, h5, 80); v128.store(ctx, h6, 96); v128.store(ctx, h7, 112);
}

export function sha256x4Extract(ctx: usize, lane: i32, dst: usize, totalBytes: f64): void {
  const off = <usize>(lane & 3) << 2;
  for (let j: usize = 0; j < 8; j++) store<u32>(dst + (j << 2), load<u32>(ctx + (j << 4) + off));
  store<u64>(dst + CTX_TOTAL, <u64>totalBytes);
  store<u32>(dst + CTX_FILL, 0);
}

export function sha256x4Load(ctx: usize, lane: i32, src: usize): void {
  const off = <usize>(lane & 3) << 2;
  for (let j: usize = 0; j < 8; j++) store<u32>(ctx + (j << 4) + off, load<u32>(src + (j << 2)));
}
