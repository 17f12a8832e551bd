// S3's own SigV4 examples (API Reference): header auth, presigned URL, aws-chunked seed + chunk
// signatures (with and without trailer), the URI-encoding cases; plus the S3 rules the examples
// do not spell out (query encoding/sorting, header canonicalisation, key cache, input checks).
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PveS3Error } from '../../host/src/util/errors.js';
import { SigV4Signer, s3EncodeComponent, s3EncodePath, toAmzDate } from '../../host/src/wasm/signer.js';
import { readVectors } from '../helpers/vectors.js';

interface Chunk { size: number; dataSha256: string; stringToSign: string; signature: string; chunkHeader: string }
interface Example {
  name: string; kind: string;
  request: { method: string; path: string; query?: string; host?: string; headers?: Array<[string, string]>; expiresSeconds?: number; payloadHash?: string };
  payloadSha256?: string; canonicalRequest: string; stringToSign: string; signature?: string; authorization?: string;
  presignedUrl?: string; seedSignature?: string; chunks?: Chunk[]; encodedBodyLength?: number;
  trailer?: { headers: Array<[string, string]>; stringToSign: string; signature: string; wire: string };
}
interface Examples {
  credentials: { accessKeyId: string; secretAccessKey: string }; region: string; service: string; date: string;
  signingKeyHex: string; examples: Example[];
  uriEncodingCases: { cases: Array<{ id: string; bucket: string; key: string; expectedPath: string; host: string }> };
}

const ex = readVectors<Examples>('s3-sigv4-examples.json');
const DATE = new Date(Date.UTC(2013, 4, 24, 0, 0, 0));
const signer = () => new SigV4Signer({ credentials: ex.credentials, region: ex.region });
const sha256Hex = (d: string | Uint8Array) => createHash('sha256').update(d).digest('hex');
const hmac = (k: Buffer | string, m: string) => createHmac('sha256', k).update(m, 'utf8').digest();

/** Independent node:crypto HMAC chain, to check the WASM signature of any string to sign. */
function nodeSignature(secret: string, date8: string, region: string, service: string, sts: string): string {
  const k = hmac(hmac(hmac(hmac('AWS4' + secret, date8), region), service), 'aws4_request');
  return createHmac('sha256', k).update(sts, 'utf8').digest('hex');
}

function parseQuery(q: string): Array<[string, string]> {
  if (!q) return [];
  return q.split('&').map((kv) => {
    const i = kv.indexOf('=');
    return i < 0 ? [kv, ''] : [decodeURIComponent(kv.slice(0, i)), decodeURIComponent(kv.slice(i + 1))];
  });
}

