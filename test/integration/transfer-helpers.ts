/**
 * Shared by the transfer integration suites: a real client wrapped so a test can count or fail
 * individual calls (never a stand-in server), seeded payloads, and file-system checks.
 */
import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { expect } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { manifestKey } from '../../host/src/transfer/manifest.js';
import type { TransferClient } from '../../host/src/transfer/transfer-client.js';
import { rng } from '../helpers/random.js';

export const MiB = 1 << 20;

const METHODS = [
  'headObject',
  'getObject',
  'getObjectInto',
  'putObject',
  'deleteObject',
  'createMultipartUpload',
  'uploadPart',
  'completeMultipartUpload',
  'abortMultipartUpload',
  'listMultipartUploads',
  'listParts',
] as const;

/** The real client's methods, with some replaced. */
export function wrapClient(c: S3Client, over: Partial<TransferClient> = {}): TransferClient {
  const w = { bucket: c.bucket } as Record<string, unknown>;
  for (const m of METHODS) w[m] = over[m] ?? (c[m] as (...a: unknown[]) => unknown).bind(c);
  return w as unknown as TransferClient;
}

/**
 * Counts UploadPart calls in flight at once. Each call is held back `holdMs` first, so uploads
 * are always slower than reading and hashing the next part and the bound is actually reached.
 */
export function countingUploads(
  c: S3Client,
  holdMs = 150,
): { client: TransferClient; maxInFlight: () => number; calls: () => number; distinctBuffers: () => number } {
  const buffers = new Set<ArrayBufferLike>();
  let inFlight = 0;
  let max = 0;
  let calls = 0;
  const client = wrapClient(c, {
    uploadPart: async (...a) => {
      buffers.add(a[3].buffer);
      calls++;
      inFlight++;
      max = Math.max(max, inFlight);
      try {
        await new Promise((r) => setTimeout(r, holdMs));
        return await c.uploadPart(...a);
      } finally {
        inFlight--;
      }
    },
  });
  return { client, maxInFlight: () => max, calls: () => calls, distinctBuffers: () => buffers.size };
}

export function payload(size: number, seed: number): Buffer {
  const b = rng(seed).bytes(size);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A stream of unknown length in odd-sized chunks, like stdin. */
export function oddStream(data: Buffer): Readable {
  const sizes = [1, 65_536, 7, 1_000_003, 4_096, 333_333];
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

export function collector(): { stream: Writable; data: () => Buffer } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream, data: () => Buffer.concat(chunks) };
}

/**
 * The real client, but the body of the `nth` ranged GET (1-based, in call order) calls `onBytes`
 * with the running count as it streams: lets a test cancel a download half-way, deterministically.
 */
export function watchingRanges(c: S3Client, nth: number, onBytes: (n: number) => void): TransferClient {
  let calls = 0;
  return wrapClient(c, {
    getObjectInto: async (key, o, onData) => {
      if (!o.range || ++calls !== nth) return c.getObjectInto(key, o, onData);
      let n = 0;
      return c.getObjectInto(key, o, (chunk) => {
        onData(chunk);
        n += chunk.length;
        onBytes(n);
      });
    },
  });
}

export async function tempLeftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes('.pve-s3-tmp-'));
}

export async function objectGone(c: S3Client, key: string): Promise<boolean> {
  try {
    await c.headObject(key);
    return false;
  } catch (e) {
    return (e as { code?: string }).code === 'NoSuchKey' || (e as { code?: string }).code === 'NotFound';
  }
}

/** A failed or cancelled upload left nothing: no object, no manifest, no multipart upload of the key. */
export async function nothingLeft(c: S3Client, key: string): Promise<void> {
  expect(await objectGone(c, key)).toBe(true);
  expect(await objectGone(c, manifestKey(key))).toBe(true);
  expect((await c.listMultipartUploads({ prefix: key })).filter((u) => u.key === key)).toEqual([]);
}

/** Parts a resume journal in `dir` lists (its one .json: a header line, then a line per part);
 *  0 while there is none, or more than one. */
export async function journaledPartsIn(dir: string): Promise<number> {
  const { readdir, readFile } = await import('node:fs/promises');
  const files = (await readdir(dir).catch(() => [])).filter((f) => f.endsWith('.json'));
  if (files.length !== 1) return 0;
  const lines = (await readFile(`${dir}/${files[0]}`, 'utf8').catch(() => '')).split('\n').slice(1);
  return lines.filter((l) => l.endsWith('}')).length;
}
