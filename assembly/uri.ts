// S3's UriEncode (SigV4 "canonical URI" and "canonical query string" rules), on UTF-8 bytes.
//
// RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) are kept; every other byte becomes %XX with
// upper-case hex. '/' is kept only when `keepSlash` (object key paths); in query names and values
// it becomes %2F. Input is already UTF-8, so multi-byte characters come out as one %XX per byte.
// Nothing is decoded or normalised: the output is the one and only encoding of the input, which
// is why the same routine produces both the canonical strings and the bytes put on the wire.

const UPPER_HEX: usize = memory.data<u8>([
  0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46,
]);

@inline
export function isUnreserved(c: u32): bool {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
    || c == 0x2d || c == 0x2e || c == 0x5f || c == 0x7e;
}

/** Encodes `len` bytes at `src` into `dst` (room for 3·len bytes); returns bytes written. */
export function uriEncode(src: usize, len: usize, dst: usize, keepSlash: bool): usize {
  let o = dst;
  for (let i: usize = 0; i < len; i++) {
    const c = <u32>load<u8>(src + i);
    if (isUnreserved(c) || (keepSlash && c == 0x2f)) {
      store<u8>(o, <u8>c);
      o += 1;
    } else {
      store<u8>(o, 0x25);
      store<u8>(o + 1, load<u8>(UPPER_HEX + (c >>> 4)));
      store<u8>(o + 2, load<u8>(UPPER_HEX + (c & 15)));
      o += 3;
    }
  }
  return o - dst;
}