describe('s3-sigv4-examples.json', () => {
  it('the vectors derive the documented signing key', () => {
    const k = hmac(hmac(hmac(hmac('AWS4' + ex.credentials.secretAccessKey, '20130524'), 'us-east-1'), 's3'), 'aws4_request');
    expect(k.toString('hex')).toBe(ex.signingKeyHex);
    expect(toAmzDate(DATE)).toBe(ex.date);
  });

  const headerExamples = ex.examples.filter((e) => e.kind === 'authorization-header');
  it('has the 4 header examples', () => expect(headerExamples).toHaveLength(4));

  it.each(headerExamples.map((e) => [e.name, e] as const))('header auth: %s', (_n, e) => {
    const r = signer().sign({
      method: e.request.method,
      path: e.request.path,
      query: parseQuery(e.request.query ?? ''),
      headers: e.request.headers!,
      payloadHash: e.payloadSha256!,
      date: DATE,
    });
    expect(r.canonicalRequest).toBe(e.canonicalRequest);
    expect(r.stringToSign).toBe(e.stringToSign);
    expect(r.signature).toBe(e.signature);
    // the docs print the header without the space after each comma; SDKs (and we) send ", "
    expect(r.headers.authorization).toBe(e.authorization!.replace(/,(SignedHeaders|Signature)=/g, ', $1='));
    expect(r.headers['x-amz-content-sha256']).toBe(e.payloadSha256);
    expect(r.wirePath).toBe(e.canonicalRequest.split('\n')[1]);
    expect(r.wireQuery).toBe(e.canonicalRequest.split('\n')[2]);
  });

  it('presigned URL (GET test.txt, 86400 s) is exactly the documented URL', () => {
    const e = ex.examples.find((x) => x.kind === 'presigned-url')!;
    const r = signer().presign({
      method: e.request.method,
      path: e.request.path,
      headers: { host: e.request.host! },
      expiresIn: e.request.expiresSeconds!,
      date: DATE,
    });
    expect(r.canonicalRequest).toBe(e.canonicalRequest);
    expect(r.stringToSign).toBe(e.stringToSign);
    expect(r.signature).toBe(e.signature);
    expect(`https://${e.request.host}${r.wirePath}?${r.wireQuery}`).toBe(e.presignedUrl);
  });

  for (const kind of ['chunked-upload', 'chunked-upload-trailer']) {
    it(`${kind}: seed signature, chunk signatures${kind.endsWith('trailer') ? ', trailer signature' : ''}`, () => {
      const e = ex.examples.find((x) => x.kind === kind)!;
      const payloadHash = e.request.headers!.find(([n]) => n === 'x-amz-content-sha256')![1];
      const s = signer();
      const r = s.sign({ method: e.request.method, path: e.request.path, headers: e.request.headers!, payloadHash, date: DATE });
      expect(r.canonicalRequest).toBe(e.canonicalRequest);
      expect(r.stringToSign).toBe(e.stringToSign);
      expect(r.signature).toBe(e.seedSignature);
      expect(r.headers.authorization.replace(/, /g, ',')).toBe(e.authorization);

      const cs = s.chunkSigner(r.signature, DATE);
      let encoded = 0;
      for (const c of e.chunks!) {
        const data = Buffer.alloc(c.size, 0x61);
        expect(sha256Hex(data)).toBe(c.dataSha256);
        const sig = cs.sign(sha256Hex(data));
        expect(sig).toBe(c.signature);
        expect(nodeSignature(ex.credentials.secretAccessKey, '20130524', 'us-east-1', 's3', c.stringToSign)).toBe(sig);
        const header = `${c.size.toString(16)};chunk-signature=${sig}`;
        expect(header).toBe(c.chunkHeader);
        encoded += header.length + 2 + c.size + (c.size > 0 || !e.trailer ? 2 : 0);
      }
      if (e.trailer) {
        const t = cs.signTrailer(e.trailer.headers);
        expect(t).toBe(e.trailer.signature);
        const wire = `${e.trailer.headers.map(([n, v]) => `${n}:${v}\r\n`).join('')}x-amz-trailer-signature:${t}\r\n\r\n`;
        expect(wire).toBe(e.trailer.wire);
        encoded += wire.length;
      }
      expect(encoded).toBe(e.encodedBodyLength);
    });
  }

  it.each(ex.uriEncodingCases.cases.map((c) => [c.id, c] as const))('URI encoding: %s', (_n, c) => {
    expect(s3EncodePath('/' + c.key)).toBe(c.expectedPath);
    const r = signer().sign({ method: 'GET', path: '/' + c.key, headers: { host: c.host }, payloadHash: 'UNSIGNED-PAYLOAD', date: DATE });
    expect(r.wirePath).toBe(c.expectedPath);
    expect(r.canonicalRequest.split('\n')[1]).toBe(c.expectedPath);
  });
});

