// MD5 (RFC 1321), streaming, no allocation. Only for Content-MD5 (S3 requires it on
// DeleteObjects and accepts it elsewhere); never used as a security primitive.
//
// API for other AssemblyScript modules:
//   md5Init(ctx: usize): void                       — ctx: MD5_CTX_SIZE (128) bytes, 4-aligned
//   md5Update(ctx: usize, ptr: usize, len: usize): void   — any split, len may be 0
//   md5Final(ctx: usize, out: usize): void          — writes 16 bytes
//   md5(ptr: usize, len: usize, out: usize): void   — one shot
//
// ctx layout (same shape as SHA-256's): [0,16) state A..D · [32,96) partial block ·
//             [96,104) total bytes u64 · [104,108) bytes in partial block u32.

import { blockPad, blockReset, blockUpdate } from './block-buffer';
const ONE_SHOT_CTX: usize = memory.data(128, 16);

@inline function F(x: u32, y: u32, z: u32): u32 { return z ^ (x & (y ^ z)); }
@inline function I(x: u32, y: u32, z: u32): u32 { return y ^ (x | ~z); }

export function md5Init(ctx: usize): void {
  store<u32>(ctx, 0x67452301, 0);
  store<u32>(ctx, 0xefcdab89, 4);
  store<u32>(ctx, 0x98badcfe, 8);
  store<u32>(ctx, 0x10325476, 12);
  blockReset(ctx);
}

/** Compresses `blocks` 64-byte blocks at `p`. Unrolled for the same reason as sha256Blocks:
 *  message words and state stay in registers and the sine constants become immediates. MD5's
 *  words are little-endian, so they are plain loads on WebAssembly.
 *
 *  MD5 is one long dependency chain through b, so each step is written to put as little as
 *  possible after b: the message word, constant and a are summed first; G = (b & d) | (c & ~d)
 *  has disjoint halves, so it is *added* in two parts with only (b & d) depending on b; H is
 *  b ^ (c ^ d). About 1.2× the textbook form. */
