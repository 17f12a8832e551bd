/**
 * Transport behaviour that needs exact control of the answers (undici's MockAgent in place of the
 * network): retries, clock-skew correction, 200-with-Error, error mapping and log redaction. The
 * same paths run against the real RadosGW through the fault proxy in test/integration.
 */
import { readFileSync } from 'node:fs';
import { MockAgent } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_RETRY_NOTICES } from '../../host/src/s3/request.js';
import { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import type { S3Settings } from '../../host/src/s3/settings.js';
import type { Logger } from '../../host/src/util/log.js';
import { vectorPath } from '../helpers/vectors.js';

const ORIGIN = 'http://127.0.0.1:7480';
const SECRET = 'pveS3UnitSecretKey000000000000000000000009';
const settings = (o: Partial<S3Settings> = {}): S3Settings => ({
  endpoint: ORIGIN,
  region: 'us-east-1',
  bucket: 'bkt',
  credentials: { accessKeyId: 'AKUNIT', secretAccessKey: SECRET },
  connectTimeoutMs: 1000,
  requestTimeoutMs: 1000,
  ...o,
});
const xmlVector = (f: string) => readFileSync(vectorPath(`s3-xml-examples/${f}`), 'utf8');

let mock: MockAgent;
beforeEach(() => {
  mock = new MockAgent();
  mock.disableNetConnect();
});
afterEach(async () => {
  await mock.close();
});

function client(o: Partial<S3Settings> = {}, extra: { clock?: () => Date; logger?: Logger } = {}) {
  return new S3Client(settings(o), { dispatcher: mock, retry: { baseDelayMs: 1, maxDelayMs: 2 }, ...extra });
}

describe('retries', () => {
  it('503 SlowDown twice, then success', async () => {
    const pool = mock.get(ORIGIN);
    const seen: string[] = [];
    pool.intercept({ path: '/bkt/k', method: 'PUT' }).reply(503, xmlVector('error-slow-down.xml')).times(2);
    pool.intercept({ path: '/bkt/k', method: 'PUT' }).reply((req) => {
      seen.push(String((req.headers as Record<string, string>)['x-amz-content-sha256']));
      return { statusCode: 200, data: '', responseOptions: { headers: { etag: '"abc"' } } };
    });
    const r = await client().putObject('k', new TextEncoder().encode('hello'));
    expect(r.etag).toBe('"abc"');
    // the replayed body is signed with the same payload hash
    expect(seen).toEqual(['2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824']);
  });

  it('gives up after maxRetries with the server code, marked retryable', async () => {
    let n = 0;
    mock
      .get(ORIGIN)
      .intercept({ path: '/bkt/k', method: 'GET' })
      .reply(() => {
        n++;
        return { statusCode: 503, data: xmlVector('error-slow-down.xml') };
      })
      .persist();
    const e = (await client({ maxRetries: 2 }).getObject('k').catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect([e.code, e.status, e.retryable, e.requestId]).toEqual(['SlowDown', 503, true, '656c76696e6727732072657175657374']);
    expect(e.message).toContain('throttling');
    expect(n).toBe(3);
  });

  it('a non-idempotent request (CreateMultipartUpload) is not retried after a 500', async () => {
    let n = 0;
    mock
      .get(ORIGIN)
      .intercept({ path: '/bkt/k?uploads=', method: 'POST' })
      .reply(() => {
        n++;
        return { statusCode: 500, data: '<Error><Code>InternalError</Code></Error>' };
      })
      .persist();
    await expect(client().createMultipartUpload('k')).rejects.toMatchObject({ code: 'InternalError', status: 500 });
    expect(n).toBe(1);
  });

  it('…but is retried after 503 SlowDown (the server did not act)', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k?uploads=', method: 'POST' }).reply(503, xmlVector('error-slow-down.xml'));
    pool.intercept({ path: '/bkt/k?uploads=', method: 'POST' }).reply(200, xmlVector('initiate-multipart-upload-result.xml'));
    expect(await client().createMultipartUpload('k')).toBe('defaultID');
  });

  it('RequestTimeTooSkewed: the clock offset comes from the server Date and the retry is signed with it', async () => {
    const pool = mock.get(ORIGIN);
    const dates: string[] = [];
    const serverNow = new Date('2030-01-02T03:04:05Z');
    pool.intercept({ path: '/bkt/k', method: 'DELETE' }).reply((req) => {
      dates.push(String((req.headers as Record<string, string>)['x-amz-date']));
      return {
        statusCode: 403,
        data: '<Error><Code>RequestTimeTooSkewed</Code><Message>skewed</Message></Error>',
        responseOptions: { headers: { date: serverNow.toUTCString() } },
      };
    });
    pool.intercept({ path: '/bkt/k', method: 'DELETE' }).reply((req) => {
      dates.push(String((req.headers as Record<string, string>)['x-amz-date']));
      return { statusCode: 204, data: '' };
    });
    const local = new Date('2030-01-02T02:00:00Z');
    const c = client({}, { clock: () => local });
    await c.deleteObject('k');
    expect(dates).toEqual(['20300102T020000Z', '20300102T030405Z']);
    expect(c.transport.clockOffsetMs).toBe(serverNow.getTime() - local.getTime());
  });
});

describe('200 OK with an <Error> body', () => {
  it.each(['complete-multipart-upload-200-error-internal.xml', 'complete-multipart-upload-200-error-access-denied.xml'])('%s is an error', async (f) => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(200, xmlVector(f)).persist();
    const e = (await client({ maxRetries: 1 })
      .completeMultipartUpload('k', 'u1', [{ partNumber: 1, etag: '"e"' }])
      .catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe(f.includes('internal') ? 'InternalError' : 'AccessDenied');
    expect(e.retryable).toBe(f.includes('internal'));
    expect(e.message).toContain("'k'");
  });

  it('an InternalError in a 200 is retried and the retry can succeed', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(200, xmlVector('complete-multipart-upload-200-error-internal.xml'));
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(200, xmlVector('complete-multipart-upload-result.xml'));
    const r = await client().completeMultipartUpload('k', 'u1', [{ partNumber: 1, etag: '"e"' }]);
    expect(r.etag).toBe('"3858f62230ac3c915f300c664312c11f-9"');
  });
});

