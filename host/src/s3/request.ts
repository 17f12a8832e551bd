/**
 * One S3 request: address it, sign it (the WASM signer's wirePath/wireQuery go on the wire
 * unchanged, so what was signed is what is sent), send it through the pool, turn failures into
 * S3Errors, and retry what is safe to retry.
 */
import type { Dispatcher } from 'undici';
import { Sha256 } from '../wasm/digests.js';
import { toHex } from '../wasm/encoding.js';
import { SigV4Signer } from '../wasm/signer.js';
import { ConfigError } from '../util/errors.js';
import { nullLogger, type Logger } from '../util/log.js';
import { createConnector, createDispatcher } from './dispatcher.js';
import { parseEndpoint, target, usePathStyle, type Endpoint, type Target } from './endpoint.js';
import { LeanHttp, PACED_SLICE, SLICE } from './lean-http.js';
import { detectProvider, PROVIDER_IDS, PROVIDERS, type Provider } from './providers.js';
import { S3Error, networkError, serverError, stalledError, type ErrorContext } from './errors.js';
import { DEFAULT_RETRY, backoffDelay, withRetry, type RetryPolicy } from './retry.js';
import type { S3Settings } from './settings.js';
import { BUFFERED_BYTES, StallClock } from './stall.js';
import { readErrorBody } from './flat-xml.js';
import type { ErrorBody } from './xml.js';

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';

export interface S3Request {
  /** S3 operation name, for messages and logs */
  operation: string;
  method: Method;
  /** object key; undefined for bucket-level requests */
  key?: string;
  /** for messages only, a bucket-level request's object (DeleteObjects: its first key) */
  subject?: string;
  query?: Array<[string, string]>;
  /** lower-case names */
  headers?: Record<string, string>;
  /** always replayable: a retry sends the same bytes */
  body?: Uint8Array;
  /** hex SHA-256 of body when the caller already has it */
  sha256Hex?: string;
  /**
   * Safe to send twice. Requests that are not (CreateMultipartUpload) are retried only when the
   * server cannot have acted on them: throttled, connection refused or timed out while connecting.
   */
  idempotent: boolean;
  signal?: AbortSignal;
  /**
   * The server works before it answers (CompleteMultipartUpload of many parts, CopyObject): wait
   * at least SLOW_ANSWER_MS for the response headers instead of requestTimeoutMs.
   */
  slowAnswer?: boolean;
  /** called before each attempt is sent */
  onAttempt?: () => void;
  /** bwlimit on the wire: awaited before each slice of the body is handed to the socket */
  pace?: (bytes: number, signal?: AbortSignal) => Promise<void>;
  /** statuses other than 2xx that are answers, not errors (e.g. 404 on a probe) */
  okStatuses?: number[];
  /** the most body bytes request() reads (default MAX_RESPONSE_BYTES) */
  maxBody?: number;
}

/**
 * What an answer read whole may be (request()): an S3 listing page of 1,000 keys of 1,024 bytes,
 * URL-encoded, is under 4 MiB; anything beyond this is not an S3 answer, and reading it would let
 * the endpoint decide how much memory the host takes (issue 10 §8).
 */
export const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
/** What an error body may be: S3's <Error> documents are a few hundred bytes. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

export interface S3Response {
  status: number;
  headers: Record<string, string>;
}
export interface BufferedResponse extends S3Response {
  body: Uint8Array;
}
export interface StreamResponse extends S3Response {
  body: AsyncIterable<Uint8Array>;
}

export interface TransportOptions {
  clock?: () => Date;
  logger?: Logger;
  dispatcher?: Dispatcher;
  retry?: Partial<RetryPolicy>;
  /** for tests: replaces the random source of backoff jitter */
  random?: () => number;
  /**
   * One line per retry for whoever watches the operation (stderr: a backup's task log):
   * operation, key, part, the cause's status and code, attempt n of m, the delay. Never the URL
   * or a header. Without it retries are in the log file only.
   */
  notice?: (line: string) => void;
}

/** Retry lines a client writes through `notice`; past this the rest go to the log file only. */
export const MAX_RETRY_NOTICES = 100;

