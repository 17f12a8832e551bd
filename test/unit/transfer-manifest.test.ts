import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MANIFEST_MAX_BYTES, buildManifest, compositeDigest, manifestKey, parseManifest, serializeManifest } from '../../host/src/transfer/manifest.js';
import { crcKeepingMask, refCrc64Hex, refCrc64Nvme } from '../helpers/crc64.js';

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

describe('the CRC-64/NVME reference of the tests', () => {
  it('gives the catalogue check value and agrees with the bitwise definition', () => {
    expect(refCrc64Nvme(Buffer.from('123456789')).toString(16)).toBe('ae8b14860a799888');
    expect(refCrc64Nvme(new Uint8Array(0))).toBe(0n);
    const bitwise = (d: Uint8Array): bigint => {
      let c = 0xffffffffffffffffn;
      for (const b of d) {
        c ^= BigInt(b);
        for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ 0x9a6c9329ac4bc9b5n : c >> 1n;
      }
      return c ^ 0xffffffffffffffffn;
    };
    const d = createHash('sha512').update('x').digest();
    for (let n = 0; n <= d.length; n++) expect(refCrc64Nvme(d.subarray(0, n))).toBe(bitwise(d.subarray(0, n)));
  });

  it('a crcKeepingMask changes the bytes but not the CRC (the tampering a CRC cannot see)', () => {
    const d = Buffer.concat([createHash('sha512').update('a').digest(), createHash('sha512').update('b').digest()]);
    for (const [c, at] of [[1, 0], [0xff, 17], [0x5a, d.length - 9]] as const) {
      const t = Buffer.from(d);
      crcKeepingMask(c).forEach((m, i) => (t[at + i] ^= m));
      expect(t.equals(d)).toBe(false);
      expect(refCrc64Nvme(t)).toBe(refCrc64Nvme(d));
      expect(sha(t).equals(sha(d))).toBe(false);
    }
  });
});

