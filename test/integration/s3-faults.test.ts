/**
 * Retries, timeouts and late errors, with faults injected by a proxy in front of the real
 * RadosGW (test/helpers/fault-proxy.ts): the client signs for the proxy's host and RadosGW checks
 * every signature, so each retried request must still be a correct one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher } from '../../host/src/s3/dispatcher.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { refusingEndpoint, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testClient, testS3 } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const fast = { retry: { baseDelayMs: 5, maxDelayMs: 20 } };

let direct: S3Client;
let proxy: FaultProxy;
let c: S3Client;

beforeAll(async () => {
  direct = await freshBucket('faults');
  proxy = await startFaultProxy(testS3().endpoint);
  c = testClient({ endpoint: proxy.url, bucket: direct.bucket }, fast);
});
afterEach(() => {
  proxy.plan([]);
  proxy.clearLog();
});
afterAll(async () => {
  if (proxy) await proxy.close();
  if (direct) await dropBucket(direct);
  await closeTestClients();
});

const methods = () => proxy.requests.map((r) => `${r.method} ${r.fault ?? 'ok'} ${r.status ?? '-'}`);

describe('retried', () => {
  it('503 SlowDown twice, then success', async () => {
    proxy.plan([{ match: { method: 'PUT' }, fault: { kind: 'status', status: 503 }, times: 2 }]);
    const data = randomBytes(1000);
    await c.putObject('slowdown.bin', data);
    expect(methods()).toEqual(['PUT status 503', 'PUT status 503', 'PUT ok 200']);
    expect((await readAll((await direct.getObject('slowdown.bin')).body)).equals(data)).toBe(true);
  });

  it('429 and 500 are retried too', async () => {
    proxy.plan([
      { match: { method: 'GET' }, fault: { kind: 'status', status: 429 } },
      { match: { method: 'GET' }, fault: { kind: 'status', status: 500 } },
    ]);
    await direct.putObject('429.bin', new Uint8Array([7]));
    const g = await c.getObject('429.bin');
    expect([...(await readAll(g.body))]).toEqual([7]);
    expect(methods()).toEqual(['GET status 429', 'GET status 500', 'GET ok 200']);
  });

  it('connection reset before the server saw the request: retried', async () => {
    proxy.plan([{ match: { method: 'PUT' }, fault: { kind: 'reset' } }]);
    const data = randomBytes(5 * MiB);
    await c.putObject('reset.bin', data);
    expect(methods()).toEqual(['PUT reset -', 'PUT ok 200']);
    expect((await direct.headObject('reset.bin')).size).toBe(5 * MiB);
  });

  it('connection reset after the server stored a part: the part is sent again and the upload completes', async () => {
    const key = 'reset-part.bin';
    const id = await c.createMultipartUpload(key);
    const p1 = randomBytes(5 * MiB);
    const p2 = randomBytes(10);
    proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=1' }, fault: { kind: 'reset', forward: true } }]);
    const e1 = await c.uploadPart(key, id, 1, p1, sha256(p1));
    const e2 = await c.uploadPart(key, id, 2, p2, sha256(p2));
    expect(proxy.hits()).toEqual([1]);
    await c.completeMultipartUpload(key, id, [
      { partNumber: 1, etag: e1.etag },
      { partNumber: 2, etag: e2.etag },
    ]);
    expect((await readAll((await direct.getObject(key)).body)).equals(Buffer.concat([p1, p2]))).toBe(true);
  });

  it('RequestTimeTooSkewed: the offset is taken from the server and the retry succeeds', async () => {
    const ahead = 10 * 60_000; // within RGW's own 15 min allowance once corrected
    proxy.plan([{ match: { method: 'PUT' }, fault: { kind: 'tooSkewed', offsetMs: ahead } }]);
    const skewed = testClient({ endpoint: proxy.url, bucket: direct.bucket }, fast);
    await skewed.putObject('skew.bin', new Uint8Array(3));
    expect(methods()).toEqual(['PUT tooSkewed 403', 'PUT ok 200']);
    expect(Math.abs(skewed.transport.clockOffsetMs - ahead)).toBeLessThan(60_000);
    const [first, second] = proxy.requests.map((r) => r.headers['x-amz-date']!);
    const t = (s: string) => Date.parse(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);
    expect(Math.abs(t(second!) - t(first!) - ahead)).toBeLessThan(60_000);
  });

  it('a local clock an hour behind: RadosGW refuses, the client corrects itself from its Date header', async () => {
    const behind = testClient({ bucket: direct.bucket }, { ...fast, clock: () => new Date(Date.now() - 3_600_000) });
    await behind.putObject('clock.bin', new Uint8Array(1));
    expect(Math.abs(behind.transport.clockOffsetMs - 3_600_000)).toBeLessThan(60_000);
    await expect(behind.headObject('clock.bin')).resolves.toMatchObject({ size: 1 });
  });
});

describe('clock skew on a bodiless answer', () => {
  it('HEAD first with a clock an hour ahead: corrected from the Date header, not reported as bad keys', async () => {
    await direct.putObject('clock-head.bin', new Uint8Array(2));
    const ahead = testClient({ bucket: direct.bucket }, { ...fast, clock: () => new Date(Date.now() + 3_600_000) });
    expect((await ahead.headObject('clock-head.bin')).size).toBe(2);
    expect(Math.abs(ahead.transport.clockOffsetMs + 3_600_000)).toBeLessThan(60_000);
  });
});

describe('not retried, or failing clearly', () => {
  it('200 OK with <Error> on CompleteMultipartUpload is an error (AccessDenied: not retried)', async () => {
    const key = 'complete-200.bin';
    const id = await c.createMultipartUpload(key);
    const p = randomBytes(10);
    const e1 = await c.uploadPart(key, id, 1, p, sha256(p));
    proxy.plan([{ match: { method: 'POST', pathIncludes: 'uploadId=' }, fault: { kind: 'error200', code: 'AccessDenied', message: 'Access denied.' }, times: Infinity }]);
    const e = (await c.completeMultipartUpload(key, id, [{ partNumber: 1, etag: e1.etag }]).catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect([e.code, e.status, e.retryable]).toEqual(['AccessDenied', 200, false]);
    expect(proxy.hits()).toEqual([1]);
    await expect(direct.headObject(key)).rejects.toMatchObject({ code: 'NoSuchKey' });
    await c.abortMultipartUpload(key, id);
  });

  it('200 OK with <Error>InternalError after the server completed: retried, and the retry succeeds', async () => {
    const key = 'complete-200-internal.bin';
    const id = await c.createMultipartUpload(key);
    const p = randomBytes(10);
    const e1 = await c.uploadPart(key, id, 1, p, sha256(p));
    proxy.plan([{ match: { method: 'POST', pathIncludes: 'uploadId=' }, fault: { kind: 'error200', code: 'InternalError', forward: true } }]);
    const r = await c.completeMultipartUpload(key, id, [{ partNumber: 1, etag: e1.etag }]);
    expect(r.etag).toMatch(/-1"$/);
    const completes = proxy.requests.filter((q) => q.method === 'POST' && q.target.includes('uploadId='));
    // RadosGW answers a repeated Complete with 200; AWS may answer 404 NoSuchUpload, which the
    // client resolves by finding the completed object (unit-tested with MockAgent)
    expect(completes.map((q) => q.fault ?? 'ok')).toEqual(['error200', 'ok']);
    expect([200, 404]).toContain(completes[1]!.status);
    expect((await direct.headObject(key)).etag).toBe(r.etag);
  });

  it('CreateMultipartUpload (not idempotent) is not retried after a reset', async () => {
    proxy.plan([{ match: { method: 'POST', pathIncludes: 'uploads' }, fault: { kind: 'reset', forward: true } }]);
    const e = (await c.createMultipartUpload('create-reset.bin').catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('NetworkError');
    expect(e.retryable).toBe(true);
    expect(proxy.requests.length).toBe(1);
    for (const u of await direct.listMultipartUploads({ prefix: 'create-reset' })) await direct.abortMultipartUpload(u.key, u.uploadId);
  });

  it('a reset in the middle of a GET body surfaces as a retryable NetworkError from the stream', async () => {
    await direct.putObject('midreset.bin', randomBytes(MiB));
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'reset', afterBytes: 100_000 } }]);
    const g = await c.getObject('midreset.bin');
    const e = (await readAll(g.body).catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.retryable).toBe(true);
    expect(e.message).toContain('cannot reach');
  });

  it('a body cut short (clean close) is an error, never a short object', async () => {
    await direct.putObject('truncated.bin', randomBytes(MiB));
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'truncate', bytes: 500_000 } }]);
    const g = await c.getObject('truncated.bin');
    await expect(readAll(g.body)).rejects.toMatchObject({ code: 'NetworkError', retryable: true });
  });

  it('a stalled body fails after requestTimeoutMs with a message naming the timeout', async () => {
    await direct.putObject('stall.bin', randomBytes(MiB));
    const impatient = testClient({ endpoint: proxy.url, bucket: direct.bucket, requestTimeoutMs: 700, maxRetries: 0 });
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'hang', afterBytes: 1000 } }]);
    const g = await impatient.getObject('stall.bin');
    const e = (await readAll(g.body).catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('RequestTimeout');
    expect(e.message).toContain('700 ms');
  });

  it('dead endpoint (nothing listening): ConnectionRefused after the retries, saying what to check', async () => {
    const dead = testClient({ endpoint: await refusingEndpoint(), bucket: direct.bucket, maxRetries: 2 }, fast);
    const e = (await dead.headBucket().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('ConnectionRefused');
    expect(e.message).toBe(`cannot reach ${dead.endpoint}: connection refused (check endpoint and network)`);
    expect(e.exitCode).toBe(1);
  });

  it('dead endpoint (accepts, never answers): fails after the configured timeout, naming it', async () => {
    await proxy.dead('blackhole');
    try {
      // a stall limit beyond both attempts: each attempt ends at request_timeout and is retried
      const stuck = testClient({ endpoint: proxy.url, bucket: direct.bucket, requestTimeoutMs: 800, stallTimeoutMs: 60_000, maxRetries: 1 }, fast);
      const e = (await stuck.listObjects().catch((x: unknown) => x)) as S3Error;
      expect(e).toBeInstanceOf(S3Error);
      expect(e.code).toBe('RequestTimeout');
      expect(e.message).toBe(`no response from ${stuck.endpoint} within 800 ms during ListObjectsV2 (check endpoint and network, or raise the timeout)`);
    } finally {
      await proxy.dead(false);
    }
  });

  it('dead endpoint (accepts, never answers), stall limit as request_timeout (the default): not retried, Stalled, naming the endpoint and what to do', async () => {
    await proxy.dead('blackhole');
    try {
      const stuck = testClient({ endpoint: proxy.url, bucket: direct.bucket, requestTimeoutMs: 1000, maxRetries: 5 }, fast);
      const e = (await stuck.listObjects().catch((x: unknown) => x)) as S3Error;
      expect(e).toBeInstanceOf(S3Error);
      expect(e).toMatchObject({ code: 'Stalled', retryable: false, exitCode: 1 });
      expect(e.message).toBe(
        `no answer from ${stuck.endpoint} for 1 s during ListObjectsV2: it accepts connections but does not respond (a stopped or overloaded gateway, or a Ceph cluster that blocks writes, e.g. when full); check the gateway, then run this again (stall_timeout 1 s)`,
      );
    } finally {
      await proxy.dead(false);
    }
  });
});

describe('connections', () => {
  it('keep-alive: 30 HEADs and GETs in a row reuse connections (undici would close after each HEAD)', async () => {
    const dispatcher = await createDispatcher({ connectTimeoutMs: 5000 });
    let connects = 0;
    dispatcher.on('connect', () => connects++);
    try {
      const k = testClient({ bucket: direct.bucket }, { dispatcher });
      await k.putObject('ka.bin', new Uint8Array(5));
      for (let i = 0; i < 15; i++) {
        await k.headObject('ka.bin');
        await readAll((await k.getObject('ka.bin')).body);
      }
      // a request sent right as the previous response ends may find that connection not yet
      // released and open a second one; without keep-alive every HEAD would cost one
      expect(connects).toBeLessThanOrEqual(2);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('the lean GET path (downloads: getObjectInto)', () => {
  const data = randomBytes(3 * MiB + 11);
  const collect = async (client: S3Client, key: string, range?: [number, number]) => {
    const pieces: Buffer[] = [];
    await client.getObjectInto(key, range ? { range } : {}, (c) => pieces.push(Buffer.from(c)));
    return Buffer.concat(pieces);
  };

  it('503 and a reset before the head are retried; the body arrives once, exactly', async () => {
    await direct.putObject('lean.bin', data);
    proxy.plan([
      { match: { method: 'GET' }, fault: { kind: 'status', status: 503 } },
      { match: { method: 'GET' }, fault: { kind: 'reset' } },
    ]);
    expect((await collect(c, 'lean.bin', [5, data.length - 1])).equals(data.subarray(5))).toBe(true);
    expect(methods()).toEqual(['GET status 503', 'GET reset -', 'GET ok 206']);
  });

  it('once the body has started, a cut connection is not retried here (the download retries the range): NetworkError, retryable', async () => {
    await direct.putObject('lean.bin', data);
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'reset', afterBytes: 100_000 } }]);
    let got = 0;
    const e = (await c.getObjectInto('lean.bin', {}, (x) => void (got += x.length)).catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e).toMatchObject({ code: 'NetworkError', retryable: true });
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThanOrEqual(100_000);
    expect(methods()).toEqual(['GET reset 200']);
  });

  it('a body that ends early (FIN) is NetworkError "response cut short", never a short success', async () => {
    await direct.putObject('lean.bin', data);
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'truncate', bytes: 4096 } }]);
    const e = (await collect(c, 'lean.bin').catch((x: unknown) => x)) as S3Error;
    expect(e).toMatchObject({ code: 'NetworkError', retryable: true });
    expect(e.message).toMatch(/response cut short during GetObject/);
  });

  it('a stalled body: RequestTimeout after requestTimeoutMs; NoSuchKey is not retried', async () => {
    await direct.putObject('lean.bin', data);
    const impatient = testClient({ endpoint: proxy.url, bucket: direct.bucket, requestTimeoutMs: 500, stallTimeoutMs: 60_000, maxRetries: 0 });
    proxy.plan([{ match: { method: 'GET' }, fault: { kind: 'hang', afterBytes: 1000 } }]);
    const e = (await collect(impatient, 'lean.bin').catch((x: unknown) => x)) as S3Error;
    expect(e).toMatchObject({ code: 'RequestTimeout' });
    expect(e.message).toMatch(/stopped sending data for 500 ms during GetObject/);
    proxy.plan([]);
    proxy.clearLog();
    await expect(collect(c, 'no-such.bin')).rejects.toMatchObject({ code: 'NoSuchKey', status: 404 });
    expect(methods()).toEqual(['GET ok 404']);
  });
});
