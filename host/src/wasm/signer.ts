/**
 * AWS Signature Version 4 (header and presigned-query auth, aws-chunked chunk/trailer signatures)
 * on top of core.wasm. This file only validates input, packs it into the WASM I/O region
 * (docs/WASM-ABI.md, "SigV4") and unpacks results: the URI encoding, canonical request, string to
 * sign, key derivation and HMACs all run in WASM, so what is sent (wirePath, wireQuery, header
 * values) is exactly what was signed.
 */
import { heap, loadCore, type CoreExports } from './load.js';
import { ConfigError, PveS3Error } from '../util/errors.js';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignRequest {
  method: string;
  /** Decoded, e.g. "/bucket/my key+1.txt"; encoded once by the signer, never normalised. */
  path: string;
  /** Decoded names/values; order does not matter (the canonical order is what goes on the wire). */
  query?: Array<[string, string]>;
  /** Must contain host. Every header given is signed. */
  headers: Array<[string, string]> | Record<string, string>;
  /** Hex sha256 of the body | 'UNSIGNED-PAYLOAD' | 'STREAMING-…' (aws-chunked). */
  payloadHash: string;
  date: Date;
  /**
   * S3 always gets x-amz-content-sha256. Only for other services (the generic SigV4 suite) may
   * this be false, to sign without that header.
   */
  contentSha256Header?: boolean;
}

export interface SignResult {
  /** Lower-case names → the values exactly as signed (trimmed, whitespace runs collapsed,
   *  duplicates joined with ','), plus x-amz-date, x-amz-content-sha256,
   *  [x-amz-security-token] and authorization. */
  headers: Record<string, string>;
  wirePath: string;
  wireQuery: string;
  signature: string;
  canonicalRequest: string;
  stringToSign: string;
}

export interface PresignRequest extends Omit<SignRequest, 'payloadHash' | 'contentSha256Header'> {
  expiresIn: number;
  /** Defaults to 'UNSIGNED-PAYLOAD' (what S3 presigned URLs use). */
  payloadHash?: string;
}

export interface PresignResult {
  wirePath: string;
  /** Includes X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders[/Security-Token]/Signature. */
  wireQuery: string;
  signature: string;
  canonicalRequest: string;
  stringToSign: string;
}

export interface ChunkSigner {
  /** Signature of the next aws-chunked chunk (the final chunk is the empty one: sha256("")). */
  sign(chunkSha256Hex: string): string;
  /** Signature of the trailing headers (STREAMING-…-TRAILER), chained after the final chunk. */
  signTrailer(headers: Array<[string, string]>): string;
}

export const PRESIGN_MAX_SECONDS = 604800;

const PAYLOAD_CONSTANTS = new Set([
  'UNSIGNED-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
]);
const HEX64 = /^[0-9a-f]{64}$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SCOPE_PART = /^[A-Za-z0-9._-]+$/;
// In a /u regex a surrogate pair is one code point, so this only matches lone halves, which
// have no UTF-8 form (TextEncoder would silently turn them into U+FFFD and sign another key).
// The range, not \p{Cs} (the same code points): making a \p{…} regex loads ICU's property
// data, ~0.3 ms of every process (a status included) when this module loads.
const LONE_SURROGATE = /[\ud800-\udfff]/u;
const PRESIGN_PARAMS = new Set([
  'x-amz-algorithm', 'x-amz-credential', 'x-amz-date', 'x-amz-expires',
  'x-amz-signedheaders', 'x-amz-security-token', 'x-amz-signature',
]);

interface SigV4Exports extends CoreExports {
  ioPtr(): number;
  sigv4OutPtr(): number;
  sigv4MaxInput(): number;
  sigv4MaxEntries(): number;
  sigv4KeySlots(): number;
  sigv4DeriveKey(slot: number): number;
  sigv4Sign(slot: number, presign: number): number;
  sigv4ChunkSign(slot: number, trailer: number): number;
  sigv4UriEncode(len: number, keepSlash: number): number;
}

interface Core {
  x: SigV4Exports;
  io: number;
  out: number;
  maxInput: number;
  maxEntries: number;
  slots: number;
}

