// Issue 10 §14: PutBucketLifecycle replaces the bucket's whole configuration, and S3 offers no
// conditional write for it (GetBucketLifecycleConfiguration has no ETag to send in If-Match).
// lifecycleApply reads, merges and writes; a rule another tool adds between our read and our
// write must not be lost: the configuration is read again just before the write and the merge
// redone when it changed. The concurrent writer is simulated by a client wrapper around the real
// RadosGW client that adds a foreign rule right after our first read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import type { LifecycleRule } from '../../host/src/s3/types.js';
import { lifecycleApply } from '../../host/src/store/lifecycle.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';

let c: S3Client;
const rule = (id: string): LifecycleRule => ({ id, status: 'Enabled', filter: { prefix: `${id}/` }, expiration: { days: 30 } });

beforeAll(async () => {
  c = await freshBucket('sec-lc-race');
});
afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
});

/** The real client, except that `afterRead(n)` runs after its n-th lifecycle read. */
function racing(afterRead: (n: number) => Promise<void>): StoreContext['client'] {
  let reads = 0;
  return new Proxy(c, {
    get(target, p, recv) {
      if (p === 'getBucketLifecycle') {
        return async (...a: unknown[]) => {
          const r = await target.getBucketLifecycle(...(a as []));
          await afterRead(++reads);
          return r;
        };
      }
      const v = Reflect.get(target, p, recv);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as StoreContext['client'];
}

describe('lifecycle read-modify-write', () => {
  it('a rule added by someone else between our read and our write is kept', async () => {
    await c.putBucketLifecycle([rule('first')]);
    const ctx: StoreContext = {
      client: racing(async (n) => {
        if (n === 1) await c.putBucketLifecycle([rule('first'), rule('meanwhile')]);
      }),
      settings: { storageId: 's3t', bucket: c.bucket, prefix: 'pve/', chunkSizeMB: 5, concurrency: 2, lifecycle: { enabled: true, abortIncompleteDays: 3 } },
      logger: nullLogger,
    };
    const r = await lifecycleApply(ctx);
    expect(r.changed).toBe(true);
    const ids = (await c.getBucketLifecycle()).map((x) => x.id);
    expect(ids).toContain('first');
    expect(ids).toContain('meanwhile');
    expect(ids.some((id) => id?.startsWith('pve-s3-'))).toBe(true);
  });

  it('a configuration that keeps changing under us ends in a clear error, not a blind write', async () => {
    await c.putBucketLifecycle([rule('first')]);
    let k = 0;
    const ctx: StoreContext = {
      client: racing(async () => {
        await c.putBucketLifecycle([rule('first'), rule(`busy${k++}`)]);
      }),
      settings: { storageId: 's3t', bucket: c.bucket, prefix: 'pve2/', chunkSizeMB: 5, concurrency: 2, lifecycle: { enabled: true, abortIncompleteDays: 3 } },
      logger: nullLogger,
    };
    await expect(lifecycleApply(ctx)).rejects.toMatchObject({ code: 'LifecycleBusy' });
    const ids = (await c.getBucketLifecycle()).map((x) => x.id);
    expect(ids.some((id) => id?.startsWith('pve-s3-') && id.includes('pve2/'))).toBe(false);
  });
});
