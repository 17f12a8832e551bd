import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { vectorsDir } from '../helpers/vectors.js';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import {
  buildCompleteMultipartUpload,
  buildDeleteObjects,
  buildLifecycle,
  buildTagging,
  isoMillis,
  loadXmlParser,
  parseCompleteMultipartUpload,
  parseDeleteResult,
  parseErrorBody,
  parseInitiateMultipartUpload,
  parseLifecycle,
  parseListMultipartUploads,
  parseListObjectsV1,
  parseListObjectsV2,
  parseListParts,
  parseTagging,
  parseXml,
  partsFromETag,
  text,
  XmlError,
} from '../../host/src/s3/xml.js';
import type { LifecycleRule } from '../../host/src/s3/types.js';

const vectors = vectorsDir();
const dir = join(vectors, 's3-xml-examples');

interface IndexEntry {
  file: string;
  operation: string;
  httpStatus: number;
  expected?: Record<string, unknown>;
}
const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as IndexEntry[];
const read = (f: string) => readFileSync(join(dir, f), 'utf8');

// the parser is loaded on the way to the first S3 body (a status never loads it)
beforeAll(loadXmlParser);

describe('the lazily loaded parser', () => {
  it('refuses to parse before loadXmlParser, loudly rather than as a bad answer', async () => {
    vi.resetModules();
    const fresh = await import('../../host/src/s3/xml.js');
    expect(() => fresh.parseXml('<Error><Code>NoSuchKey</Code></Error>')).toThrow(/before loadXmlParser/);
    expect(() => fresh.parseErrorBody('<Error><Code>NoSuchKey</Code></Error>')).toThrow(/before loadXmlParser/);
    await fresh.loadXmlParser();
    expect(fresh.parseErrorBody('<Error><Code>NoSuchKey</Code></Error>')?.code).toBe('NoSuchKey');
  });
});

/** Scalar fields of a root element as the raw strings the parser keeps. */
function scalar(body: string, name: string): string | undefined {
  return text(parseXml(body).node, name);
}

/** Compares an expected index.json value with a raw string from the parser. */
function same(actual: string | undefined, expected: unknown) {
  if (typeof expected === 'number') expect(Number(actual)).toBe(expected);
  else if (typeof expected === 'boolean') expect(actual).toBe(String(expected));
  else expect(actual).toBe(expected);
}

describe('s3-xml-examples: every vector file is covered', () => {
  it('index.json lists every .xml file in the directory', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.xml')).sort();
    expect(index.map((e) => e.file).sort()).toEqual(files);
    expect(files.length).toBeGreaterThanOrEqual(27);
  });
});