describe('S3 canonicalisation rules', () => {
  const base = { method: 'GET', headers: { host: 'h.example' }, payloadHash: 'UNSIGNED-PAYLOAD', date: DATE };

  it('query: names and values encoded ("/" → %2F, space → %20, UTF-8), sorted by encoded name then value', () => {
    const r = signer().sign({
      ...base, path: '/b',
      query: [['prefix', 'a/b c+ü'], ['delimiter', '/'], ['list-type', '2'], ['x', 'b'], ['x', 'a'], ['X', 'z'], ['uploads', '']],
    });
    const q = 'X=z&delimiter=%2F&list-type=2&prefix=a%2Fb%20c%2B%C3%BC&uploads=&x=a&x=b';
    expect(r.wireQuery).toBe(q);
    expect(r.canonicalRequest.split('\n')[2]).toBe(q);
  });

  it('path: encoded once, "/" kept, never normalised, "%" itself encoded', () => {
    const r = signer().sign({ ...base, path: '/bkt//a/./b/../c%20d/~x*(y)!\'@:,;=&$' });
    expect(r.wirePath).toBe('/bkt//a/./b/../c%2520d/~x%2A%28y%29%21%27%40%3A%2C%3B%3D%26%24');
  });

  it('encoding helpers equal the RFC 3986 reference for random Unicode strings', () => {
    const ref = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase());
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return seed % n; };
    const pool = ['a', 'Z', '0', '-', '_', '.', '~', '/', ' ', '+', '%', '?', '#', '&', '=', 'é', 'ሴ', '😀', '\u0000', '\u007f', '"'];
    for (let i = 0; i < 300; i++) {
      let s = '';
      const len = rnd(40);
      for (let j = 0; j < len; j++) s += pool[rnd(pool.length)];
      expect(s3EncodeComponent(s)).toBe(ref(s));
      expect(s3EncodePath(s)).toBe(s.split('/').map(ref).join('/'));
    }
  });

  it('headers: lower-cased, trimmed, inner whitespace collapsed, duplicates joined in order; all signed and returned as signed', () => {
    const r = signer().sign({
      ...base, path: '/k', payloadHash: sha256Hex('x'),
      headers: [['Host', 'h.example'], ['X-Amz-Meta-Note', '  a   b\t c  '], ['x-amz-meta-dup', 'one'], ['X-AMZ-META-DUP', 'two'], ['Content-Type', 'text/plain']],
    });
    expect(r.canonicalRequest).toContain('\nx-amz-meta-dup:one,two\nx-amz-meta-note:a b c\n');
    const signed = r.canonicalRequest.split('\n').at(-2);
    expect(signed).toBe('content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-dup;x-amz-meta-note');
    expect(r.headers).toEqual({
      'content-type': 'text/plain', host: 'h.example', 'x-amz-content-sha256': sha256Hex('x'),
      'x-amz-date': '20130524T000000Z', 'x-amz-meta-dup': 'one,two', 'x-amz-meta-note': 'a b c',
      authorization: r.headers.authorization,
    });
    expect(r.headers.authorization).toContain(`SignedHeaders=${signed}, Signature=${r.signature}`);
  });

  it('x-amz-content-sha256 is always present (UNSIGNED-PAYLOAD too) and replaces a stale caller value', () => {
    const r = signer().sign({ ...base, path: '/k', headers: { host: 'h', 'X-Amz-Content-Sha256': 'stale', 'x-amz-date': 'stale' } });
    expect(r.headers['x-amz-content-sha256']).toBe('UNSIGNED-PAYLOAD');
    expect(r.headers['x-amz-date']).toBe('20130524T000000Z');
    expect(r.canonicalRequest).not.toContain('stale');
    expect(r.canonicalRequest.endsWith('\nUNSIGNED-PAYLOAD')).toBe(true);
  });

  it('session token: signed header in header mode, signed X-Amz-Security-Token in presigned mode', () => {
    const s = new SigV4Signer({ credentials: { ...ex.credentials, sessionToken: 'tok/en+=' }, region: 'us-east-1' });
    const h = s.sign({ ...base, path: '/k' });
    expect(h.headers['x-amz-security-token']).toBe('tok/en+=');
    expect(h.headers.authorization).toContain('x-amz-date;x-amz-security-token,');
    const p = s.presign({ method: 'GET', path: '/k', headers: { host: 'h.example' }, date: DATE, expiresIn: 60 });
    expect(p.wireQuery).toContain('&X-Amz-Security-Token=tok%2Fen%2B%3D&X-Amz-SignedHeaders=host&X-Amz-Signature=');
  });

  it('random requests: string to sign hashes the canonical request and the signature matches node:crypto', () => {
    const s = signer();
    for (let i = 0; i < 50; i++) {
      const query: Array<[string, string]> = Array.from({ length: i % 7 }, (_, j) => [`k${(j * 7919 + i) % 5}/é`, `v ${j}`]);
      const r = s.sign({
        method: i % 2 ? 'PUT' : 'GET', path: `/bucket/dir ${i}/obj+${i}.bin`, query,
        headers: [['host', 'h.example'], ['x-amz-meta-i', String(i)], ['Range', `bytes=0-${i}`]],
        payloadHash: sha256Hex(String(i)), date: new Date(DATE.getTime() + i * 3_600_000 * 7),
      });
      const lines = r.stringToSign.split('\n');
      expect(lines[3]).toBe(sha256Hex(r.canonicalRequest));
      const date8 = lines[1]!.slice(0, 8);
      expect(lines[2]).toBe(`${date8}/us-east-1/s3/aws4_request`);
      expect(r.signature).toBe(nodeSignature(ex.credentials.secretAccessKey, date8, 'us-east-1', 's3', r.stringToSign));
    }
  });
});

