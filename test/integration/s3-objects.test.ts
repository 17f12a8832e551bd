import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const md5hex = (b: Uint8Array) => createHash('md5').update(b).digest('hex');

let c: S3Client;
beforeAll(async () => {
  c = await freshBucket('objects');
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
});

describe('single PUT round trip is byte-identical', () => {
  it.each([0, 1, 5 * MiB - 1, 5 * MiB, 5 * MiB + 1])('%i bytes', async (size) => {
    const data = randomBytes(size);
    const key = `rt/${size}.bin`;
    const put = await c.putObject(key, data);
    // RadosGW verified our x-amz-content-sha256; its MD5 ETag proves it stored these bytes
    expect(put.etag).toBe(`"${md5hex(data)}"`);
    const head = await c.headObject(key);
    expect(head.size).toBe(size);
    expect(head.etag).toBe(put.etag);
    const got = await c.getObject(key);
    expect(got.info.size).toBe(size);
    const back = await readAll(got.body);
    expect(back.length).toBe(size);
    expect(back.equals(data)).toBe(true);
  });

  it('ranged GET returns exactly the range and the full size', async () => {
    const data = randomBytes(100_000);
    await c.putObject('range.bin', data);
    const got = await c.getObject('range.bin', { range: [1000, 65_535 + 1000] });
    expect(got.info.size).toBe(100_000);
    expect(got.info.contentRange).toEqual({ start: 1000, end: 66_535 });
    expect((await readAll(got.body)).equals(data.subarray(1000, 66_536))).toBe(true);
  });

  it('GET bodies are pulled: a reader that pauses holds back the download (backpressure)', async () => {
    const size = 48 * MiB;
    await c.putObject('backpressure.bin', randomBytes(size));
    const g = await c.getObject('backpressure.bin');
    const it = g.body[Symbol.asyncIterator]();
    let n = ((await it.next()).value as Uint8Array).byteLength;
    const before = process.memoryUsage().arrayBuffers;
    await new Promise((r) => setTimeout(r, 500));
    // without backpressure the 48 MiB would pile up in memory while the reader sleeps
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * MiB);
    for (;;) {
      const x = await it.next();
      if (x.done) break;
      n += x.value.byteLength;
    }
    expect(n).toBe(size);
    await c.deleteObject('backpressure.bin');
  });

  it('Content-MD5 is accepted when asked for', async () => {
    const data = randomBytes(4096);
    const put = await c.putObject('md5.bin', data, { contentMd5: true, contentType: 'application/x-test' });
    expect(put.etag).toBe(`"${md5hex(data)}"`);
    expect((await c.headObject('md5.bin')).contentType).toBe('application/x-test');
  });

  it('a given sha256Hex is what gets signed: a wrong one is refused by the server', async () => {
    const data = randomBytes(1000);
    const wrong = createHash('sha256').update('something else').digest('hex');
    const err = await c.putObject('badsha.bin', data, { sha256Hex: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3Error);
    expect((err as S3Error).code).toBe('XAmzContentSHA256Mismatch');
    await expect(c.headObject('badsha.bin')).rejects.toMatchObject({ code: 'NoSuchKey' });
  });
});

describe('metadata', () => {
  it('round-trips ASCII, Unicode, spaces and look-alike encoded words', async () => {
    const meta = {
      vmid: '100',
      'guest-type': 'qemu',
      note: 'two  spaces and trailing ',
      unicode: 'Grüße, 日本語 ✓',
      tricky: '=?UTF-8?B?not-really?=',
      empty: '',
    };
    await c.putObject('meta.bin', new Uint8Array([1, 2, 3]), { metadata: meta });
    const h = await c.headObject('meta.bin');
    expect(h.metadata).toEqual(meta);
    const g = await c.getObject('meta.bin');
    await readAll(g.body);
    expect(g.info.metadata).toEqual(meta);
  });

  it('upper-case names come back lower-case (as S3 stores them)', async () => {
    await c.putObject('meta2.bin', new Uint8Array(1), { metadata: { BackupTime: '1700000000' } });
    expect((await c.headObject('meta2.bin')).metadata).toEqual({ backuptime: '1700000000' });
  });

  it('a metadata name HTTP cannot carry is refused before any request', async () => {
    await expect(c.putObject('meta3.bin', new Uint8Array(1), { metadata: { 'bad name': 'x' } })).rejects.toThrow(
      /invalid metadata name 'bad name'/,
    );
  });
});

