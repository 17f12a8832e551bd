import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildManifest, compositeDigest, manifestKey, parseManifest, serializeManifest } from '../../host/src/transfer/manifest.js';

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

describe('integrity manifest', () => {
  const parts = [Buffer.alloc(10, 1), Buffer.alloc(10, 2), Buffer.alloc(3, 3)];
  const digests = parts.map(sha);
  const m = buildManifest({
    key: 'dump/vzdump-qemu-100-2026_01_02-03_04_05.vma.zst',
    size: 23,
    partSize: 10,
    multipart: true,
    partDigests: digests,
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
      version: 1,
      size: 23,
      partSize: 10,
      multipart: true,
      etag: '"abc-3"',
      uploadedAt: '2026-01-02T03:04:05.000Z',
      meta: { vmid: '100', guestType: 'qemu' },
    });
    expect(m.parts).toEqual([
      { n: 1, size: 10, sha256: digests[0]!.toString('hex') },
      { n: 2, size: 10, sha256: digests[1]!.toString('hex') },
      { n: 3, size: 3, sha256: digests[2]!.toString('hex') },
    ]);
    expect(m.sha256).toBe(sha(Buffer.concat(parts)).toString('hex'));
    expect(m.tool).toMatch(/^pve-s3/);
  });

  it('round-trips through JSON', () => {
    expect(parseManifest(serializeManifest(m).toString('utf8'), m.key)).toEqual(m);
  });

  const broken: Array<[string, (x: Record<string, any>) => void, RegExp]> = [
    ['another format', (x) => (x.format = 'other'), /format/],
    ['a newer version', (x) => (x.version = 2), /version 2/],
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
    const e = buildManifest({ key: 'e', size: 0, partSize: 5 << 20, multipart: false, partDigests: [sha(Buffer.alloc(0))], partSizes: [0], sha256: sha(Buffer.alloc(0)), etag: '"d41d8cd98f00b204e9800998ecf8427e"' });
    expect(parseManifest(JSON.stringify(e), 'e').parts).toEqual([{ n: 1, size: 0, sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' }]);
  });
});