let core: Core | undefined;
function getCore(): Core {
  if (core === undefined) {
    const x = loadCore() as SigV4Exports;
    core = {
      x,
      io: x.ioPtr(),
      out: x.sigv4OutPtr(),
      maxInput: x.sigv4MaxInput(),
      maxEntries: x.sigv4MaxEntries(),
      slots: x.sigv4KeySlots(),
    };
    slotOwner = new Array<number>(core.slots).fill(0);
  }
  return core;
}

const utf8 = new TextEncoder();

/** Writes length-prefixed UTF-8 strings and u32 counts into the I/O region. */
class Packer {
  private readonly mem: Uint8Array;
  private readonly dv: DataView;
  private pos: number;
  private readonly end: number;

  constructor(c: Core) {
    this.mem = heap();
    this.dv = new DataView(c.x.memory.buffer);
    this.pos = c.io;
    this.end = c.io + c.maxInput;
  }

  u32(n: number): this {
    if (this.pos + 4 > this.end) tooLarge();
    this.dv.setUint32(this.pos, n, true);
    this.pos += 4;
    return this;
  }

  str(s: string): this {
    const start = this.pos + 4;
    if (start > this.end) tooLarge();
    const r = utf8.encodeInto(s, this.mem.subarray(start, this.end));
    if (r.read < s.length) tooLarge();
    this.dv.setUint32(this.pos, r.written, true);
    this.pos = start + r.written;
    return this;
  }

  pairs(list: Array<[string, string]>): this {
    this.u32(list.length);
    for (const [k, v] of list) this.str(k).str(v);
    return this;
  }
}

function tooLarge(): never {
  throw new PveS3Error('RequestTooLarge', `request too large to sign: path, query and headers must fit in ${getCore().maxInput} bytes (UTF-8)`);
}

/** Reads the (u32 length, bytes) fields the WASM side wrote to its output area. Every field is
 *  ASCII (path and query are %XX-encoded, header values are checked to be printable ASCII), so
 *  a Latin-1 read is exact — and much cheaper than UTF-8 decoding for these short strings. */
function readFields(c: Core, total: number, count: number): string[] {
  const buf = Buffer.from(c.x.memory.buffer);
  const out: string[] = [];
  let p = c.out;
  for (let i = 0; i < count; i++) {
    const n = buf.readUInt32LE(p);
    out.push(buf.toString('latin1', p + 4, p + 4 + n));
    p += 4 + n;
  }
  if (p - c.out !== total) throw new PveS3Error('InternalError', 'sigv4: output layout mismatch between host and core.wasm');
  return out;
}

function check(rc: number, what: string): number {
  if (rc >= 0) return rc;
  const why = rc === -2 ? 'too many query parameters or headers' : rc === -3 ? 'bad key slot' : 'malformed input';
  throw new PveS3Error('InternalError', `sigv4 ${what} failed in core.wasm: ${why}`);
}

// Key slots are shared by all signers in the process: a signer owns its slot until another
// signer takes it over (round-robin), which the generation number reveals, forcing a re-derive.
let slotOwner: number[] = [];
let nextSlot = 0;
let generation = 0;

// Requests signed within the same second share the date string.
let lastSecond = NaN;
let lastAmzDate = '';

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/**
 * "YYYYMMDDTHHMMSSZ" (UTC). From the getUTC* fields, not toISOString: V8's first toISOString
 * builds its date cache with the host's time zone from ICU's data (~1.4 ms and a dozen page
 * faults), and a status signs one request (bench:startup).
 */
export function toAmzDate(d: Date): string {
  const t = d instanceof Date ? d.getTime() : NaN;
  if (!Number.isFinite(t)) throw new ConfigError('date', String(d), 'must be a valid Date');
  const second = Math.floor(t / 1000);
  if (second === lastSecond) return lastAmzDate;
  const y = d.getUTCFullYear();
  if (y < 0 || y > 9999) throw new ConfigError('date', String(y), 'must be within the years 0000..9999');
  lastAmzDate =
    String(y).padStart(4, '0') + pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) + 'T' + pad2(d.getUTCHours()) + pad2(d.getUTCMinutes()) + pad2(d.getUTCSeconds()) + 'Z';
  lastSecond = second;
  return lastAmzDate;
}

