/**
 * ListObjects V1 is chosen automatically, without configuration, when a gateway refuses V2
 * (501 NotImplemented) — and only then: any other error keeps V2. MockAgent stands in for such a
 * gateway (RadosGW implements V2; the forced-V1 path runs against it in s3-list.test.ts).
 */
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';
import { isRetryableStatus } from '../../host/src/s3/errors.js';

const ORIGIN = 'http://127.0.0.1:7480';

let mock: MockAgent;
beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
});
afterEach(async () => {
  await mock.close();
});

const client = () =>
  new S3Client(
    {
      endpoint: ORIGIN,
      region: 'us-east-1',
      bucket: 'bkt',
      credentials: { accessKeyId: 'AKUNIT', secretAccessKey: 'unit-secret-unit-secret-unit-secret-0000' },
      connectTimeoutMs: 1000,
      requestTimeoutMs: 1000,
    },
    { dispatcher: mock, retry: { baseDelayMs: 1, maxDelayMs: 2 } },
  );

const v1Page = (keys: string[], truncated: boolean) =>
  `<ListBucketResult><Marker></Marker><IsTruncated>${truncated}</IsTruncated>${keys.map((k) => `<Contents><Key>${k}</Key><Size>1</Size></Contents>`).join('')}</ListBucketResult>`;
const notImplemented = '<Error><Code>NotImplemented</Code><Message>list-type=2</Message></Error>';

describe('ListObjects V1 fallback without configuration', () => {
  it('a 501 NotImplemented to list-type=2 switches to V1 at once, for this and every later listing', async () => {
    const paths: string[] = [];
    mock
      .get(ORIGIN)
      .intercept({ path: /^\/bkt\?/, method: 'GET' })
      .reply((req) => {
        paths.push(req.path);
        const q = new URL('http://x' + req.path).searchParams;
        if (q.get('list-type') === '2') return { statusCode: 501, data: notImplemented };
        const marker = q.get('marker');
        return { statusCode: 200, data: marker === null ? v1Page(['a', 'b'], true) : v1Page(['c'], false) };
      })
      .persist();
    const c = client();
    const keys: string[] = [];
    for await (const o of c.listAll({ prefix: 'p/' })) keys.push(o.key);
    expect(keys).toEqual(['a', 'b', 'c']);
    // one V2 attempt: a 501 says "never", so it is not retried like a 500
    expect(paths.filter((p) => p.includes('list-type=2'))).toHaveLength(1);
    expect(paths.at(-1)).toContain('marker=b');
    expect(paths.slice(1).every((p) => p.includes('prefix=p%2F'))).toBe(true);
    paths.length = 0;
    await c.listObjects({ prefix: 'q/' });
    expect(paths).toHaveLength(1);
    expect(paths[0]).not.toContain('list-type');
  });

  it('any other refusal (400 InvalidArgument) is the error and keeps V2', async () => {
    const paths: string[] = [];
    mock
      .get(ORIGIN)
      .intercept({ path: /^\/bkt\?/, method: 'GET' })
      .reply((req) => {
        paths.push(req.path);
        return { statusCode: 400, data: '<Error><Code>InvalidArgument</Code><Message>max-keys</Message></Error>' };
      })
      .persist();
    const c = client();
    await expect(c.listObjects({ maxKeys: 5 })).rejects.toMatchObject({ code: 'InvalidArgument', status: 400 });
    await expect(c.listObjects()).rejects.toMatchObject({ code: 'InvalidArgument' });
    expect(paths).toHaveLength(2);
    expect(paths.every((p) => p.includes('list-type=2'))).toBe(true);
  });

  it('501 is permanent; 500, 502, 503 and 504 stay retryable', () => {
    expect(isRetryableStatus(501, 'NotImplemented')).toBe(false);
    for (const s of [500, 502, 503, 504]) expect(isRetryableStatus(s, 'ServerError')).toBe(true);
  });
});
