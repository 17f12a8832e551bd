// Upload part digests computed four parts at a time on the SIMD core must be exactly the SHA-256
// and CRC-64/NVME of each part (the signed payload hashes and the manifest entries).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HashAhead } from '../../host/src/transfer/hash-ahead.js';
import { refCrc64Hex } from '../helpers/crc64.js';

const MiB = 1024 * 1024;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-hash-ahead-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** what the manifest records of a part */
const sums = (b: Uint8Array) => `${sha(b)}/${refCrc64Hex(b)}`;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

async function digestsOf(data: Buffer, partSize: number, skip?: (n: number) => boolean): Promise<Map<number, string>> {
  const path = join(dir, `f-${data.length}-${partSize}`);
  await writeFile(path, data);
  const fh = await open(path, 'r');
  try {
    const ahead = new HashAhead(fh, path, data.length, partSize, skip);
    const parts = Math.ceil(data.length / partSize);
    const out = new Map<number, string>();
    for (let n = 1; n <= parts; n++) {
      if (skip?.(n)) continue;
      const s = await ahead.sums(n);
      out.set(n, `${hex(s.sha256)}/${s.crc64.toString(16).padStart(16, '0')}`);
    }
    return out;
  } finally {
    await fh.close();
  }
}

describe('HashAhead', () => {
  it('gives every part its own SHA-256 and CRC-64/NVME: batches of four, a short last part, parts larger than a slice', async () => {
    // ten parts of 3 MiB + 1 byte and a short eleventh: batches of 4, 4 and 3, two slices per part
    const partSize = 3 * MiB + 1;
    const data = randomBytes(partSize * 10 + 12345);
    const got = await digestsOf(data, partSize);
    expect(got.size).toBe(11);
    for (const [n, d] of got) expect(d, `part ${n}`).toBe(sums(data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))));
  });

  it('skips the parts a resumed upload already has, hashing the others', async () => {
    const partSize = 1 * MiB;
    const data = randomBytes(6 * MiB + 5);
    const kept = new Set([1, 2, 5]);
    const got = await digestsOf(data, partSize, (n) => kept.has(n));
    expect([...got.keys()]).toEqual([3, 4, 6, 7]);
    for (const [n, d] of got) expect(d, `part ${n}`).toBe(sums(data.subarray((n - 1) * partSize, Math.min(n * partSize, data.length))));
  });

  it('a file that shrank is SourceChanged, naming the file', async () => {
    const path = join(dir, 'shrinks');
    await writeFile(path, randomBytes(4 * MiB));
    const fh = await open(path, 'r');
    try {
      const ahead = new HashAhead(fh, path, 4 * MiB, MiB);
      await truncate(path, 2 * MiB);
      await expect(ahead.sums(1)).rejects.toMatchObject({ code: 'SourceChanged', message: expect.stringContaining(path) });
    } finally {
      await fh.close();
    }
  });

  it('stops a batch when the run is cancelled', async () => {
    const path = join(dir, 'cancel');
    await writeFile(path, randomBytes(8 * MiB));
    const fh = await open(path, 'r');
    try {
      const ac = new AbortController();
      ac.abort(new Error('stop'));
      await expect(new HashAhead(fh, path, 8 * MiB, 2 * MiB).sums(1, ac.signal)).rejects.toThrow('stop');
    } finally {
      await fh.close();
    }
  });
});
