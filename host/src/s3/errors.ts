/**
 * S3Error: every failure of the S3 layer, with a one-line message that tells the operator what to
 * do. Messages are built from the endpoint, bucket, key and S3 code only — never from request
 * headers, so a secret cannot leak into one.
 */
import { EXIT, PveS3Error, type ExitCode } from '../util/errors.js';

export interface S3ErrorOptions {
  status?: number;
  requestId?: string;
  key?: string;
  retryable?: boolean;
  exitCode?: ExitCode;
  cause?: unknown;
  /** RequestTimeTooSkewed: the server's clock (from its Date header or ServerTime). */
  serverTime?: Date;
  /** the server's Retry-After, when it sent one */
  retryAfterMs?: number;
}

export class S3Error extends PveS3Error {
  readonly serverTime?: Date;
  readonly retryAfterMs?: number;
  constructor(code: string, message: string, o: S3ErrorOptions = {}) {
    super(code, message, {
      status: o.status,
      retryable: o.retryable ?? false,
      exitCode: o.exitCode ?? exitCodeFor(code),
      requestId: o.requestId,
      key: o.key,
      cause: o.cause,
    });
    this.name = 'S3Error';
    this.serverTime = o.serverTime;
    this.retryAfterMs = o.retryAfterMs;
  }
}

const AUTH_CODES = new Set([
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'AccessDenied',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidSecurity',
  'Forbidden',
]);
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NoSuchBucket', 'NoSuchUpload', 'NotFound', 'NoSuchVersion']);
const RETRYABLE_CODES = new Set([
  'SlowDown',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'OperationAborted',
]);

export function exitCodeFor(code: string): ExitCode {
  if (AUTH_CODES.has(code)) return EXIT.auth;
  if (NOT_FOUND_CODES.has(code)) return EXIT.notFound;
  if (code === 'BadDigest' || code === 'InvalidDigest' || code === 'IntegrityError') return EXIT.integrity;
  return EXIT.failure;
}

export function isRetryableStatus(status: number, code: string): boolean {
  if (RETRYABLE_CODES.has(code)) return true;
  // 501 means "this gateway has no such operation": asking again only delays the fallback
  // (ListObjects V1) or the clear error by a whole backoff series
  if (status === 501 || code === 'NotImplemented') return false;
  return status === 429 || status >= 500;
}

/** Where a request went: enough to write a useful message, nothing secret. */
export interface ErrorContext {
  endpoint: string;
  bucket: string;
  key?: string;
  operation: string;
}

const what = (c: ErrorContext) => (c.key !== undefined ? `'${c.key}' in bucket ${c.bucket}` : `bucket ${c.bucket}`);

