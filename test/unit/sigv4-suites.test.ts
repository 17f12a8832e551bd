// The AWS SigV4 test suites (generic .req/.creq/.sts/.authz and aws-c-auth's header + presigned
// variants), every S3-applicable case, through the WASM signer with a fixed clock.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SigV4Signer } from '../../host/src/wasm/signer.js';
import { readVectors } from '../helpers/vectors.js';

const readVector = readVectors;

interface Creds { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
interface RawRequest { method: string; path: string; query: string; headers: Array<[string, string]>; body: string }
interface SuiteCase {
  name: string; request: RawRequest; canonicalRequest: string; stringToSign: string; authorization: string;
  credentials: Creds; region: string; service: string; date: string; s3Applicable: boolean;
}
interface CrtMode { canonicalRequest: string; stringToSign: string; signature: string; signedRequest: string }
interface CrtCase {
  name: string; request: RawRequest; credentials: Creds; region: string; service: string; date: string;
  context: { normalize: boolean; signBody: boolean; omitSessionToken: boolean; expirationInSeconds: number };
  header: CrtMode; query: CrtMode; s3Applicable: boolean;
}

/** "20150830T123600Z" → Date */
function amzToDate(s: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) throw new Error(`bad amz date ${s}`);
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/** The suites write query strings raw (some pre-encoded, some not); the signer wants decoded pairs. */
function parseQuery(q: string): Array<[string, string]> {
  if (q === '') return [];
  return q.split('&').map((kv) => {
    const i = kv.indexOf('=');
    const [k, v] = i < 0 ? [kv, ''] : [kv.slice(0, i), kv.slice(i + 1)];
    return [decodeURIComponent(k), decodeURIComponent(v)];
  });
}

const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Query parameters of a signed request line, decoded, sorted (the wire order may differ). */
function requestLineParams(signedRequest: string): string[] {
  const line = signedRequest.split('\n')[0]!;
  const target = line.slice(line.indexOf(' ') + 1, line.lastIndexOf(' '));
  const q = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
  return parseQuery(q).map(([k, v]) => `${k}=${v}`).sort();
}
function wireParams(wireQuery: string): string[] {
  return parseQuery(wireQuery).map(([k, v]) => `${k}=${v}`).sort();
}

describe('sigv4-suite.json (generic AWS suite, header auth)', () => {
  const cases = readVector<SuiteCase[]>('sigv4-suite.json');
  const applicable = cases.filter((c) => c.s3Applicable);

  it('has the 27 S3-applicable cases the README promises', () => {
    expect(applicable).toHaveLength(27);
  });

  it.each(applicable.map((c) => [c.name, c] as const))('%s', (_n, c) => {
    const signer = new SigV4Signer({ credentials: c.credentials, region: c.region, service: c.service });
    const r = signer.sign({
      method: c.request.method,
      path: c.request.path,
      query: parseQuery(c.request.query),
      headers: c.request.headers,
      payloadHash: sha256Hex(c.request.body),
      date: amzToDate(c.date),
      contentSha256Header: false, // the generic suite never sends x-amz-content-sha256
    });
    expect(r.canonicalRequest).toBe(c.canonicalRequest);
    expect(r.stringToSign).toBe(c.stringToSign);
    expect(r.headers.authorization).toBe(c.authorization);
    expect(r.wirePath).toBe(c.canonicalRequest.split('\n')[1]);
    expect(r.wireQuery).toBe(c.canonicalRequest.split('\n')[2]);
  });

  it('does not normalise the paths the generic suite normalises (S3 rule)', () => {
    const notApplicable = cases.filter((c) => !c.s3Applicable && c.name.startsWith('normalize-path/'));
    expect(notApplicable.length).toBeGreaterThan(0);
    for (const c of notApplicable) {
      const signer = new SigV4Signer({ credentials: c.credentials, region: c.region, service: c.service });
      const r = signer.sign({
        method: c.request.method, path: c.request.path, query: parseQuery(c.request.query),
        headers: c.request.headers, payloadHash: sha256Hex(c.request.body), date: amzToDate(c.date),
        contentSha256Header: false,
      });
      // verbatim path, encoded once — never the normalised form the generic suite expects
      expect(r.wirePath, c.name).toBe(c.request.path.split('/').map(encodeURIComponent).join('/'));
      expect(r.canonicalRequest, c.name).not.toBe(c.canonicalRequest);
    }
  });
});

describe('sigv4-crt-suite.json (aws-c-auth v4 suite)', () => {
  const cases = readVector<CrtCase[]>('sigv4-crt-suite.json');
  const applicable = cases.filter((c) => c.s3Applicable);

  it('has the 31 S3-applicable cases the README promises', () => {
    expect(applicable).toHaveLength(31);
  });

  describe('header mode', () => {
    it.each(applicable.map((c) => [c.name, c] as const))('%s', (_n, c) => {
      expect(c.context.omitSessionToken).toBe(false);
      const signer = new SigV4Signer({ credentials: c.credentials, region: c.region, service: c.service });
      const r = signer.sign({
        method: c.request.method,
        path: c.request.path,
        query: parseQuery(c.request.query),
        headers: c.request.headers,
        payloadHash: sha256Hex(c.request.body),
        date: amzToDate(c.date),
        contentSha256Header: c.context.signBody,
      });
      expect(r.canonicalRequest).toBe(c.header.canonicalRequest);
      expect(r.stringToSign).toBe(c.header.stringToSign);
      expect(r.signature).toBe(c.header.signature);
      const authz = c.header.signedRequest.split('\n').find((l) => l.startsWith('Authorization:'))!;
      expect(`Authorization:${r.headers.authorization}`).toBe(authz);
      expect(r.headers['x-amz-date']).toBe(c.date);
      expect(wireParams(r.wireQuery)).toEqual(requestLineParams(c.header.signedRequest));
      expect(decodeURIComponent(r.wirePath)).toBe(c.request.path);
    });
  });

  describe('presigned (query) mode', () => {
    it.each(applicable.map((c) => [c.name, c] as const))('%s', (_n, c) => {
      const signer = new SigV4Signer({ credentials: c.credentials, region: c.region, service: c.service });
      const r = signer.presign({
        method: c.request.method,
        path: c.request.path,
        query: parseQuery(c.request.query),
        headers: c.request.headers,
        payloadHash: sha256Hex(c.request.body),
        date: amzToDate(c.date),
        expiresIn: c.context.expirationInSeconds,
      });
      expect(r.canonicalRequest).toBe(c.query.canonicalRequest);
      expect(r.stringToSign).toBe(c.query.stringToSign);
      expect(r.signature).toBe(c.query.signature);
      expect(r.wireQuery.endsWith(`&X-Amz-Signature=${c.query.signature}`)).toBe(true);
      expect(wireParams(r.wireQuery)).toEqual(requestLineParams(c.query.signedRequest));
      expect(r.wirePath).toBe(c.query.canonicalRequest.split('\n')[1]);
    });
  });
});
