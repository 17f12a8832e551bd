import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileChunkSource, StreamChunkSource, openSourceFile, type ChunkSource, type PartSlice } from '../../host/src/transfer/chunk-source.js';

function pattern(n: number, seed = 7): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

async function drain(src: ChunkSource, partSize: number): Promise<{ parts: PartSlice[]; data: Buffer }> {
  const parts: PartSlice[] = [];
  const out: Buffer[] = [];
  const buf = Buffer.alloc(partSize);
  for (;;) {
    const p = await src.read(buf);
    if (!p) break;
    parts.push(p);
    out.push(Buffer.from(buf.subarray(0, p.length)));
  }
  return { parts, data: Buffer.concat(out) };
}

/** A stream of unknown length in odd-sized chunks, as stdin delivers. */
function oddChunks(data: Buffer, sizes = [1, 7, 4096, 65536, 3, 100_000]): Readable {
  return Readable.from(
    (function* () {
      let i = 0;
      for (let off = 0; off < data.length; ) {
        const n = sizes[i++ % sizes.length]!;
        yield data.subarray(off, off + n);
        off += n;
      }
    })(),
  );
}

describe('StreamChunkSource', () => {
  const P = 1000;
  for (const size of [0, 1, P - 1, P, P + 1, 3 * P, 3 * P + 17]) {
    it(`reassembles ${size} bytes into exact ${P}-byte parts`, async () => {
      const data = pattern(size);
      const { parts, data: got } = await drain(new StreamChunkSource(oddChunks(data), P), P);
      expect(got.equals(data)).toBe(true);
      expect(parts.length).toBe(Math.max(1, Math.ceil(size / P)));
      parts.forEach((p, i) => {
        expect(p.n).toBe(i + 1);
        expect(p.offset).toBe(i * P);
        expect(p.last).toBe(i === parts.length - 1);
        if (i < parts.length - 1) expect(p.length).toBe(P);
      });
    });
  }

  it('says a stream that ends within the first part is the last part (single PUT)', async () => {
    const src = new StreamChunkSource(oddChunks(pattern(P)), P);
    const first = await src.read(Buffer.alloc(P));
    expect(first).toMatchObject({ n: 1, length: P, last: true });
    expect(await src.read(Buffer.alloc(P))).toBeNull();
  });

  it('hands out distinct consecutive parts to concurrent readers', async () => {
    const data = pattern(10 * P + 5);
    const src = new StreamChunkSource(oddChunks(data), P);
    const got = new Map<number, Buffer>();
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        const buf = Buffer.alloc(P);
        for (;;) {
          const p = await src.read(buf);
          if (!p) return;
          got.set(p.n, Buffer.from(buf.subarray(0, p.length)));
        }
      }),
    );
    expect(got.size).toBe(11);
    const joined = Buffer.concat([...got.keys()].sort((a, b) => a - b).map((n) => got.get(n)!));
    expect(joined.equals(data)).toBe(true);
  });

  it('refuses a stream longer than its declared maximum', async () => {
    const src = new StreamChunkSource(oddChunks(pattern(3 * P)), P, 2 * P);
    await expect(drain(src, P)).rejects.toMatchObject({ code: 'EntityTooLarge' });
  });

  it('passes a stream error on', async () => {
    const s = new Readable({ read() {} });
    s.push(pattern(10));
    setImmediate(() => s.destroy(new Error('stdin broke')));
    await expect(drain(new StreamChunkSource(s, P), P)).rejects.toThrow(/stdin broke/);
  });
});

describe('FileChunkSource', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pve-s3-chunks-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const size of [0, 1, 999, 1000, 1001, 4321]) {
    it(`reads ${size} bytes as positional parts`, async () => {
      const path = join(dir, `f${size}`);
      const data = pattern(size, size);
      await writeFile(path, data);
      const src = new FileChunkSource(await openSourceFile(path), 1000);
      const { parts, data: got } = await drain(src, 1000);
      await src.checkUnchanged();
      await src.close();
      expect(got.equals(data)).toBe(true);
      expect(parts.map((p) => p.n)).toEqual(Array.from({ length: Math.max(1, Math.ceil(size / 1000)) }, (_, i) => i + 1));
      expect(parts.at(-1)!.last).toBe(true);
    });
  }

  it('skips parts a resumed upload already stored', async () => {
    const path = join(dir, 'skip');
    const data = pattern(4500, 3);
    await writeFile(path, data);
    const src = new FileChunkSource(await openSourceFile(path), 1000, (n) => n === 1 || n === 3 || n === 5);
    const { parts } = await drain(src, 1000);
    await src.close();
    expect(parts.map((p) => [p.n, p.offset, p.length])).toEqual([
      [2, 1000, 1000],
      [4, 3000, 1000],
    ]);
    const all = new FileChunkSource(await openSourceFile(path), 1000, () => true);
    expect(await all.read(Buffer.alloc(1000))).toBeNull();
    await all.close();
  });

  it('notices a file that grew while being read', async () => {
    const path = join(dir, 'growing');
    await writeFile(path, pattern(1500));
    const src = new FileChunkSource(await openSourceFile(path), 1000);
    await drain(src, 1000);
    await appendFile(path, 'more');
    await expect(src.checkUnchanged()).rejects.toMatchObject({ code: 'SourceChanged' });
    await src.close();
  });

  it('names the missing file', async () => {
    await expect(openSourceFile(join(dir, 'nope'))).rejects.toMatchObject({ code: 'NotFound', message: expect.stringContaining('nope') });
  });

  it('refuses a directory', async () => {
    await expect(openSourceFile(dir)).rejects.toMatchObject({ code: 'InvalidSource' });
  });
});
