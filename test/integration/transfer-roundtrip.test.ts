import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { downloadObject, verifyObject } from '../../host/src/transfer/download.js';
import { manifestKey, readManifest } from '../../host/src/transfer/manifest.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { refCrc64Hex } from '../helpers/crc64.js';
import { MiB, collector, countingUploads, oddStream, payload, sha256, tempLeftovers } from './transfer-helpers.js';

const CHUNK_MB = 5;
const SIZES: Array<[string, number]> = [
  ['0 B', 0],
  ['1 B', 1],
  ['5 MiB - 1', 5 * MiB - 1],
  ['5 MiB', 5 * MiB],
  ['5 MiB + 1', 5 * MiB + 1],
  ['~23 MiB', 23 * MiB + 12_345],
];

let c: S3Client;
let dir: string;

beforeAll(async () => {
  c = await freshBucket('transfer-rt');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-transfer-'));
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe.each(SIZES)('round trip of %s', (label, size) => {
  const data = payload(size, size + 1);
  const parts = Math.max(1, Math.ceil(size / (CHUNK_MB * MiB)));
  const multipart = size > CHUNK_MB * MiB;

  it('from a file: uploaded, manifest right, downloaded byte-identical', async () => {
    const key = `file/${label.replace(/\W+/g, '_')}.bin`;
    const src = join(dir, `src-${size}`);
    await writeFile(src, data);
    const up = await uploadObject(c, key, { path: src }, { manifestSigner: null, chunkSizeMB: CHUNK_MB, concurrency: 3, manifestMeta: { vmid: '100' }, wholeSha256: true });
    expect(up).toMatchObject({ size, multipart, partCount: parts });

    // what the server holds, read back without our download path
    const { body } = await c.getObject(key);
    expect(sha256(await readAll(body))).toBe(sha256(data));

    const m = await readManifest(c, key);
    expect(m).not.toBeNull();
    expect(m!).toMatchObject({ format: 'pve-s3-manifest', version: 2, size, multipart, partSize: CHUNK_MB * MiB, etag: up.etag, meta: { vmid: '100' } });
    expect(m!.sha256).toBe(sha256(data));
    expect(m!.crc64).toBe(refCrc64Hex(data));
    expect(m!.parts.length).toBe(parts);
    m!.parts.forEach((p, i) => {
      const slice = data.subarray(i * CHUNK_MB * MiB, Math.min(size, (i + 1) * CHUNK_MB * MiB));
      expect(p).toEqual({ n: i + 1, size: slice.length, sha256: sha256(slice), crc64: refCrc64Hex(slice) });
    });
    expect(m!.compositeSha256).toMatch(new RegExp(`^[0-9a-f]{64}-${parts}$`));
    if (multipart) expect(up.etag).toMatch(new RegExp(`-${parts}"?$`));

    const dest = join(dir, `dl-${size}`);
    const down = await downloadObject(c, key, { path: dest }, { concurrency: 3 });
    expect(down.verifiedBy).toBe('manifest');
    expect(down.checks).toEqual(['crc64nvme']);
    expect((await readFile(dest)).equals(data)).toBe(true);
    expect(await tempLeftovers(dir)).toEqual([]);
    const deep = await downloadObject(c, key, { path: dest }, { concurrency: 3, force: true, verify: 'sha256' });
    expect(deep.checks).toEqual(['crc64nvme', 'sha256']);
    expect((await readFile(dest)).equals(data)).toBe(true);

    const out = collector();
    await downloadObject(c, key, { stream: out.stream }, { concurrency: 2 });
    expect(out.data().equals(data)).toBe(true);

    expect(await verifyObject(c, key)).toBe('good');
  });

  it('from a stream of unknown length in odd-sized chunks', async () => {
    const key = `stream/${label.replace(/\W+/g, '_')}.bin`;
    const up = await uploadObject(c, key, { stream: oddStream(data) }, { manifestSigner: null, chunkSizeMB: CHUNK_MB, concurrency: 2 });
    // a stream that ends within its first part goes up as a single PUT
    expect(up).toMatchObject({ size, multipart: size > CHUNK_MB * MiB, partCount: parts });
    const out = collector();
    await downloadObject(c, key, { stream: out.stream }, { concurrency: 3 });
    expect(out.data().equals(data)).toBe(true);
    const m = await readManifest(c, key);
    expect(m!.size).toBe(size);
    expect(m!.parts.map((p) => p.size).reduce((a, b) => a + b, 0)).toBe(size);
    // streamed parts get their CRCs in the same pass as their SHA-256
    expect(m!.crc64).toBe(refCrc64Hex(data));
    expect(m!.parts.map((p) => p.crc64)).toEqual(m!.parts.map((p, i) => refCrc64Hex(data.subarray(i * CHUNK_MB * MiB, i * CHUNK_MB * MiB + p.size))));
    // the whole-object digest comes free with a single PUT; for multipart it is opt-in
    expect(m!.sha256).toBe(multipart ? null : sha256(data));
  });
});

describe('upload shape', () => {
  it('keeps at most `concurrency` parts in flight, reusing concurrency + 1 part buffers', async () => {
    const data = payload(41 * MiB, 3);
    const src = join(dir, 'conc');
    await writeFile(src, data);
    for (const concurrency of [1, 3]) {
      const w = countingUploads(c);
      const up = await uploadObject(w.client, `conc/${concurrency}`, { path: src }, { manifestSigner: null, chunkSizeMB: CHUNK_MB, concurrency });
      expect(up.partCount).toBe(9);
      expect(w.calls()).toBe(9);
      expect(w.maxInFlight()).toBe(concurrency);
      // 9 parts went through at most concurrency + 1 buffers: memory does not grow with the size
      expect(w.distinctBuffers()).toBeLessThanOrEqual(concurrency + 1);
      // parts hashed ahead four at a time (hash-ahead.ts) get their CRCs there too
      expect(up.manifest.parts.map((p) => p.crc64)).toEqual(up.manifest.parts.map((p, i) => refCrc64Hex(data.subarray(i * CHUNK_MB * MiB, i * CHUNK_MB * MiB + p.size))));
      expect(up.manifest.crc64).toBe(refCrc64Hex(data));
    }
  });

  it('writes the manifest sidecar next to the object, and progress reaches the total', async () => {
    const data = payload(11 * MiB, 4);
    const events: Array<{ bytes: number; parts: number }> = [];
    const up = await uploadObject(c, 'progress/obj', { stream: oddStream(data) }, {
      manifestSigner: null,
      chunkSizeMB: CHUNK_MB,
      concurrency: 2,
      onProgress: (p) => events.push(p),
    });
    expect(up.manifestKey).toBe(manifestKey('progress/obj'));
    const head = await c.headObject(manifestKey('progress/obj'));
    expect(head.size).toBeGreaterThan(100);
    expect(events.at(-1)).toMatchObject({ bytes: 11 * MiB, parts: 3 });
  });
});

describe('encryption', () => {
  it('SSE-C multipart: parts and manifest carry the key; download and verify need it', async () => {
    const sse = { type: 'SSE-C' as const, key: randomBytes(32) };
    const data = payload(12 * MiB + 1, 21);
    const up = await uploadObject(c, 'sse/c', { stream: oddStream(data) }, { manifestSigner: null, chunkSizeMB: CHUNK_MB, concurrency: 2, put: { sse } });
    expect(up.partCount).toBe(3);
    const out = collector();
    const r = await downloadObject(c, 'sse/c', { stream: out.stream }, { concurrency: 3, sse });
    expect(r.verifiedBy).toBe('manifest');
    expect(out.data().equals(data)).toBe(true);
    expect(await verifyObject(c, 'sse/c', { sse })).toBe('good');
    await expect(downloadObject(c, 'sse/c', { path: join(dir, 'ssec-nokey') }, { concurrency: 2 })).rejects.toBeTruthy();
    expect(await tempLeftovers(dir)).toEqual([]);
  });

  it('SSE-KMS single PUT: manifest verifies (the ETag is no MD5 here)', async () => {
    const data = payload(MiB + 3, 22);
    await uploadObject(c, 'sse/kms', { stream: oddStream(data) }, { manifestSigner: null, chunkSizeMB: CHUNK_MB, concurrency: 2, put: { sse: { type: 'aws:kms', keyId: 'testkey-1' } } });
    const dest = join(dir, 'kms.bin');
    const r = await downloadObject(c, 'sse/kms', { path: dest }, { concurrency: 2 });
    expect(r.verifiedBy).toBe('manifest');
    expect((await readFile(dest)).equals(data)).toBe(true);
  });
});

describe('objects other tools uploaded (no manifest)', () => {
  it('a single PUT downloads and is verified by its MD5 ETag; verify says missing-manifest', async () => {
    const data = payload(3 * MiB + 5, 9);
    await c.putObject('plain/single', data);
    const dest = join(dir, 'plain-single');
    const r = await downloadObject(c, 'plain/single', { path: dest }, { concurrency: 3 });
    expect(r.verifiedBy).toBe('md5');
    expect((await readFile(dest)).equals(data)).toBe(true);
    expect(await verifyObject(c, 'plain/single')).toBe('missing-manifest');
  });

  it('a multipart object downloads, verified by size', async () => {
    const data = payload(12 * MiB, 10);
    const id = await c.createMultipartUpload('plain/multi');
    const p1 = await c.uploadPart('plain/multi', id, 1, data.subarray(0, 6 * MiB), sha256(data.subarray(0, 6 * MiB)));
    const p2 = await c.uploadPart('plain/multi', id, 2, data.subarray(6 * MiB), sha256(data.subarray(6 * MiB)));
    await c.completeMultipartUpload('plain/multi', id, [
      { partNumber: 1, etag: p1.etag },
      { partNumber: 2, etag: p2.etag },
    ]);
    const out = collector();
    const r = await downloadObject(c, 'plain/multi', { stream: out.stream }, { concurrency: 3 });
    expect(r.verifiedBy).toBe('size');
    expect(out.data().equals(data)).toBe(true);
  });
});
