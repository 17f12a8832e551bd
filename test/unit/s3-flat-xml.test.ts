/**
 * The flat-document scanner (host/src/s3/flat-xml.ts) against the general parser (fast-xml-parser,
 * xml.ts) as the oracle: on the error, multipart and copy bodies of the vectors and on generated
 * flat bodies with every kind of value S3 writes, both give the same document and every reader of
 * xml.ts the same result; what the scanner does not read it hands back (undefined) for the general
 * parser to read or refuse.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { readErrorBody, scanFlat } from '../../host/src/s3/flat-xml.js';
import {
  escapeXml,
  loadXmlParser,
  parseCompleteMultipartUpload,
  parseCopyObjectResult,
  parseErrorBody,
  parseInitiateMultipartUpload,
  parseXml,
  type XmlDocument,
} from '../../host/src/s3/xml.js';
import { vectorsDir } from '../helpers/vectors.js';

beforeAll(loadXmlParser);

const dir = join(vectorsDir(), 's3-xml-examples');
const read = (f: string) => readFileSync(join(dir, f), 'utf8');

/** The general parser's document without the white space it keeps between elements. */
function oracle(body: string): XmlDocument {
  const d = parseXml(body);
  const node = { ...d.node };
  delete node['#text'];
  return { root: d.root, node };
}

type Reader = (body: string | XmlDocument) => unknown;
// parseErrorBody is typed for text only; agree() hands it the scanned document only to see it refuse alike
const readers: Reader[] = [parseErrorBody as Reader, parseInitiateMultipartUpload, parseCompleteMultipartUpload, parseCopyObjectResult];

/** Both parsers read `body` alike: the same document, and each reader the same result or the same refusal. */
function agree(body: string): void {
  const flat = scanFlat(body);
  expect(flat, `the scanner reads ${JSON.stringify(body)}`).toBeDefined();
  expect(flat).toEqual(oracle(body));
  for (const r of readers) {
    let want: unknown;
    try {
      want = r(body);
    } catch (e) {
      expect(() => r(flat!), r.name).toThrow((e as Error).message);
      continue;
    }
    // parseErrorBody takes text only: its node reader is what readErrorBody uses
    if (r !== parseErrorBody) expect(r(flat!), r.name).toEqual(want);
  }
}

