import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import type { LifecycleRule } from '../../host/src/s3/types.js';
import { runRgwAdmin } from '../helpers/rgw.js';
import { closeTestClients, dropBucket, freshBucket, testClient, testSettings } from '../helpers/s3.js';

let c: S3Client;
beforeAll(async () => {
  c = await freshBucket('bucket');
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
});

describe('bucket operations', () => {
  it('HeadBucket of an existing bucket succeeds; of a missing one is NoSuchBucket (exit 3)', async () => {
    await expect(c.headBucket()).resolves.toBeDefined();
    const missing = testClient({ bucket: `missing-${Date.now()}` });
    const e = (await missing.headBucket().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect([e.code, e.status, e.exitCode]).toEqual(['NoSuchBucket', 404, 3]);
    expect(e.message).toBe(`bucket ${missing.bucket} does not exist at ${missing.endpoint}: create it or fix bucket`);
  });

  it('listing a missing bucket: NoSuchBucket with the same advice', async () => {
    const missing = testClient({ bucket: `missing-${Date.now()}` });
    await expect(missing.listObjects()).rejects.toThrow(/does not exist at .*: create it or fix bucket/);
  });

  it('CreateBucket is idempotent for our own bucket', async () => {
    await expect(c.createBucket()).resolves.toBeUndefined();
  });

  it('an invalid bucket name is refused by the server with advice', async () => {
    const bad = testClient({ bucket: 'Bad_Bucket_Name' });
    const e = (await bad.createBucket().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('InvalidBucketName');
    expect(e.message).toContain('3-63 lower-case letters');
  });
});

describe('lifecycle', () => {
  it('no configuration reads as no rules', async () => {
    expect(await c.getBucketLifecycle()).toEqual([]);
  });

  it('rules with prefix filters and AbortIncompleteMultipartUpload round-trip (Content-MD5 accepted)', async () => {
    const rules: LifecycleRule[] = [
      { id: 'pve-s3-expire-dump', status: 'Enabled', filter: { prefix: 'dump/' }, expiration: { days: 30 } },
      { id: 'pve-s3-abort-mpu', status: 'Enabled', filter: { prefix: '' }, abortIncompleteMultipartUpload: { daysAfterInitiation: 2 } },
      { id: 'user-rule', status: 'Disabled', filter: { prefix: 'tmp/' }, expiration: { days: 1 } },
    ];
    await c.putBucketLifecycle(rules);
    const got = await c.getBucketLifecycle();
    const byId = new Map(got.map((r) => [r.id, r]));
    expect([...byId.keys()].sort()).toEqual(rules.map((r) => r.id).sort());
    for (const r of rules) {
      const g = byId.get(r.id)!;
      expect(g.status).toBe(r.status);
      expect(g.filter?.prefix ?? g.legacyPrefix ?? '').toBe(r.filter!.prefix);
      expect(g.expiration).toEqual(r.expiration);
      expect(g.abortIncompleteMultipartUpload).toEqual(r.abortIncompleteMultipartUpload);
    }
    // what we read can be written back unchanged (the store merges on top of it)
    await c.putBucketLifecycle(got);
    expect(await c.getBucketLifecycle()).toEqual(got);
  });

  it('an empty rule list removes the configuration', async () => {
    await c.putBucketLifecycle([]);
    expect(await c.getBucketLifecycle()).toEqual([]);
  });
});

describe('authentication errors', () => {
  const WRONG = 'definitelyNotTheSecret-0123456789abcdefXYZ';

  it('a wrong secret: SignatureDoesNotMatch, exit code 4, names access_key/secret_key, never the secret', async () => {
    const bad = testClient({ bucket: c.bucket, credentials: { ...testSettings().credentials, secretAccessKey: WRONG } });
    const e = (await bad.listObjects().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('SignatureDoesNotMatch');
    expect(e.exitCode).toBe(4);
    expect(e.status).toBe(403);
    expect(e.retryable).toBe(false);
    expect(e.message).toBe(`access key or secret rejected by ${bad.endpoint} (SignatureDoesNotMatch): check access_key/secret_key`);
    const everything = JSON.stringify({ m: e.message, j: e.toJSON(), s: String(e), st: e.stack });
    expect(everything).not.toContain(WRONG);
    expect(everything).not.toContain(testSettings().credentials.secretAccessKey);
  });

  it('a wrong secret on PUT with a body: same error', async () => {
    const bad = testClient({ bucket: c.bucket, credentials: { ...testSettings().credentials, secretAccessKey: WRONG } });
    await expect(bad.putObject('x', new Uint8Array(100))).rejects.toMatchObject({ code: 'SignatureDoesNotMatch', exitCode: 4 });
  });

  it('an unknown access key: InvalidAccessKeyId, exit code 4', async () => {
    const bad = testClient({ bucket: c.bucket, credentials: { accessKeyId: 'NOSUCHKEY000000000000', secretAccessKey: WRONG } });
    const e = (await bad.listObjects().catch((x: unknown) => x)) as S3Error;
    expect([e.code, e.exitCode]).toEqual(['InvalidAccessKeyId', 4]);
    expect(e.message).toContain('check access_key/secret_key');
  });

  it('HEAD with a wrong secret (no body to read): still exit code 4 and the same advice', async () => {
    const bad = testClient({ bucket: c.bucket, credentials: { ...testSettings().credentials, secretAccessKey: WRONG } });
    const e = (await bad.headBucket().catch((x: unknown) => x)) as S3Error;
    expect(e.exitCode).toBe(4);
    expect(e.status).toBe(403);
    expect(e.message).toContain('check access_key/secret_key');
  });

  it("another user's bucket: AccessDenied, exit code 4, names the bucket and what to check", async () => {
    const access = 'PVES3OTHERUSER000001';
    const secret = 'pveS3OtherUserSecret00000000000000000001';
    await runRgwAdmin(['user', 'create', '--uid=pve-s3-other', '--display-name=other', `--access-key=${access}`, `--secret=${secret}`]).catch((e: Error) => {
      if (!/exists/i.test(e.message)) throw e;
    });
    const other = testClient({ bucket: c.bucket, credentials: { accessKeyId: access, secretAccessKey: secret } });
    const e = (await other.listObjects().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect([e.code, e.status, e.exitCode, e.retryable]).toEqual(['AccessDenied', 403, 4, false]);
    expect(e.message).toBe(`access denied by ${other.endpoint} to bucket ${c.bucket} during ListObjectsV2 (AccessDenied): check the key's permissions and bucket policy`);
    expect(e.message).not.toContain(secret);
  });
});