describe.each(index)('$file ($operation)', (entry) => {
  const body = read(entry.file);
  const exp = entry.expected ?? {};

  it('parses to the expected fields', () => {
    const op = entry.operation;
    if (op === 'Error' || (op === 'CompleteMultipartUpload' && entry.httpStatus === 200 && /<Error>/.test(body))) {
      const e = parseErrorBody(body);
      expect(e).toBeDefined();
      for (const [k, v] of Object.entries(exp)) same(e!.fields[k], v);
      expect(e!.code).toBe(exp.Code);
      if (exp.Message !== undefined) expect(e!.message).toBe(exp.Message);
      if (exp.RequestId !== undefined) expect(e!.requestId).toBe(exp.RequestId);
      if (op === 'CompleteMultipartUpload') {
        // the 200-with-error body must not pass as a completion
        expect(() => parseCompleteMultipartUpload(body)).toThrow(/expected <CompleteMultipartUploadResult>, got <Error>/);
      }
      return;
    }
    switch (op) {
      case 'ListObjectsV2': {
        const r = parseListObjectsV2(body);
        for (const k of ['Name', 'Prefix', 'KeyCount', 'MaxKeys', 'IsTruncated', 'StartAfter', 'ContinuationToken', 'Delimiter', 'EncodingType']) {
          if (k in exp) same(scalar(body, k), exp[k]);
        }
        expect(r.isTruncated).toBe(exp.IsTruncated);
        if (exp.IsTruncated) expect(r.nextContinuationToken).toBe(exp.NextContinuationToken);
        else expect(r.nextContinuationToken).toBeUndefined();
        if ('NextContinuationToken' in exp) same(scalar(body, 'NextContinuationToken'), exp.NextContinuationToken);
        checkContents(r.objects, exp.Contents as ExpContent[] | undefined);
        checkPrefixes(r.prefixes, exp.CommonPrefixes);
        break;
      }
      case 'ListObjects (v1)': {
        const r = parseListObjectsV1(body);
        for (const k of ['Name', 'Prefix', 'Marker', 'MaxKeys', 'IsTruncated', 'Delimiter', 'EncodingType']) {
          if (k in exp) same(scalar(body, k), exp[k]);
        }
        expect(r.isTruncated).toBe(exp.IsTruncated);
        checkContents(r.objects, exp.Contents as ExpContent[] | undefined);
        checkPrefixes(r.prefixes, exp.CommonPrefixes);
        if (!exp.Contents) expect(r.objects).toEqual([]);
        break;
      }
      case 'ListMultipartUploads': {
        const r = parseListMultipartUploads(body);
        for (const k of ['Bucket', 'Prefix', 'Delimiter', 'KeyMarker', 'UploadIdMarker', 'MaxUploads', 'IsTruncated']) {
          if (k in exp) same(scalar(body, k), exp[k]);
        }
        expect(r.isTruncated).toBe(exp.IsTruncated);
        expect(r.nextKeyMarker ?? '').toBe(exp.NextKeyMarker);
        expect(r.nextUploadIdMarker ?? '').toBe(exp.NextUploadIdMarker);
        const ups = (exp.Uploads ?? []) as { Key: string; UploadId: string; Initiated: string; StorageClass: string }[];
        expect(r.uploads.map((u) => [u.key, u.uploadId, u.initiated?.toISOString(), u.storageClass])).toEqual(
          ups.map((u) => [u.Key, u.UploadId, u.Initiated, u.StorageClass]),
        );
        checkPrefixes(r.prefixes, exp.CommonPrefixes);
        break;
      }
      case 'ListObjectVersions': {
        // not an operation of ours; the generic parser must still keep versions as strings and lists as arrays
        const n = parseXml(body).node;
        const versions = n.Version as Record<string, unknown>[];
        const ev = exp.Versions as { Key: string; VersionId: string; Size: number; IsLatest: boolean }[];
        expect(versions.map((v) => [v.Key, v.VersionId, v.Size, v.IsLatest])).toEqual(
          ev.map((v) => [v.Key, v.VersionId, String(v.Size), String(v.IsLatest)]),
        );
        expect((n.DeleteMarker as unknown[]).length).toBe((exp.DeleteMarkers as unknown[]).length);
        same(scalar(body, 'Prefix'), exp.Prefix);
        same(scalar(body, 'MaxKeys'), exp.MaxKeys);
        break;
      }
      case 'CreateMultipartUpload (InitiateMultipartUpload)': {
        const r = parseInitiateMultipartUpload(body);
        expect([r.bucket, r.key, r.uploadId]).toEqual([exp.Bucket, exp.Key, exp.UploadId]);
        break;
      }
      case 'CompleteMultipartUpload': {
        const r = parseCompleteMultipartUpload(body);
        expect([r.location, r.bucket, r.key, r.etag]).toEqual([exp.Location, exp.Bucket, exp.Key, exp.ETag]);
        expect(partsFromETag(r.etag)).toBe(9);
        break;
      }
      case 'ListParts': {
        const r = parseListParts(body);
        expect(r.isTruncated).toBe(exp.IsTruncated);
        if ('NextPartNumberMarker' in exp) expect(r.nextPartNumberMarker).toBe(exp.NextPartNumberMarker);
        for (const k of ['Bucket', 'Key', 'UploadId', 'PartNumberMarker']) if (k in exp) same(scalar(body, k), exp[k]);
        const part = r.parts.find((p) => p.partNumber === exp.PartNumber);
        expect(part).toBeDefined();
        if ('ETag' in exp) expect(part!.etag).toBe(exp.ETag);
        if ('Size' in exp) expect(part!.size).toBe(exp.Size);
        if ('ChecksumCRC32' in exp) {
          const raw = (parseXml(body).node.Part as Record<string, string>[]).find((p) => p.PartNumber === String(exp.PartNumber));
          expect(raw!.ChecksumCRC32).toBe(exp.ChecksumCRC32);
        }
        break;
      }
      case 'DeleteObjects': {
        const r = parseDeleteResult(body);
        const d = exp.Deleted as { Key: string; VersionId?: string }[];
        expect(r.deletedVersions).toEqual(d.map((x) => ({ key: x.Key, versionId: x.VersionId })));
        const er = exp.Errors as { Key: string; Code: string; Message: string }[];
        expect(r.errors).toEqual(er.map((x) => ({ key: x.Key, code: x.Code, message: x.Message })));
        break;
      }
      default:
        throw new Error(`no parser test for operation ${op} (${entry.file})`);
    }
  });
});

type ExpContent = { Key: string; ETag?: string; Size?: number; LastModified?: string; StorageClass?: string };

