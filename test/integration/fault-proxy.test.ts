// The fault proxy in front of the real RadosGW, exercised with plain undici requests (signed by
// the test-only reference signer) so that it can be trusted by the S3 client's fault tests.
import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { refusingEndpoint, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { testS3 } from '../helpers/rgw.js';
import { signV4 } from '../helpers/sigv4-reference.js';

const s3 = testS3();
const bucket = `fault-proxy-${process.pid}-${Date.now().toString(36)}`;
const body1000 = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
let p: FaultProxy;
// own connection pool per test, so a reset in one test never bleeds into the next
let dispatcher: Agent;

async function send(
  base: string,
  method: string,
  path: string,
  opts: { body?: Buffer; headers?: Record<string, string>; signed?: boolean; signal?: AbortSignal; dispatcher?: Dispatcher } = {},
): Promise<Dispatcher.ResponseData> {
  const url = `${base}${path}`;
  const headers = opts.signed === false ? (opts.headers ?? {}) : signV4({ ...s3, method, url, body: opts.body, headers: opts.headers });
  return request(url, { method: method as Dispatcher.HttpMethod, headers, body: opts.body, signal: opts.signal, dispatcher: opts.dispatcher ?? dispatcher });
}

async function readAll(res: Dispatcher.ResponseData): Promise<{ bytes: Buffer; error?: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of res.body) parts.push(c as Buffer);
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error };
  }
}

function errorCodes(e: unknown): string[] {
  const codes: string[] = [];
  for (let cur = e as { code?: string; name?: string; cause?: unknown } | undefined; cur; cur = cur.cause as typeof cur) {
    if (cur.code) codes.push(cur.code);
    if (cur.name) codes.push(cur.name);
  }
  return codes;
}

async function failure(promise: Promise<unknown>): Promise<string[]> {
  try {
    await promise;
  } catch (e) {
    return errorCodes(e);
  }
  throw new Error('expected the request to fail');
}

async function direct(method: string, path: string, body?: Buffer): Promise<{ status: number; text: string }> {
  const res = await send(s3.endpoint, method, path, { body, dispatcher: new Agent() });
  return { status: res.statusCode, text: await res.body.text() };
}

beforeAll(async () => {
  const made = await direct('PUT', `/${bucket}`);
  expect(made.status, made.text).toBe(200);
  expect((await direct('PUT', `/${bucket}/data-1000`, body1000)).status).toBe(200);
});

afterAll(async () => {
  const list = await direct('GET', `/${bucket}?list-type=2`);
  for (const m of list.text.matchAll(/<Key>([^<]+)<\/Key>/g)) await direct('DELETE', `/${bucket}/${encodeURIComponent(m[1]!)}`);
  await direct('DELETE', `/${bucket}`);
});

beforeEach(async () => {
  p = await startFaultProxy(s3.endpoint);
  dispatcher = new Agent();
});

afterEach(async () => {
  await dispatcher.destroy();
  await p.close();
});

describe('passthrough', () => {
  it('relays an unsigned request and RadosGW answers it (403 AccessDenied with its own request id)', async () => {
    const res = await send(p.url, 'PUT', `/${bucket}-anon`, { signed: false });
    const text = await res.body.text();
    expect(res.statusCode).toBe(403);
    expect(text).toContain('<Code>AccessDenied</Code>');
    expect(res.headers['x-amz-request-id']).toMatch(/^tx/);
    expect(p.requests).toMatchObject([{ method: 'PUT', target: `/${bucket}-anon`, forwarded: true, status: 403 }]);
  });

  it('keeps SigV4 signatures made for the proxy host valid: signed PUT and GET round-trip the bytes', async () => {
    const data = Buffer.from('bytes through the proxy\n'.repeat(100));
    const put = await send(p.url, 'PUT', `/${bucket}/via-proxy`, { body: data });
    expect(put.statusCode, await put.body.text()).toBe(200);
    expect(put.headers.etag).toBe(`"${createHash('md5').update(data).digest('hex')}"`);
    const got = await send(p.url, 'GET', `/${bucket}/via-proxy`);
    expect(got.statusCode).toBe(200);
    expect(Buffer.compare((await readAll(got)).bytes, data)).toBe(0);
    // the server really got it: read back without the proxy
    expect((await direct('GET', `/${bucket}/via-proxy`)).text).toBe(data.toString());
    expect(p.requests.map((r) => r.headers.host)).toEqual([`127.0.0.1:${p.port}`, `127.0.0.1:${p.port}`]);
  });

  it('passes a tampered signature through to be rejected by the server', async () => {
    const url = `${p.url}/${bucket}/data-1000`;
    const headers = signV4({ ...s3, method: 'GET', url });
    // flip the first hex digit to another one: the signature always changes (a fixed '0' would
    // leave it as it was whenever it started with 0, one time in 16)
    const before = headers.authorization!;
    headers.authorization = before.replace(/Signature=([0-9a-f])/, (_m, d: string) => `Signature=${(parseInt(d, 16) ^ 1).toString(16)}`);
    expect(headers.authorization).not.toBe(before);
    const res = await request(url, { headers, dispatcher });
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toContain('SignatureDoesNotMatch');
  });
});