/** Header names whose values never reach a log line. */
const SECRET_HEADERS = new Set([
  'authorization',
  'x-amz-security-token',
  'x-amz-server-side-encryption-customer-key',
  'x-amz-copy-source-server-side-encryption-customer-key',
]);

export function redactHeaders(h: Record<string, string>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) o[k] = SECRET_HEADERS.has(k.toLowerCase()) ? '<redacted>' : v;
  return o;
}

export function redactQuery(q: string): string {
  return q.replace(/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&]*/gi, '$1<redacted>');
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) o[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return o;
}

/** Statuses that mean the server did not act on the request. */
const NOT_ACTED = new Set(['SlowDown', 'TooManyRequests', 'Throttling', 'ConnectTimeout', 'ConnectionRefused', 'RequestTimeTooSkewed']);

export class S3Transport {
  readonly endpoint: Endpoint;
  readonly bucket: string;
  readonly pathStyle: boolean;
  readonly settings: S3Settings;
  /** the provider whose rules apply (settings.provider, else detected from the endpoint host) */
  readonly provider: Provider;
  readonly logger: Logger;
  /** server time minus local time, learned from RequestTimeTooSkewed answers */
  clockOffsetMs = 0;
  private readonly signer: SigV4Signer;
  /** made on the first request that needs it: a status's one HEAD goes the lean way and never
   *  loads undici's pool, client and HTTP parser (bench:startup) */
  private dispatcher: Promise<Dispatcher> | undefined;
  private readonly connect: ReturnType<typeof createConnector> | undefined;
  private readonly ownsDispatcher: boolean;
  private readonly clock: () => Date;
  private readonly policy: RetryPolicy;
  private readonly random?: () => number;
  private readonly notice?: (line: string) => void;
  private notices = 0;
  /** the lean path's connections (lean-http.ts), made on the first request that takes it */
  private lean: LeanHttp | undefined;
  /** the endpoint's silence across every request and retry (stall_timeout, stall.ts) */
  private readonly stall: StallClock;
  private readonly moved = (): void => this.stall.progress();
  private readonly sent = (bytes: number): void => {
    if (bytes > BUFFERED_BYTES) this.stall.progress();
  };

  constructor(s: S3Settings, o: TransportOptions = {}) {
    checkSettings(s);
    this.settings = s;
    this.endpoint = parseEndpoint(s.endpoint);
    this.bucket = s.bucket;
    this.provider = PROVIDERS[s.provider ?? detectProvider(this.endpoint.hostname)];
    this.pathStyle = usePathStyle(this.endpoint, s.bucket, s.forcePathStyle, this.provider.virtualHosted);
    this.signer = new SigV4Signer({ credentials: s.credentials, region: s.region, service: 's3' });
    this.logger = o.logger ?? nullLogger;
    this.clock = o.clock ?? (() => new Date());
    this.policy = { ...DEFAULT_RETRY, ...(s.maxRetries !== undefined ? { maxRetries: s.maxRetries } : {}), ...o.retry };
    this.random = o.random;
    this.notice = o.notice;
    this.stall = new StallClock(s.stallTimeoutMs ?? s.requestTimeoutMs);
    if (o.dispatcher) {
      this.dispatcher = Promise.resolve(o.dispatcher);
      this.ownsDispatcher = false;
    } else {
      // the connector now, so that an unreadable CA file is refused when the client is made
      this.connect = createConnector({ connectTimeoutMs: s.connectTimeoutMs, tls: s.tls });
      this.ownsDispatcher = true;
    }
  }

  /** The endpoint has been silent for the stall limit: a request now gets only its last try (stall.ts). */
  get silent(): boolean {
    return this.stall.stalled();
  }

  context(r: { operation: string; key?: string; subject?: string }): ErrorContext {
    return { endpoint: this.endpoint.origin, bucket: this.bucket, key: r.key ?? r.subject, operation: r.operation };
  }

