import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { closeTestClients, freshBucket } from '../helpers/s3.js';

let c: S3Client | undefined;
const versions: { key: string; versionId: string }[] = [];

afterAll(async () => {
  if (c) {
    // GOVERNANCE retention can be bypassed by the owner: remove every version, then the bucket
    for (const v of versions) {
      await c.transport.request({
        operation: 'DeleteObjectVersion',
        method: 'DELETE',
        key: v.key,
        query: [['versionId', v.versionId]],
        headers: { 'x-amz-bypass-governance-retention': 'true' },
        idempotent: true,
      });
    }
    await c.deleteBucket();
  }
  await closeTestClients();
});

describe('Object Lock retention headers', () => {
  it('PutObject with GOVERNANCE retention: stored, reported by HEAD, and the version cannot be deleted', async () => {
    c = await freshBucket('lock', {}, {});
    // freshBucket made a plain bucket; Object Lock must be enabled at creation
    await c.deleteBucket();
    await c.createBucket({ objectLock: true });
    const until = new Date(Date.now() + 86_400_000);
    until.setMilliseconds(0);
    const put = await c.putObject('locked.bin', randomBytes(1000), { objectLock: { mode: 'GOVERNANCE', retainUntil: until } });
    expect(put.versionId).toBeTruthy();
    versions.push({ key: 'locked.bin', versionId: put.versionId! });
    const h = await c.headObject('locked.bin');
    expect(h.objectLock?.mode).toBe('GOVERNANCE');
    expect(h.objectLock?.retainUntil?.getTime()).toBe(until.getTime());
    const e = (await c.transport
      .request({ operation: 'DeleteObjectVersion', method: 'DELETE', key: 'locked.bin', query: [['versionId', put.versionId!]], idempotent: true })
      .catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.status).toBe(403);
  });
});