/** `hide`: the value may be secret (credentials, header values such as SSE-C keys), so the
 *  message names the field only. */
function checkText(key: string, s: unknown, hide = false): string {
  if (typeof s !== 'string') throw new ConfigError(key, typeof s, 'must be a string');
  if (LONE_SURROGATE.test(s)) {
    throw new ConfigError(key, hide ? '(not shown)' : JSON.stringify(s), 'must be valid Unicode (no lone surrogate code units)');
  }
  return s;
}

function headerList(h: SignRequest['headers']): Array<[string, string]> {
  const list = Array.isArray(h) ? h : Object.entries(h);
  return list.map(([name, value]) => {
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      throw new ConfigError('header name', String(name), 'must be an HTTP token (letters, digits, !#$%&\'*+-.^_`|~)');
    }
    checkText(`header ${name}`, value, true);
    // Tab, CR and LF are whitespace the canonical form collapses (obs-fold). Other controls can
    // never be sent, and non-ASCII would be signed as UTF-8 but sent by undici as Latin-1 bytes
    // (SignatureDoesNotMatch), so both are refused here with the header named.
    if (/[^\t\r\n\u0020-\u007e]/.test(value)) {
      throw new ConfigError(`header ${name}`, '(not shown)', 'must be printable ASCII (no control characters; encode other text first)');
    }
    return [name, value];
  });
}

function checkPayloadHash(h: unknown): string {
  if (typeof h === 'string' && (HEX64.test(h) || PAYLOAD_CONSTANTS.has(h))) return h;
  throw new ConfigError('payloadHash', String(h), `must be 64 lower-case hex digits or one of ${[...PAYLOAD_CONSTANTS].join(', ')}`);
}

function s3Encode(s: string, keepSlash: boolean, key: string): string {
  const c = getCore();
  checkText(key, s);
  const mem = heap();
  const r = utf8.encodeInto(s, mem.subarray(c.io, c.io + c.maxInput));
  if (r.read < s.length) tooLarge();
  const n = check(c.x.sigv4UriEncode(r.written, keepSlash ? 1 : 0), 'encode');
  // The encoding is pure ASCII, so a latin1 read is exact and cheaper than UTF-8 decoding; read
  // in place (a view, no copy of the output).
  return Buffer.from(c.x.memory.buffer, c.out, n).toString('latin1');
}

/** S3 object-path encoding (the canonical URI form, '/' kept), e.g. for x-amz-copy-source. */
export function s3EncodePath(path: string): string {
  return s3Encode(path, true, 'path');
}

/** S3 query-component encoding ('/' → %2F), as used in canonical and wire query strings. */
export function s3EncodeComponent(s: string): string {
  return s3Encode(s, false, 'query component');
}

export class SigV4Signer {
  private readonly credentials: Credentials;
  private readonly region: string;
  private readonly service: string;
  private slot = -1;
  private gen = 0;
  private keyDate = '';
  private derivations = 0;

  /** How many times this signer derived a signing key (cache diagnostics; tests use it). */
  get keyDerivations(): number {
    return this.derivations;
  }

  constructor(o: { credentials: Credentials; region: string; service?: string }) {
    const cr = o.credentials;
    if (cr === undefined || typeof cr.accessKeyId !== 'string' || cr.accessKeyId === '' || /[\s/]/.test(cr.accessKeyId)) {
      throw new ConfigError('access_key', '(not shown)', 'must be a non-empty string without "/" or whitespace');
    }
    if (typeof cr.secretAccessKey !== 'string' || cr.secretAccessKey === '') {
      throw new ConfigError('secret_key', '(not shown)', 'must be a non-empty string');
    }
    if (cr.sessionToken !== undefined && typeof cr.sessionToken !== 'string') {
      throw new ConfigError('session_token', '(not shown)', 'must be a string when set');
    }
    checkText('secret_key', cr.secretAccessKey, true);
    if (cr.sessionToken !== undefined) checkText('session_token', cr.sessionToken, true);
    if (typeof o.region !== 'string' || !SCOPE_PART.test(o.region)) {
      throw new ConfigError('region', String(o.region), 'must be non-empty letters, digits, "-", "_" or "."');
    }
    const service = o.service ?? 's3';
    if (!SCOPE_PART.test(service)) {
      throw new ConfigError('service', String(service), 'must be non-empty letters, digits, "-", "_" or "."');
    }
    this.credentials = { ...cr };
    this.region = o.region;
    this.service = service;
  }