/** The one-line message for an S3 error code returned by the server. */
export function messageFor(code: string, status: number | undefined, serverMessage: string | undefined, c: ErrorContext): string {
  const at = c.endpoint;
  switch (code) {
    case 'SignatureDoesNotMatch':
    case 'InvalidAccessKeyId':
      return `access key or secret rejected by ${at} (${code}): check access_key/secret_key`;
    case 'AccessDenied':
    case 'AllAccessDisabled':
    case 'AccountProblem':
      return `access denied by ${at} to ${what(c)} during ${c.operation} (${code}): check the key's permissions and bucket policy`;
    case 'Forbidden':
      return `access denied by ${at} to ${what(c)} during ${c.operation} (HTTP 403, no details): check access_key/secret_key and the key's permissions`;
    case 'InvalidToken':
    case 'ExpiredToken':
    case 'TokenRefreshRequired':
      return `session token rejected by ${at} (${code}): renew the credentials`;
    case 'NoSuchBucket':
      return `bucket ${c.bucket} does not exist at ${at}: create it or fix bucket`;
    case 'NoSuchKey':
    case 'NotFound':
      return c.key !== undefined
        ? `object '${c.key}' not found in bucket ${c.bucket} at ${at} (NoSuchKey)`
        : `not found at ${at} (${code}) during ${c.operation}`;
    case 'NoSuchUpload':
      return `multipart upload of '${c.key ?? ''}' no longer exists at ${at} (NoSuchUpload): it was completed or aborted; start the upload again`;
    case 'RequestTimeTooSkewed':
      return `clock of this host differs too much from ${at} (RequestTimeTooSkewed): sync the time (NTP)`;
    case 'SlowDown':
    case 'TooManyRequests':
    case 'Throttling':
      return `${at} is throttling requests (${code}) during ${c.operation}: lower max_concurrent_uploads or retry later`;
    case 'EntityTooSmall':
      return `part of '${c.key ?? ''}' rejected by ${at} as too small (EntityTooSmall): every part but the last must be at least 5 MiB`;
    case 'EntityTooLarge':
      return `'${c.key ?? ''}' rejected by ${at} as too large (EntityTooLarge): raise multipart_chunk_size or split the upload`;
    case 'BadDigest':
    case 'InvalidDigest':
    case 'XAmzContentSHA256Mismatch':
      return `${at} rejected the data of ${what(c)} as corrupted in transit (${code}): retry; check network hardware if it persists`;
    case 'InvalidBucketName':
      return `bucket name '${c.bucket}' rejected by ${at} (InvalidBucketName): use 3-63 lower-case letters, digits, '.' and '-'`;
    case 'BucketAlreadyExists':
      return `bucket ${c.bucket} is owned by another account at ${at} (BucketAlreadyExists): choose another bucket name`;
    case 'AuthorizationHeaderMalformed':
      return `${at} rejected the request signature scope (AuthorizationHeaderMalformed): check region${serverMessage ? ` (${oneLine(serverMessage)})` : ''}`;
    case 'PermanentRedirect':
    case 'TemporaryRedirect':
      return `bucket ${c.bucket} is not served by ${at} (${code}): check endpoint and region${serverMessage ? ` (${oneLine(serverMessage)})` : ''}`;
    case 'NotImplemented':
      return `${at} does not implement ${c.operation} (NotImplemented)`;
    case 'KMS.NotFoundException':
    case 'KMSNotFound':
      return `KMS key not found at ${at} (${code}): check the SSE key id`;
    case 'InvalidObjectState':
      // GET of an archived object before its restore finished (API_GetObject.html)
      return `${what(c)} is archived at ${at} (InvalidObjectState): it must be restored from its archive storage class before it can be read (pve-s3-restore requests that; README 'Restoring an archived backup')`;
    case 'RestoreAlreadyInProgress':
      return `a restore of ${what(c)} is already running at ${at} (RestoreAlreadyInProgress)`;
    case 'ObjectLockConfigurationNotFoundError':
    case 'InvalidRequest':
    default: {
      const m = serverMessage ? `: ${oneLine(serverMessage)}` : '';
      const st = status !== undefined ? `HTTP ${status} ` : '';
      return `${c.operation} on ${what(c)} failed at ${at} (${st}${code})${m}`;
    }
  }
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, ' ').trim();
  return t.length > 200 ? t.slice(0, 197) + '...' : t;
}

/** The server answered with an error status or an <Error> body. */
export function serverError(
  code: string,
  status: number | undefined,
  serverMessage: string | undefined,
  requestId: string | undefined,
  c: ErrorContext,
  serverTime?: Date,
  retryAfterMs?: number,
): S3Error {
  const retryable = status === undefined ? RETRYABLE_CODES.has(code) : isRetryableStatus(status, code);
  return new S3Error(code, messageFor(code, status, serverMessage, c), {
    status,
    requestId,
    key: c.key,
    retryable,
    serverTime,
    retryAfterMs,
  });
}

/**
 * The endpoint gave no sign of life for the stall limit, across every request and retry of the
 * operation (s3/stall.ts). Not retryable: the callers' own part and range retries stop too.
 */
