import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Error } from '../../host/src/s3/errors.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { downloadObject, verifyObject } from '../../host/src/transfer/download.js';
import { manifestKey } from '../../host/src/transfer/manifest.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testClient, testS3 } from '../helpers/s3.js';
import { MiB, collector, nothingLeft, oddStream, payload, tempLeftovers, watchingRanges, wrapClient } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
let src: string;
const data = payload(23 * MiB + 7, 42);

beforeAll(async () => {
  c = await freshBucket('transfer-fail');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-transfer-fail-'));
  src = join(dir, 'src.bin');
  await writeFile(src, data);
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});


describe('a failed upload leaves nothing behind', () => {
  it('part 3 fails for good → all workers settle, upload aborted, no object, no pending upload', async () => {
    const key = 'fail/part3';
    let settledAfterAbort = 0;
    let aborted = false;
    const client = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        if (n === 3) throw new S3Error('AccessDenied', 'injected: part 3 refused', { status: 403, retryable: false });
        try {
          return await c.uploadPart(k, id, n, body, sha, o);
        } finally {
          if (aborted) settledAfterAbort++;
        }
      },
      abortMultipartUpload: async (k, id) => {
        aborted = true;
        return c.abortMultipartUpload(k, id);
      },
    });
    await expect(uploadObject(client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 })).rejects.toMatchObject({ code: 'AccessDenied' });
    expect(aborted).toBe(true);
    // no part was still running when the abort went out
    expect(settledAfterAbort).toBe(0);
    await nothingLeft(c, key);
  });

  it('a retryable part failure is retried and the upload completes', async () => {
    const key = 'fail/retried';
    let failed = false;
    const client = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        if (n === 2 && !failed) {
          failed = true;
          throw new S3Error('SlowDown', 'injected: slow down', { status: 503, retryable: true });
        }
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    const up = await uploadObject(client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
    expect(failed).toBe(true);
    expect(up.size).toBe(data.length);
    expect(await verifyObject(c, key)).toBe('good');
  });

  it('UploadPart of part 3 reset by the network every time (fault proxy) → aborted, nothing left', async () => {
    const key = 'fail/reset-part3';
    const proxy = await startFaultProxy(testS3().endpoint);
    try {
      const viaProxy = testClient({ endpoint: proxy.url, bucket: c.bucket, maxRetries: 1 });
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=3&' }, fault: { kind: 'reset' }, times: Infinity }]);
      await expect(uploadObject(viaProxy, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3, partRetries: 0 })).rejects.toBeTruthy();
      expect(proxy.hits()[0]).toBeGreaterThanOrEqual(1);
      expect(proxy.requests.some((r) => r.method === 'DELETE' && r.target.includes('uploadId='))).toBe(true);
      await nothingLeft(c, key);
    } finally {
      await proxy.close();
    }
  });

  it('cancel through the AbortSignal mid-upload (file) → Aborted, nothing left', async () => {
    const key = 'fail/cancel-file';
    const ac = new AbortController();
    const client = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        const r = await c.uploadPart(k, id, n, body, sha, o);
        if (n === 2) ac.abort();
        return r;
      },
    });
    await expect(uploadObject(client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, signal: ac.signal })).rejects.toMatchObject({
      code: 'Aborted',
    });
    await nothingLeft(c, key);
  });

  it('cancel once CreateMultipartUpload answered, while the first part of a file is read → that upload aborted, nothing left', async () => {
    // a file planned in parts sends CreateMultipartUpload beside the first part's read (upload.ts)
    const key = 'fail/cancel-first-read';
    const ac = new AbortController();
    const parts: number[] = [];
    const client = wrapClient(c, {
      createMultipartUpload: async (k, o) => {
        const id = await c.createMultipartUpload(k, o);
        ac.abort();
        return id;
      },
      uploadPart: async (k, id, n, body, sha, o) => {
        parts.push(n);
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    await expect(uploadObject(client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, signal: ac.signal })).rejects.toMatchObject({ code: 'Aborted' });
    expect(parts).toEqual([]);
    await nothingLeft(c, key);
  });

  it('cancel mid-upload of a stream → Aborted, nothing left', async () => {
    const key = 'fail/cancel-stream';
    const ac = new AbortController();
    const p = uploadObject(c, key, { stream: oddStream(data) }, {
      manifestSigner: null,
      chunkSizeMB: 5,
      concurrency: 2,
      signal: ac.signal,
      onProgress: (e) => {
        if (e.parts >= 1) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'Aborted' });
    await nothingLeft(c, key);
  });

  it('cancel during a single PUT → Aborted, no object', async () => {
    const key = 'fail/cancel-put';
    const ac = new AbortController();
    const small = payload(3 * MiB, 5);
    const client = wrapClient(c, {
      putObject: (k, body, o) => {
        const p = c.putObject(k, body, o);
        if (k === key) ac.abort(); // the request is on its way when the cancel comes
        return p;
      },
    });
    await expect(uploadObject(client, key, { stream: oddStream(small) }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, signal: ac.signal })).rejects.toMatchObject({
      code: 'Aborted',
    });
    await nothingLeft(c, key);
  });

  it('a stream that fails half-way (stdin broke) → error, nothing left', async () => {
    const key = 'fail/stream-error';
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield data.subarray(0, 12 * MiB);
      throw new Error('vzdump died');
    }
    await expect(uploadObject(c, key, { stream: broken() }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2 })).rejects.toThrow(/vzdump died/);
    await nothingLeft(c, key);
  });
});