describe('keys that need encoding round-trip', () => {
  const keys = [
    'dir with spaces/file name.txt',
    'plus+sign+and%percent%20.bin',
    'unicode/Grüße/日本語/✓.txt',
    'tilde~/x~y',
    'double//slash',
    'dots/../and/./segments/..',
    "specials !$&'()*,;=:@[]{}^`|.bin",
    'ctl\u0001char',
    'trailing space ',
  ];

  it.each(keys)('%j', async (key) => {
    const data = randomBytes(33);
    await c.putObject(key, data);
    const h = await c.headObject(key);
    expect(h.size).toBe(33);
    expect((await readAll((await c.getObject(key)).body)).equals(data)).toBe(true);
    const listed: string[] = [];
    for await (const o of c.listAll({ prefix: key })) listed.push(o.key);
    expect(listed).toContain(key);
    const copy = await c.copyObject(key, key + '.copy');
    expect(copy.etag).toBe(h.etag);
    expect((await readAll((await c.getObject(key + '.copy')).body)).equals(data)).toBe(true);
    await c.deleteObject(key);
    await c.deleteObject(key + '.copy');
    await expect(c.headObject(key)).rejects.toMatchObject({ code: 'NoSuchKey', exitCode: 3 });
  });
});

describe('copy, delete, errors', () => {
  it('CopyObject copies bytes and, with REPLACE, new metadata', async () => {
    const data = randomBytes(2048);
    await c.putObject('src.bin', data, { metadata: { a: '1' } });
    await c.copyObject('src.bin', 'dst.bin');
    expect((await c.headObject('dst.bin')).metadata).toEqual({ a: '1' });
    await c.copyObject('src.bin', 'dst2.bin', { metadata: { b: 'ü' } });
    const h = await c.headObject('dst2.bin');
    expect(h.metadata).toEqual({ b: 'ü' });
    expect((await readAll((await c.getObject('dst2.bin')).body)).equals(data)).toBe(true);
  });

  it('CopyObject of a missing source is NoSuchKey', async () => {
    await expect(c.copyObject('missing-src', 'x')).rejects.toMatchObject({ code: 'NoSuchKey' });
  });

  it('GET of a missing key: NoSuchKey, exit code 3, message names key and bucket', async () => {
    const e = (await c.getObject('no/such/key').catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('NoSuchKey');
    expect(e.status).toBe(404);
    expect(e.exitCode).toBe(3);
    expect(e.retryable).toBe(false);
    expect(e.message).toContain("'no/such/key'");
    expect(e.message).toContain(c.bucket);
  });

  it('DeleteObject of a missing key succeeds (S3 semantics)', async () => {
    await expect(c.deleteObject('never-existed')).resolves.toBeUndefined();
  });
});

describe('server-side encryption', () => {
  it('SSE-KMS with the test KMS key: stored encrypted, read back identical', async () => {
    const data = randomBytes(100_000);
    await c.putObject('kms.bin', data, { sse: { type: 'aws:kms', keyId: 'testkey-1' } });
    const h = await c.headObject('kms.bin');
    expect(h.sse?.type).toBe('aws:kms');
    expect(h.sse?.keyId).toBe('testkey-1');
    expect((await readAll((await c.getObject('kms.bin')).body)).equals(data)).toBe(true);
  });

  it('SSE-C: readable only with the key', async () => {
    const key = randomBytes(32);
    const sse = { type: 'SSE-C' as const, key };
    const data = randomBytes(70_000);
    await c.putObject('ssec.bin', data, { sse });
    const h = await c.headObject('ssec.bin', { sse });
    expect(h.size).toBe(70_000);
    expect((await readAll((await c.getObject('ssec.bin', { sse })).body)).equals(data)).toBe(true);
    const ranged = await c.getObject('ssec.bin', { sse, range: [10, 19] });
    expect((await readAll(ranged.body)).equals(data.subarray(10, 20))).toBe(true);
    // without the key the server refuses
    await expect(c.getObject('ssec.bin')).rejects.toBeInstanceOf(S3Error);
    // with another key too
    await expect(c.headObject('ssec.bin', { sse: { type: 'SSE-C', key: randomBytes(32) } })).rejects.toBeInstanceOf(S3Error);
  });

  it('SSE-C key of the wrong length is refused before any request', async () => {
    await expect(c.putObject('x', new Uint8Array(1), { sse: { type: 'SSE-C', key: new Uint8Array(16) } })).rejects.toThrow(
      /invalid SSE-C key '16 bytes': must be 32 bytes/,
    );
  });
});

describe('storage class', () => {
  it('STANDARD is accepted and reported by listings', async () => {
    await c.putObject('sc.bin', new Uint8Array(10), { storageClass: 'STANDARD' });
    const page = await c.listObjects({ prefix: 'sc.bin' });
    expect(page.objects.map((o) => [o.key, o.storageClass])).toEqual([['sc.bin', 'STANDARD']]);
  });
});