function checkContents(got: { key: string; etag: string; size: number; lastModified: Date; storageClass?: string }[], exp?: ExpContent[]) {
  if (!exp) return;
  expect(got.length).toBeGreaterThanOrEqual(exp.length);
  for (const e of exp) {
    const o = got.find((x) => x.key === e.Key);
    expect(o, e.Key).toBeDefined();
    if (e.ETag !== undefined) expect(o!.etag).toBe(e.ETag);
    if (e.Size !== undefined) expect(o!.size).toBe(e.Size);
    if (e.LastModified !== undefined) expect(o!.lastModified.toISOString()).toBe(e.LastModified);
    if (e.StorageClass !== undefined) expect(o!.storageClass).toBe(e.StorageClass);
  }
}

function checkPrefixes(got: string[], exp: unknown) {
  if (exp === undefined) return;
  const want = (exp as (string | { Prefix: string })[]).map((p) => (typeof p === 'string' ? p : p.Prefix));
  expect(got).toEqual(want);
}

describe('parser keeps strings as strings', () => {
  it('keys, ETags and tokens that look like numbers stay strings; spaces survive', () => {
    const body = `<?xml version="1.0"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<NextContinuationToken>0012e5</NextContinuationToken>
<Contents><Key>007</Key><ETag>&quot;1e5&quot;</ETag><Size>3</Size><LastModified>2024-01-01T00:00:00.000Z</LastModified></Contents>
<Contents><Key>  lead and trail  </Key><ETag>"x"</ETag><Size>0</Size></Contents>
<Contents><Key>a&amp;b&lt;c&#x0D;d&#233;</Key><Size>1</Size></Contents>
</ListBucketResult>`;
    const r = parseListObjectsV2(body);
    expect(r.objects.map((o) => o.key)).toEqual(['007', '  lead and trail  ', 'a&b<c\rdé']);
    expect(r.objects[0]!.etag).toBe('"1e5"');
    expect(r.nextContinuationToken).toBe('0012e5');
  });

  it('one element is still a list', () => {
    const r = parseListObjectsV2('<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>');
    expect(r.objects.map((o) => o.key)).toEqual(['k']);
    expect(r.prefixes).toEqual(['p/']);
  });

  it('EncodingType=url: keys and prefixes are decoded (+ is a space, %2B a plus)', () => {
    const r = parseListObjectsV2(
      '<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated><Contents><Key>a+b%2Bc%25d%E2%82%AC%0D</Key><Size>1</Size></Contents><CommonPrefixes><Prefix>x%2Fy+z/</Prefix></CommonPrefixes></ListBucketResult>',
    );
    expect(r.objects[0]!.key).toBe('a b+c%d€\r');
    expect(r.prefixes).toEqual(['x/y z/']);
  });

  it('refuses a DOCTYPE (no entity expansion) and malformed XML', () => {
    expect(() => parseXml('<!DOCTYPE x [<!ENTITY a "b">]><Error><Code>&a;</Code></Error>')).toThrow(/DOCTYPE/);
    expect(() => parseListObjectsV2('<ListBucketResult><Contents><Key>a</Contents>')).toThrow();
    expect(parseErrorBody('not xml at all')).toBeUndefined();
    expect(parseErrorBody('<html><body>502 Bad Gateway</body></html>')).toBeUndefined();
  });

  it('refuses XML nested a million deep (no stack overflow, no crash)', () => {
    // a hostile endpoint's answer within the size limits: the parser's own depth limit refuses it
    const deep = '<ListBucketResult>' + '<a>'.repeat(1_000_000) + '</a>'.repeat(1_000_000) + '</ListBucketResult>';
    expect(() => parseXml(deep)).toThrow(XmlError);
    expect(() => parseXml(deep)).toThrow(/malformed XML: Maximum nested tags exceeded/);
  });

  it('a truncated V2 page without a token is an error, not an endless loop', () => {
    expect(() => parseListObjectsV2('<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>')).toThrow(/NextContinuationToken/);
  });

  it('V1 without NextMarker continues after the last key', () => {
    const r = parseListObjectsV1('<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key><Size>1</Size></Contents><Contents><Key>b</Key><Size>1</Size></Contents></ListBucketResult>');
    expect(r.nextMarker).toBe('b');
  });
});

describe('ETag part counts (s3-etag-vectors.json)', () => {
  const v = JSON.parse(readFileSync(join(vectors, 's3-etag-vectors.json'), 'utf8')) as {
    partsFromETag: { cases: { etag: string; expectedParts: number | null; valid: boolean }[] };
  };
  it.each(v.partsFromETag.cases)('$etag → $expectedParts', (c) => {
    expect(partsFromETag(c.etag)).toBe(c.valid ? c.expectedParts : null);
  });
});