describe('downloads never leave a partial file', () => {
  beforeAll(async () => {
    await uploadObject(c, 'dl/obj', { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
  });

  it('cancelled half-way → Aborted, no file under the final name, no temp file', async () => {
    const ac = new AbortController();
    const dest = join(dir, 'half.bin');
    // part 3 of 5 is the middle of the object: cancel once 1 MiB of it has arrived
    const client = watchingRanges(c, 3, (n) => {
      if (n >= MiB) ac.abort();
    });
    const p = downloadObject(client, 'dl/obj', { path: dest }, { concurrency: 2, signal: ac.signal });
    await expect(p).rejects.toMatchObject({ code: 'Aborted' });
    expect(ac.signal.aborted).toBe(true);
    expect((await readdir(dir)).filter((n) => n.startsWith('half.bin') || n.startsWith('.half.bin'))).toEqual([]);
  });

  it('connection cut half-way, every time (fault proxy) → fails, no file, no temp file', async () => {
    const proxy = await startFaultProxy(testS3().endpoint);
    try {
      const viaProxy = testClient({ endpoint: proxy.url, bucket: c.bucket, maxRetries: 1 });
      // every ranged GET of part 3 gets its head and 1 MiB of body, then the connection is closed
      proxy.plan([{ match: { method: 'GET', headers: { range: `bytes=${10 * MiB}-${15 * MiB - 1}` } }, fault: { kind: 'truncate', bytes: MiB }, times: Infinity }]);
      const dest = join(dir, 'cut.bin');
      await expect(downloadObject(viaProxy, 'dl/obj', { path: dest }, { concurrency: 2 })).rejects.toBeTruthy();
      expect(proxy.hits()[0]).toBeGreaterThanOrEqual(3); // first try and two range retries
      expect((await readdir(dir)).filter((n) => n.includes('cut.bin'))).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('a connection reset once mid-range is retried and the download completes intact', async () => {
    const proxy = await startFaultProxy(testS3().endpoint);
    try {
      const viaProxy = testClient({ endpoint: proxy.url, bucket: c.bucket });
      proxy.plan([{ match: { method: 'GET', headers: { range: `bytes=${5 * MiB}-${10 * MiB - 1}` } }, fault: { kind: 'reset', afterBytes: 2 * MiB }, times: 1 }]);
      const dest = join(dir, 'reset.bin');
      const r = await downloadObject(viaProxy, 'dl/obj', { path: dest }, { concurrency: 2 });
      expect(proxy.hits()).toEqual([1]);
      expect(r.verifiedBy).toBe('manifest');
      expect((await readFile(dest)).equals(data)).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it('a stream consumer that goes away (EPIPE) fails the download with WriteFailed', async () => {
    const { Writable } = await import('node:stream');
    let writes = 0;
    const out = new Writable({
      highWaterMark: 1024,
      write(_chunk, _enc, cb) {
        writes++;
        setImmediate(() => cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' })));
      },
    });
    out.on('error', () => undefined); // as process.stdout would have its own
    await expect(downloadObject(c, 'dl/obj', { stream: out }, { concurrency: 3 })).rejects.toMatchObject({ code: 'WriteFailed' });
    expect(writes).toBe(1);
  });

  it('refuses to overwrite an existing file unless forced', async () => {
    const dest = join(dir, 'exists.bin');
    await writeFile(dest, 'keep me');
    await expect(downloadObject(c, 'dl/obj', { path: dest }, { concurrency: 2 })).rejects.toMatchObject({ code: 'DestinationExists' });
    const r = await downloadObject(c, 'dl/obj', { path: dest }, { concurrency: 2, force: true });
    expect(r.size).toBe(data.length);
  });

  it('a missing object → NoSuchKey (exit 3), nothing created', async () => {
    const dest = join(dir, 'missing.bin');
    await expect(downloadObject(c, 'dl/nope', { path: dest }, { concurrency: 2 })).rejects.toMatchObject({ exitCode: 3 });
    expect(await tempLeftovers(dir)).toEqual([]);
  });
});

describe('corruption is caught', () => {
  it('an object overwritten under its old manifest → IntegrityError (exit 5), nothing left; verify says corrupt', async () => {
    const key = 'corrupt/obj';
    await uploadObject(c, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
    const bad = Buffer.from(data);
    bad[7 * MiB + 3] ^= 0x01; // one bit in part 2; the manifest stays as it was
    await c.putObject(key, bad);

    const dest = join(dir, 'corrupt.bin');
    const err = await downloadObject(c, key, { path: dest }, { concurrency: 3 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IntegrityError', exitCode: 5 });
    expect((err as Error).message).toContain('part 2');
    expect((await readdir(dir)).filter((n) => n.includes('corrupt.bin'))).toEqual([]);

    const out = collector();
    await expect(downloadObject(c, key, { stream: out.stream }, { concurrency: 3 })).rejects.toMatchObject({ code: 'IntegrityError' });
    // at most the verified part before the bad one reached the stream, never the bad one
    expect([0, 5 * MiB]).toContain(out.data().length);
    expect(out.data().equals(data.subarray(0, out.data().length))).toBe(true);

    expect(await verifyObject(c, key)).toBe('corrupt');
  });

  it('an object of another size than its manifest says → IntegrityError before any byte is fetched', async () => {
    const key = 'corrupt/size';
    await uploadObject(c, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
    await c.putObject(key, data.subarray(0, 1000));
    await expect(downloadObject(c, key, { path: join(dir, 'size.bin') }, { concurrency: 3 })).rejects.toMatchObject({ code: 'IntegrityError' });
    expect(await verifyObject(c, key)).toBe('corrupt');
  });

  it('a manifest that is not ours → ManifestInvalid (exit 5); verify says missing-manifest', async () => {
    const key = 'corrupt/manifest';
    await uploadObject(c, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
    await c.putObject(manifestKey(key), Buffer.from('{"format":"something-else"}'));
    await expect(downloadObject(c, key, { path: join(dir, 'm.bin') }, { concurrency: 3 })).rejects.toMatchObject({ code: 'ManifestInvalid', exitCode: 5 });
    expect(await verifyObject(c, key)).toBe('missing-manifest');
  });
});
