// What OpenStack Swift's s3api (Debian 12: Swift 2.30) does differently from S3, as
// docs/PROVIDERS.md states it under "observed" — each checked against the real server, and each
// with what pve-s3 does about it (host/src/s3/providers.ts, row `swift`).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../../host/src/s3/client.js';
import { lifecycleApply, lifecycleShow } from '../../../host/src/store/lifecycle.js';
import type { StoreContext } from '../../../host/src/store/types.js';
import { nullLogger } from '../../../host/src/util/log.js';
import { backends, backendSettings } from '../../helpers/backends.js';
import { closeTestClients, dropBucket, freshBucket } from '../../helpers/s3.js';

const swift = backends().find((b) => b.name === 'swift')!;
let c: S3Client;

beforeAll(async () => {
  c = await freshBucket('swift-quirks', backendSettings(swift));
});

afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
});

/** A PUT with extra headers, through the real client's signing and error mapping. */
const put = (key: string, headers: Record<string, string>, body = Buffer.from('hello\n')) =>
  c.transport.request({ operation: 'PutObject', method: 'PUT', key, headers, body, idempotent: true });

describe('Swift s3api, observed', () => {

  it('tagging: GET answers an empty set, PUT and x-amz-tagging are NotImplemented (so archives are never tagged there)', async () => {
    await c.putObject('tg/a.txt', Buffer.from('a'));
    expect(await c.getObjectTagging('tg/a.txt')).toEqual({});
    await expect(c.putObjectTagging('tg/a.txt', { 'pve-s3': 'archive' })).rejects.toMatchObject({ code: 'NotImplemented', status: 501 });
    await expect(put('tg/b.txt', { 'x-amz-tagging': 'pve-s3=archive' })).rejects.toMatchObject({ code: 'NotImplemented', status: 501 });
    expect(c.provider.tagging).toBe(false);
  });

  it('lifecycle: GET is answered with a bucket listing and PUT with MalformedXML; the store says Swift has none', async () => {
    await expect(c.getBucketLifecycle()).rejects.toMatchObject({ code: 'InvalidResponse', message: expect.stringContaining('got <ListBucketResult>') });
    await expect(c.putBucketLifecycle([{ id: 'x', status: 'Enabled', filter: { prefix: 'a/' }, expiration: { days: 1 } }])).rejects.toMatchObject({ code: 'MalformedXML' });
    const ctx: StoreContext = {
      client: c,
      logger: nullLogger,
      settings: { storageId: 'sw', bucket: c.bucket, prefix: '', chunkSizeMB: 5, concurrency: 2, provider: { id: 'swift', detected: false }, lifecycle: { enabled: true, abortIncompleteDays: 7 } },
    };
    await expect(lifecycleShow(ctx)).rejects.toMatchObject({ code: 'NotSupported', message: expect.stringContaining('OpenStack Swift (s3api) (provider swift) has no bucket lifecycle') });
    await expect(lifecycleApply(ctx)).rejects.toMatchObject({ code: 'NotSupported' });
  });

  it('storage classes: STANDARD only', async () => {
    expect((await put('sc/std.txt', { 'x-amz-storage-class': 'STANDARD' })).status).toBe(200);
    await expect(put('sc/ia.txt', { 'x-amz-storage-class': 'STANDARD_IA' })).rejects.toMatchObject({ code: 'InvalidStorageClass', status: 400 });
  });

  it('conditional PUT (If-None-Match) is NotImplemented', async () => {
    await expect(put('cond.txt', { 'if-none-match': '*' })).rejects.toMatchObject({ code: 'NotImplemented', status: 501 });
  });

  it('at most 1,000 parts per upload (max_upload_part_num), as the provider row says', async () => {
    const key = 'mp/limit.bin';
    const id = await c.createMultipartUpload(key);
    const one = randomBytes(1);
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(one).digest('hex');
    await expect(c.uploadPart(key, id, 1000, one, sha)).resolves.toMatchObject({ etag: expect.any(String) });
    await expect(c.uploadPart(key, id, 1001, one, sha)).rejects.toMatchObject({ code: 'InvalidArgument', status: 400 });
    await c.abortMultipartUpload(key, id);
    expect(c.provider.maxParts).toBe(1000);
  });

  it('DeleteObjects needs Content-MD5, which the client always sends', async () => {
    await c.putObject('del/a', Buffer.from('a'));
    await c.putObject('del/b', Buffer.from('b'));
    expect(await c.deleteObjects(['del/a', 'del/b'])).toEqual({ deleted: ['del/a', 'del/b'], errors: [] });
    const xml = '<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet><Object><Key>del/x</Key></Object></Delete>';
    await expect(
      c.transport.request({ operation: 'DeleteObjects', method: 'POST', query: [['delete', '']], body: Buffer.from(xml), headers: { 'content-type': 'application/xml' }, idempotent: true }),
    ).rejects.toMatchObject({ code: 'InvalidRequest', message: expect.stringContaining('Content-MD5') });
  });
});
