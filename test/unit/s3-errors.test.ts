import { describe, expect, it } from 'vitest';
import { S3Error, exitCodeFor, messageFor, networkError, serverError } from '../../host/src/s3/errors.js';
import { PveS3Error } from '../../host/src/util/errors.js';

const ctx = { endpoint: 'https://s3.example.com', bucket: 'backups', key: 'dump/vzdump-qemu-100.vma.zst', operation: 'GetObject' };
const t = { connectMs: 3000, requestMs: 30000 };

describe('server errors', () => {
  it('S3Error is a PveS3Error with a JSON form for the protocol', () => {
    const e = serverError('NoSuchKey', 404, 'The specified key does not exist.', 'REQ1', ctx);
    expect(e).toBeInstanceOf(S3Error);
    expect(e).toBeInstanceOf(PveS3Error);
    expect(e.toJSON()).toEqual({ code: 'NoSuchKey', message: "object 'dump/vzdump-qemu-100.vma.zst' not found in bucket backups at https://s3.example.com (NoSuchKey)", status: 404, retryable: false });
    expect([e.requestId, e.key, e.exitCode]).toEqual(['REQ1', ctx.key, 3]);
  });

  it.each([
    ['SignatureDoesNotMatch', 4, /^access key or secret rejected by https:\/\/s3\.example\.com \(SignatureDoesNotMatch\): check access_key\/secret_key$/],
    ['InvalidAccessKeyId', 4, /check access_key\/secret_key$/],
    ['AccessDenied', 4, /^access denied by .* to 'dump\/.*' in bucket backups during GetObject \(AccessDenied\): check the key's permissions/],
    ['NoSuchBucket', 3, /^bucket backups does not exist at https:\/\/s3\.example\.com: create it or fix bucket$/],
    ['NoSuchUpload', 3, /start the upload again$/],
    ['RequestTimeTooSkewed', 1, /sync the time \(NTP\)$/],
    ['SlowDown', 1, /lower max_concurrent_uploads or retry later$/],
    ['EntityTooSmall', 1, /at least 5 MiB$/],
    ['BadDigest', 5, /corrupted in transit/],
    ['WeirdNewCode', 1, /^GetObject on 'dump\/vzdump-qemu-100\.vma\.zst' in bucket backups failed at https:\/\/s3\.example\.com \(HTTP 400 WeirdNewCode\): server said so$/],
  ])('%s → exit %i, actionable message', (code, exit, msg) => {
    const e = serverError(code, 400, 'server  said\nso', undefined, ctx);
    expect(e.exitCode).toBe(exit);
    expect(e.message).toMatch(msg);
    expect(e.message).not.toContain('\n');
  });

  it('retryable: 5xx, 429, SlowDown, RequestTimeout, InternalError in a 200', () => {
    expect(serverError('InternalError', 500, undefined, undefined, ctx).retryable).toBe(true);
    expect(serverError('Whatever', 502, undefined, undefined, ctx).retryable).toBe(true);
    expect(serverError('TooManyRequests', 429, undefined, undefined, ctx).retryable).toBe(true);
    expect(serverError('RequestTimeout', 400, undefined, undefined, ctx).retryable).toBe(true);
    expect(serverError('InternalError', 200, undefined, undefined, ctx).retryable).toBe(true);
    expect(serverError('AccessDenied', 200, undefined, undefined, ctx).retryable).toBe(false);
    expect(serverError('NoSuchKey', 404, undefined, undefined, ctx).retryable).toBe(false);
  });

  it('long server messages are cut to one short line', () => {
    const m = messageFor('Strange', 400, 'x'.repeat(1000), ctx);
    expect(m.length).toBeLessThan(400);
    expect(m.endsWith('...')).toBe(true);
  });

  it('exit codes', () => {
    expect([exitCodeFor('Forbidden'), exitCodeFor('NoSuchKey'), exitCodeFor('InternalError')]).toEqual([4, 3, 1]);
  });
});

describe('network errors', () => {
  const net = (code: string, extra: Record<string, unknown> = {}) => networkError(Object.assign(new Error(`boom ${code}`), { code, ...extra }), ctx, t);

  it.each([
    ['UND_ERR_CONNECT_TIMEOUT', 'ConnectTimeout', 'cannot reach https://s3.example.com: no connection within 3000 ms (check endpoint and network)'],
    ['ECONNREFUSED', 'ConnectionRefused', 'cannot reach https://s3.example.com: connection refused (check endpoint and network)'],
    ['ENOTFOUND', 'NetworkError', 'cannot reach https://s3.example.com: host name does not resolve (check endpoint and network)'],
    ['ECONNRESET', 'NetworkError', 'cannot reach https://s3.example.com: ECONNRESET during GetObject (check endpoint and network)'],
    ['UND_ERR_HEADERS_TIMEOUT', 'RequestTimeout', 'no response from https://s3.example.com within 30000 ms during GetObject (check endpoint and network, or raise the timeout)'],
    ['UND_ERR_BODY_TIMEOUT', 'RequestTimeout', 'https://s3.example.com stopped sending data for 30000 ms during GetObject (check endpoint and network, or raise the timeout)'],
  ])('%s → %s', (code, ours, message) => {
    const e = net(code);
    expect([e.code, e.message, e.retryable, e.exitCode]).toEqual([ours, message, code !== 'ENOTFOUND', 1]);
  });

  it('a request refused before sending (a header with a line break) is InvalidArgument, not retried', () => {
    const e = net('UND_ERR_INVALID_ARG');
    expect([e.code, e.retryable, e.message]).toEqual(['InvalidArgument', false, "GetObject on 'dump/vzdump-qemu-100.vma.zst' in bucket backups was not sent: boom UND_ERR_INVALID_ARG"]);
  });

  it('undici wrapping the cause is unwrapped', () => {
    const e = networkError(Object.assign(new Error('fetch failed'), { cause: { code: 'ECONNREFUSED' } }), ctx, t);
    expect(e.code).toBe('ConnectionRefused');
  });

  it('TLS failures are not retried and say what to check', () => {
    const e = net('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect([e.code, e.retryable]).toEqual(['TlsError', false]);
    expect(e.message).toBe('TLS handshake with https://s3.example.com failed: DEPTH_ZERO_SELF_SIGNED_CERT (check ca file, fingerprint or the server certificate)');
  });
});