describe('signing key cache', () => {
  const req = (date: Date) => ({ method: 'GET', path: '/k', headers: { host: 'h' }, payloadHash: 'UNSIGNED-PAYLOAD', date });

  it('derives once per date and again when the date changes', () => {
    const s = signer();
    s.sign(req(DATE));
    s.sign(req(new Date(DATE.getTime() + 3_600_000)));
    s.presign({ ...req(DATE), expiresIn: 10 });
    expect(s.keyDerivations).toBe(1);
    s.sign(req(new Date(DATE.getTime() + 86_400_000)));
    expect(s.keyDerivations).toBe(2);
  });

  it('signers sharing the slot table never sign with each other\'s key', () => {
    const secrets = Array.from({ length: 40 }, (_, i) => `secret-${i}`);
    const signers = secrets.map((secretAccessKey) => new SigV4Signer({ credentials: { accessKeyId: 'AK', secretAccessKey }, region: 'r1' }));
    for (let round = 0; round < 2; round++) {
      signers.forEach((s, i) => {
        const r = s.sign(req(DATE));
        expect(r.signature).toBe(nodeSignature(secrets[i]!, '20130524', 'r1', 's3', r.stringToSign));
      });
    }
  });
});

describe('input checks', () => {
  const base = { method: 'GET', path: '/k', headers: { host: 'h' }, date: DATE };
  const code = (f: () => unknown): { code: string; message: string } => {
    try { f(); } catch (e) { expect(e).toBeInstanceOf(PveS3Error); return e as PveS3Error; }
    throw new Error('did not throw');
  };

  it('presign expiry must be an integer 1..604800', () => {
    for (const bad of [0, -1, 604801, 1.5, Number.NaN]) {
      const e = code(() => signer().presign({ ...base, expiresIn: bad }));
      expect(e.message).toMatch(/^invalid expiresIn '.*': must be an integer 1\.\.604800/);
    }
    expect(signer().presign({ ...base, expiresIn: 1 }).wireQuery).toContain('X-Amz-Expires=1&');
    expect(signer().presign({ ...base, expiresIn: 604800 }).wireQuery).toContain('X-Amz-Expires=604800&');
  });

  it('rejects bad requests with messages naming the field', () => {
    expect(code(() => signer().sign({ ...base, payloadHash: 'abc' })).message).toMatch(/payloadHash 'abc'/);
    expect(code(() => signer().sign({ ...base, headers: { 'x-amz-date': 'x' }, payloadHash: 'UNSIGNED-PAYLOAD' })).message).toMatch(/host/);
    expect(code(() => signer().sign({ ...base, path: 'k', payloadHash: 'UNSIGNED-PAYLOAD' })).message).toMatch(/path 'k'.*start with "\/"/);
    expect(code(() => signer().sign({ ...base, path: '/a\uD800b', payloadHash: 'UNSIGNED-PAYLOAD' })).message).toMatch(/path .*lone surrogate/);
    expect(code(() => signer().sign({ ...base, payloadHash: 'UNSIGNED-PAYLOAD', contentSha256Header: false })).message).toMatch(/contentSha256Header/);
    expect(code(() => signer().sign({ ...base, payloadHash: 'UNSIGNED-PAYLOAD', date: new Date(NaN) })).message).toMatch(/date/);
    expect(code(() => signer().presign({ ...base, expiresIn: 5, query: [['X-Amz-Signature', 'x']] })).message).toMatch(/X-Amz-Signature/);
    expect(code(() => signer().sign({ ...base, path: '/' + 'é'.repeat(20000), payloadHash: 'UNSIGNED-PAYLOAD' })).code).toBe('RequestTooLarge');
    expect(code(() => new SigV4Signer({ credentials: ex.credentials, region: 'us/east' })).message).toMatch(/region 'us\/east'/);
    expect(code(() => signer().sign({ ...base, payloadHash: 'UNSIGNED-PAYLOAD', headers: { host: 'h', 'x-amz-meta-a': 'x\u0000y' } })).message)
      .toMatch(/header x-amz-meta-a.*printable ASCII/);
    expect(code(() => signer().sign({ ...base, payloadHash: 'UNSIGNED-PAYLOAD', headers: { host: 'h', 'x-amz-meta-a': 'café' } })).message)
      .toMatch(/header x-amz-meta-a.*printable ASCII/);
  });

  it('never puts the secret into an error message', () => {
    const secret = 'SECRET-do-not-print';
    const msgs = [
      code(() => new SigV4Signer({ credentials: { accessKeyId: '', secretAccessKey: secret }, region: 'r' })).message,
      code(() => new SigV4Signer({ credentials: { accessKeyId: 'a', secretAccessKey: '' }, region: 'r' })).message,
      code(() => new SigV4Signer({ credentials: { accessKeyId: 'a', secretAccessKey: secret + '\uD800' }, region: 'r' })).message,
      code(() => new SigV4Signer({ credentials: { accessKeyId: 'a', secretAccessKey: 's', sessionToken: secret + '\uDC00' }, region: 'r' })).message,
      code(() => signer().sign({ ...base, payloadHash: 'UNSIGNED-PAYLOAD',
        headers: { host: 'h', 'x-amz-server-side-encryption-customer-key': secret + '\uD800' } })).message,
    ];
    expect(msgs[4]).toMatch(/x-amz-server-side-encryption-customer-key/);
    for (const m of msgs) expect(m).not.toContain(secret);
  });
});