  /**
   * Sends r (with retries) and reads the whole response body, through the lean path
   * (lean-http.ts), or through undici when the caller gave its own dispatcher. Only a body
   * handed on as a stream (stream()) still needs undici: a command that reads no object that way
   * never loads its Agent, client and HTTP parser (an upload's ListObjects, multipart requests
   * and part PUTs; undici's first request cost a fresh process ~60 ms of CPU and ~1,200 page
   * faults).
   */
  async request(req: S3Request): Promise<BufferedResponse> {
    const r = withPayloadHash(req);
    if (this.ownsDispatcher) return this.leanWhole(r);
    return this.retrying(r, async () => {
      const res = await this.once(r);
      const body = await this.readWhole(res, r);
      return this.unlessError(r, { status: res.statusCode, headers: res.headersFlat, body });
    });
  }

  /**
   * CompleteMultipartUpload and copies report late failures as 200 + <Error>: an error, thrown
   * inside the retry loop so that a retryable one (InternalError, SlowDown) is retried.
   */
  private async unlessError(r: S3Request, res: BufferedResponse): Promise<BufferedResponse> {
    const { body } = res;
    if (body.byteLength > 0 && looksLikeError(body)) {
      const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
      const error = await readErrorBody(text);
      if (error) throw this.errorFromResponse(r, res.status, res.headers, error);
    }
    return res;
  }

  private tooLarge(r: S3Request, cap: number): S3Error {
    const what = r.key !== undefined ? ` for '${r.key}'` : '';
    return new S3Error(
      'ResponseTooLarge',
      `${r.operation} answer${what} from ${this.endpoint.origin} is larger than ${cap} bytes, more than any S3 answer to it: stopped reading it (is endpoint an S3 server?)`,
      { key: r.key, retryable: false },
    );
  }

