// HMAC-SHA256 (RFC 2104 / RFC 4231), no allocation.
//
// Stable API for other AssemblyScript modules (sigv4.ts builds on it; keep these names):
//   hmacSha256(keyPtr: usize, keyLen: usize, msgPtr: usize, msgLen: usize, out: usize): void
//     — writes the 32-byte MAC to `out`. `out` may overlap the key or the message (out is written
//       last), which lets SigV4 chain kDate → kRegion → kService → kSigning in one buffer.
//   hmacSha256Init(ctx: usize, keyPtr: usize, keyLen: usize): void   — streaming form; ctx is
//       HMAC_CTX_SIZE (256) bytes: inner SHA-256 ctx at +0, outer at +128
//   hmacSha256Update(ctx: usize, ptr: usize, len: usize): void
//   hmacSha256Final(ctx: usize, out: usize): void                    — 32 bytes to `out`

import { sha256Init, sha256Update, sha256Final, sha256WipeScratch, CTX_BUF } from './sha256';

export { HMAC_CTX_SIZE } from './memory';

const PAD: usize = memory.data(64, 16);
const KEYHASH: usize = memory.data(32, 16);
const INNER: usize = memory.data(32, 16);
const ONE_SHOT: usize = memory.data(256, 16);

export function hmacSha256Init(ctx: usize, keyPtr: usize, keyLen: usize): void {
  if (keyLen > 64) {
    sha256Init(ctx);
    sha256Update(ctx, keyPtr, keyLen);
    sha256Final(ctx, KEYHASH);
    keyPtr = KEYHASH;
    keyLen = 32;
  }
  // ipad block → inner ctx
  for (let i: usize = 0; i < 64; i++) store<u8>(PAD + i, (i < keyLen ? load<u8>(keyPtr + i) : 0) ^ 0x36);
  const outer = ctx + 128;
  sha256Init(ctx);
  sha256Update(ctx, PAD, 64);
  // opad = ipad ^ 0x36 ^ 0x5c
  for (let i: usize = 0; i < 64; i += 4) store<u32>(PAD + i, load<u32>(PAD + i) ^ 0x6a6a6a6a);
  sha256Init(outer);
  sha256Update(outer, PAD, 64);
  // Key material must not linger in static memory: the pads, the hashed key, the key bytes left
  // in ctx's block buffer by a long key, and the compressor's schedule of the last pad block.
  memory.fill(PAD, 0, 64);
  memory.fill(KEYHASH, 0, 32);
  memory.fill(ctx + CTX_BUF, 0, 64);
  sha256WipeScratch();
}

export function hmacSha256Update(ctx: usize, ptr: usize, len: usize): void {
  sha256Update(ctx, ptr, len);
}

export function hmacSha256Final(ctx: usize, out: usize): void {
  sha256Final(ctx, INNER);
  const outer = ctx + 128;
  sha256Update(outer, INNER, 32);
  sha256Final(outer, out);
}

export function hmacSha256(keyPtr: usize, keyLen: usize, msgPtr: usize, msgLen: usize, out: usize): void {
  hmacSha256Init(ONE_SHOT, keyPtr, keyLen);
  hmacSha256Update(ONE_SHOT, msgPtr, msgLen);
  hmacSha256Final(ONE_SHOT, out);
  memory.fill(ONE_SHOT, 0, 256);
}