describe('scanFlat and the general parser agree', () => {
  it('on every error, multipart result and copy body of the vectors, which it all reads', async () => {
    const files = readdirSync(dir).filter((f) => /^(error-|initiate-|complete-multipart-upload-)/.test(f) && f.endsWith('.xml'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) {
      const body = read(f);
      agree(body);
      expect(await readErrorBody(body), f).toEqual(parseErrorBody(body));
    }
    expect((await readErrorBody(read('error-no-such-key-devguide.xml')))?.code).toBe('NoSuchKey');
    expect(parseInitiateMultipartUpload(scanFlat(read('initiate-multipart-upload-result.xml'))!).uploadId).toBe('defaultID');
  });

  it('on the bodies RadosGW and AWS send (declaration, xmlns, one line or pretty-printed)', async () => {
    const ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';
    for (const body of [
      `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message></Message><BucketName>b</BucketName><RequestId>tx0-1</RequestId><HostId>8c29d-default-default</HostId></Error>`,
      `<?xml version="1.0" encoding="UTF-8"?>\n<InitiateMultipartUploadResult${ns}><Bucket>b</Bucket><Key>dump/a b&amp;c.vma</Key><UploadId>2~abc</UploadId></InitiateMultipartUploadResult>`,
      `<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult${ns}>\n  <Location>http://h/b/k</Location>\n  <Bucket>b</Bucket>\n  <Key>k</Key>\n  <ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;</ETag>\n</CompleteMultipartUploadResult>`,
      `<CopyObjectResult><LastModified>2024-05-06T07:08:09.000Z</LastModified><ETag>"9b2cf535f27731c974343645a3985328"</ETag></CopyObjectResult>`,
      `<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message><StringToSign>AWS4-HMAC-SHA256&#xA;20240506T070809Z</StringToSign><CanonicalRequest>GET&#10;/</CanonicalRequest></Error>`,
      `<Error/>`,
      `<Error></Error>\n`,
      `<Error ><Code >SlowDown</Code ><Message/></Error >`,
    ]) {
      agree(body);
      expect(await readErrorBody(body)).toEqual(parseErrorBody(body));
    }
  });

  it('on generated flat bodies with the values S3 writes (fixed seed: the same bodies every run)', () => {
    let seed = 0x5eedf1a7;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const pieces = ['a', 'Z', '0', ' ', '/', '.', '-', '_', '+', '%', '&', '<', '>', '"', "'", '\r', '\t', '\n', 'é', '日本', '😀', '&amp;', ']]>', '?>'];
    const value = () => Array.from({ length: rnd(10) }, () => pieces[rnd(pieces.length)]).join('');
    const esc = (s: string) => {
      const e = escapeXml(s);
      return ['', '&#x0D;', '&#13;'][rnd(3)] === '' ? e : e.replace(/\r/g, rnd(2) ? '&#x0D;' : '&#13;');
    };
    const roots = ['Error', 'InitiateMultipartUploadResult', 'CompleteMultipartUploadResult', 'CopyObjectResult', 'CopyPartResult'];
    const leaves = ['Code', 'Message', 'Key', 'BucketName', 'RequestId', 'HostId', 'Resource', 'UploadId', 'Bucket', 'ETag', 'Location', 'LastModified', 'ServerTime', 'ChecksumCRC64NVME'];
    for (let n = 0; n < 300; n++) {
      const ws = ['', '\n', '\n  ', '\r\n\t', ' '][rnd(5)]!;
      const root = roots[rnd(roots.length)]!;
      const names = leaves.filter(() => rnd(2) === 1);
      const kids = names.map((k) => (rnd(6) === 0 ? `<${k}/>` : rnd(8) === 0 ? `<${k} />` : `<${k}>${esc(value())}</${k}>`));
      const decl = rnd(2) ? '<?xml version="1.0" encoding="UTF-8"?>' + ['', '\n'][rnd(2)] : '';
      const attr = rnd(2) ? ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' : '';
      agree(`${decl}<${root}${attr}>${kids.map((k) => ws + k).join('')}${ws}</${root}>${['', '\n'][rnd(2)]}`);
    }
  });
});

describe('what scanFlat hands back to the general parser', () => {
  it('anything that is not a flat document of plain text elements', async () => {
    for (const body of [
      '', // no element
      'text', // not XML
      '<Error><Code>A</Code><Code>B</Code></Error>', // a repeated child
      '<DeleteResult><Deleted>k</Deleted></DeleteResult>', // a list-like child
      '<Error><Code><X>A</X></Code></Error>', // nested
      '<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>', // nested
      '<Error><!-- c --><Code>A</Code></Error>', // comment
      '<Error><Code><![CDATA[A]]></Code></Error>', // CDATA
      '<!DOCTYPE Error><Error><Code>A</Code></Error>', // DOCTYPE
      '<Error><?pi x?><Code>A</Code></Error>', // processing instruction
      '<s3:Error xmlns:s3="x"><s3:Code>A</s3:Code></s3:Error>', // namespace prefixes
      '<Error>text<Code>A</Code></Error>', // text beside elements
      '<Error><Code>A&nbsp;</Code></Error>', // an entity XML does not define
      '<Error><Code>&#x110000;</Code></Error>', // a reference beyond Unicode
      '<Error><Code>A</Code>', // not closed
      '<Error><Code>A</Cod></Error>', // mismatched
      '<Error><Code>A</Code></Error><Error/>', // a second root
      '<Error><Code>A</Code></Error>tail', // text after the root
      'x<Error/>', // text before it
      '<Error><Code x="1">A</Code></Error>', // an attribute on a child
      '<Error a="1" b="2"><Code>A</Code></Error>', // more than one on the root
      '<Error a=1><Code>A</Code></Error>', // not name="value"
      '<Error><__proto__>A</__proto__></Error>', // not a plain property
      '<Error><constructor>A</constructor></Error>',
    ]) {
      expect(scanFlat(body), body).toBeUndefined();
    }
  });

  it('so that readErrorBody still reads or refuses those as the general parser does', async () => {
    for (const body of ['', 'text', '<Error><Code>A</Code><Code>B</Code></Error>', '<Error><Code><X>A</X></Code></Error>', '<!DOCTYPE Error><Error><Code>A</Code></Error>', '<Error><Code>A', '<s3:Error xmlns:s3="x"><s3:Code>A</s3:Code></s3:Error>']) {
      expect(await readErrorBody(body), body).toEqual(parseErrorBody(body));
    }
  });
});

describe('fast-xml-parser stays unloaded', () => {
  it('while readErrorBody reads flat error bodies, and is loaded for one it cannot read', async () => {
    vi.resetModules();
    const flatXml = await import('../../host/src/s3/flat-xml.js');
    const xml = await import('../../host/src/s3/xml.js');
    expect((await flatXml.readErrorBody(read('error-slow-down.xml')))?.code).toBe('SlowDown');
    expect(flatXml.scanFlat(read('complete-multipart-upload-result.xml'))?.root).toBe('CompleteMultipartUploadResult');
    // parseXml refuses to run before the parser is loaded: nothing loaded it so far
    expect(() => xml.parseXml('<Error/>')).toThrow(/before loadXmlParser/);
    expect((await flatXml.readErrorBody('<Error><Code>NoSuchKey</Code><!-- x --></Error>'))?.code).toBe('NoSuchKey');
    expect(xml.parseXml('<Error/>').root).toBe('Error');
  });
});
