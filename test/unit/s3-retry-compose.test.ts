/**
 * The client's retries sit above the HTTP dispatcher, so undici interceptors composed onto an
 * injected dispatcher (a proxy, metrics, a test double) see every attempt, each signed afresh —
 * an interceptor that retried by itself would replay a stale signature, which is why retrying is
 * not one (RequestTimeTooSkewed must re-sign with the corrected clock).
 */
import { MockAgent, type Dispatcher } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';

const ORIGIN = 'http://127.0.0.1:7480';
let mock: MockAgent;
beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
});
afterEach(async () => {
  await mock.close();
});

describe('retries compose with dispatcher interceptors', () => {
  it('an interceptor on the injected dispatcher sees each attempt, re-signed after a clock correction', async () => {
    const seen: { date: string; auth: string }[] = [];
    const recorder: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) => {
      const h = opts.headers as Record<string, string>;
      seen.push({ date: h['x-amz-date']!, auth: h['authorization']! });
      return dispatch(opts, handler);
    };
    const pool = mock.get(ORIGIN);
    const serverNow = new Date('2030-01-01T00:00:00Z');
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(503, '').times(1);
    pool
      .intercept({ path: '/bkt/k', method: 'HEAD' })
      .reply(403, '<Error><Code>RequestTimeTooSkewed</Code><Message>skew</Message></Error>', { headers: { date: serverNow.toUTCString() } });
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(200, '', { headers: { etag: '"e"', 'content-length': '3' } });
    const c = new S3Client(
      {
        endpoint: ORIGIN,
        region: 'us-east-1',
        bucket: 'bkt',
        credentials: { accessKeyId: 'AKUNIT', secretAccessKey: 'unit-secret-unit-secret-unit-secret-0000' },
        connectTimeoutMs: 1000,
        requestTimeoutMs: 1000,
      },
      { dispatcher: mock.compose(recorder), retry: { baseDelayMs: 1, maxDelayMs: 2 }, clock: () => new Date('2026-01-01T00:00:00Z') },
    );
    const info = await c.headObject('k');
    expect(info.etag).toBe('"e"');
    expect(seen).toHaveLength(3);
    expect(seen.map((s) => s.date)).toEqual(['20260101T000000Z', '20260101T000000Z', '20300101T000000Z']);
    expect(seen[2]!.auth).not.toBe(seen[1]!.auth);
  });
});