describe('scripted faults', () => {
  it('answers 503 SlowDown twice, then lets the third PUT through; faulted PUTs never reach the server', async () => {
    p.plan([{ match: { method: 'PUT', pathIncludes: '/slow' }, fault: { kind: 'status', status: 503 }, times: 2 }]);
    for (let i = 0; i < 2; i++) {
      const res = await send(p.url, 'PUT', `/${bucket}/slow`, { body: body1000 });
      expect(res.statusCode).toBe(503);
      expect(res.headers['content-type']).toBe('application/xml');
      expect(await res.body.text()).toMatch(/<Error><Code>SlowDown<\/Code>/);
      expect((await direct('GET', `/${bucket}/slow`)).status).toBe(404);
    }
    const third = await send(p.url, 'PUT', `/${bucket}/slow`, { body: body1000 });
    expect(third.statusCode, await third.body.text()).toBe(200);
    expect((await direct('GET', `/${bucket}/slow`)).status).toBe(200);
    expect(p.hits()).toEqual([2]);
    expect(p.requests.map((r) => [r.fault, r.forwarded, r.status])).toEqual([
      ['status', false, 503],
      ['status', false, 503],
      [undefined, true, 200],
    ]);
  });

  it('matches on method, path, headers and skip; unmatched requests pass', async () => {
    p.plan([
      { match: { method: 'GET', path: /data-1000$/, headers: { 'x-test': /^yes$/ } }, fault: { kind: 'status', status: 429, headers: { 'Retry-After': '1' } }, skip: 1 },
    ]);
    const plain = await send(p.url, 'GET', `/${bucket}/data-1000`);
    expect(plain.statusCode).toBe(200); // no x-test header
    await plain.body.dump();
    const skipped = await send(p.url, 'GET', `/${bucket}/data-1000`, { headers: { 'x-test': 'yes' } });
    expect(skipped.statusCode).toBe(200);
    await skipped.body.dump();
    const hit = await send(p.url, 'GET', `/${bucket}/data-1000`, { headers: { 'x-test': 'yes' } });
    expect(hit.statusCode).toBe(429);
    expect(hit.headers['retry-after']).toBe('1');
    expect(await hit.body.text()).toContain('<Code>TooManyRequests</Code>');
    const after = await send(p.url, 'GET', `/${bucket}/data-1000`, { headers: { 'x-test': 'yes' } });
    expect(after.statusCode).toBe(200); // times defaults to 1
    await after.body.dump();
  });

  it('with forward, the server performs the request although the client sees the error', async () => {
    p.plan([{ fault: { kind: 'status', status: 500, forward: true } }]);
    const res = await send(p.url, 'PUT', `/${bucket}/forwarded-500`, { body: body1000 });
    expect(res.statusCode).toBe(500);
    expect(await res.body.text()).toContain('<Code>InternalError</Code>');
    expect((await direct('GET', `/${bucket}/forwarded-500`)).status).toBe(200);
  });

  it('answers 200 OK with an <Error> body', async () => {
    p.plan([{ fault: { kind: 'error200', code: 'InternalError', message: 'We encountered an internal error' } }]);
    const res = await send(p.url, 'POST', `/${bucket}/x?uploadId=nope`, { body: Buffer.from('<CompleteMultipartUpload/>') });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toMatch(/<Error><Code>InternalError<\/Code><Message>We encountered an internal error<\/Message>/);
  });

  it('resets the connection before the request reaches the server', async () => {
    p.plan([{ fault: { kind: 'reset' } }]);
    expect(await failure(send(p.url, 'PUT', `/${bucket}/reset-before`, { body: body1000 }))).toContain('ECONNRESET');
    expect((await direct('GET', `/${bucket}/reset-before`)).status).toBe(404);
    expect(p.requests[0]).toMatchObject({ fault: 'reset', forwarded: false });
    expect(p.requests[0]!.status).toBeUndefined();
  });

  it('resets after the server did the work (a lost response)', async () => {
    p.plan([{ fault: { kind: 'reset', forward: true } }]);
    expect(await failure(send(p.url, 'PUT', `/${bucket}/reset-after`, { body: body1000 }))).toContain('ECONNRESET');
    expect((await direct('GET', `/${bucket}/reset-after`)).status).toBe(200);
  });

  it('resets after exactly N body bytes', async () => {
    p.plan([{ fault: { kind: 'reset', afterBytes: 300 } }]);
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('1000');
    const { bytes, error } = await readAll(res);
    expect(errorCodes(error)).toContain('ECONNRESET');
    expect(Buffer.compare(bytes, body1000.subarray(0, 300))).toBe(0);
  });

  it('truncates a body: full Content-Length, fewer bytes, clean close', async () => {
    p.plan([{ fault: { kind: 'truncate', bytes: 100 } }]);
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`);
    expect(res.headers['content-length']).toBe('1000');
    const { bytes, error } = await readAll(res);
    expect(error).toBeDefined();
    expect(errorCodes(error)).not.toContain('ECONNRESET');
    expect(Buffer.compare(bytes, body1000.subarray(0, 100))).toBe(0);
  });

  it('shifts the Date header of a real response', async () => {
    p.plan([{ fault: { kind: 'skewDate', offsetMs: 2 * 3600_000 } }]);
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const skew = Date.parse(String(res.headers.date)) - Date.now();
    expect(skew).toBeGreaterThan(1.5 * 3600_000);
    expect(skew).toBeLessThan(2.5 * 3600_000);
  });

  it('answers RequestTimeTooSkewed with a server time matching its Date header', async () => {
    p.plan([{ fault: { kind: 'tooSkewed', offsetMs: -3600_000 } }]);
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`);
    const text = await res.body.text();
    expect(res.statusCode).toBe(403);
    expect(text).toContain('<Code>RequestTimeTooSkewed</Code>');
    const serverTime = /<ServerTime>([^<]+)<\/ServerTime>/.exec(text)![1]!;
    expect(Math.abs(Date.parse(serverTime) - Date.parse(String(res.headers.date)))).toBeLessThan(1000);
    expect(text).toMatch(/<RequestTime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<\/RequestTime>/);
  });

  it('hangs without answering until the client gives up', async () => {
    p.plan([{ fault: { kind: 'hang' } }]);
    const codes = await failure(send(p.url, 'GET', `/${bucket}/data-1000`, { signal: AbortSignal.timeout(300) }));
    expect(codes).toContain('TimeoutError');
    expect(p.requests[0]).toMatchObject({ fault: 'hang', forwarded: false });
    expect(p.requests[0]!.status).toBeUndefined();
  });

  it('hangs mid-body after N bytes', async () => {
    p.plan([{ fault: { kind: 'hang', afterBytes: 10 } }]);
    const ac = new AbortController();
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`, { signal: ac.signal });
    expect(res.statusCode).toBe(200);
    const reading = readAll(res);
    setTimeout(() => ac.abort(), 300);
    const { bytes, error } = await reading;
    expect(error).toBeDefined();
    expect(bytes.length).toBe(10);
  });

  it('redacts the SSE-C key in the request log', async () => {
    const key = Buffer.alloc(32, 7);
    const res = await send(p.url, 'PUT', `/${bucket}/ssec`, {
      body: body1000,
      headers: {
        'x-amz-server-side-encryption-customer-algorithm': 'AES256',
        'x-amz-server-side-encryption-customer-key': key.toString('base64'),
        'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
      },
    });
    expect(res.statusCode, await res.body.text()).toBe(200);
    expect(p.requests[0]!.headers['x-amz-server-side-encryption-customer-key']).toBe('<redacted>');
    expect(JSON.stringify(p.requests)).not.toContain(key.toString('base64'));
  });

  it('rejects a bad plan with a message naming the key and what is allowed', () => {
    expect(() => p.plan([{ fault: { kind: 'explode' } as never }])).toThrow(/plan\[0\]\.fault\.kind: "explode" is not one of reset, status/);
    expect(() => p.plan([{ fault: { kind: 'status', status: 503 }, times: 0 }])).toThrow(/plan\[0\]\.times: 0 is not an integer >= 1/);
  });
});

describe('dead endpoint', () => {
  it('blackhole: connects but never answers, also on an already open connection', async () => {
    const warm = await send(p.url, 'GET', `/${bucket}/data-1000`);
    await warm.body.dump();
    await p.dead('blackhole');
    const impatient = new Agent({ headersTimeout: 300 });
    const codes = await failure(send(p.url, 'GET', `/${bucket}/data-1000`, { dispatcher: impatient }));
    await impatient.destroy();
    expect(codes).toContain('UND_ERR_HEADERS_TIMEOUT');
  });

  it('refuse: connections are refused until revived', async () => {
    await p.dead('refuse');
    expect(await failure(send(p.url, 'GET', `/${bucket}/data-1000`))).toContain('ECONNREFUSED');
    await p.dead(false);
    const res = await send(p.url, 'GET', `/${bucket}/data-1000`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('reset: every connection is reset', async () => {
    await p.dead('reset');
    expect(await failure(send(p.url, 'GET', `/${bucket}/data-1000`))).toContain('ECONNRESET');
  });

  it('refusingEndpoint() gives a URL where nothing listens', async () => {
    expect(await failure(send(await refusingEndpoint(), 'GET', '/'))).toContain('ECONNREFUSED');
  });
});