  /** The whole body, refused past r.maxBody: by its Content-Length before reading, else when
   *  the bytes read pass it (the rest is never read: the connection is dropped). */
  private async readWhole(res: { headersFlat: Record<string, string>; body: Dispatcher.ResponseData['body'] }, r: S3Request): Promise<Uint8Array> {
    const cap = r.maxBody ?? MAX_RESPONSE_BYTES;
    const tooLarge = (): S3Error => {
      dropBody(res.body);
      return this.tooLarge(r, cap);
    };
    // a HEAD's Content-Length is the object's, not a body's
    const declared = r.method === 'HEAD' ? 0 : Number(res.headersFlat['content-length']);
    if (declared > cap) throw tooLarge();
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res.body) {
        this.moved();
        n += (c as Buffer).length;
        if (n > cap) throw tooLarge();
        chunks.push(c as Buffer);
      }
    } catch (e) {
      if (e instanceof S3Error) throw e;
      throw this.netError(e, r);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
  }

  /** Sends r (with retries until the response headers arrive) and hands over the body stream. */
  async stream(req: S3Request): Promise<StreamResponse> {
    const r = withPayloadHash(req);
    // the clock stops at the head: a body handed on may never be read (its silence is still
    // bounded by request_timeout, and the caller's retry of it by the clock)
    return this.retrying(r, async () => {
      const res = await this.once(r);
      return { status: res.statusCode, headers: res.headersFlat, body: this.guard(res.body, r) };
    });
  }

  async close(): Promise<void> {
    this.lean?.close();
    if (this.ownsDispatcher) await (await this.dispatcher?.catch(() => undefined))?.close();
  }

  private pool(): Promise<Dispatcher> {
    return (this.dispatcher ??= createDispatcher({ connectTimeoutMs: this.settings.connectTimeoutMs, tls: this.settings.tls }, this.connect));
  }

  private leanPath(): LeanHttp {
    return (this.lean ??= new LeanHttp({ connectTimeoutMs: this.settings.connectTimeoutMs, tls: this.settings.tls }));
  }

  /**
   * A request through the lean path (lean-http.ts). A HEAD has nothing to read but the head, and
   * the status probe (one HeadBucket per pvestatd poll) never loads undici's pool, client and
   * HTTP parser. A PUT's body goes to the socket as views of the caller's bytes, and its answer
   * (empty, or an error document) is parsed without llhttp: a long upload of thousands of parts
   * never runs it, so V8 never tiers it up (~30 MiB of compile memory, scripts/wasm-budget.mjs).
   * A request that is not idempotent goes on a new connection (LeanRequest.fresh).
   */
  private leanWhole(r: S3Request): Promise<BufferedResponse> {
    const lean = this.leanPath();
    const cap = r.maxBody ?? MAX_RESPONSE_BYTES;
    return this.retrying(r, async () => {
      const p = this.prepare(r);
      const pieces: Buffer[] = [];
      let n = 0;
      let res;
      try {
        res = await lean.send({
          method: r.method,
          ...(r.idempotent ? {} : { fresh: true }),
          origin: p.t.origin,
          path: p.path,
          headers: p.headers,
          ...(r.body ? { body: r.body } : {}),
          ...(r.pace ? { pace: r.pace } : {}),
          signal: r.signal,
          ...this.attemptTimeouts(r),
          onProgress: this.moved,
          onSent: this.sent,
          // a PUT's 2xx answer is empty or a small document: copied out of the shared read buffer
          onBody: (c) => {
            n += c.byteLength;
            if (n > cap) throw this.tooLarge(r, cap);
            pieces.push(Buffer.from(c));
          },
        });
      } catch (e) {
        throw this.netError(e, r);
      }
      this.logResponse(r, res.status, res.headers, p.started);
      const ok = (res.status >= 200 && res.status < 300) || r.okStatuses?.includes(res.status);
      if (!ok) {
        throw this.errorFromResponse(r, res.status, res.headers, await readErrorBody(res.errorText), p.date);
      }
      const body = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, n);
      return this.unlessError(r, { status: res.status, headers: res.headers, body });
    });
  }

  /** `may()`: whether a retry is still possible at all (false once a body has been handed on) */
  private retrying<T>(r: S3Request, fn: () => Promise<T>, may: () => boolean = () => true): Promise<T> {
    let skewFixes = 0;
    // the endpoint has been silent for the whole limit already (this is the abort after a
    // stalled upload, say): one last, short attempt (attemptTimeouts), no retries
    const lastTry = this.stall.stalled(this.stallLimit(r));
    this.stall.enter();
    return withRetry(
      lastTry ? { ...this.policy, maxRetries: 0 } : this.policy,
      {
        signal: r.signal,
        random: this.random,
        decide: (e, attempt) => {
          if (!(e instanceof S3Error) || !may()) return false;
          if (e.code === 'RequestTimeTooSkewed' && e.serverTime && skewFixes < 2) {
            skewFixes++;
            this.clockOffsetMs = e.serverTime.getTime() - this.clock().getTime();
            this.logger.warn('clock skew corrected', { endpoint: this.endpoint.origin, offsetMs: this.clockOffsetMs });
            return { delayMs: 0 };
          }
          if (!e.retryable) return false;
          if (!r.idempotent && !NOT_ACTED.has(e.code) && e.status !== 503 && e.status !== 429) return false;
          // a server that says when to come back is believed, up to the backoff cap
          if (e.retryAfterMs !== undefined) {
            return { delayMs: Math.min(this.policy.maxDelayMs, Math.max(e.retryAfterMs, backoffDelay(this.policy, attempt, this.random))) };
          }
          return {};
        },
        onRetry: (e, attempt, delayMs) => this.retried(r, e as S3Error, attempt, this.policy.maxRetries, delayMs),
      },
      async () => {
        try {
          return await fn();
        } catch (e) {
          throw this.unlessStalled(e, r);
        }
      },
    ).finally(() => this.stall.leave());
  }

  /**
   * A retry, said once: in the log file (INFO) and, through `notice`, to whoever watches (a
   * backup's task log shows a struggling gateway before the job fails, not only after).
   * `attempt`: the 0-based attempt that failed, of 1 + maxRetries.
   */
  private retried(r: S3Request, e: S3Error, attempt: number, maxRetries: number, delayMs: number): void {
    const part = r.query?.find(([k]) => k === 'partNumber')?.[1];
    const fields = { operation: r.operation, key: r.key ?? r.subject, part, attempt: attempt + 2, of: maxRetries + 1, delayMs, code: e.code, status: e.status };
    this.logger.info('retrying', fields);
    if (!this.notice || this.notices > MAX_RETRY_NOTICES) return;
    if (++this.notices > MAX_RETRY_NOTICES) {
      this.notice(`further retries of requests to ${this.endpoint.origin} are in the log file only (${MAX_RETRY_NOTICES} shown)`);
      return;
    }
    this.notice(retryLine(this.endpoint.origin, { operation: r.operation, key: r.key ?? r.subject }, part, e, attempt + 2, maxRetries + 1, delayMs));
  }

  /** A request stalled out: the limit was reached without a byte moving. slowAnswer requests
   *  wait for the server's work, at least SLOW_ANSWER_MS. */
  private stallLimit(r: S3Request): number {
    return r.slowAnswer ? Math.max(this.stall.limitMs, SLOW_ANSWER_MS) : this.stall.limitMs;
  }

  /** One attempt's timeouts: request_timeout (or the slow answer's), within the stall limit. */
  private attemptTimeouts(r: S3Request): { headersTimeoutMs: number; bodyTimeoutMs: number } {
    const limit = this.stallLimit(r);
    const head = r.slowAnswer ? Math.max(SLOW_ANSWER_MS, this.settings.requestTimeoutMs) : this.settings.requestTimeoutMs;
    return { headersTimeoutMs: this.stall.attemptMs(head, limit), bodyTimeoutMs: this.stall.attemptMs(this.settings.requestTimeoutMs, limit) };
  }

  /**
   * An attempt that waited in silence (request or connect timeout) once the endpoint's silence
   * reached the limit ends the operation: Stalled, never retried, here or by the callers'
   * part and range retries. Anything else stays as it was.
   */
  private unlessStalled(e: unknown, r: S3Request): unknown {
    if (!(e instanceof S3Error) || (e.code !== 'RequestTimeout' && e.code !== 'ConnectTimeout')) return e;
    const limit = this.stallLimit(r);
    if (!this.stall.stalled(limit)) return e;
    const reason = limit === this.stall.limitMs ? this.settings.stallReason : undefined;
    return stalledError(e, this.context(r), { silentMs: this.stall.silentMs(), limitMs: limit, ...(reason !== undefined ? { reason } : {}) });
  }

  /**
   * Sends a GET and hands its body to `onData` as it arrives, through the lean path
   * (lean-http.ts): each piece is a view of a reused buffer, valid only during the call. Retried
   * like stream() until the body starts; once a byte went to `onData` a failure is the caller's
   * (nothing is replayed into it). A throw from `onData` ends the request with that error.
   */
  async receive(req: S3Request, onData: (chunk: Uint8Array) => void): Promise<S3Response> {
    const r = withPayloadHash(req);
    let delivered = false;
    let callerError: { e: unknown } | null = null;
    const onBody = (chunk: Uint8Array): void => {
      delivered = true;
      try {
        onData(chunk);
      } catch (e) {
        callerError = { e };
        throw e;
      }
    };
    const lean = this.leanPath();
    return this.retrying(
      r,
      async () => {
        const p = this.prepare(r);
        let res;
        try {
          res = await lean.send({
            origin: p.t.origin,
            path: p.path,
            headers: p.headers,
            signal: r.signal,
            ...this.attemptTimeouts(r),
            onProgress: this.moved,
            onBody,
          });
        } catch (e) {
          if (callerError) throw callerError.e;
          throw this.netError(e, r);
        }
        this.logResponse(r, res.status, res.headers, p.started);
        if (res.status < 200 || res.status >= 300) {
          throw this.errorFromResponse(r, res.status, res.headers, await readErrorBody(res.errorText), p.date);
        }
        return { status: res.status, headers: res.headers };
      },
      () => !delivered,
    );
  }

  /** Addresses and signs r (the signer's wirePath/wireQuery go on the wire unchanged), and logs it. */
  private prepare(r: S3Request): { t: Target; path: string; headers: Record<string, string>; date: Date; started: number } {
    r.onAttempt?.();
    const t = target(this.endpoint, this.bucket, r.key, this.pathStyle);
    const date = new Date(this.clock().getTime() + this.clockOffsetMs);
    const headers: Record<string, string> = { ...r.headers, host: t.host };
    const payloadHash = r.body ? r.sha256Hex! : EMPTY_SHA256;
    const signed = this.signer.sign({ method: r.method, path: t.path, query: r.query ?? [], headers, payloadHash, date });
    const path = signed.wireQuery ? `${signed.wirePath}?${signed.wireQuery}` : signed.wirePath;
    if (this.logger.debugEnabled) {
      this.logger.debug('s3 request', {
        operation: r.operation,
        method: r.method,
        url: t.origin + redactQuery(path),
        headers: redactHeaders(signed.headers),
        bytes: r.body?.byteLength ?? 0,
      });
    }
    // Date, not performance: the global performance loads perf_hooks (10 modules) on every status
    return { t, path, headers: signed.headers, date, started: Date.now() };
  }

  private logResponse(r: S3Request, status: number, headers: Record<string, string>, started: number): void {
    if (!this.logger.debugEnabled) return;
    this.logger.debug('s3 response', { operation: r.operation, status, ms: Date.now() - started, requestId: headers['x-amz-request-id'] });
  }

  private async once(r: S3Request) {
    const { t, path, headers: signedHeaders, date, started } = this.prepare(r);
    let res: Dispatcher.ResponseData;
    try {
      res = await (await this.pool()).request({
        origin: t.origin,
        path,
        method: r.method,
        headers: wireHeaders(signedHeaders, r.body, r.pace !== undefined),
        // undici takes iterables (documented), its type declarations lag behind
        body: wireBody(r.body, r.method, r.pace, r.signal, this.sent) as Uint8Array | undefined,
        signal: r.signal,
        ...undiciTimeouts(this.attemptTimeouts(r)),
        // undici closes the connection after every HEAD (for servers that wrongly send a body);
        // S3 servers do not, and a handshake per HEAD would halve the request rate
        reset: false,
      });
    } catch (e) {
      throw this.netError(e, r);
    }
    this.moved();
    const headersFlat = flatHeaders(res.headers);
    this.logResponse(r, res.statusCode, headersFlat, started);
    const ok = (res.statusCode >= 200 && res.statusCode < 300) || r.okStatuses?.includes(res.statusCode);
    if (!ok) {
      let text = '';
      try {
        text = r.method === 'HEAD' ? '' : await errorText(res.body);
      } catch {
        // the status alone still makes an error
      } finally {
        if (r.method === 'HEAD') await res.body.dump().catch(() => undefined);
      }
      throw this.errorFromResponse(r, res.statusCode, headersFlat, await readErrorBody(text), date);
    }
    return { statusCode: res.statusCode, headersFlat, body: res.body };
  }

  errorFromResponse(
    r: { operation: string; key?: string; method?: string },
    status: number,
    headers: Record<string, string>,
    parsed: ErrorBody | undefined,
    signedAt?: Date,
  ): S3Error {
    const ctx = this.context(r);
    const requestId = parsed?.requestId ?? headers['x-amz-request-id'];
    const serverTime = serverTimeOf(headers, parsed?.fields);
    const retryAfterMs = retryAfterOf(headers);
    if (parsed) return serverError(parsed.code, status, parsed.message, requestId, ctx, serverTime, retryAfterMs);
    // HEAD answers and some proxies carry no XML: the status is all there is. A bodiless 403 from
    // a server whose clock is far from ours is the skew, not the keys (S3 allows 15 minutes).
    let code = codeForStatus(status, r.key !== undefined, headers);
    if (status === 403 && signedAt && serverTime && Math.abs(serverTime.getTime() - signedAt.getTime()) > MAX_SKEW_MS) {
      code = 'RequestTimeTooSkewed';
    }
    return serverError(code, status, code === 'PermanentRedirect' ? redirectHint(headers) : undefined, requestId, ctx, serverTime, retryAfterMs);
  }

  private netError(e: unknown, r: S3Request): S3Error {
    if (e instanceof S3Error) return e;
    // undici rejects with the signal's reason, which can be anything the caller chose
    if (r.signal?.aborted) {
      return new S3Error('Aborted', `${r.operation}${r.key !== undefined ? ` of '${r.key}'` : ''} was cancelled`, { key: r.key, cause: e });
    }
    return networkError(e, this.context(r), { connectMs: this.settings.connectTimeoutMs, requestMs: this.settings.requestTimeoutMs });
  }

  private async *guard(body: Dispatcher.ResponseData['body'], r: S3Request): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of body) {
        this.moved();
        yield chunk as Uint8Array;
      }
    } catch (e) {
      throw this.netError(e, r);
    } finally {
      if (!body.destroyed) body.destroy();
    }
  }
}

