import { describe, expect, it } from 'vitest';
import { copySource, decodeMetaValue, encodeMetaValue, objectInfo, putHeaders } from '../../host/src/s3/objects.js';

describe('metadata values on the wire (RFC 2047)', () => {
  it.each(['plain', 'with single spaces', '100', "!#$%&'*+-.^_`|~"])('plain ASCII %j goes as is', (v) => {
    expect(encodeMetaValue(v)).toBe(v);
    expect(decodeMetaValue(v)).toBe(v);
  });

  it.each(['Grüße', '日本語 ✓', ' lead', 'trail ', 'two  spaces', 'tab\there', 'line\nbreak', '=?UTF-8?B?eA==?=', ''])(
    '%j is encoded and decodes back exactly',
    (v) => {
      const w = encodeMetaValue(v);
      expect(w).toMatch(v === '' ? /^$/ : /^=\?UTF-8\?B\?[A-Za-z0-9+/=]*\?=$/);
      expect(decodeMetaValue(w)).toBe(v);
    },
  );

  it('decodes what other tools write: several words, Q encoding, ISO-8859-1', () => {
    expect(decodeMetaValue('=?UTF-8?B?R3LDvA==?= =?UTF-8?B?w59l?=')).toBe('Grüße');
    expect(decodeMetaValue('=?utf-8?Q?caf=C3=A9_au_lait?=')).toBe('café au lait');
    expect(decodeMetaValue('=?ISO-8859-1?Q?caf=E9?=')).toBe('café');
    expect(decodeMetaValue('=?KOI8-R?B?AAA=?=')).toBe('=?KOI8-R?B?AAA=?=');
  });

  it('raw UTF-8 written by other tools (read as Latin-1 by HTTP) is decoded; real Latin-1 stays', () => {
    expect(decodeMetaValue(Buffer.from('Grüße ✓', 'utf8').toString('latin1'))).toBe('Grüße ✓');
    expect(decodeMetaValue('caf\u00e9')).toBe('café');
  });

  it('metadata names must be HTTP tokens; they are sent lower-case', () => {
    expect(putHeaders({ metadata: { VmID: '1' } })).toEqual({ 'x-amz-meta-vmid': '1' });
    expect(() => putHeaders({ metadata: { 'a:b': '1' } })).toThrow(/invalid metadata name 'a:b'/);
    expect(() => putHeaders({ metadata: { 'ü': '1' } })).toThrow(/invalid metadata name/);
  });
});

describe('write headers', () => {
  it('SSE, storage class, object lock', () => {
    const until = new Date('2030-01-01T00:00:00Z');
    expect(
      putHeaders({
        contentType: 'application/zstd',
        storageClass: 'STANDARD_IA',
        sse: { type: 'aws:kms', keyId: 'testkey-1' },
        objectLock: { mode: 'GOVERNANCE', retainUntil: until, legalHold: true },
      }),
    ).toEqual({
      'content-type': 'application/zstd',
      'x-amz-storage-class': 'STANDARD_IA',
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'testkey-1',
      'x-amz-object-lock-mode': 'GOVERNANCE',
      'x-amz-object-lock-retain-until-date': '2030-01-01T00:00:00.000Z',
      'x-amz-object-lock-legal-hold': 'ON',
    });
    expect(putHeaders({ sse: { type: 'AES256' } })).toEqual({ 'x-amz-server-side-encryption': 'AES256' });
  });

  it('SSE-C: key, algorithm and the key MD5', () => {
    const key = new Uint8Array(32); // MD5 of 32 zero bytes: 70bc8f4b72a86921468bf8e8441dce51
    expect(putHeaders({ sse: { type: 'SSE-C', key } })).toEqual({
      'x-amz-server-side-encryption-customer-algorithm': 'AES256',
      'x-amz-server-side-encryption-customer-key': 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      'x-amz-server-side-encryption-customer-key-md5': Buffer.from('70bc8f4b72a86921468bf8e8441dce51', 'hex').toString('base64'),
    });
  });

  it('refuses bad values before any request, naming them', () => {
    expect(() => putHeaders({ storageClass: 'standard ia' })).toThrow(/invalid storage_class 'standard ia'/);
    expect(() => putHeaders({ objectLock: { mode: 'FOREVER' as 'GOVERNANCE', retainUntil: new Date() } })).toThrow(/invalid object lock mode 'FOREVER'/);
  });
});

describe('objectInfo from response headers', () => {
  it('reads size, ETag, metadata, SSE, lock and range', () => {
    const i = objectInfo('k', {
      'content-length': '10',
      'content-range': 'bytes 5-14/1000',
      etag: '"abc-3"',
      'last-modified': 'Thu, 26 Nov 2026 05:00:00 GMT',
      'content-type': 'text/plain',
      'x-amz-meta-note': '=?UTF-8?B?w7w=?=',
      'x-amz-meta-vmid': '100',
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'testkey-1',
      'x-amz-object-lock-mode': 'COMPLIANCE',
      'x-amz-object-lock-retain-until-date': '2030-01-01T00:00:00Z',
      'x-amz-mp-parts-count': '3',
    });
    expect(i).toMatchObject({
      key: 'k',
      size: 1000,
      contentRange: { start: 5, end: 14 },
      etag: '"abc-3"',
      contentType: 'text/plain',
      metadata: { note: 'ü', vmid: '100' },
      sse: { type: 'aws:kms', keyId: 'testkey-1' },
      objectLock: { mode: 'COMPLIANCE', retainUntil: new Date('2030-01-01T00:00:00Z') },
      partsCount: 3,
    });
    expect(i.lastModified?.toISOString()).toBe('2026-11-26T05:00:00.000Z');
  });

  it('an unquoted ETag is quoted', () => {
    expect(objectInfo('k', { etag: 'abc' }).etag).toBe('"abc"');
  });
});

describe('x-amz-copy-source', () => {
  it('percent-encodes every byte but unreserved characters and slashes', () => {
    expect(copySource('bkt', 'a b/c+d%e~f_g.h-i')).toBe('/bkt/a%20b/c%2Bd%25e~f_g.h-i');
    expect(copySource('bkt', 'ü/日')).toBe('/bkt/%C3%BC/%E6%97%A5');
    expect(copySource('bkt', 'x?y#z&w=')).toBe('/bkt/x%3Fy%23z%26w%3D');
  });
});
