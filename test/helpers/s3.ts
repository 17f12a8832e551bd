/**
 * S3 clients for integration tests, against the RadosGW started by the integration project's
 * global setup (test/helpers/rgw.ts gives its endpoint and keys).
 */
import { randomBytes } from 'node:crypto';
import { S3Client, type ClientOptions } from '../../host/src/s3/client.js';
import type { S3Settings } from '../../host/src/s3/settings.js';
import { testS3 } from './rgw.js';

export { testS3 };
export type { TestS3 } from './rgw.js';

/** S3Settings for the test gateway; overrides win (e.g. a wrong secret, another endpoint). */
export function testSettings(overrides: Partial<S3Settings> = {}): S3Settings {
  const t = testS3();
  const base: S3Settings = {
    endpoint: t.endpoint,
    region: t.region,
    bucket: 'pve-s3-test',
    credentials: { accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey },
    forcePathStyle: true,
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 60_000,
  };
  return { ...base, ...overrides };
}

const open: S3Client[] = [];

/** A client for the test gateway. */
export function testClient(overrides: Partial<S3Settings> = {}, o: ClientOptions = {}): S3Client {
  const c = new S3Client(testSettings(overrides), o);
  open.push(c);
  return c;
}

/** Closes every client testClient() made (call from afterAll). */
export async function closeTestClients(): Promise<void> {
  await Promise.all(open.splice(0).map((c) => c.close()));
}

/** A new, uniquely named, empty bucket and a client bound to it. */
export async function freshBucket(prefix = 't', overrides: Partial<S3Settings> = {}, o: ClientOptions = {}): Promise<S3Client> {
  const p = prefix.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 30);
  const name = `${p}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const c = testClient({ ...overrides, bucket: name }, o);
  await c.createBucket();
  return c;
}

/** Deletes every object and upload in the client's bucket, then the bucket. */
export async function dropBucket(c: S3Client): Promise<void> {
  for (const u of await c.listMultipartUploads()) await c.abortMultipartUpload(u.key, u.uploadId);
  const keys: string[] = [];
  for await (const o of c.listAll()) keys.push(o.key);
  if (keys.length) await c.deleteObjects(keys);
  await c.deleteBucket();
}

/** Collects a body stream into one buffer. */
export async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

/** Runs fn over items with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
