/**
 * FrameCompressor (host/src/zstd/frames.ts): every frame decompresses to exactly the bytes handed
 * in, on this thread and on the compression threads (the compiled worker from host/dist, as the
 * installed host runs it) — also for small buffers that live in node's shared allocation pool
 * (Buffer.concat / Buffer.from of < 4 KiB: an extent header alone), which once reached the
 * worker as the whole pool and put other requests' bytes into the archive. FrameDecompressor
 * (frame-decompressor.ts, a restore's frames on the same threads): the bytes come back, and so
 * does the caller's buffer, also when the frame is damaged.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Crc64Nvme, Sha256 } from '../../host/src/wasm/digests.js';
import { DecompressError, FrameDecompressor } from '../../host/src/zstd/frame-decompressor.js';
import { FrameCompressor } from '../../host/src/zstd/frames.js';
import { zstd } from '../../host/src/zstd/native.js';

const WORKER = resolve(import.meta.dirname, '..', '..', 'host', 'dist', 'zstd', 'compress-worker.js');

function decompress(frame: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  expect(zstd().decompress(out, frame)).toBe(size);
  return out;
}

function inputs(): Buffer[] {
  // pooled small frames (an extent header alone), a view into a larger buffer, a large frame
  const small = Buffer.concat([Buffer.from('VMAE'), Buffer.alloc(508, 7)], 512);
  const view = Buffer.alloc(64 * 1024, 3).subarray(1000, 1000 + 4096);
  const big = Buffer.alloc(17 << 20);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
  const pooledTiny = Buffer.from([1, 2, 3, 4, 5]);
  return [small, view, big, pooledTiny, Buffer.concat([Buffer.from('x'.repeat(3000))])];
}

describe.each([
  ['on this thread', 0],
  ['on two compression threads', 2],
])('FrameCompressor %s', (_label, threads) => {
  it('gives back frames that decompress to the bytes handed in, in order, with their SHA-256 and CRC-64/NVME', async () => {
    if (threads > 0 && !existsSync(WORKER)) throw new Error(`${WORKER} is missing: run npm run build first`);
    const c = new FrameCompressor({ threads, workerScript: WORKER });
    try {
      expect(c.threaded).toBe(threads > 0);
      const src = inputs();
      const copies = src.map((b) => Buffer.from(b)); // compress() takes its input over
      const frames = await Promise.all(src.map((b) => c.compress(b)));
      frames.forEach((f, i) => {
        const back = decompress(f.data, copies[i]!.length);
        expect(back.equals(copies[i]!), `frame ${i}`).toBe(true);
        expect(f.sha256.equals(Buffer.from(Sha256.hash(f.data)))).toBe(true);
        expect(f.crc64).toBe(Crc64Nvme.hash(f.data));
        expect(zstd().getFrameContentSize(f.data)).toBe(copies[i]!.length);
      });
    } finally {
      await c.close();
    }
  });
});


describe.each([
  ['on this thread', 0],
  ['on two zstd threads', 2],
])('FrameDecompressor %s', (_label, threads) => {
  it('gives back each frame\'s bytes and the buffer handed in; a damaged frame is a DecompressError that returns the buffer too', async () => {
    if (threads > 0 && !existsSync(WORKER)) throw new Error(`${WORKER} is missing: run npm run build first`);
    const c = new FrameCompressor({ threads: 0 });
    const d = new FrameDecompressor({ threads, workerScript: WORKER });
    try {
      expect(d.threaded).toBe(threads > 0);
      const src = inputs().map((b) => Buffer.from(b));
      const frames = await Promise.all(src.map((b) => c.compress(Buffer.from(b))));
      const results = await Promise.all(
        frames.map((f) => {
          // a reused buffer larger than the frame, as the restore's pool hands out
          const own = Buffer.allocUnsafeSlow(f.data.length + 100);
          f.data.copy(own);
          return d.decompress(own, f.data.length, src[frames.indexOf(f)]!.length);
        }),
      );
      results.forEach((r, i) => {
        expect(r.len).toBe(src[i]!.length);
        expect(r.out.subarray(0, r.len).equals(src[i]!)).toBe(true);
        expect(r.input.length).toBe(frames[i]!.data.length + 100);
      });
      const bad = Buffer.allocUnsafeSlow(frames[2]!.data.length);
      frames[2]!.data.copy(bad);
      bad[bad.length >> 1]! ^= 0xff;
      const badLen = bad.length; // handed over: on a thread, `bad` is detached meanwhile
      const e = await d.decompress(bad, badLen, src[2]!.length).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DecompressError);
      expect((e as DecompressError).input.length).toBe(badLen);
      await expect(d.decompress(Buffer.alloc(10).subarray(1), 5, 5)).rejects.toThrow(/owns its memory/);
    } finally {
      await d.close();
      await c.close();
    }
  });
});
