/** Encodings S3 uses for digests: hex (SigV4, ETags) and base64 (Content-MD5, x-amz-checksum-*). */

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

/** x-amz-checksum-crc32c: the CRC serialised big-endian (4 bytes), base64. */
export function crc32cBase64(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b.toString('base64');
}

/** x-amz-checksum-crc64nvme: the CRC serialised big-endian (8 bytes), base64. */
export function crc64Base64(n: bigint): string {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, n));
  return b.toString('base64');
}
