// The lean HTTP path's connections, against a scripted HTTP server on a local socket: kept alive
// and reused, a stale kept-alive connection replaced without the caller noticing, and every way
// an exchange can fail (silence before or during the body, a body cut short, a cancel, the
// caller's own error) ending that exchange with the error the S3 layer's table knows.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { LeanHttp, type LeanRequest } from '../../host/src/s3/lean-http.js';

type Script = (req: string, conn: number, socket: net.Socket) => void;

/** A local server handing each connection (numbered from 1) to `serve`; close() ends them all. */
async function listen(serve: (s: net.Socket, conn: number) => void): Promise<{ origin: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    serve(s, ++connections);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

/** A server answering each request per `script`; counts connections and requests. */
async function server(script: Script): Promise<{ origin: string; connections: () => number; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const l = await listen((s, conn) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      for (let at = buf.indexOf('\r\n\r\n'); at >= 0; at = buf.indexOf('\r\n\r\n')) {
        const req = buf.slice(0, at);
        buf = buf.slice(at + 4);
        requests.push(req);
        script(req, conn, s);
      }
    });
  });
  return { ...l, requests };
}

const body = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
const ok = (data: Buffer, extra = '') => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n${extra}\r\n`), data]);

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f();
});

function client(): LeanHttp {
  const g = new LeanHttp({ connectTimeoutMs: 2000 });
  cleanup.push(() => g.close());
  return g;
}

function get(g: LeanHttp, origin: string, o: Partial<LeanRequest> = {}): Promise<{ status: number; data: Buffer; buffers: Set<ArrayBufferLike>; errorText: string }> {
  const pieces: Buffer[] = [];
  const buffers = new Set<ArrayBufferLike>();
  return g
    .send({
      origin,
      path: '/bucket/key',
      headers: { host: new URL(origin).host, range: 'bytes=0-1' },
      headersTimeoutMs: 2000,
      bodyTimeoutMs: 2000,
      onBody: (c) => {
        buffers.add(c.buffer);
        pieces.push(Buffer.from(c));
      },
      ...o,
    })
    .then((r) => ({ status: r.status, data: Buffer.concat(pieces), buffers, errorText: r.errorText }));
}

describe('LeanHttp', () => {
  it('sends the signed head as given, reuses one kept-alive connection, delivers every piece in one reused buffer', async () => {
    const a = body(3 << 20, 1);
    const b = body(700_000, 2);
    const s = await server((req, _conn, sock) => sock.write(ok(req.includes('/second') ? b : a)));
    cleanup.push(s.close);
    const g = client();
    const r1 = await get(g, s.origin);
    const r2 = await get(g, s.origin, { path: '/second?x-id=GetObject' });
    expect(r1.data.equals(a)).toBe(true);
    expect(r2.data.equals(b)).toBe(true);
    expect(s.connections()).toBe(1);
    expect(s.requests[0]).toBe(`GET /bucket/key HTTP/1.1\r\nhost: ${new URL(s.origin).host}\r\nrange: bytes=0-1`);
    expect(s.requests[1]!.split('\r\n')[0]).toBe('GET /second?x-id=GetObject HTTP/1.1');
    expect(new Set([...r1.buffers, ...r2.buffers]).size).toBe(1);
  });

  it('a kept-alive connection the server dropped is replaced, once, without the caller seeing it', async () => {
    // the server answers the first request of each connection and drops the connection on the second
    const s = await server((_req, conn, sock) => {
      const n = s0.requests.length;
      if (seen.has(conn)) return void sock.destroy();
      seen.add(conn);
      sock.write(ok(body(1000, n)));
    });
    const seen = new Set<number>();
    const s0 = s;
    cleanup.push(s.close);
    const g = client();
    expect((await get(g, s.origin)).status).toBe(200);
    const r = await get(g, s.origin);
    expect(r.status).toBe(200);
    expect(r.data.length).toBe(1000);
    expect(s.connections()).toBe(2);
    expect(s.requests.length).toBe(3);
  });

  it('a request marked fresh (not safe to send twice) goes on a new connection; a bodiless POST says Content-Length: 0', async () => {
    // the server drops every kept-alive connection on its second request: a fresh POST never meets one
    const seen = new Set<number>();
    const s = await server((_req, conn, sock) => {
      if (seen.has(conn)) return void sock.destroy();
      seen.add(conn);
      sock.write(ok(Buffer.from('<InitiateMultipartUploadResult/>')));
    });
    cleanup.push(s.close);
    const g = client();
    expect((await get(g, s.origin)).status).toBe(200);
    const r = await get(g, s.origin, { method: 'POST', path: '/bucket/key?uploads=', fresh: true });
    expect(r.status).toBe(200);
    expect(r.data.toString()).toBe('<InitiateMultipartUploadResult/>');
    // sent once, on a second connection, never on the kept-alive one (which would have been dropped)
    expect(s.connections()).toBe(2);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1]!.split('\r\n')).toEqual(['POST /bucket/key?uploads= HTTP/1.1', `host: ${new URL(s.origin).host}`, 'range: bytes=0-1', 'content-length: 0']);
  });

  it('a non-2xx answer comes back with its body as text, never through onBody', async () => {
    const xml = '<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>';
    const s = await server((_r, _c, sock) => sock.write(`HTTP/1.1 503 Slow Down\r\nContent-Length: ${xml.length}\r\nRetry-After: 1\r\n\r\n${xml}`));
    cleanup.push(s.close);
    const r = await get(client(), s.origin);
    expect(r).toMatchObject({ status: 503, errorText: xml });
    expect(r.data.length).toBe(0);
  });

  it('a chunked body, and one that runs to the end of the connection, arrive whole', async () => {
    const data = body(200_000, 7);
    const s = await server((req, _c, sock) => {
      if (req.includes('/chunked')) {
        sock.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
        sock.write(`${(150_000).toString(16)}\r\n`);
        sock.write(data.subarray(0, 150_000));
        sock.write(`\r\n${(50_000).toString(16)}\r\n`);
        sock.write(data.subarray(150_000));
        sock.write('\r\n0\r\n\r\n');
      } else {
        sock.write('HTTP/1.1 200 OK\r\n\r\n');
        sock.end(data);
      }
    });
    cleanup.push(s.close);
    const g = client();
    expect((await get(g, s.origin, { path: '/chunked' })).data.equals(data)).toBe(true);
    expect((await get(g, s.origin, { path: '/eof' })).data.equals(data)).toBe(true);
  });

  it('silence before the head: UND_ERR_HEADERS_TIMEOUT; silence in the body: UND_ERR_BODY_TIMEOUT', async () => {
    const s = await server((req, _c, sock) => {
      if (req.includes('/stall-body')) sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
    });
    cleanup.push(s.close);
    const g = client();
    await expect(get(g, s.origin, { headersTimeoutMs: 200 })).rejects.toMatchObject({ code: 'UND_ERR_HEADERS_TIMEOUT' });
    const e = await get(g, s.origin, { path: '/stall-body', bodyTimeoutMs: 200 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'UND_ERR_BODY_TIMEOUT' });
  });

  it('a body cut short by the server: UND_ERR_RES_CONTENT_LENGTH_MISMATCH, the bytes before it delivered', async () => {
    const s = await server((_r, _c, sock) => {
      sock.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789');
      setTimeout(() => sock.end(), 20);
    });
    cleanup.push(s.close);
    const pieces: number[] = [];
    const e = await get(client(), s.origin, { onBody: (c) => void pieces.push(c.length) }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' });
    expect(pieces.reduce((a, b) => a + b, 0)).toBe(10);
  });

  it('a cancel mid-body ends it at once (AbortError) and the connection is not reused', async () => {
    const s = await server((_r, _c, sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nxxxx'));
    cleanup.push(s.close);
    const g = client();
    const ac = new AbortController();
    const e = await get(g, s.origin, { signal: ac.signal, onBody: () => ac.abort(new Error('stop')) }).catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'AbortError' });
    await expect(get(g, s.origin, { signal: AbortSignal.abort() })).rejects.toBeTruthy();
  });

  it("the caller's own error from onBody ends the exchange with that error; the next one gets a new connection", async () => {
    const s = await server((_r, _c, sock) => sock.write(ok(body(500_000))));
    cleanup.push(s.close);
    const g = client();
    const mine = new Error('integrity');
    await expect(get(g, s.origin, { onBody: () => { throw mine; } })).rejects.toBe(mine);
    expect((await get(g, s.origin)).data.length).toBe(500_000);
    expect(s.connections()).toBe(2);
  });

  it('a refused connection fails with the socket error (ECONNREFUSED)', async () => {
    const s = await server(() => undefined);
    const origin = s.origin;
    await s.close();
    await expect(get(client(), origin)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});

type PutScript = (head: string, body: Buffer, conn: number, socket: net.Socket) => void;

/**
 * A server reading requests with Content-Length bodies; `script` sees each whole request, or
 * `partial` (if given) each piece of a body as it arrives and may end the connection there.
 */
async function putServer(script: PutScript, partial?: (got: number, socket: net.Socket) => void) {
  const heads: string[] = [];
  const l = await listen((s, conn) => {
    let chunks: Buffer[] = [];
    let len = 0;
    let head: string | null = null;
    let need = 0;
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      len += d.length;
      for (;;) {
        if (head === null) {
          const all = Buffer.concat(chunks);
          const at = all.indexOf('\r\n\r\n');
          chunks = [all];
          if (at < 0) return;
          head = all.subarray(0, at).toString('latin1');
          heads.push(head);
          need = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
          chunks = [all.subarray(at + 4)];
          len = all.length - at - 4;
        }
        partial?.(len, s);
        if (len < need) return;
        const all = Buffer.concat(chunks);
        chunks = [all.subarray(need)];
        len = all.length - need;
        const h = head;
        head = null;
        script(h, all.subarray(0, need), conn, s);
      }
    });
  });
  cleanup.push(l.close);
  return { ...l, heads };
}

function put(g: LeanHttp, origin: string, data: Uint8Array, o: Partial<LeanRequest> = {}) {
  return g.send({
    method: 'PUT',
    origin,
    path: '/bucket/key?partNumber=1&uploadId=u',
    headers: { host: new URL(origin).host },
    body: data,
    headersTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    onBody: () => undefined,
    ...o,
  });
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('LeanHttp PUTs (uploads)', () => {
  it('sends the Content-Length and every byte of the body, and keeps the connection for the next request', async () => {
    const s = await putServer((_h, b, _c, sock) => sock.write(`HTTP/1.1 200 OK\r\nETag: "${sha(b)}"\r\nContent-Length: 0\r\n\r\n`));
    const g = client();
    const a = body(3 * 1024 * 1024 + 7, 3);
    const b = body(10, 4);
    expect((await put(g, s.origin, a)).headers.etag).toBe(`"${sha(a)}"`);
    expect((await put(g, s.origin, b)).headers.etag).toBe(`"${sha(b)}"`);
    expect(s.heads[0]!.split('\r\n')[0]).toBe('PUT /bucket/key?partNumber=1&uploadId=u HTTP/1.1');
    expect(s.heads[0]).toMatch(new RegExp(`\r\ncontent-length: ${a.length}(\r\n|$)`));
    expect(s.connections()).toBe(1);
  });

  it('a header holding a line break is refused before anything is sent, naming the header but not its value', async () => {
    const s = await putServer((_h, _b, _c, sock) => sock.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    const g = client();
    const bad: Record<string, string>[] = [{ 'x-amz-meta-note': 'a\r\nx-amz-acl: public-read' }, { 'x-amz-meta-a\nb': 'c' }, { 'x-amz-meta-z': 'a\0b' }];
    for (const headers of bad) {
      const e = await put(g, s.origin, body(10, 1), { headers: { host: new URL(s.origin).host, ...headers } }).catch((x: unknown) => x as Error & { code?: string });
      expect(e).toMatchObject({ code: 'UND_ERR_INVALID_ARG' });
      expect((e as Error).message).toContain(JSON.stringify(Object.keys(headers)[0]));
      expect((e as Error).message).not.toContain('public-read');
    }
    expect(s.connections()).toBe(0);
    expect(s.heads).toEqual([]);
  });

  it('a kept-alive connection the server dropped: the PUT is sent again on a new one, whole', async () => {
    const seen = new Set<number>();
    const s = await putServer((_h, b, conn, sock) => {
      if (seen.has(conn)) return void sock.destroy();
      seen.add(conn);
      sock.write(`HTTP/1.1 200 OK\r\nETag: "${sha(b)}"\r\nContent-Length: 0\r\n\r\n`);
    });
    const g = client();
    await put(g, s.origin, body(1000, 1));
    const data = body(1024 * 1024, 2);
    expect((await put(g, s.origin, data)).headers.etag).toBe(`"${sha(data)}"`);
    expect(s.connections()).toBe(2);
  });

  it('the server closing in the middle of a fresh connection body: the exchange fails with the socket error, nothing re-sent here', async () => {
    const s = await putServer(
      () => undefined,
      (got, sock) => {
        if (got >= 512 * 1024) sock.destroy();
      },
    );
    const e = await put(client(), s.origin, Buffer.alloc(8 * 1024 * 1024, 5)).catch((x: unknown) => x);
    expect((e as { code?: string }).code).toMatch(/^(ECONNRESET|EPIPE|UND_ERR_SOCKET)$/);
    expect(s.heads.length).toBe(1);
  });

  it('an answer before the whole body went out (an early 403) is the answer; that connection is not reused', async () => {
    const xml = '<Error><Code>AccessDenied</Code></Error>';
    let answered = false;
    const s = await putServer(
      () => undefined,
      (got, sock) => {
        if (got === 0 || answered) return;
        answered = true;
        sock.write(`HTTP/1.1 403 Forbidden\r\nContent-Length: ${xml.length}\r\n\r\n${xml}`);
      },
    );
    const g = client();
    const r = await put(g, s.origin, Buffer.alloc(64 * 1024 * 1024, 6));
    expect(r).toMatchObject({ status: 403, errorText: xml });
    await put(g, s.origin, body(10, 6), { headersTimeoutMs: 200 }).catch(() => undefined);
    expect(s.connections()).toBe(2);
  });

  it('a cancel while the body is still going out ends the exchange at once (AbortError) and closes the connection', async () => {
    let stalled: net.Socket | undefined;
    const ac = new AbortController();
    const s = await putServer(
      () => undefined,
      (_got, sock) => {
        if (ac.signal.aborted) return;
        sock.pause(); // reads no more: the rest of the body stalls in the kernels' buffers
        stalled = sock;
        ac.abort(new Error('stop'));
      },
    );
    const e = await put(client(), s.origin, Buffer.alloc(64 * 1024 * 1024, 7), { signal: ac.signal, headersTimeoutMs: 10_000 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ name: 'AbortError' });
    // the server, reading again, finds the connection closed by the client
    const closed = new Promise((r) => stalled!.once('close', r));
    stalled!.resume();
    await closed;
  });

  it('a paced body (bwlimit) waits for the rate before each slice of at most 64 KiB, for every byte', async () => {
    const s = await putServer((_h, b, _c, sock) => sock.write(`HTTP/1.1 200 OK\r\nETag: "${sha(b)}"\r\nContent-Length: 0\r\n\r\n`));
    const asked: number[] = [];
    const data = body(300_000, 8);
    const r = await put(client(), s.origin, data, { pace: async (n) => void asked.push(n) });
    expect(r.headers.etag).toBe(`"${sha(data)}"`);
    expect(asked.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(Math.max(...asked)).toBe(64 * 1024);
  });
});