/**
 * "retrying UploadPart of 'dump/x.vma.zst' part 3 at http://gw:7480 after 503 SlowDown: attempt
 * 2 of 6 in 0.4 s". The cause by status and code only: a server's message or a network error's
 * text may quote what was sent.
 */
export function retryLine(origin: string, r: Pick<S3Request, 'operation' | 'key'>, part: string | undefined, e: Pick<S3Error, 'code' | 'status'>, attempt: number, of: number, delayMs: number): string {
  const what = `${r.operation}${r.key !== undefined ? ` of '${r.key}'` : ''}${part !== undefined ? ` part ${part}` : ''}`;
  const cause = e.status !== undefined ? `${e.status} ${e.code}` : e.code;
  return `retrying ${what} at ${origin} after ${cause}: attempt ${attempt} of ${of} in ${(delayMs / 1000).toFixed(1)} s`;
}

/*
 * undici starts the response timeout as soon as a Buffer body is handed to the socket, however
 * long the bytes then take to leave: on a slow link a large part would time out while still
 * uploading. Fed in slices, undici restarts that timer whenever the socket drains. Slices and
 * paced slices are the lean path's (lean-http.ts), where the same reasons are written down.
 */
function wireBody(
  body: Uint8Array | undefined,
  method: Method,
  pace?: S3Request['pace'],
  signal?: AbortSignal,
  sent?: (bytes: number) => void,
): Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array> | undefined {
  if (!body) return method === 'PUT' || method === 'POST' ? new Uint8Array(0) : undefined;
  // undici asks for the next slice once the socket took the last one
  if (pace) {
    return (async function* paced() {
      for (let o = 0; o < body.byteLength; o += PACED_SLICE) {
        const slice = body.subarray(o, Math.min(o + PACED_SLICE, body.byteLength));
        await pace(slice.length, signal);
        yield slice;
        sent?.(o + slice.length);
      }
    })();
  }
  if (body.byteLength <= SLICE) return body;
  return (function* slices() {
    for (let o = 0; o < body.byteLength; o += SLICE) {
      const end = Math.min(o + SLICE, body.byteLength);
      yield body.subarray(o, end);
      sent?.(end);
    }
  })();
}

