/**
 * The project's own HTTP/1.1 exchanges for the requests that move an object's bytes: GETs of
 * object bodies (downloads), PUTs of part and object bodies (uploads), and HEADs.
 *
 * Answers: each socket reads straight into one buffer that is reused for every read of every
 * connection (node's `onread`), the response is framed by a small parser (http1-response.ts) and
 * the body handed to the caller as views of that buffer, piece by piece, with no per-read
 * allocation, no stream machinery and no copy. undici, which carries the control requests, reads a
 * paused stream, copies each byte into its parser's memory and allocates a buffer per read:
 * receiving 1 GiB from the local RadosGW cost ~2.4 CPU-s through it and ~0.5 CPU-s this way
 * (measured on the 2-core test machine). The buffer can be shared because a read and its callback
 * run to completion on the one JS thread before the next read starts.
 *
 * Request bodies: views of the caller's buffer handed to the socket slice by slice as it drains
 * (never copied), with Content-Length. Uploads come this way so that a long upload runs no llhttp
 * (undici's parser, a WebAssembly state machine): after a few hundred answers V8 compiles it once
 * more with TurboFan, ~30 MiB of compile memory, which set a long stream's peak memory
 * (scripts/wasm-budget.mjs, test/bench/stream-memory.mjs).
 *
 * Connections are opened by the client's own connector (dispatcher.ts: connect timeout, CA,
 * fingerprint pinning) and kept alive in a small pool of their own, per origin.
 */
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import type { buildConnector } from 'undici';
import { createConnector, type DispatcherSettings } from './dispatcher.js';
import { onAbort } from '../util/on-abort.js';
import { ProtocolError, ResponseParser, type ResponseHead } from './http1-response.js';

/** One read's worth: TLS records are 16 KiB, a plain socket gives what the kernel has. */
const READ_BUFFER = 256 * 1024;
/**
 * Body slices handed to the socket: the head's timeout counts a silent server, not a slow link,
 * because it restarts whenever the socket has taken a slice. A paced body (bwlimit) goes in
 * smaller slices, each only once the rate allows it: the kernel sends what it is given at once, so
 * what the socket gets is what the wire carries, give or take one slice.
 */
export const SLICE = 256 * 1024;
export const PACED_SLICE = 64 * 1024;
/** Error bodies (S3's XML) are read into memory up to this much. */
const MAX_ERROR_BODY = 64 * 1024;
const KEEP_ALIVE_MS = 10_000;
const HEAD_BREAK = /[\r\n\0]/;
const MAX_IDLE = 16;

export interface LeanRequest {
  /** GET (default); HEAD: an answer without a body (the status probe); PUT, POST: with `body` or empty */
  method?: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  /**
   * On a new connection, never a kept-alive one: for a request that must not be sent twice
   * (CreateMultipartUpload), which a stale connection would leave unknown whether the server
   * took it (the one case send() sends a request again).
   */
  fresh?: boolean;
  /** scheme://host[:port] */
  origin: string;
  /** the request target as signed: path and query, already encoded */
  path: string;
  /** lower-case names, Host included */
  headers: Record<string, string>;
  /**
   * Sent with its Content-Length, as views handed to the socket (no copy): the caller must not
   * change it until the exchange has ended.
   */
  body?: Uint8Array;
  /** bwlimit on the wire: awaited before each slice of the body is handed to the socket */
  pace?: (bytes: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
  /** no response head within this long (from the last body slice the socket took): UND_ERR_HEADERS_TIMEOUT */
  headersTimeoutMs: number;
  /** no body bytes for this long: UND_ERR_BODY_TIMEOUT */
  bodyTimeoutMs: number;
  /** each piece of a 2xx body, a view valid only during the call; a throw ends the exchange with it */
  onBody(chunk: Uint8Array): void;
  /** bytes of an answer arrived */
  onProgress?: () => void;
  /** the socket took body bytes: how many so far */
  onSent?: (bytes: number) => void;
}

export interface LeanResponse {
  status: number;
  headers: Record<string, string>;
  /** the body of a non-2xx answer (at most 64 KiB, latin1-safe UTF-8) */
  errorText: string;
}

/** An error with the code the S3 layer's network error table knows (s3/errors.ts networkError). */
function netFailure(code: string, message: string, cause?: unknown): Error {
  return Object.assign(new Error(message, cause !== undefined ? { cause } : undefined), { code });
}

interface Conn {
  socket: Socket;
  key: string;
  /** the exchange reading this connection now; null while idle */
  onBytes: ((n: number, buf: Uint8Array) => boolean | void) | null;
  onGone: ((e: Error | null) => void) | null;
  idleTimer: NodeJS.Timeout | null;
  /** it has served a request before (a stale keep-alive may fail before answering) */
  reused: boolean;
}

const CONN = Symbol('pve-s3 lean connection');

export class LeanHttp {
  private readonly idle = new Map<string, Conn[]>();
  private readonly connect: buildConnector.connector;
  private closed = false;