  private scope(date8: string): string {
    return `${date8}/${this.region}/${this.service}/aws4_request`;
  }

  /** Makes sure this signer's slot holds kSigning for `date8`, deriving it only when needed. */
  private keySlot(date8: string): number {
    const c = getCore();
    const owned = this.slot >= 0 && slotOwner[this.slot] === this.gen;
    if (owned && this.keyDate === date8) return this.slot;
    if (!owned) {
      this.slot = nextSlot;
      nextSlot = (nextSlot + 1) % c.slots;
      this.gen = ++generation;
      slotOwner[this.slot] = this.gen;
    }
    new Packer(c).str(this.credentials.secretAccessKey).str(date8).str(this.region).str(this.service);
    check(c.x.sigv4DeriveKey(this.slot), 'key derivation');
    this.keyDate = date8;
    this.derivations++;
    return this.slot;
  }

  private common(r: { method: string; path: string; query?: Array<[string, string]>; date: Date }): {
    amzDate: string; query: Array<[string, string]>;
  } {
    if (typeof r.method !== 'string' || !/^[A-Z]+$/.test(r.method)) {
      throw new ConfigError('method', String(r.method), 'must be an upper-case HTTP method such as GET or PUT');
    }
    checkText('path', r.path);
    if (!r.path.startsWith('/')) throw new ConfigError('path', r.path, 'must start with "/"');
    const query = (r.query ?? []).map(([k, v]): [string, string] => [checkText('query name', k), checkText(`query ${k}`, v)]);
    return { amzDate: toAmzDate(r.date), query };
  }

  private checkCounts(query: unknown[], headers: unknown[]): void {
    const max = getCore().maxEntries;
    if (query.length > max - 8) throw new ConfigError('query', `${query.length} parameters`, `at most ${max - 8} can be signed`);
    if (headers.length > max) throw new ConfigError('headers', `${headers.length} headers`, `at most ${max} can be signed`);
  }

  sign(r: SignRequest): SignResult {
    const { amzDate, query } = this.common(r);
    const payloadHash = checkPayloadHash(r.payloadHash);
    const withSha = r.contentSha256Header ?? true;
    if (!withSha && this.service === 's3') {
      throw new ConfigError('contentSha256Header', 'false', 'S3 requires x-amz-content-sha256 on every request; only other services may omit it');
    }
    const token = this.credentials.sessionToken;
    const drop = new Set(['authorization', 'x-amz-date']);
    if (withSha) drop.add('x-amz-content-sha256');
    if (token !== undefined) drop.add('x-amz-security-token');
    const headers = headerList(r.headers).filter(([n]) => !drop.has(n.toLowerCase()));
    if (!headers.some(([n]) => n.toLowerCase() === 'host')) throw new ConfigError('headers', 'no host', 'must contain a host header');
    headers.push(['x-amz-date', amzDate]);
    if (withSha) headers.push(['x-amz-content-sha256', payloadHash]);
    if (token !== undefined) headers.push(['x-amz-security-token', token]);
    this.checkCounts(query, headers);

    const c = getCore();
    const slot = this.keySlot(amzDate.slice(0, 8));
    new Packer(c)
      .str(r.method).str(r.path).str(amzDate).str(this.scope(amzDate.slice(0, 8)))
      .str(this.credentials.accessKeyId).str(payloadHash).str('').str('')
      .pairs(query).pairs(headers);
    const total = check(c.x.sigv4Sign(slot, 0), 'sign');
    const [canonicalRequest, stringToSign, signature, , wirePath, wireQuery, authorization] = readFields(c, total, 7) as [
      string, string, string, string, string, string, string];
    return {
      headers: { ...canonicalHeaders(canonicalRequest), authorization },
      wirePath, wireQuery, signature, canonicalRequest, stringToSign,
    };
  }