describe('XML we write', () => {
  it('DeleteObjects escapes keys, writes Quiet, and parses back', () => {
    const keys = ['a&b', '<x>', 'cr\rlf\n', 'ü "q"'];
    const xml = buildDeleteObjects(keys, true);
    expect(xml).toContain('<Quiet>true</Quiet>');
    expect(xml).toContain('<Key>cr&#xD;lf&#xA;</Key>');
    const n = parseXml(xml).node;
    expect((n.Object as { Key: string }[] | { Key: string }) ).toBeDefined();
    const objs = ([] as { Key: string }[]).concat(n.Object as { Key: string }[]);
    expect(objs.map((o) => o.Key)).toEqual(keys);
  });

  it('CompleteMultipartUpload lists parts in order with quoted ETags', () => {
    const xml = buildCompleteMultipartUpload([
      { partNumber: 1, etag: '"a"' },
      { partNumber: 2, etag: '"b"' },
    ]);
    expect(xml).toContain('<Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber>');
  });

  it('lifecycle rules survive build → parse', () => {
    const rules: LifecycleRule[] = [
      { id: 'expire-dump', status: 'Enabled', filter: { prefix: 'dump/' }, expiration: { days: 30 } },
      { id: 'abort-mpu', status: 'Enabled', filter: {}, abortIncompleteMultipartUpload: { daysAfterInitiation: 2 } },
      {
        id: 'and',
        status: 'Disabled',
        filter: { prefix: 'x&y/', tags: [{ key: 'k', value: 'v' }], objectSizeGreaterThan: 10 },
        transitions: [{ days: 5, storageClass: 'GLACIER' }],
        noncurrentVersionExpiration: { noncurrentDays: 7 },
      },
      { id: 'legacy', status: 'Enabled', legacyPrefix: 'old/', expiration: { days: 1 } },
    ];
    expect(parseLifecycle(buildLifecycle(rules))).toEqual(rules);
  });

  it('object tags survive build → parse, escaped, one tag or many, none', () => {
    const tags = { 'pve-s3': 'archive', 'a&b': '<v> "q"', empty: '' };
    const xml = buildTagging(tags);
    expect(xml).toContain('<Key>a&amp;b</Key><Value>&lt;v&gt; &quot;q&quot;</Value>');
    expect(parseTagging(xml)).toEqual(tags);
    expect(parseTagging(buildTagging({ one: '1' }))).toEqual({ one: '1' });
    expect(parseTagging('<Tagging><TagSet/></Tagging>')).toEqual({});
    expect(() => parseTagging('<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>')).toThrow(/<Tag> has no <Key>/);
  });
});

describe('isoMillis (LastModified without the general date parser)', () => {
  it('agrees with new Date on every form it reads, and leaves the others to it', () => {
    // fixed seed: 20,000 stamps in S3's form with fields in and out of range
    let seed = 7;
    const r = (m: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % m;
    };
    const p = (n: number, l: number) => String(n).padStart(l, '0');
    let read = 0;
    for (let i = 0; i < 20_000; i++) {
      const s = `${p(r(10000), 4)}-${p(r(14), 2)}-${p(r(33), 2)}T${p(r(26), 2)}:${p(r(62), 2)}:${p(r(62), 2)}.${p(r(1000), 3)}Z`;
      const ms = isoMillis(s);
      if (ms === undefined) continue;
      read++;
      expect(ms, s).toBe(new Date(s).getTime());
    }
    expect(read).toBeGreaterThan(5000);
    for (const s of ['2026-12-05T20:06:12Z', ' 2026-12-05T20:06:12.345Z', '2026-12-05t20:06:12.345Z', '2026-1a-05T20:06:12.345Z', '2026-02-29T00:00:00.000Z', '0050-01-01T00:00:00.000Z', '2026-12-05T20:06:12.345+00:00']) {
      expect(isoMillis(s), s).toBeUndefined();
    }
    expect(isoMillis('2026-12-05T20:06:12.345Z')).toBe(Date.UTC(2026, 11, 5, 20, 6, 12, 345));
  });

  it('a listing reads either form to the same date', () => {
    const page = (lm: string) =>
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>b</Name><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>k</Key><LastModified>${lm}</LastModified><ETag>&quot;e&quot;</ETag><Size>1</Size></Contents></ListBucketResult>`;
    expect(parseListObjectsV2(page('2026-12-05T20:06:12.345Z')).objects[0]!.lastModified.toISOString()).toBe('2026-12-05T20:06:12.345Z');
    expect(parseListObjectsV2(page('2026-12-05T20:06:12Z')).objects[0]!.lastModified.toISOString()).toBe('2026-12-05T20:06:12.000Z');
    expect(parseListObjectsV2(page('2026-02-30T20:06:12.000Z')).objects[0]!.lastModified.getTime()).toBe(new Date('2026-02-30T20:06:12.000Z').getTime() || 0);
  });
});
