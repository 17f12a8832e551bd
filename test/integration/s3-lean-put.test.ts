/**
 * Part and object bodies through the lean HTTP path (lean-http.ts), against the real RadosGW:
 * every UploadPart and PutObject of an upload goes that way (none through undici), the bytes
 * round-trip in 8 MiB parts, a cancel while a part's body is on the wire leaves no upload and no
 * parts, an error answer becomes its S3 code naming the key, and a connection lost before or
 * during a body (or closed while idle) is retried with the same signed bytes.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { LeanHttp } from '../../host/src/s3/lean-http.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testClient, testS3 } from '../helpers/s3.js';
import { MiB, nothingLeft, objectGone, oddStream, payload, wrapClient } from './transfer-helpers.js';

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const fast = { retry: { baseDelayMs: 5, maxDelayMs: 20 } };

let c: S3Client;
let proxy: FaultProxy;
let viaProxy: S3Client;

beforeAll(async () => {
  c = await freshBucket('lean-put');
  proxy = await startFaultProxy(testS3().endpoint);
  viaProxy = testClient({ endpoint: proxy.url, bucket: c.bucket }, fast);
});
afterAll(async () => {
  if (proxy) await proxy.close();
  if (c) await dropBucket(c).catch(() => undefined);
  await closeTestClients();
});


describe('uploads through the lean path', () => {
  it('a stream in 8 MiB parts: every part a lean PUT, the object byte for byte', async () => {
    const key = 'lean/parts-8m.bin';
    const data = payload(3 * 8 * MiB + 12_345, 11);
    const send = vi.spyOn(LeanHttp.prototype, 'send');
    try {
      const r = await uploadObject(c, key, { stream: oddStream(data) }, { manifestSigner: null, chunkSizeMB: 8, concurrency: 2 });
      expect(r.partCount).toBe(4);
      const parts = send.mock.calls.filter(([q]) => q.method === 'PUT' && q.path.includes('partNumber='));
      expect(parts.map(([q]) => q.body!.byteLength).sort((a, b) => a - b)).toEqual([12_345, 8 * MiB, 8 * MiB, 8 * MiB]);
    } finally {
      send.mockRestore();
    }
    expect((await readAll((await c.getObject(key)).body)).equals(data)).toBe(true);
  });

  it('a cancel while a part is on the wire: Aborted, no object, no upload, no parts', async () => {
    const key = 'lean/cancel-mid-part.bin';
    const data = payload(4 * 8 * MiB, 12);
    const ac = new AbortController();
    let uploadId: string | undefined;
    const client = wrapClient(c, {
      createMultipartUpload: async (k, o) => (uploadId = await c.createMultipartUpload(k, o)),
      // part 2 is cancelled after its first MiB went to the socket
      uploadPart: (k, id, n, body, sha, o) => {
        let sent = 0;
        const pace = async (bytes: number): Promise<void> => {
          sent += bytes;
          if (n === 2 && sent > MiB) ac.abort();
        };
        return c.uploadPart(k, id, n, body, sha, { ...o, pace });
      },
    });
    await expect(uploadObject(client, key, { stream: oddStream(data) }, { manifestSigner: null, chunkSizeMB: 8, concurrency: 2, signal: ac.signal })).rejects.toMatchObject({ code: 'Aborted' });
    expect(uploadId).toBeDefined();
    await nothingLeft(c, key);
    // RadosGW says NoSuchKey for the parts of an upload that is gone, AWS NoSuchUpload
    const gone = (await c.listParts(key, uploadId!).catch((x: unknown) => x)) as S3Error;
    expect(gone.code).toMatch(/^NoSuch(Upload|Key)$/);
  });

  it('an error answer is its S3 code, for its key: NoSuchUpload for a part (named in the message), SignatureDoesNotMatch for an object', async () => {
    const body = payload(MiB, 13);
    const e1 = (await c.uploadPart('lean/no-upload.bin', 'no-such-upload-id', 1, body, sha256(body)).catch((x: unknown) => x)) as S3Error;
    expect(e1).toBeInstanceOf(S3Error);
    expect(e1).toMatchObject({ code: 'NoSuchUpload', status: 404, retryable: false });
    expect(e1.message).toContain('lean/no-upload.bin');
    const { accessKeyId } = testS3();
    const wrongKey = testClient({ bucket: c.bucket, credentials: { accessKeyId, secretAccessKey: 'not-the-secret-key-0000000000000000000' } });
    const e2 = (await wrongKey.putObject('lean/bad-signature.bin', body).catch((x: unknown) => x)) as S3Error;
    expect(e2).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403, retryable: false });
    expect(e2.key).toBe('lean/bad-signature.bin');
    expect(await objectGone(c, 'lean/bad-signature.bin')).toBe(true);
  });

  it('a connection reset during an 8 MiB part, and one closed while idle: sent again, the part stored once, intact', async () => {
    const key = 'lean/reset-part.bin';
    const id = await viaProxy.createMultipartUpload(key);
    const p1 = payload(8 * MiB, 14);
    const p2 = payload(8 * MiB, 15);
    proxy.clearLog();
    proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=1&' }, fault: { kind: 'reset' } }]);
    const e1 = await viaProxy.uploadPart(key, id, 1, p1, sha256(p1));
    expect(proxy.hits()).toEqual([1]);
    // every connection the client keeps is closed by the other end while idle
    await proxy.dead('reset');
    await proxy.dead(false);
    const e2 = await viaProxy.uploadPart(key, id, 2, p2, sha256(p2));
    const puts = proxy.requests.filter((r) => r.method === 'PUT').map((r) => `${r.target.includes('partNumber=1&') ? 1 : 2} ${r.fault ?? 'ok'} ${r.status ?? '-'}`);
    expect(puts).toEqual(['1 reset -', '1 ok 200', '2 ok 200']);
    await viaProxy.completeMultipartUpload(key, id, [
      { partNumber: 1, etag: e1.etag },
      { partNumber: 2, etag: e2.etag },
    ]);
    expect((await readAll((await c.getObject(key)).body)).equals(Buffer.concat([p1, p2]))).toBe(true);
  });
});