  constructor(settings: DispatcherSettings) {
    const buffer = new Uint8Array(READ_BUFFER);
    this.connect = createConnector(settings, {
      buffer,
      callback(this: Socket, n: number, buf: Uint8Array) {
        const c = (this as Socket & { [CONN]?: Conn })[CONN];
        return c?.onBytes ? c.onBytes(n, buf) : true;
      },
    });
  }

  close(): void {
    this.closed = true;
    for (const list of this.idle.values()) for (const c of list) c.socket.destroy();
    this.idle.clear();
  }

  /**
   * Sends one request and reads its whole response. A connection from the pool that fails before
   * any byte of an answer (closed while idle: the server's keep-alive ran out) is replaced by a
   * new one, and the request sent again — so a request that is not safe to send twice comes
   * `fresh`, on a new connection, where that cannot happen; every other failure is the caller's
   * to retry.
   */
  async send(r: LeanRequest): Promise<LeanResponse> {
    if (this.closed) throw netFailure('UND_ERR_CLOSED', 'the S3 client was closed');
    // the head is written as text: a CR or LF in a name or value would start a header (or a
    // request) of its own, which undici refuses too (the value is not named: it may be a key)
    for (const [k, v] of Object.entries(r.headers)) {
      if (HEAD_BREAK.test(k) || HEAD_BREAK.test(v)) throw netFailure('UND_ERR_INVALID_ARG', `the ${JSON.stringify(k)} header holds a CR, LF or NUL, which cannot be sent in a header`);
    }
    for (;;) {
      const c = await this.acquire(r.origin, r.signal, r.fresh === true);
      try {
        return await this.exchange(c, r);
      } catch (e) {
        if ((e as { stale?: boolean }).stale !== true) throw e;
      }
    }
  }

  private async acquire(origin: string, signal?: AbortSignal, fresh = false): Promise<Conn> {
    signal?.throwIfAborted();
    const list = fresh ? undefined : this.idle.get(origin);
    while (list && list.length > 0) {
      const c = list.pop()!;
      if (c.idleTimer) clearTimeout(c.idleTimer);
      c.idleTimer = null;
      if (!c.socket.destroyed && c.socket.readyState === 'open') return c;
      c.socket.destroy();
    }
    const u = new URL(origin);
    const port = u.port || (u.protocol === 'https:' ? '443' : '80');
    const hostname = u.hostname.replace(/^\[|\]$/g, '');
    const socket = await new Promise<Socket>((resolve, reject) => {
      const stopWaiting = onAbort(signal, () => reject(signal!.reason));
      this.connect(
        { hostname, host: u.host, protocol: u.protocol, port, ...(isIP(hostname) === 0 ? { servername: hostname } : {}) },
        (err, s) => {
          stopWaiting();
          if (err || !s) return reject(err ?? new Error('no socket'));
          if (signal?.aborted) {
            s.destroy();
            return reject(signal.reason);
          }
          resolve(s as Socket);
        },
      );
    });
    const c: Conn = { socket, key: origin, onBytes: null, onGone: null, idleTimer: null, reused: false };
    (socket as Socket & { [CONN]?: Conn })[CONN] = c;
    socket.setNoDelay(true);
    socket.on('error', (e) => c.onGone?.(e));
    socket.on('end', () => c.onGone?.(null));
    socket.on('close', () => {
      c.onGone?.(null);
      this.forget(c);
    });
    return c;
  }

  private release(c: Conn): void {
    c.onBytes = null;
    c.onGone = null;
    c.reused = true;
    const list = this.idle.get(c.key) ?? [];
    if (this.closed || list.length >= MAX_IDLE || c.socket.destroyed) return void c.socket.destroy();
    this.idle.set(c.key, list);
    list.push(c);
    c.idleTimer = setTimeout(() => c.socket.destroy(), KEEP_ALIVE_MS);
    c.idleTimer.unref();
    c.socket.unref();
  }

  private forget(c: Conn): void {
    if (c.idleTimer) clearTimeout(c.idleTimer);
    const list = this.idle.get(c.key);
    const i = list ? list.indexOf(c) : -1;
    if (i >= 0) list!.splice(i, 1);
  }

