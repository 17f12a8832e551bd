/**
 * The listing page scanner (host/src/s3/list-xml.ts) against the general parser (fast-xml-parser,
 * xml.ts) as the oracle: on the real S3 listing bodies of the vectors and on generated pages with
 * every kind of value S3 writes (entities, character references, URL-encoded keys, spaces, '>',
 * Owner and unknown elements, attributes, self-closing and repeated elements) both give the same
 * text values and the same page; what the scanner does not read it hands back (undefined) for the
 * general parser to read or refuse.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { MockAgent } from 'undici';
import { beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';
import { scanListPage } from '../../host/src/s3/list-xml.js';
import { escapeXml, loadXmlParser, parseListObjectsV1, parseListObjectsV2, rawListPage } from '../../host/src/s3/xml.js';
import { vectorsDir } from '../helpers/vectors.js';

beforeAll(loadXmlParser);

const dir = join(vectorsDir(), 's3-xml-examples');
const listings = readdirSync(dir).filter((f) => /^list-objects.*\.xml$/.test(f) && !f.includes('versions'));

/** Both parsers read `body` alike: the same text values, the same V2 and V1 pages (or the same refusal). */
function agree(body: string): void {
  const raw = scanListPage(body);
  expect(raw, 'the scanner reads this page').toBeDefined();
  expect(raw).toEqual(rawListPage(body));
  for (const parse of [parseListObjectsV2, parseListObjectsV1]) {
    let oracle: unknown;
    try {
      oracle = parse(body);
    } catch (e) {
      expect(() => parse(raw!)).toThrow((e as Error).message);
      continue;
    }
    expect(parse(raw!)).toEqual(oracle);
  }
}