function undiciTimeouts(t: { headersTimeoutMs: number; bodyTimeoutMs: number }): { headersTimeout: number; bodyTimeout: number } {
  return { headersTimeout: t.headersTimeoutMs, bodyTimeout: t.bodyTimeoutMs };
}

function wireHeaders(signed: Record<string, string>, body: Uint8Array | undefined, paced = false): Record<string, string> {
  // sliced bodies need their length said up front (S3 refuses chunked uploads without aws-chunked)
  return body && (paced || body.byteLength > SLICE) ? { ...signed, 'content-length': String(body.byteLength) } : signed;
}

/** What config resolution should already have refused; checked again so that a bad value fails here, by name. */
function checkSettings(s: S3Settings): void {
  for (const k of ['connectTimeoutMs', 'requestTimeoutMs'] as const) {
    if (!Number.isInteger(s[k]) || s[k] <= 0) throw new ConfigError(k, s[k], 'must be a positive integer (milliseconds)');
  }
  if (s.stallTimeoutMs !== undefined && (!Number.isInteger(s.stallTimeoutMs) || s.stallTimeoutMs <= 0)) {
    throw new ConfigError('stallTimeoutMs', s.stallTimeoutMs, 'must be a positive integer (milliseconds)');
  }
  if (s.maxRetries !== undefined && (!Number.isInteger(s.maxRetries) || s.maxRetries < 0 || s.maxRetries > 20)) {
    throw new ConfigError('maxRetries', s.maxRetries, 'must be an integer 0..20');
  }
  if (!s.bucket) throw new ConfigError('bucket', s.bucket, 'must not be empty');
  if (!s.region) throw new ConfigError('region', s.region, 'must not be empty (e.g. us-east-1)');
  if (s.checksumAlgorithm !== undefined && s.checksumAlgorithm !== 'CRC32C' && s.checksumAlgorithm !== 'CRC64NVME') {
    throw new ConfigError('checksum_algorithm', s.checksumAlgorithm, 'must be CRC32C or CRC64NVME');
  }
  if (s.provider !== undefined && !(PROVIDER_IDS as readonly string[]).includes(s.provider)) {
    throw new ConfigError('provider', s.provider, `must be one of ${PROVIDER_IDS.join(', ')}`);
  }
}