  private exchange(c: Conn, r: LeanRequest): Promise<LeanResponse> {
    const { socket } = c;
    socket.ref();
    return new Promise<LeanResponse>((resolve, reject) => {
      let head: ResponseHead | null = null;
      let errorText = '';
      let settled = false;
      let timer: NodeJS.Timeout | null = null;
      // the whole body went to the socket: until then the connection cannot carry another request
      let sent = r.body === undefined;
      // the body's writer waits for 'drain' or the end of the exchange, whichever comes first
      let wake: (() => void) | null = null;
      const parser = new ResponseParser(
        {
          head: (h) => {
            head = h;
            arm(r.bodyTimeoutMs, 'UND_ERR_BODY_TIMEOUT', 'the server stopped sending the response body');
          },
          body: (chunk) => {
            if (head!.status >= 200 && head!.status < 300) return r.onBody(chunk);
            if (errorText.length < MAX_ERROR_BODY) errorText += Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, MAX_ERROR_BODY - errorText.length)).toString('utf8');
          },
          end: () => undefined,
        },
        { bodiless: r.method === 'HEAD' },
      );

      const finish = (e: Error | null): void => {
        if (settled) return;
        settled = true;
        if (timer) clearTimeout(timer);
        wake?.();
        stopWaiting();
        if (e) {
          c.onBytes = null;
          c.onGone = null;
          socket.destroy();
          return reject(e);
        }
        const h = head!;
        // an answer before the whole body went out (an early 4xx): the rest was never sent
        if (h.keepAlive && parser.extra === 0 && sent) this.release(c);
        else socket.destroy();
        resolve({ status: h.status, headers: h.headers, errorText });
      };
      const arm = (ms: number, code: string, what: string): void => {
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => finish(netFailure(code, `${what} for ${ms} ms`)), ms);
      };
      const cancelled = (): void => finish(Object.assign(new Error('the request was cancelled', { cause: r.signal?.reason }), { name: 'AbortError' }));
      const stopWaiting = onAbort(r.signal, cancelled);
      if (r.signal?.aborted) return cancelled();

      c.onBytes = (n, buf) => {
        if (settled) return false;
        r.onProgress?.();
        try {
          parser.feed(buf, 0, n);
        } catch (e) {
          finish(e as Error);
          return false;
        }
        if (parser.done) {
          finish(null);
          return true;
        }
        if (head) timer?.refresh();
        return true;
      };
      c.onGone = (err) => {
        if (settled) return;
        try {
          parser.eof();
        } catch (e) {
          const stale = c.reused && !parser.started;
          const code = err ? undefined : stale ? 'UND_ERR_SOCKET' : 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH';
          const out = err ?? netFailure(code!, stale ? 'connection closed by the server' : (e as ProtocolError).message);
          return finish(Object.assign(out, { stale }));
        }
        finish(null);
      };

      const noHead = (): void => arm(r.headersTimeoutMs, 'UND_ERR_HEADERS_TIMEOUT', 'no response head');
      // the head's timeout counts the server's silence from the last slice the socket took
      const stillSending = (bytes: number): void => {
        r.onSent?.(bytes);
        if (!head) timer?.refresh();
      };
      noHead();
      let text = `${r.method ?? 'GET'} ${r.path} HTTP/1.1\r\n`;
      for (const [k, v] of Object.entries(r.headers)) text += `${k}: ${v}\r\n`;
      // a PUT or POST says its length even when it has no body (S3 may answer 411 otherwise)
      if (r.body || r.method === 'PUT' || r.method === 'POST') text += `content-length: ${r.body?.byteLength ?? 0}\r\n`;
      socket.write(text + '\r\n');
      if (!r.body) return;

      const body = r.body;
      const slice = r.pace ? PACED_SLICE : SLICE;
      const drained = (): Promise<void> =>
        new Promise<void>((res) => {
          const done = (): void => {
            wake = null;
            socket.off('drain', done);
            res();
          };
          wake = done;
          socket.on('drain', done);
        });
      (async () => {
        for (let o = 0; o < body.byteLength && !settled; o += slice) {
          const piece = body.subarray(o, Math.min(o + slice, body.byteLength));
          if (r.pace) {
            // waiting for the rate is not the server's silence
            if (timer && !head) clearTimeout(timer);
            await r.pace(piece.length, r.signal);
            if (settled) return;
            if (!head) noHead();
          }
          if (!socket.write(piece)) await drained();
          stillSending(o + piece.length);
        }
        sent = true;
      })().catch((e: unknown) => finish(e as Error));
    });
  }
}

export { ProtocolError };
