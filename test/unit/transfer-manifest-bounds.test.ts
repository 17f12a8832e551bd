// Issue 10 §8: a manifest is written by whoever can write to the bucket; its sizes are checked
// against S3's own limits and against each other before anything (a stream restore's buffers,
// the ranges of a download) is sized by them.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { compositeDigest, parseManifest } from '../../host/src/transfer/manifest.js';

const GiB = 1024 ** 3;
const d = createHash('sha256').update('x').digest();
const hex = d.toString('hex');

function manifest(size: number, partSize: number, sizes: number[], multipart = true): string {
  return JSON.stringify({
    format: 'pve-s3-manifest',
    version: 1,
    key: 'k',
    size,
    partSize,
    multipart,
    parts: sizes.map((s, i) => ({ n: i + 1, size: s, sha256: hex })),
    compositeSha256: compositeDigest(sizes.map(() => d)),
    sha256: null,
    etag: '"e"',
    uploadedAt: '',
    tool: 't',
    meta: {},
  });
}

const refused = (text: string) => {
  try {
    parseManifest(text, 'dump/x.vma');
  } catch (e) {
    return `${(e as { code?: string }).code}: ${(e as Error).message}`;
  }
  return 'accepted';
};

describe('manifest sizes', () => {
  it('accepts what an upload writes, up to S3 limits (5 GiB parts, 10,000 parts)', () => {
    expect(refused(manifest(23, 10, [10, 10, 3]))).toBe('accepted');
    expect(refused(manifest(0, 5, [0], false))).toBe('accepted');
    expect(refused(manifest(5 * GiB, 5 * GiB, [5 * GiB], false))).toBe('accepted');
    expect(refused(manifest(10_000 * 5, 5, Array(10_000).fill(5)))).toBe('accepted');
  });

  it('refuses a part size above 5 GiB, before anything is sized by it', () => {
    expect(refused(manifest(6 * GiB, 6 * GiB, [6 * GiB], false))).toMatch(/^ManifestInvalid: .*partSize 6442450944 exceeds S3's maximum part size of 5368709120 bytes/);
  });

  it('refuses more than 10,000 parts, and more than 5 TiB', () => {
    expect(refused(manifest(10_001, 1, Array(10_001).fill(1)))).toMatch(/10001 parts exceed S3's maximum of 10000/);
    expect(refused(manifest(6 * 1024 * GiB, 5 * GiB, [5 * GiB]))).toMatch(/exceeds S3's maximum object size/);
  });

  it('refuses a part count that the size and part size do not make', () => {
    // an empty last part: the sums add up, the count does not
    expect(refused(manifest(20, 10, [10, 10, 0]))).toMatch(/3 parts, but 20 bytes in parts of 10 make 2/);
    // a part size beyond S3's maximum is refused even for one small part
    expect(refused(manifest(20, 2 ** 40, [20]))).toMatch(/partSize .* exceeds/);
  });

  it('refuses several parts in what says it is a single PUT', () => {
    expect(refused(manifest(20, 10, [10, 10], false))).toMatch(/2 parts in a single-PUT object/);
  });
});
