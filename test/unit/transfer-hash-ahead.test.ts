// Upload part digests computed four parts at a time on the SIMD core must be exactly the SHA-256
// and CRC-64/NVME of each part (the signed payload hashes and the manifest entries).
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, truncate, writeFile, type FileHandle } from 'node:fs/promises';
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
    await ahead.close();
    return out;
  } finally {
    await fh.close();
  }
}

/** fh's reads, recorded when asked for; `fail(at)` makes reads from byte `at` on fail. */
function watched(fh: FileHandle): { fh: FileHandle; starts: number[]; failFrom(at: number): void } {
  const starts: number[] = [];
  let failAt = Infinity;
  const read = (buf: Uint8Array, off: number, len: number, pos: number) => {
    starts.push(pos);
    if (pos >= failAt) return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
    return fh.read(buf, off, len, pos);
  };
  return { fh: { read } as unknown as FileHandle, starts, failFrom: (at) => void (failAt = at) };
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

  it('hashes the next batch while the parts before it are read and sent, and close() waits for it', async () => {
    const path = join(dir, 'ahead');
    const partSize = MiB;
    const data = randomBytes(10 * partSize);
    await writeFile(path, data);
    const real = await open(path, 'r');
    try {
      const w = watched(real);
      const ahead = new HashAhead(w.fh, path, data.length, partSize);
      await ahead.sums(1);
      // parts 5-8 are being read before anyone asked for part 5 (before: only at sums(5))
      expect(w.starts.some((p) => p >= 4 * partSize && p < 8 * partSize)).toBe(true);
      for (let n = 2; n <= 5; n++) {
        const got = await ahead.sums(n);
        expect(`${hex(got.sha256)}/${got.crc64.toString(16).padStart(16, '0')}`, `part ${n}`).toBe(sums(data.subarray((n - 1) * partSize, n * partSize)));
      }
      // taking part 5 started parts 9-10; close() stops and awaits that batch: no read after it
      await ahead.close();
      const reads = w.starts.length;
      await new Promise((r) => setTimeout(r, 20));
      expect(w.starts.length).toBe(reads);
    } finally {
      await real.close();
    }
  });

  it('a read failing in a batch running ahead fails the part it covers, not the parts before it, and is never unhandled', async () => {
    const path = join(dir, 'ahead-fails');
    const partSize = MiB;
    await writeFile(path, randomBytes(8 * partSize));
    const real = await open(path, 'r');
    try {
      const w = watched(real);
      w.failFrom(4 * partSize);
      const ahead = new HashAhead(w.fh, path, 8 * partSize, partSize);
      await ahead.sums(1);
      // the batch running ahead (parts 5-8) has failed by now; parts 2-4 were hashed before it
      await new Promise((r) => setTimeout(r, 20));
      for (let n = 2; n <= 4; n++) await ahead.sums(n);
      await expect(ahead.sums(5)).rejects.toMatchObject({ code: 'EIO' });
      await ahead.close();
    } finally {
      await real.close();
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