  presign(r: PresignRequest): PresignResult {
    const { amzDate, query } = this.common(r);
    const e = r.expiresIn;
    if (typeof e !== 'number' || !Number.isInteger(e) || e < 1 || e > PRESIGN_MAX_SECONDS) {
      throw new ConfigError('expiresIn', String(e), `must be an integer 1..${PRESIGN_MAX_SECONDS} (seconds; 7 days at most)`);
    }
    for (const [k] of query) {
      if (PRESIGN_PARAMS.has(k.toLowerCase())) throw new ConfigError('query name', k, 'is set by the presigner and must not be given');
    }
    const payloadHash = checkPayloadHash(r.payloadHash ?? 'UNSIGNED-PAYLOAD');
    const headers = headerList(r.headers).filter(([n]) => !['authorization', 'x-amz-date', 'x-amz-security-token'].includes(n.toLowerCase()));
    if (!headers.some(([n]) => n.toLowerCase() === 'host')) throw new ConfigError('headers', 'no host', 'must contain a host header');
    this.checkCounts(query, headers);

    const c = getCore();
    const slot = this.keySlot(amzDate.slice(0, 8));
    new Packer(c)
      .str(r.method).str(r.path).str(amzDate).str(this.scope(amzDate.slice(0, 8)))
      .str(this.credentials.accessKeyId).str(payloadHash).str(this.credentials.sessionToken ?? '').str(String(e))
      .pairs(query).pairs(headers);
    const total = check(c.x.sigv4Sign(slot, 1), 'presign');
    const [canonicalRequest, stringToSign, signature, , wirePath, wireQuery] = readFields(c, total, 7) as [
      string, string, string, string, string, string];
    return { wirePath, wireQuery, signature, canonicalRequest, stringToSign };
  }

  /** Chains aws-chunked signatures from the seed (the request's own signature). */
  chunkSigner(seedSignature: string, date: Date): ChunkSigner {
    if (typeof seedSignature !== 'string' || !HEX64.test(seedSignature)) {
      throw new ConfigError('seedSignature', String(seedSignature), 'must be 64 lower-case hex digits');
    }
    const amzDate = toAmzDate(date);
    const date8 = amzDate.slice(0, 8);
    const scope = this.scope(date8);
    let previous = seedSignature;
    const run = (trailer: 0 | 1, fill: (p: Packer) => void): string => {
      const c = getCore();
      const slot = this.keySlot(date8);
      const p = new Packer(c).str(amzDate).str(scope).str(previous);
      fill(p);
      const total = check(c.x.sigv4ChunkSign(slot, trailer), 'chunk signing');
      previous = readFields(c, total, 2)[1]!;
      return previous;
    };
    return {
      sign(chunkSha256Hex: string): string {
        if (typeof chunkSha256Hex !== 'string' || !HEX64.test(chunkSha256Hex)) {
          throw new ConfigError('chunkSha256Hex', String(chunkSha256Hex), 'must be 64 lower-case hex digits');
        }
        return run(0, (p) => p.str(chunkSha256Hex));
      },
      signTrailer(headers: Array<[string, string]>): string {
        const list = headerList(headers);
        if (list.length === 0) throw new ConfigError('trailer headers', 'none', 'at least one trailing header is required');
        return run(1, (p) => p.pairs(list));
      },
    };
  }
}

/** The "name:value" lines of a canonical request (between the query line and the blank line). */
function canonicalHeaders(canonicalRequest: string): Record<string, string> {
  const lines = canonicalRequest.split('\n');
  const entries: Array<[string, string]> = [];
  for (let i = 3; i < lines.length && lines[i] !== ''; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    entries.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  // fromEntries defines own properties, so even a header called "__proto__" stays a header.
  return Object.fromEntries(entries);
}