describe('error messages', () => {
  it('wrong secret: SignatureDoesNotMatch, exit 4, names access_key/secret_key, never the secret', async () => {
    mock.get(ORIGIN).intercept({ path: /^\/bkt\?/, method: 'GET' }).reply(403, xmlVector('error-signature-does-not-match-captured.xml'));
    const e = (await client().listObjects().catch((x: unknown) => x)) as S3Error;
    expect(e.code).toBe('SignatureDoesNotMatch');
    expect(e.exitCode).toBe(4);
    expect(e.status).toBe(403);
    expect(e.requestId).toBe('Q803X9PKQY923EA9');
    expect(e.message).toBe(`access key or secret rejected by ${ORIGIN} (SignatureDoesNotMatch): check access_key/secret_key`);
    expect(JSON.stringify({ m: e.message, j: e.toJSON() })).not.toContain(SECRET);
  });

  it('NoSuchBucket tells what to do', async () => {
    mock.get(ORIGIN).intercept({ path: /^\/bkt\?/, method: 'GET' }).reply(404, xmlVector('error-no-such-bucket-smithy.xml'));
    await expect(client().listObjects()).rejects.toThrow(`bucket bkt does not exist at ${ORIGIN}: create it or fix bucket`);
  });

  it('HEAD 404 of a key is NoSuchKey (exit 3); of the bucket NoSuchBucket', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/a/b', method: 'HEAD' }).reply(404, '');
    pool.intercept({ path: '/bkt', method: 'HEAD' }).reply(404, '');
    await expect(client().headObject('a/b')).rejects.toMatchObject({ code: 'NoSuchKey', exitCode: 3, status: 404 });
    await expect(client().headBucket()).rejects.toMatchObject({ code: 'NoSuchBucket', exitCode: 3 });
  });

  it('a non-XML error page (proxy) still gives a clear error', async () => {
    mock.get(ORIGIN).intercept({ path: '/bkt/k', method: 'GET' }).reply(502, '<html>Bad Gateway</html>').persist();
    await expect(client({ maxRetries: 0 }).getObject('k')).rejects.toMatchObject({ code: 'ServerError', status: 502, retryable: true });
  });

  it('a listing that is not S3 XML is InvalidResponse', async () => {
    mock.get(ORIGIN).intercept({ path: /^\/bkt\?/, method: 'GET' }).reply(200, '<html>captive portal</html>');
    await expect(client().listObjects()).rejects.toMatchObject({ code: 'InvalidResponse' });
  });
});

