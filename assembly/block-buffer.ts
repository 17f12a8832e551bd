// Merkle–Damgård framing shared by SHA-256 and MD5. Both keep their chaining state, a 64-byte
// partial block, the running byte count and the fill level at the same context offsets; they
// differ only in the compression function and in the byte order of the bit length that ends the
// last block. The compress argument is always a constant at the call site, so after inlining
// Binaryen turns the indirect call into a direct one (no cost on the update path).
//
// ctx layout: [0,32) state · [32,96) partial block · [96,104) total bytes u64 ·
//             [104,108) bytes in partial block u32.

export const CTX_STATE: usize = 0;
export const CTX_BUF: usize = 32;
export const CTX_TOTAL: usize = 96;
export const CTX_FILL: usize = 104;

export type Compress = (state: usize, p: usize, blocks: usize) => void;

export function blockReset(ctx: usize): void {
  store<u64>(ctx + CTX_TOTAL, 0);
  store<u32>(ctx + CTX_FILL, 0);
}

/** Feeds `len` bytes: tops up the partial block, compresses whole blocks in place, keeps the rest. */
@inline export function blockUpdate(ctx: usize, ptr: usize, len: usize, compress: Compress): void {
  if (len == 0) return;
  store<u64>(ctx + CTX_TOTAL, load<u64>(ctx + CTX_TOTAL) + <u64>len);
  const buf = ctx + CTX_BUF;
  let fill = <usize>load<u32>(ctx + CTX_FILL);
  if (fill > 0) {
    const take = min<usize>(64 - fill, len);
    memory.copy(buf + fill, ptr, take);
    fill += take; ptr += take; len -= take;
    if (fill < 64) { store<u32>(ctx + CTX_FILL, <u32>fill); return; }
    compress(ctx, buf, 1);
  }
  const blocks = len >>> 6;
  if (blocks > 0) {
    compress(ctx, ptr, blocks);
    ptr += blocks << 6; len -= blocks << 6;
  }
  if (len > 0) memory.copy(buf, ptr, len);
  store<u32>(ctx + CTX_FILL, <u32>len);
}

/** Appends 0x80, zeros and the message length in bits (big- or little-endian), compressing the
 *  final block(s). The caller then reads the digest from the state words. */
@inline export function blockPad(ctx: usize, bigEndianLength: bool, compress: Compress): void {
  const buf = ctx + CTX_BUF;
  let fill = <usize>load<u32>(ctx + CTX_FILL);
  const bits = load<u64>(ctx + CTX_TOTAL) << 3;
  store<u8>(buf + fill, 0x80);
  fill++;
  if (fill > 56) {
    memory.fill(buf + fill, 0, 64 - fill);
    compress(ctx, buf, 1);
    fill = 0;
  }
  memory.fill(buf + fill, 0, 56 - fill);
  store<u64>(buf + 56, bigEndianLength ? bswap<u64>(bits) : bits);
  compress(ctx, buf, 1);
}