describe('scanListPage and the general parser agree', () => {
  it('on every listing body of the vectors (AWS documentation, botocore)', () => {
    expect(listings.length).toBeGreaterThanOrEqual(8);
    for (const f of listings) {
      const body = readFileSync(join(dir, f), 'utf8');
      agree(body);
      expect(parseListObjectsV2(scanListPage(body)!).objects.length, f).toBe(parseListObjectsV2(body).objects.length);
    }
  });

  it('the vectors give what they document (keys, sizes, ETags with &quot; decoded, StorageClass)', () => {
    const p = parseListObjectsV2(scanListPage(readFileSync(join(dir, 'list-objects-v2-composite-continuation-commonprefixes.xml'), 'utf8'))!);
    expect(p.objects.map((o) => [o.key, o.size, o.etag, o.storageClass, o.lastModified.toISOString()])).toEqual([
      ['ExampleObject.txt', 857, '"599bab3ed2c697f1d26842727561fd94"', 'REDUCED_REDUNDANCY', '2013-09-17T18:07:53.000Z'],
      ['my-image.jpg', 434234, '"fba9dede5f27731c9771645a39863328"', 'STANDARD', '2009-10-12T17:50:30.000Z'],
    ]);
    expect(p.prefixes).toEqual(['photos/2006/February/', 'photos/2006/January/']);
    const a = parseListObjectsV2(scanListPage(readFileSync(join(dir, 'list-objects-v2-api-ref-example1.xml'), 'utf8'))!);
    expect(a.objects[0]!.etag).toBe('"fba9dede5f27731c9771645a39863328"');
  });

  it('on generated pages with the values S3 writes (fixed seed: the same pages every run)', () => {
    let seed = 0x5eed1234;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const pieces = ['a', 'Z', '0', ' ', '/', '.', '-', '_', '+', '%', '&', '<', '>', '"', "'", '\r', '\t', '\n', 'é', '日本', '😀', 'dump/', '.notes', '&amp;'];
    const key = () => Array.from({ length: 1 + rnd(12) }, () => pieces[rnd(pieces.length)]).join('');
    // how S3 writes a value: escaped, sometimes with CR as a reference (RadosGW and AWS do so)
    const esc = (s: string) => {
      const e = escapeXml(s);
      return rnd(2) ? e.replace(/\r/g, '&#x0D;') : e.replace(/\r/g, '&#13;');
    };
    for (let page = 0; page < 300; page++) {
      const url = rnd(3) === 0;
      const ws = ['', '\n', '\n  ', '\r\n\t'][rnd(4)]!;
      const contents: string[] = [];
      for (let k = rnd(6); k > 0; k--) {
        const kv = url ? encodeURIComponent(key()).replace(/%20/g, '+') : esc(key());
        const fields = [
          `<Key>${kv}</Key>`,
          rnd(4) ? `<LastModified>2026-0${1 + rnd(9)}-1${rnd(10)}T12:00:0${rnd(10)}.000Z</LastModified>` : '<LastModified/>',
          [`<ETag>&quot;${rnd(1e9).toString(16)}&quot;</ETag>`, `<ETag>"${rnd(1e9).toString(16)}-${1 + rnd(9)}"</ETag>`, '<ETag></ETag>'][rnd(3)]!,
          rnd(5) ? `<Size>${rnd(2 ** 31)}</Size>` : '<Size/>',
          ['<StorageClass>STANDARD</StorageClass>', '<StorageClass>GLACIER</StorageClass>', '', '<StorageClass/>'][rnd(4)]!,
          rnd(3) ? '' : `<Owner><ID>${rnd(1e6)}</ID><DisplayName>o &amp; p</DisplayName></Owner>`,
          rnd(4) ? '' : '<ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm><RestoreStatus><IsRestoreInProgress>false</IsRestoreInProgress></RestoreStatus>',
          rnd(6) ? '' : `<Key>second-${rnd(9)}</Key>`,
        ];
        // S3 does not promise an order of the children
        for (let j = fields.length - 1; j > 0; j--) {
          const x = rnd(j + 1);
          [fields[j], fields[x]] = [fields[x]!, fields[j]!];
        }
        contents.push(`<Contents${rnd(8) ? '' : ' a="x>y"'}>${ws}${fields.join(ws)}${ws}</Contents>`);
      }
      const pfx = Array.from({ length: rnd(3) }, () => `<CommonPrefixes><Prefix>${url ? encodeURIComponent(key()) : esc(key())}</Prefix></CommonPrefixes>`);
      const truncated = rnd(2) === 0;
      const head = [
        `<Name>b${rnd(9)}</Name>`,
        rnd(2) ? '<Prefix/>' : `<Prefix>${esc(key())}</Prefix>`,
        rnd(2) ? `<KeyCount>${contents.length}</KeyCount>` : '<Marker></Marker>',
        '<MaxKeys>1000</MaxKeys>',
        url ? '<EncodingType>url</EncodingType>' : rnd(2) ? '' : '<EncodingType>string</EncodingType>',
        `<IsTruncated>${truncated}</IsTruncated>`,
        truncated && rnd(4) ? `<NextContinuationToken>${esc('1ue/' + key())}</NextContinuationToken>` : '',
        rnd(3) ? '' : `<NextMarker>${esc(key())}</NextMarker>`,
        rnd(4) ? '' : `<StartAfter>${esc(key())}</StartAfter>`,
      ];
      const decl = ['', '<?xml version="1.0" encoding="UTF-8"?>\n', '<?xml version="1.0" encoding="UTF-8"?>'][rnd(3)]!;
      const ns = rnd(2) ? ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' : '';
      const body = `${decl}<ListBucketResult${ns}>${ws}${[...head, ...contents, ...pfx].join(ws)}${ws}</ListBucketResult>${ws}`;
      agree(body);
    }
  });

  it('keys with leading/trailing spaces, only spaces, a CR and markup characters keep them', () => {
    const keys = [' lead', 'trail ', '   ', 'a\rb', 'x<y>&"\'z', '\t'];
    const body = `<ListBucketResult><IsTruncated>false</IsTruncated>${keys.map((k) => `<Contents><Key>${escapeXml(k).replace(/\r/g, '&#x0D;')}</Key><Size>1</Size></Contents>`).join('')}</ListBucketResult>`;
    agree(body);
    expect(parseListObjectsV2(scanListPage(body)!).objects.map((o) => o.key)).toEqual(keys);
  });

  it('a page the rules refuse is refused with the same message (Size not a number, truncated without a token)', () => {
    agree('<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>12a</Size></Contents></ListBucketResult>');
    agree('<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>true</IsTruncated></ListBucketResult>');
    expect(() => parseListObjectsV2(scanListPage('<ListBucketResult><KeyCount>0</KeyCount><IsTruncated>true</IsTruncated></ListBucketResult>')!)).toThrow(/NextContinuationToken/);
  });
});

