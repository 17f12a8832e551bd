/**
 * CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones) in plain JS, a
 * reference for tests independent of the WASM core: one 256-entry table in two 32-bit halves, so
 * MiBs hash in a fraction of a second without BigInt per byte. Its own test checks it against
 * the catalogue's check value and a bitwise definition.
 */
const LO = new Uint32Array(256);
const HI = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let lo = i;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const bit = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi >>>= 1;
    if (bit) {
      lo = (lo ^ 0xac4bc9b5) >>> 0;
      hi = (hi ^ 0x9a6c9329) >>> 0;
    }
  }
  LO[i] = lo;
  HI[i] = hi;
}

export function refCrc64Nvme(data: Uint8Array): bigint {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const t = (lo ^ data[i]!) & 0xff;
    lo = ((lo >>> 8) | ((hi & 0xff) << 24)) ^ LO[t]!;
    hi = (hi >>> 8) ^ HI[t]!;
  }
  return (BigInt((hi ^ 0xffffffff) >>> 0) << 32n) | BigInt((lo ^ 0xffffffff) >>> 0);
}

/** As the manifest writes it: 16 lower-case hex digits. */
export const refCrc64Hex = (data: Uint8Array): string => refCrc64Nvme(data).toString(16).padStart(16, '0');

/**
 * A 9-byte XOR mask that changes one byte (by `c`, non-zero) and fixes the CRC up in the 8 bytes
 * after it: applied anywhere in any data, the CRC-64/NVME stays the same. A CRC is linear, so
 * whoever can change the data can keep its CRC; this is why the CRC is a check against accidents
 * and SHA-256 the one against tampering (docs/INTEGRITY.md).
 *
 * Why it works: the CRC of data ⊕ mask is CRC(data) ⊕ the zero-init CRC register of the mask.
 * After the byte c that register is T[c]; the next 8 bytes are XORed into it whole, so bytes
 * equal to T[c] (little-endian) bring it to 0, and the zero bytes after keep it there.
 */
export function crcKeepingMask(c: number): Uint8Array {
  if (!Number.isInteger(c) || c < 1 || c > 255) throw new Error(`mask byte ${c} must be 1..255`);
  const m = new Uint8Array(9);
  m[0] = c;
  new DataView(m.buffer).setUint32(1, LO[c]!, true);
  new DataView(m.buffer).setUint32(5, HI[c]!, true);
  return m;
}
