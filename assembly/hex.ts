// Lower-case hex, the only form SigV4 ever uses (hashes in the canonical request, signatures).

const HEX_DIGITS: usize = memory.data<u8>([
  0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66,
]);

/** Writes 2·len lower-case hex characters for the bytes at `src` to `dst`; returns 2·len. */
export function toHexLower(src: usize, len: usize, dst: usize): usize {
  for (let i: usize = 0; i < len; i++) {
    const b = <usize>load<u8>(src + i);
    store<u8>(dst + (i << 1), load<u8>(HEX_DIGITS + (b >>> 4)));
    store<u8>(dst + (i << 1) + 1, load<u8>(HEX_DIGITS + (b & 15)));
  }
  return len << 1;
}