describe('size limits', () => {
  const verify = (s: SigV4Signer, r: { stringToSign: string; canonicalRequest: string; signature: string }) => {
    expect(r.stringToSign.split('\n')[3]).toBe(sha256Hex(r.canonicalRequest));
    expect(r.signature).toBe(nodeSignature(ex.credentials.secretAccessKey, '20130524', 'us-east-1', 's3', r.stringToSign));
  };

  it('worst-case expansion near the input limit signs correctly and leaves the key cache intact', () => {
    const s = signer();
    const names = Array.from({ length: 400 }, (_, i) => `x-amz-meta-${String(i).padStart(3, '0')}-${'n'.repeat(50)}`);
    const cases = [
      { path: '/' + 'é'.repeat(15_000), query: [] as Array<[string, string]>, headers: { host: 'h' } as Record<string, string> },
      { path: '/k', query: [['q', '/'.repeat(30_000)]] as Array<[string, string]>, headers: { host: 'h' } },
      { path: '/k', query: Array.from({ length: 500 }, (_, i): [string, string] => [`é${i}`, '&=/']), headers: { host: 'h' } },
      { path: '/k', query: [], headers: Object.fromEntries([['host', 'h'], ...names.map((n) => [n, 'v'])]) },
    ];
    for (const c of cases) {
      verify(s, s.sign({ method: 'PUT', ...c, payloadHash: 'UNSIGNED-PAYLOAD', date: DATE }));
      verify(s, s.presign({ method: 'GET', ...c, date: DATE, expiresIn: 60 }));
      // a small request right after still verifies: nothing spilled into the key slots
      verify(s, s.sign({ ...{ method: 'GET', path: '/k', headers: { host: 'h' } }, payloadHash: 'UNSIGNED-PAYLOAD', date: DATE }));
    }
    expect(s.keyDerivations).toBe(1);
  });

  it('refuses more than the entry limit with a clear error', () => {
    const e = (() => {
      try {
        signer().sign({ method: 'GET', path: '/k', query: Array.from({ length: 600 }, (_, i): [string, string] => [`p${i}`, '']), headers: { host: 'h' }, payloadHash: 'UNSIGNED-PAYLOAD', date: DATE });
      } catch (x) { return x as PveS3Error; }
      throw new Error('did not throw');
    })();
    expect(e.message).toMatch(/^invalid query '600 parameters': at most \d+ can be signed/);
  });
});

describe('toAmzDate', () => {
  // the ISO form node prints, reordered: an independent statement of "YYYYMMDDTHHMMSSZ" in UTC
  const fromIso = (d: Date) => d.toISOString().replace(/[-:]|\.\d{3}/g, '');

  it('is the UTC ISO date without separators or milliseconds, over years 0000-9999 (fixed seed)', () => {
    let seed = 12345;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const first = new Date(0); // 0000-01-01 (Date.UTC maps the years 0..99 to 1900..1999)
    first.setUTCFullYear(0, 0, 1);
    const last = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
    const span = last - first.getTime();
    const dates = [first, new Date(last), new Date(Date.UTC(2024, 1, 29, 9, 5, 7, 999)), new Date(Date.UTC(1970, 0, 1))];
    for (let i = 0; i < 2000; i++) dates.push(new Date(first.getTime() + Math.floor(next() * span)));
    for (const d of dates) expect(toAmzDate(d), d.toISOString()).toBe(fromIso(d));
  });

  it('refuses dates outside the years 0000-9999 and invalid dates, naming the value', () => {
    expect(() => toAmzDate(new Date(Date.UTC(10000, 0, 1)))).toThrow("invalid date '10000': must be within the years 0000..9999");
    const bc = new Date(0);
    bc.setUTCFullYear(-1);
    expect(() => toAmzDate(bc)).toThrow("invalid date '-1': must be within the years 0000..9999");
    expect(() => toAmzDate(new Date(NaN))).toThrow(/invalid date 'Invalid Date': must be a valid Date/);
  });
});