export function stalledError(cause: S3Error, c: ErrorContext, t: { silentMs: number; limitMs: number; reason?: string }): S3Error {
  const s = Math.round(t.silentMs / 1000);
  return new S3Error(
    'Stalled',
    `no answer from ${c.endpoint} for ${s} s during ${c.operation}${c.key !== undefined ? ` of '${c.key}'` : ''}: ` +
      'it accepts connections but does not respond (a stopped or overloaded gateway, or a Ceph cluster that blocks writes, e.g. when full); ' +
      `check the gateway, then run this again (${t.reason ?? `stall_timeout ${Math.round(t.limitMs / 1000)} s`})`,
    { key: c.key, retryable: false, cause },
  );
}

/** Errors of the transport below HTTP: refused, reset, DNS, TLS, timeouts. */
export function networkError(err: unknown, c: ErrorContext, timeouts: { connectMs: number; requestMs: number }): S3Error {
  const e = err as { code?: string; message?: string; name?: string; cause?: { code?: string; message?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  const at = c.endpoint;
  const o = (ourCode: string, msg: string, retryable = true) =>
    new S3Error(ourCode, msg, { retryable, key: c.key, cause: err });
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return o('ConnectTimeout', `cannot reach ${at}: no connection within ${timeouts.connectMs} ms (check endpoint and network)`);
    case 'UND_ERR_HEADERS_TIMEOUT':
      return o('RequestTimeout', `no response from ${at} within ${timeouts.requestMs} ms during ${c.operation} (check endpoint and network, or raise the timeout)`);
    case 'UND_ERR_BODY_TIMEOUT':
      return o('RequestTimeout', `${at} stopped sending data for ${timeouts.requestMs} ms during ${c.operation} (check endpoint and network, or raise the timeout)`);
    case 'ECONNREFUSED':
      return o('ConnectionRefused', `cannot reach ${at}: connection refused (check endpoint and network)`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return o('NetworkError', `cannot reach ${at}: host name does not resolve (check endpoint and network)`, code === 'EAI_AGAIN');
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return o('NetworkError', `cannot reach ${at}: ${code === 'UND_ERR_SOCKET' ? 'connection closed by the server' : code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' ? 'response cut short' : code} during ${c.operation} (check endpoint and network)`);
    case 'HTTP_PROTOCOL_ERROR':
      // the lean GET path's parser (http1-response.ts) could not frame the answer exactly
      return o('NetworkError', `invalid HTTP response from ${at} during ${c.operation}: ${oneLine(e?.message ?? '')}`);
    case 'CERT_FINGERPRINT_MISMATCH':
      return o('TlsError', `TLS certificate of ${at} does not match the configured fingerprint: check fingerprint (or the server's certificate changed)`, false);
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return o('ClientClosed', `${c.operation} on ${what(c)} was attempted after the S3 client was closed (a bug in the caller)`, false);
    case 'UND_ERR_INVALID_ARG':
      // refused before anything was sent (a header value with a line break): the same each time
      return o('InvalidArgument', `${c.operation} on ${what(c)} was not sent: ${oneLine(e?.message ?? '')}`, false);
    case 'UND_ERR_ABORTED':
    case 'ABORT_ERR':
      return o('Aborted', `${c.operation} on ${what(c)} was cancelled`, false);
    default:
      break;
  }
  if (e?.name === 'AbortError') return o('Aborted', `${c.operation} on ${what(c)} was cancelled`, false);
  if (/^(ERR_TLS|CERT_|UNABLE_TO|SELF_SIGNED|DEPTH_ZERO|ERR_SSL|HOSTNAME_MISMATCH)/.test(code) || /certificate|TLS|SSL/i.test(e?.message ?? '')) {
    return o('TlsError', `TLS handshake with ${at} failed: ${code || oneLine(e?.message ?? 'unknown')} (check ca file, fingerprint or the server certificate)`, false);
  }
  const why = code || oneLine(e?.message ?? String(err));
  return o('NetworkError', `cannot reach ${at}: ${why} (check endpoint and network)`);
}
