// Every applicable published vector in ../shared/vectors/checksums.json against the WASM core.
import { describe, expect, it } from 'vitest';
import { Crc32c, Crc64Nvme, Md5, Sha256, hmacSha256, sha256x4 } from '../../host/src/wasm/digests.js';
import { crc32cBase64, crc64Base64, toBase64, toHex } from '../../host/src/wasm/encoding.js';
import { hexBytes, readVectors } from '../helpers/vectors.js';

interface ShaVector { lenBits: number; msgHex: string; sha256Hex: string; sha256Base64: string }
interface CrcVector { input: string; inputHex: string; valueHex: string; base64BigEndian: string; s3HeaderValue?: string }
interface Checksums {
  sha256: { nistShortMsg: { vectors: ShaVector[] }; nistLongMsg: { vectors: ShaVector[] } };
  md5: { vectors: { msgAscii: string; msgHex: string; md5Hex: string; md5Base64: string }[] };
  hmacSha256: { vectors: { testCase: number; keyHex: string; dataHex: string; hmacSha256Hex: string; truncatedToBits?: number; untruncatedHmacSha256Hex?: string }[] };
  crc32c: { vectors: CrcVector[] };
  crc64nvme: { vectors: CrcVector[] };
  s3HeaderDigests: { input: string; inputHex: string; algorithm: string; valueHex: string; s3HeaderValue: string }[];
  informational: { crc32cOf66560TimesA: { valueHex: string; base64BigEndian: string } };
}

const v = readVectors<Checksums>('checksums.json');
const sha = [...v.sha256.nistShortMsg.vectors, ...v.sha256.nistLongMsg.vectors];

describe('SHA-256: NIST CAVP SHAVS byte-oriented ShortMsg + LongMsg', () => {
  it('has the published vector counts', () => {
    expect(v.sha256.nistShortMsg.vectors.length).toBe(65);
    expect(v.sha256.nistLongMsg.vectors.length).toBe(64);
  });
  it.each(sha.map((t) => [t.lenBits, t] as const))('Sha256.hash, %i bits', (_bits, t) => {
    const d = Sha256.hash(hexBytes(t.msgHex));
    expect(toHex(d)).toBe(t.sha256Hex);
    expect(toBase64(d)).toBe(t.sha256Base64);
  });
  it('sha256x4 lanes, four vectors at a time', () => {
    for (let i = 0; i < sha.length; i += 4) {
      const group = sha.slice(i, i + 4);
      const got = sha256x4(group.map((t) => hexBytes(t.msgHex))).map(toHex);
      expect(got).toEqual(group.map((t) => t.sha256Hex));
    }
  });
});

describe('MD5: RFC 1321 A.5', () => {
  it.each(v.md5.vectors.map((t) => [JSON.stringify(t.msgAscii).slice(0, 30), t] as const))('%s', (_n, t) => {
    const d = Md5.hash(hexBytes(t.msgHex));
    expect(toHex(d)).toBe(t.md5Hex);
    expect(toBase64(d)).toBe(t.md5Base64);
  });
});

describe('HMAC-SHA256: RFC 4231 test cases 1-7', () => {
  it('has all seven cases', () => expect(v.hmacSha256.vectors.map((t) => t.testCase)).toEqual([1, 2, 3, 4, 5, 6, 7]));
  it.each(v.hmacSha256.vectors.map((t) => [t.testCase, t] as const))('case %i', (_c, t) => {
    const mac = toHex(hmacSha256(hexBytes(t.keyHex), hexBytes(t.dataHex)));
    if (t.truncatedToBits !== undefined) {
      // Case 5 publishes only the first 128 bits; the full value is the vectors' recomputation.
      expect(mac.slice(0, t.truncatedToBits / 4)).toBe(t.hmacSha256Hex);
      expect(mac).toBe(t.untruncatedHmacSha256Hex);
    } else {
      expect(mac).toBe(t.hmacSha256Hex);
    }
  });
});

describe('CRC32C (incl. RFC 3720 B.4) and CRC64NVME', () => {
  it.each(v.crc32c.vectors.map((t) => [t.input, t] as const))('crc32c %s', (_n, t) => {
    const c = Crc32c.hash(hexBytes(t.inputHex));
    expect(c).toBe(parseInt(t.valueHex, 16));
    expect(crc32cBase64(c)).toBe(t.base64BigEndian);
    if (t.s3HeaderValue !== undefined) expect(crc32cBase64(c)).toBe(t.s3HeaderValue);
  });
  it.each(v.crc64nvme.vectors.map((t) => [t.input, t] as const))('crc64nvme %s', (_n, t) => {
    const c = Crc64Nvme.hash(hexBytes(t.inputHex));
    expect(c).toBe(BigInt('0x' + t.valueHex));
    expect(crc64Base64(c)).toBe(t.base64BigEndian);
    if (t.s3HeaderValue !== undefined) expect(crc64Base64(c)).toBe(t.s3HeaderValue);
  });
});

describe('CRC32C of the AWS streaming-trailer example body (66560 × "a")', () => {
  const t = v.informational.crc32cOf66560TimesA;
  const body = new Uint8Array(66560).fill(0x61);
  it('whole, and combined from two parts hashed separately', () => {
    expect(Crc32c.hash(body)).toBe(parseInt(t.valueHex, 16));
    expect(crc32cBase64(Crc32c.hash(body))).toBe(t.base64BigEndian);
    const cut = 65536;
    expect(Crc32c.combine(Crc32c.hash(body.subarray(0, cut)), Crc32c.hash(body.subarray(cut)), body.length - cut)).toBe(parseInt(t.valueHex, 16));
  });
});

describe('S3 x-amz-checksum-sha256 header values', () => {
  // The SHA-1 entries name an algorithm this core does not implement (S3 SHA1 checksums are not used).
  const rows = v.s3HeaderDigests.filter((t) => t.algorithm === 'SHA256');
  it('has the SHA-256 rows', () => expect(rows.length).toBeGreaterThanOrEqual(3));
  it.each(rows.map((t) => [t.input, t] as const))('%s', (_n, t) => {
    const d = Sha256.hash(hexBytes(t.inputHex));
    expect(toHex(d)).toBe(t.valueHex);
    expect(toBase64(d)).toBe(t.s3HeaderValue);
  });
});