describe('what the scanner does not read goes to the general parser', () => {
  const page = (inner: string) => `<ListBucketResult><IsTruncated>false</IsTruncated>${inner}</ListBucketResult>`;
  it.each([
    ['a comment', page('<!-- c --><Contents><Key>k</Key></Contents>')],
    ['CDATA', page('<Contents><Key><![CDATA[k]]></Key></Contents>')],
    ['a DOCTYPE', `<!DOCTYPE x [<!ENTITY e "k">]>${page('<Contents><Key>&e;</Key></Contents>')}`],
    ['a processing instruction', page('<?pi x?><Contents><Key>k</Key></Contents>')],
    ['a namespace prefix', '<s3:ListBucketResult xmlns:s3="x"><s3:IsTruncated>false</s3:IsTruncated></s3:ListBucketResult>'],
    ['text beside elements', page('stray<Contents><Key>k</Key></Contents>')],
    ['an element inside a value', page('<Contents><Key>a<b/>c</Key></Contents>')],
    ['an unknown entity', page('<Contents><Key>a&nbsp;b</Key></Contents>')],
    ['a bare &', page('<Contents><Key>a & b</Key></Contents>')],
    ['a tag left open', '<ListBucketResult><Contents><Key>a</Contents></ListBucketResult>'],
    ['a closing tag of another element', '<ListBucketResult><Contents><Key>a</Size></Contents></ListBucketResult>'],
    ['a body cut short', '<ListBucketResult><Contents><Key>a</Key>'],
    ['two roots', `${page('')}${page('')}`],
    ['text after the root', `${page('')}x`],
    ['text before the root', `x${page('')}`],
    ['an error document', '<Error><Code>AccessDenied</Code></Error>'],
    ['another root', '<ListAllMyBucketsResult></ListAllMyBucketsResult>'],
    ['a Contents without Key', page('<Contents><Size>1</Size></Contents>')],
    ['an empty Contents', page('<Contents/>')],
    ['a CommonPrefixes without Prefix', page('<CommonPrefixes></CommonPrefixes>')],
    ['a malformed attribute', '<ListBucketResult a=b><IsTruncated>false</IsTruncated></ListBucketResult>'],
    ['an empty body', ''],
  ])('%s', (_what, body) => {
    expect(scanListPage(body)).toBeUndefined();
  });

  it('the client reads such a page through the general parser, and refuses a broken one as before', async () => {
    const mock = new MockAgent();
    mock.disableNetConnect();
    const bodies = [page('<!-- RadosGW never sends this --><Contents><Key>k1</Key><Size>5</Size><ETag>"e"</ETag></Contents>'), '<ListBucketResult><Contents><Key>a</Contents>'];
    mock
      .get('http://127.0.0.1:7480')
      .intercept({ path: /^\/bkt\?/, method: 'GET' })
      .reply(() => ({ statusCode: 200, data: bodies.shift()! }))
      .times(2);
    const c = new S3Client(
      {
        endpoint: 'http://127.0.0.1:7480',
        region: 'us-east-1',
        bucket: 'bkt',
        credentials: { accessKeyId: 'AKUNIT', secretAccessKey: 'unit-secret-unit-secret-unit-secret-0000' },
        connectTimeoutMs: 1000,
        requestTimeoutMs: 1000,
      },
      { dispatcher: mock, retry: { maxRetries: 0, baseDelayMs: 1, maxDelayMs: 2 } },
    );
    try {
      const p = await c.listObjects({});
      expect(p.objects).toEqual([{ key: 'k1', size: 5, etag: '"e"', lastModified: new Date(0), storageClass: undefined }]);
      await expect(c.listObjects({})).rejects.toMatchObject({ code: 'InvalidResponse', message: /unexpected answer from .* to ListObjectsV2: malformed XML/ });
    } finally {
      await c.close();
      await mock.close();
    }
  });
});