describe('integrity manifest', () => {
  const parts = [Buffer.alloc(10, 1), Buffer.alloc(10, 2), Buffer.alloc(3, 3)];
  const digests = parts.map(sha);
  const crcs = parts.map(refCrc64Nvme);
  const m = buildManifest({
    key: 'dump/vzdump-qemu-100-2026_01_02-03_04_05.vma.zst',
    size: 23,
    partSize: 10,
    multipart: true,
    partDigests: digests,
    partCrcs: crcs,
    partSizes: [10, 10, 3],
    sha256: sha(Buffer.concat(parts)),
    etag: '"abc-3"',
    meta: { vmid: '100', guestType: 'qemu' },
    now: new Date('2026-01-02T03:04:05Z'),
  });

  it('is keyed <key>.s3manifest', () => {
    expect(manifestKey('dump/a.vma')).toBe('dump/a.vma.s3manifest');
  });

  it('composite = sha256(concatenated binary part digests) + "-N", as node:crypto computes it', () => {
    const expected = sha(Buffer.concat(digests)).toString('hex') + '-3';
    expect(compositeDigest(digests)).toBe(expected);
    expect(m.compositeSha256).toBe(expected);
  });

  it('holds what DESIGN §3 asks for', () => {
    expect(m).toMatchObject({
      format: 'pve-s3-manifest',
      version: 2,
      size: 23,
      partSize: 10,
      multipart: true,
      etag: '"abc-3"',
      uploadedAt: '2026-01-02T03:04:05.000Z',
      meta: { vmid: '100', guestType: 'qemu' },
    });
    expect(m.parts).toEqual(parts.map((p, i) => ({ n: i + 1, size: p.length, sha256: digests[i]!.toString('hex'), crc64: refCrc64Hex(p) })));
    expect(m.sha256).toBe(sha(Buffer.concat(parts)).toString('hex'));
    // the part CRCs combined are the whole object's CRC
    expect(m.crc64).toBe(refCrc64Hex(Buffer.concat(parts)));
    expect(m.tool).toMatch(/^pve-s3/);
  });

  it('round-trips through JSON', () => {
    expect(parseManifest(serializeManifest(m).toString('utf8'), m.key)).toEqual(m);
  });

  const broken: Array<[string, (x: Record<string, any>) => void, RegExp]> = [
    ['another format', (x) => (x.format = 'other'), /format/],
    ['a newer version', (x) => (x.version = 3), /version 3/],
    ['a part without its CRC', (x) => delete x.parts[1].crc64, /part 2 crc64/],
    ['a part CRC that is not 16 hex digits', (x) => (x.parts[0].crc64 = 'ABCDEF0123456789'), /part 1 crc64/],
    ['a tampered part CRC', (x) => (x.parts[2].crc64 = '0'.repeat(16)), /crc64 does not match the part CRCs/],
    ['a tampered whole-object CRC', (x) => (x.crc64 = refCrc64Hex(Buffer.from('other'))), /crc64 does not match/],
    ['no whole-object CRC', (x) => delete x.crc64, /crc64 is not 16 hex/],
    ['sizes that do not add up', (x) => (x.size = 24), /add up/],
    ['a tampered part digest', (x) => (x.parts[1].sha256 = '0'.repeat(64)), /compositeSha256/],
    ['parts out of order', (x) => (x.parts = [x.parts[1], x.parts[0], x.parts[2]]), /order/],
    ['a short middle part', (x) => (x.parts[1].size = 9), /partSize/],
    ['no parts', (x) => (x.parts = []), /parts/],
  ];
  for (const [what, mutate, msg] of broken) {
    it(`rejects ${what} as ManifestInvalid (exit 5)`, () => {
      const x = JSON.parse(JSON.stringify(m));
      mutate(x);
      let err: any;
      try {
        parseManifest(JSON.stringify(x), m.key);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'ManifestInvalid', exitCode: 5 });
      expect(err.message).toMatch(msg);
      expect(err.message).toContain('.s3manifest');
    });
  }

  it('rejects text that is not JSON', () => {
    expect(() => parseManifest('{nope', 'k')).toThrow(/not valid JSON/);
  });

  it('describes an empty object as one empty part', () => {
    const e = buildManifest({ key: 'e', size: 0, partSize: 5 << 20, multipart: false, partDigests: [sha(Buffer.alloc(0))], partCrcs: [0n], partSizes: [0], sha256: sha(Buffer.alloc(0)), etag: '"d41d8cd98f00b204e9800998ecf8427e"' });
    expect(parseManifest(JSON.stringify(e), 'e').parts).toEqual([{ n: 1, size: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', crc64: '0000000000000000' }]);
    expect(e.crc64).toBe('0000000000000000');
  });

  it('of 10,000 parts (the most S3 allows) with CRCs stays well under the size a manifest may have', () => {
    const n = 10_000;
    const big = buildManifest({
      key: 'dump/vzdump-qemu-100-2026_01_02-03_04_05.vma.zst',
      size: n * 2 ** 29,
      partSize: 2 ** 29,
      multipart: true,
      partDigests: Array.from({ length: n }, () => digests[0]!),
      partCrcs: Array.from({ length: n }, (_, i) => BigInt(i) * 0x9e3779b97f4a7c15n % (1n << 64n)),
      partSizes: Array.from({ length: n }, () => 2 ** 29),
      sha256: null,
      etag: '"abc-10000"',
    });
    const bytes = serializeManifest(big).length;
    expect(bytes).toBeLessThan(MANIFEST_MAX_BYTES / 2);
    expect(parseManifest(serializeManifest(big).toString('utf8'), big.key).parts).toHaveLength(n);
  });

  it('still reads version 1 (no CRC), and ignores CRC fields a version 1 manifest carries', () => {
    const v1 = JSON.parse(JSON.stringify(m));
    v1.version = 1;
    delete v1.crc64;
    for (const p of v1.parts) delete p.crc64;
    const back = parseManifest(JSON.stringify(v1), m.key);
    expect(back.version).toBe(1);
    expect(back.crc64).toBeUndefined();
    expect(back.parts.map((p) => p.crc64)).toEqual([undefined, undefined, undefined]);
    // a CRC smuggled into a version 1 manifest is not validated, so it must not be used either
    v1.parts[0].crc64 = '0'.repeat(16);
    expect(parseManifest(JSON.stringify(v1), m.key).parts[0]).toEqual({ n: 1, size: 10, sha256: digests[0]!.toString('hex') });
  });
});