describe('requests on the wire', () => {
  it('DeleteObjects: batches of 1000 with Content-MD5 and Quiet; per-key errors returned', async () => {
    const pool = mock.get(ORIGIN);
    const batches: number[] = [];
    pool
      .intercept({ path: '/bkt?delete=', method: 'POST' })
      .reply((req) => {
        const body = Buffer.from(req.body as Uint8Array).toString("utf8");
        const h = req.headers as Record<string, string>;
        expect(h['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
        expect(body).toContain('<Quiet>true</Quiet>');
        const keys = [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]!);
        batches.push(keys.length);
        const err = keys.includes('k1500') ? '<Error><Key>k1500</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>' : '';
        return { statusCode: 200, data: `<DeleteResult>${err}</DeleteResult>` };
      })
      .persist();
    const keys = Array.from({ length: 2345 }, (_, i) => `k${i}`);
    const r = await client().deleteObjects(keys);
    expect(batches).toEqual([1000, 1000, 345]);
    expect(r.errors).toEqual([{ key: 'k1500', code: 'AccessDenied', message: 'Access Denied' }]);
    expect(r.deleted.length).toBe(2344);
    expect(r.deleted).not.toContain('k1500');
  });

  it('no x-amz-checksum-* or trailer headers unless configured', async () => {
    let headers: Record<string, string> = {};
    mock
      .get(ORIGIN)
      .intercept({ path: '/bkt/k', method: 'PUT' })
      .reply((req) => {
        headers = req.headers as Record<string, string>;
        return { statusCode: 200, data: '' };
      });
    await client().putObject('k', new Uint8Array(10));
    const names = Object.keys(headers).map((h) => h.toLowerCase());
    expect(names.filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-trailer' || h === 'content-encoding')).toEqual([]);
    expect(headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('CopyObject sends the source percent-encoded once', async () => {
    let src = '';
    mock
      .get(ORIGIN)
      .intercept({ path: /^\/bkt\//, method: 'PUT' })
      .reply((req) => {
        src = (req.headers as Record<string, string>)['x-amz-copy-source']!;
        return { statusCode: 200, data: '<CopyObjectResult><ETag>"e"</ETag></CopyObjectResult>' };
      });
    await client().copyObject('a b+c/ü%~', 'dst');
    expect(src).toBe('/bkt/a%20b%2Bc/%C3%BC%25~');
  });

  it('V1 fallback: a gateway answering list-type=2 with a V1 listing is paged by marker', async () => {
    const pool = mock.get(ORIGIN);
    const paths: string[] = [];
    pool
      .intercept({ path: /^\/bkt\?/, method: 'GET' })
      .reply((req) => {
        paths.push(req.path);
        const marker = new URL('http://x' + req.path).searchParams.get('marker');
        const truncated = marker === null;
        const keys = marker === null ? ['a', 'b'] : ['c'];
        return {
          statusCode: 200,
          data: `<ListBucketResult><Marker>${marker ?? ''}</Marker><IsTruncated>${truncated}</IsTruncated>${keys.map((k) => `<Contents><Key>${k}</Key><Size>1</Size></Contents>`).join('')}</ListBucketResult>`,
        };
      })
      .persist();
    const keys: string[] = [];
    for await (const o of client().listAll()) keys.push(o.key);
    expect(keys).toEqual(['a', 'b', 'c']);
    expect(paths[0]).toContain('list-type=2');
    expect(paths.slice(1).every((p) => !p.includes('list-type'))).toBe(true);
    expect(paths.at(-1)).toContain('marker=b');
  });
});

describe('debug logging redacts secrets', () => {
  it('Authorization and SSE-C key never reach the log', async () => {
    const lines: string[] = [];
    const logger: Logger = {
      debugEnabled: true,
      debug: (m, f) => lines.push(m + ' ' + JSON.stringify(f)),
      info: (m, f) => lines.push(m + ' ' + JSON.stringify(f)),
      warn: (m, f) => lines.push(m + ' ' + JSON.stringify(f)),
      error: (m, f) => lines.push(m + ' ' + JSON.stringify(f)),
    };
    mock.get(ORIGIN).intercept({ path: '/bkt/k', method: 'PUT' }).reply(200, '');
    const key = new Uint8Array(32).fill(7);
    await client({}, { logger }).putObject('k', new Uint8Array(3), { sse: { type: 'SSE-C', key } });
    const log = lines.join('\n');
    expect(log).toContain('PutObject');
    expect(log).toContain('<redacted>');
    expect(log).not.toMatch(/Signature=[0-9a-f]{64}/);
    expect(log).not.toContain(Buffer.from(key).toString('base64'));
    expect(log).not.toContain(SECRET);
  });
});

describe('CompleteMultipartUpload retried after the server completed', () => {
  it('NoSuchUpload on the retry: the completed object (same part count) is the answer', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(200, xmlVector('complete-multipart-upload-200-error-internal.xml'));
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(404, '<Error><Code>NoSuchUpload</Code></Error>');
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(200, '', { headers: { etag: '"abc-2"', 'content-length': '10' } });
    const r = await client().completeMultipartUpload('k', 'u1', [
      { partNumber: 1, etag: '"a"' },
      { partNumber: 2, etag: '"b"' },
    ]);
    expect(r.etag).toBe('"abc-2"');
  });

  it('NoSuchUpload on the first attempt stays an error', async () => {
    mock.get(ORIGIN).intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(404, '<Error><Code>NoSuchUpload</Code></Error>');
    await expect(client().completeMultipartUpload('k', 'u1', [{ partNumber: 1, etag: '"a"' }])).rejects.toMatchObject({ code: 'NoSuchUpload', exitCode: 3 });
  });

  it('an empty <ETag/> in the result (RadosGW 16) is filled in from HEAD', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k?uploadId=u1', method: 'POST' }).reply(200, '<CompleteMultipartUploadResult><Key>k</Key><ETag></ETag></CompleteMultipartUploadResult>');
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(200, '', { headers: { etag: '"def-1"' } });
    expect((await client().completeMultipartUpload('k', 'u1', [{ partNumber: 1, etag: '"a"' }])).etag).toBe('"def-1"');
  });
});

describe('checksums when configured (checksumAlgorithm)', () => {
  type V = { input: string; s3HeaderValue?: string };
  const vectors = JSON.parse(readFileSync(vectorPath('checksums.json'), 'utf8')) as Record<'crc32c' | 'crc64nvme', { vectors: V[] }>;
  const cases = (['crc32c', 'crc64nvme'] as const).flatMap((alg) =>
    vectors[alg].vectors
      .filter((v) => v.s3HeaderValue !== undefined)
      .map((v) => ({ alg, text: v.input.replace(/^ascii:/, '').replace('(empty)', ''), value: v.s3HeaderValue! })),
  );

  it.each(cases)('$alg of "$text" → $value on PUT and UploadPart, and in Complete', async ({ alg, text, value }) => {
    const seen: Record<string, string>[] = [];
    let completeBody = '';
    const pool = mock.get(ORIGIN);
    pool
      .intercept({ path: /^\/bkt\/k/, method: 'PUT' })
      .reply((req) => {
        seen.push(req.headers as Record<string, string>);
        return { statusCode: 200, data: '', responseOptions: { headers: { etag: '"e"' } } };
      })
      .times(2);
    pool.intercept({ path: '/bkt/k?uploadId=u', method: 'POST' }).reply((req) => {
      completeBody = Buffer.from(req.body as Uint8Array).toString('utf8');
      return { statusCode: 200, data: '<CompleteMultipartUploadResult><ETag>"x-1"</ETag></CompleteMultipartUploadResult>' };
    });
    const c = client({ checksumAlgorithm: alg.toUpperCase() as 'CRC32C' | 'CRC64NVME' });
    const body = new TextEncoder().encode(text);
    await c.putObject('k', body);
    const part = await c.uploadPart('k', 'u', 1, body, '0'.repeat(64));
    await c.completeMultipartUpload('k', 'u', [{ partNumber: 1, etag: part.etag, checksum: part.checksum }]);
    expect(seen.map((h) => h[`x-amz-checksum-${alg}`])).toEqual([value, value]);
    expect(part.checksum).toBe(value);
    const tag = alg === 'crc32c' ? 'ChecksumCRC32C' : 'ChecksumCRC64NVME';
    expect(completeBody).toContain(`<${tag}>${value}</${tag}>`);
  });
});

describe('cancellation', () => {
  it('an aborted request is Aborted, not retried, whatever reason the caller gave', async () => {
    let n = 0;
    mock
      .get(ORIGIN)
      .intercept({ path: '/bkt/k', method: 'GET' })
      .reply(() => {
        n++;
        return { statusCode: 200, data: 'x' };
      })
      .delay(5_000)
      .persist();
    const ac = new AbortController();
    const p = client().getObject('k', { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('user pressed stop')), 20);
    await expect(p).rejects.toMatchObject({ code: 'Aborted', retryable: false, message: "GetObject of 'k' was cancelled" });
    expect(n).toBe(1);
  });
});

describe('clock skew on HEAD (no body to name it)', () => {
  it('a bodiless 403 with a server Date far from ours is treated as RequestTimeTooSkewed and corrected', async () => {
    const pool = mock.get(ORIGIN);
    const serverNow = new Date('2030-01-02T03:04:05Z');
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(403, '', { headers: { date: serverNow.toUTCString() } });
    pool.intercept({ path: '/bkt/k', method: 'HEAD' }).reply(200, '', { headers: { 'content-length': '4', etag: '"e"' } });
    const local = new Date('2030-01-02T02:00:00Z');
    const c = client({}, { clock: () => local });
    expect((await c.headObject('k')).size).toBe(4);
    expect(c.transport.clockOffsetMs).toBe(serverNow.getTime() - local.getTime());
  });

  it('a bodiless 403 with the clocks in step stays an auth error (exit 4)', async () => {
    const now = new Date();
    mock.get(ORIGIN).intercept({ path: '/bkt/k', method: 'HEAD' }).reply(403, '', { headers: { date: now.toUTCString() } });
    await expect(client({}, { clock: () => now }).headObject('k')).rejects.toMatchObject({ code: 'Forbidden', exitCode: 4 });
  });
});

describe('bucket creation and copies', () => {
  it('CreateBucket sends LocationConstraint except in us-east-1; BucketAlreadyOwnedByYou is success', async () => {
    const bodies: string[] = [];
    mock
      .get(ORIGIN)
      .intercept({ path: '/bkt', method: 'PUT' })
      .reply((req) => {
        bodies.push(req.body ? Buffer.from(req.body as Uint8Array).toString('utf8') : '');
        return bodies.length === 2
          ? { statusCode: 409, data: '<Error><Code>BucketAlreadyOwnedByYou</Code></Error>' }
          : { statusCode: 200, data: '' };
      })
      .times(2);
    await client({ region: 'eu-central-1' }).createBucket();
    await client({ region: 'us-east-1' }).createBucket();
    expect(bodies[0]).toContain('<LocationConstraint>eu-central-1</LocationConstraint>');
    expect(bodies[1]).toBe('');
  });

  it('CopyObject answered 200 with <Error> is an error', async () => {
    mock.get(ORIGIN).intercept({ path: '/bkt/dst', method: 'PUT' }).reply(200, '<?xml version="1.0"?>\n<Error><Code>AccessDenied</Code><Message>no</Message></Error>');
    await expect(client().copyObject('src', 'dst')).rejects.toMatchObject({ code: 'AccessDenied', status: 200, key: 'dst' });
  });

  it('a 200 that only mentions <Error> deep inside an object listing is not an error', async () => {
    mock
      .get(ORIGIN)
      .intercept({ path: /^\/bkt\?/, method: 'GET' })
      .reply(200, '<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>1</KeyCount><Contents><Key>&lt;Error&gt;</Key><Size>1</Size></Contents></ListBucketResult>');
    const p = await client().listObjects();
    expect(p.objects.map((o) => o.key)).toEqual(['<Error>']);
  });
});

describe('settings checked when the client is made', () => {
  it.each([
    [{ connectTimeoutMs: 0 }, /invalid connectTimeoutMs '0': must be a positive integer/],
    [{ requestTimeoutMs: -5 }, /invalid requestTimeoutMs '-5'/],
    [{ maxRetries: 99 }, /invalid maxRetries '99': must be an integer 0..20/],
    [{ bucket: '' }, /invalid bucket '': must not be empty/],
    [{ endpoint: 'ftp://x' }, /invalid endpoint 'ftp:\/\/x'/],
    [{ checksumAlgorithm: 'SHA1' as 'CRC32C' }, /invalid checksum_algorithm 'SHA1'/],
  ])('%j', (o, msg) => {
    expect(() => client(o)).toThrow(msg);
  });
});

describe('Retry-After', () => {
  it('a 503 with Retry-After waits that long (within the cap) before retrying', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k', method: 'DELETE' }).reply(503, xmlVector('error-slow-down.xml'), { headers: { 'retry-after': '1' } });
    pool.intercept({ path: '/bkt/k', method: 'DELETE' }).reply(204, '');
    const retries: number[] = [];
    const logger: Logger = {
      debugEnabled: true,
      debug: () => {},
      // in the log file at the normal level, not only in debug mode
      info: (m, f) => {
        if (m === 'retrying') retries.push(Number(f?.delayMs));
      },
      warn: () => {},
      error: () => {},
    };
    const notices: string[] = [];
    const c = new S3Client(settings(), { dispatcher: mock, logger, retry: { baseDelayMs: 1, maxDelayMs: 5_000 }, notice: (l) => notices.push(l) });
    await c.deleteObject('k');
    expect(retries).toEqual([1000]);
    // one line for whoever watches: request, key, cause, attempt, delay; nothing of the signed request
    expect(notices).toEqual([`retrying DeleteObject of 'k' at ${ORIGIN} after 503 SlowDown: attempt 2 of 6 in 1.0 s`]);
  });

  it('retry lines stop after MAX_RETRY_NOTICES a client, with one line saying so (the log file keeps them all)', async () => {
    const pool = mock.get(ORIGIN);
    pool.intercept({ path: '/bkt/k', method: 'DELETE' }).reply(503, xmlVector('error-slow-down.xml')).persist();
    let logged = 0;
    const logger: Logger = { debugEnabled: false, debug: () => {}, info: (m) => void (m === 'retrying' && logged++), warn: () => {}, error: () => {} };
    const notices: string[] = [];
    const c = new S3Client({ ...settings(), maxRetries: 20 }, { dispatcher: mock, logger, retry: { baseDelayMs: 0, maxDelayMs: 0 }, notice: (l) => notices.push(l) });
    for (let i = 0; i < 6; i++) await expect(c.deleteObject('k')).rejects.toMatchObject({ code: 'SlowDown' });
    expect(logged).toBe(120);
    expect(notices).toHaveLength(MAX_RETRY_NOTICES + 1);
    expect(notices.at(-1)).toBe(`further retries of requests to ${ORIGIN} are in the log file only (${MAX_RETRY_NOTICES} shown)`);
  });
});