export function md5Blocks(st: usize, p: usize, blocks: usize): void {
  let h0 = load<u32>(st, 0), h1 = load<u32>(st, 4), h2 = load<u32>(st, 8), h3 = load<u32>(st, 12);
  const end = p + (blocks << 6);
  while (p < end) {
    let a = h0, b = h1, c = h2, d = h3;
    const x0 = load<u32>(p, 0);
    const x1 = load<u32>(p, 4);
    const x2 = load<u32>(p, 8);
    const x3 = load<u32>(p, 12);
    const x4 = load<u32>(p, 16);
    const x5 = load<u32>(p, 20);
    const x6 = load<u32>(p, 24);
    const x7 = load<u32>(p, 28);
    const x8 = load<u32>(p, 32);
    const x9 = load<u32>(p, 36);
    const x10 = load<u32>(p, 40);
    const x11 = load<u32>(p, 44);
    const x12 = load<u32>(p, 48);
    const x13 = load<u32>(p, 52);
    const x14 = load<u32>(p, 56);
    const x15 = load<u32>(p, 60);
    a = b + rotl<u32>(a + x0 + 0xd76aa478 + F(b, c, d), 7);
    d = a + rotl<u32>(d + x1 + 0xe8c7b756 + F(a, b, c), 12);
    c = d + rotl<u32>(c + x2 + 0x242070db + F(d, a, b), 17);
    b = c + rotl<u32>(b + x3 + 0xc1bdceee + F(c, d, a), 22);
    a = b + rotl<u32>(a + x4 + 0xf57c0faf + F(b, c, d), 7);
    d = a + rotl<u32>(d + x5 + 0x4787c62a + F(a, b, c), 12);
    c = d + rotl<u32>(c + x6 + 0xa8304613 + F(d, a, b), 17);
    b = c + rotl<u32>(b + x7 + 0xfd469501 + F(c, d, a), 22);
    a = b + rotl<u32>(a + x8 + 0x698098d8 + F(b, c, d), 7);
    d = a + rotl<u32>(d + x9 + 0x8b44f7af + F(a, b, c), 12);
    c = d + rotl<u32>(c + x10 + 0xffff5bb1 + F(d, a, b), 17);
    b = c + rotl<u32>(b + x11 + 0x895cd7be + F(c, d, a), 22);
    a = b + rotl<u32>(a + x12 + 0x6b901122 + F(b, c, d), 7);
    d = a + rotl<u32>(d + x13 + 0xfd987193 + F(a, b, c), 12);
    c = d + rotl<u32>(c + x14 + 0xa679438e + F(d, a, b), 17);
    b = c + rotl<u32>(b + x15 + 0x49b40821 + F(c, d, a), 22);
    a = b + rotl<u32>(a + x1 + 0xf61e2562 + (c & ~d) + (b & d), 5);
    d = a + rotl<u32>(d + x6 + 0xc040b340 + (b & ~c) + (a & c), 9);
    c = d + rotl<u32>(c + x11 + 0x265e5a51 + (a & ~b) + (d & b), 14);
    b = c + rotl<u32>(b + x0 + 0xe9b6c7aa + (d & ~a) + (c & a), 20);
    a = b + rotl<u32>(a + x5 + 0xd62f105d + (c & ~d) + (b & d), 5);
    d = a + rotl<u32>(d + x10 + 0x02441453 + (b & ~c) + (a & c), 9);
    c = d + rotl<u32>(c + x15 + 0xd8a1e681 + (a & ~b) + (d & b), 14);
    b = c + rotl<u32>(b + x4 + 0xe7d3fbc8 + (d & ~a) + (c & a), 20);
    a = b + rotl<u32>(a + x9 + 0x21e1cde6 + (c & ~d) + (b & d), 5);
    d = a + rotl<u32>(d + x14 + 0xc33707d6 + (b & ~c) + (a & c), 9);
    c = d + rotl<u32>(c + x3 + 0xf4d50d87 + (a & ~b) + (d & b), 14);
    b = c + rotl<u32>(b + x8 + 0x455a14ed + (d & ~a) + (c & a), 20);
    a = b + rotl<u32>(a + x13 + 0xa9e3e905 + (c & ~d) + (b & d), 5);
    d = a + rotl<u32>(d + x2 + 0xfcefa3f8 + (b & ~c) + (a & c), 9);
    c = d + rotl<u32>(c + x7 + 0x676f02d9 + (a & ~b) + (d & b), 14);
    b = c + rotl<u32>(b + x12 + 0x8d2a4c8a + (d & ~a) + (c & a), 20);
    a = b + rotl<u32>(a + x5 + 0xfffa3942 + (b ^ (c ^ d)), 4);
    d = a + rotl<u32>(d + x8 + 0x8771f681 + (a ^ (b ^ c)), 11);
    c = d + rotl<u32>(c + x11 + 0x6d9d6122 + (d ^ (a ^ b)), 16);
    b = c + rotl<u32>(b + x14 + 0xfde5380c + (c ^ (d ^ a)), 23);
    a = b + rotl<u32>(a + x1 + 0xa4beea44 + (b ^ (c ^ d)), 4);
    d = a + rotl<u32>(d + x4 + 0x4bdecfa9 + (a ^ (b ^ c)), 11);
    c = d + rotl<u32>(c + x7 + 0xf6bb4b60 + (d ^ (a ^ b)), 16);
    b = c + rotl<u32>(b + x10 + 0xbebfbc70 + (c ^ (d ^ a)), 23);
    a = b + rotl<u32>(a + x13 + 0x289b7ec6 + (b ^ (c ^ d)), 4);
    d = a + rotl<u32>(d + x0 + 0xeaa127fa + (a ^ (b ^ c)), 11);
    c = d + rotl<u32>(c + x3 + 0xd4ef3085 + (d ^ (a ^ b)), 16);
    b = c + rotl<u32>(b + x6 + 0x04881d05 + (c ^ (d ^ a)), 23);
    a = b + rotl<u32>(a + x9 + 0xd9d4d039 + (b ^ (c ^ d)), 4);
    d = a + rotl<u32>(d + x12 + 0xe6db99e5 + (a ^ (b ^ c)), 11);
    c = d + rotl<u32>(c + x15 + 0x1fa27cf8 + (d ^ (a ^ b)), 16);
    b = c + rotl<u32>(b + x2 + 0xc4ac5665 + (c ^ (d ^ a)), 23);
    a = b + rotl<u32>(a + x0 + 0xf4292244 + I(b, c, d), 6);
    d = a + rotl<u32>(d + x7 + 0x432aff97 + I(a, b, c), 10);
    c = d + rotl<u32>(c + x14 + 0xab9423a7 + I(d, a, b), 15);
    b = c + rotl<u32>(b + x5 + 0xfc93a039 + I(c, d, a), 21);
    a = b + rotl<u32>(a + x12 + 0x655b59c3 + I(b, c, d), 6);
    d = a + rotl<u32>(d + x3 + 0x8f0ccc92 + I(a, b, c), 10);
    c = d + rotl<u32>(c + x10 + 0xffeff47d + I(d, a, b), 15);
    b = c + rotl<u32>(b + x1 + 0x85845dd1 + I(c, d, a), 21);
    a = b + rotl<u32>(a + x8 + 0x6fa87e4f + I(b, c, d), 6);
    d = a + rotl<u32>(d + x15 + 0xfe2ce6e0 + I(a, b, c), 10);
    c = d + rotl<u32>(c + x6 + 0xa3014314 + I(d, a, b), 15);
    b = c + rotl<u32>(b + x13 + 0x4e0811a1 + I(c, d, a), 21);
    a = b + rotl<u32>(a + x4 + 0xf7537e82 + I(b, c, d), 6);
    d = a + rotl<u32>(d + x11 + 0xbd3af235 + I(a, b, c), 10);
    c = d + rotl<u32>(c + x2 + 0x2ad7d2bb + I(d, a, b), 15);
    b = c + rotl<u32>(b + x9 + 0xeb86d391 + I(c, d, a), 21);

    h0 += a; h1 += b; h2 += c; h3 += d;
    p += 64;
  }
  store<u32>(st, h0, 0); store<u32>(st, h1, 4); store<u32>(st, h2, 8); store<u32>(st, h3, 12);
}

export function md5Update(ctx: usize, ptr: usize, len: usize): void {
  blockUpdate(ctx, ptr, len, md5Blocks);
}

export function md5Final(ctx: usize, out: usize): void {
  blockPad(ctx, false, md5Blocks);
  memory.copy(out, ctx, 16);
}

export function md5(ptr: usize, len: usize, out: usize): void {
  md5Init(ONE_SHOT_CTX);
  md5Update(ONE_SHOT_CTX, ptr, len);
  md5Final(ONE_SHOT_CTX, out);
}
