import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { partsFromETag } from '../../host/src/s3/xml.js';
import type { Logger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testClient } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const md5 = (b: Uint8Array) => createHash('md5').update(b).digest();

let c: S3Client;

/** A debug logger that records the operation of every request sent. */
function requestLogger(ops: string[]): Logger {
  const none = () => {};
  return {
    debugEnabled: true,
    debug: (m, f) => {
      if (m === 's3 request') ops.push(String(f?.operation));
    },
    info: none,
    warn: none,
    error: none,
  };
}
beforeAll(async () => {
  c = await freshBucket('multipart');
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
});

describe('multipart upload by hand', () => {
  it('two parts (5 MiB + 1 KiB): ListParts, Complete, byte-identical GET, S3 multipart ETag', async () => {
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(1024);
    const key = 'mp/two parts+ü.bin';
    const id = await c.createMultipartUpload(key, { metadata: { vmid: '101' }, contentType: 'application/octet-stream' });
    expect(id).toMatch(/\S/);
    // parts may arrive in any order
    const e2 = await c.uploadPart(key, id, 2, p2, sha256(p2));
    const e1 = await c.uploadPart(key, id, 1, p1, sha256(p1), { contentMd5: true });
    expect(e1.etag).toBe(`"${md5(p1).toString('hex')}"`);
    const listed = await c.listParts(key, id);
    expect(listed.map((p) => [p.partNumber, p.size, p.etag])).toEqual([
      [1, 5 * MiB, e1.etag],
      [2, 1024, e2.etag],
    ]);
    const ups = await c.listMultipartUploads({ prefix: 'mp/' });
    expect(ups.map((u) => [u.key, u.uploadId])).toContainEqual([key, id]);

    const done = await c.completeMultipartUpload(key, id, [
      { partNumber: 2, etag: e2.etag },
      { partNumber: 1, etag: e1.etag },
    ]);
    // md5 of the concatenated binary part MD5s, "-2"
    const expected = createHash('md5').update(Buffer.concat([md5(p1), md5(p2)])).digest('hex');
    expect(done.etag).toBe(`"${expected}-2"`);
    expect(partsFromETag(done.etag)).toBe(2);

    const h = await c.headObject(key);
    expect(h.size).toBe(5 * MiB + 1024);
    expect(h.metadata).toEqual({ vmid: '101' });
    const back = await readAll((await c.getObject(key)).body);
    expect(back.equals(Buffer.concat([p1, p2]))).toBe(true);
    expect((await c.listMultipartUploads({ prefix: 'mp/' })).map((u) => u.uploadId)).not.toContain(id);
  });

  it('a non-final part under 5 MiB: the server refuses Complete with EntityTooSmall and we say so', async () => {
    const key = 'mp/too-small.bin';
    const id = await c.createMultipartUpload(key);
    const a = randomBytes(1024);
    const b = randomBytes(1024);
    const pa = await c.uploadPart(key, id, 1, a, sha256(a));
    const pb = await c.uploadPart(key, id, 2, b, sha256(b));
    const e = (await c
      .completeMultipartUpload(key, id, [
        { partNumber: 1, etag: pa.etag },
        { partNumber: 2, etag: pb.etag },
      ])
      .catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('EntityTooSmall');
    expect(e.status).toBe(400);
    expect(e.retryable).toBe(false);
    expect(e.message).toContain('at least 5 MiB');
    expect(e.message).toContain(key);
    await c.abortMultipartUpload(key, id);
  });

  it('abort leaves no entry in ListMultipartUploads and a second abort is harmless', async () => {
    const key = 'mp/aborted.bin';
    const id = await c.createMultipartUpload(key);
    const part = randomBytes(5 * MiB);
    await c.uploadPart(key, id, 1, part, sha256(part));
    expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId)).toEqual([id]);
    await c.abortMultipartUpload(key, id);
    expect(await c.listMultipartUploads({ prefix: key })).toEqual([]);
    await expect(c.abortMultipartUpload(key, id)).resolves.toBeUndefined();
    await expect(c.headObject(key)).rejects.toMatchObject({ code: 'NoSuchKey' });
    // the parts are gone too (RadosGW answers NoSuchKey, AWS NoSuchUpload)
    const e = (await c.listParts(key, id).catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(['NoSuchUpload', 'NoSuchKey']).toContain(e.code);
    expect(e.status).toBe(404);
  });

  it('a part whose signed hash does not match its bytes is refused', async () => {
    const key = 'mp/badhash.bin';
    const id = await c.createMultipartUpload(key);
    const part = randomBytes(1000);
    await expect(c.uploadPart(key, id, 1, part, sha256(randomBytes(1000)))).rejects.toMatchObject({ code: 'XAmzContentSHA256Mismatch' });
    await c.abortMultipartUpload(key, id);
  });

  it('part numbers outside 1..10000 are refused before any request', async () => {
    await expect(c.uploadPart('k', 'id', 0, new Uint8Array(1), sha256(new Uint8Array(1)))).rejects.toThrow(/invalid partNumber '0': must be an integer 1..10000/);
  });

  it('ListMultipartUploads pages through many uploads (5 per page), keys with spaces and unicode included', async () => {
    const made: string[] = [];
    for (let i = 0; i < 12; i++) {
      // two uploads of the same key too: paging must use the upload-id marker as well
      const key = `mpl/${i % 6} ü x+y`;
      made.push(`${key}|${await c.createMultipartUpload(key)}`);
    }
    const ops: string[] = [];
    const counting = testClient({ bucket: c.bucket }, { logger: requestLogger(ops) });
    const all = await counting.listMultipartUploads({ prefix: 'mpl/', maxUploads: 5 });
    expect(all.map((u) => `${u.key}|${u.uploadId}`).sort()).toEqual([...made].sort());
    expect(ops.filter((o) => o === 'ListMultipartUploads').length).toBe(3);
    for (const u of all) await c.abortMultipartUpload(u.key, u.uploadId);
    expect(await c.listMultipartUploads({ prefix: 'mpl/' })).toEqual([]);
  });

  it('ListParts pages through many parts (4 per page)', async () => {
    const key = 'mp/many-parts.bin';
    const id = await c.createMultipartUpload(key);
    const etags: string[] = [];
    for (let n = 1; n <= 10; n++) {
      const b = randomBytes(100 + n);
      etags.push((await c.uploadPart(key, id, n, b, sha256(b))).etag);
    }
    const ops: string[] = [];
    const parts = await testClient({ bucket: c.bucket }, { logger: requestLogger(ops) }).listParts(key, id, { maxParts: 4 });
    expect(ops.filter((o) => o === 'ListParts').length).toBe(3);
    expect(parts.map((p) => [p.partNumber, p.etag, p.size])).toEqual(etags.map((e, i) => [i + 1, e, 101 + i]));
    await c.abortMultipartUpload(key, id);
  });

  it('SSE-KMS multipart: the key id is given at create, parts need nothing', async () => {
    const key = 'mp/kms.bin';
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(3);
    const id = await c.createMultipartUpload(key, { sse: { type: 'aws:kms', keyId: 'testkey-1' } });
    const e1 = await c.uploadPart(key, id, 1, p1, sha256(p1));
    const e2 = await c.uploadPart(key, id, 2, p2, sha256(p2));
    await c.completeMultipartUpload(key, id, [
      { partNumber: 1, etag: e1.etag },
      { partNumber: 2, etag: e2.etag },
    ]);
    const h = await c.headObject(key);
    expect([h.sse?.type, h.sse?.keyId]).toEqual(['aws:kms', 'testkey-1']);
    expect((await readAll((await c.getObject(key)).body)).equals(Buffer.concat([p1, p2]))).toBe(true);
  });

  it('SSE-C multipart: parts carry the key, the object reads back with it', async () => {
    const sse = { type: 'SSE-C' as const, key: randomBytes(32) };
    const key = 'mp/ssec.bin';
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(100);
    const id = await c.createMultipartUpload(key, { sse });
    const e1 = await c.uploadPart(key, id, 1, p1, sha256(p1), { sse });
    const e2 = await c.uploadPart(key, id, 2, p2, sha256(p2), { sse });
    await c.completeMultipartUpload(key, id, [
      { partNumber: 1, etag: e1.etag },
      { partNumber: 2, etag: e2.etag },
    ]);
    const back = await readAll((await c.getObject(key, { sse })).body);
    expect(back.equals(Buffer.concat([p1, p2]))).toBe(true);
  });
});

describe('with checksumAlgorithm configured', () => {
  it.each(['CRC32C', 'CRC64NVME'] as const)('%s: PUT and a multipart upload are accepted and read back identical', async (alg) => {
    const cc = testClient({ bucket: c.bucket, checksumAlgorithm: alg });
    const small = randomBytes(1000);
    await cc.putObject(`ck/${alg}.bin`, small);
    expect((await readAll((await c.getObject(`ck/${alg}.bin`)).body)).equals(small)).toBe(true);
    const key = `ck/${alg}-mp.bin`;
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(77);
    const id = await cc.createMultipartUpload(key);
    const e1 = await cc.uploadPart(key, id, 1, p1, sha256(p1));
    const e2 = await cc.uploadPart(key, id, 2, p2, sha256(p2));
    expect(e1.checksum).toMatch(/^[A-Za-z0-9+/]+=*$/);
    await cc.completeMultipartUpload(key, id, [
      { partNumber: 1, etag: e1.etag, checksum: e1.checksum },
      { partNumber: 2, etag: e2.etag, checksum: e2.checksum },
    ]);
    expect((await readAll((await c.getObject(key)).body)).equals(Buffer.concat([p1, p2]))).toBe(true);
  });
});