const SLOW_ANSWER_MS = 300_000;

const ERROR_TAG = Buffer.from('<Error>');
const MAX_SKEW_MS = 14 * 60_000;

/**
 * An error body, read no further than an error body can go: a longer one is cut there (and no
 * longer parses, so the status makes the error) and its connection dropped, never drained.
 */
async function errorText(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    chunks.push(c as Buffer);
    n += (c as Buffer).length;
    if (n >= MAX_ERROR_BODY_BYTES) {
      dropBody(body);
      break;
    }
  }
  return Buffer.concat(chunks, n).subarray(0, MAX_ERROR_BODY_BYTES).toString('utf8');
}

/** Stops reading a body for good: its connection is closed rather than drained (the abort
 *  that undici reports for it is expected, not an error of anyone's). */
function dropBody(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** The body's hash is computed once, before any attempt: a retry signs the same bytes again. */
function withPayloadHash(r: S3Request): S3Request {
  if (!r.body || r.sha256Hex) return r;
  return { ...r, sha256Hex: toHex(Sha256.hash(r.body)) };
}

function looksLikeError(body: Uint8Array): boolean {
  const head = Buffer.from(body.buffer, body.byteOffset, Math.min(body.byteLength, 512));
  return head.includes(ERROR_TAG);
}

/** Retry-After in seconds or as an HTTP date. */
function retryAfterOf(headers: Record<string, string>): number | undefined {
  const v = headers['retry-after']?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const d = Date.parse(v);
  return Number.isNaN(d) ? undefined : Math.max(0, d - Date.now());
}

function serverTimeOf(headers: Record<string, string>, fields?: Record<string, string>): Date | undefined {
  const candidates = [fields?.ServerTime, headers['date']];
  for (const c of candidates) {
    if (!c) continue;
    const d = new Date(c);
    if (!Number.isNaN(d.getTime())) return d;
  }
  return undefined;
}

function codeForStatus(status: number, hasKey: boolean, headers: Record<string, string>): string {
  switch (status) {
    case 301:
      return 'PermanentRedirect';
    case 307:
      return 'TemporaryRedirect';
    case 400:
      return 'BadRequest';
    case 403:
      return 'Forbidden';
    case 404:
      return hasKey ? 'NoSuchKey' : 'NoSuchBucket';
    case 405:
      return 'MethodNotAllowed';
    case 409:
      return 'Conflict';
    case 412:
      return 'PreconditionFailed';
    case 416:
      return 'InvalidRange';
    case 429:
      return 'TooManyRequests';
    case 500:
      return 'InternalError';
    case 501:
      return 'NotImplemented';
    case 503:
      return headers['x-amz-error-code'] ?? 'ServiceUnavailable';
    default:
      return status >= 500 ? 'ServerError' : `Http${status}`;
  }
}

function redirectHint(headers: Record<string, string>): string | undefined {
  const region = headers['x-amz-bucket-region'];
  return region ? `the bucket is in region ${region}` : undefined;
}
