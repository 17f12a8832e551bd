/**
 * S3 XML in and out. The parser is set up so that nothing is guessed: every value stays a string
 * (keys such as "007" or "1e5", ETags and UploadIds must not become numbers), text is not trimmed
 * (keys may begin or end with spaces), only the five XML entities and numeric character references
 * are decoded (S3 writes control characters in keys as &#x0D;), a DOCTYPE is refused (S3 never
 * sends one: it could only be an attack or a captive portal), and elements that may repeat are
 * always arrays, so one <Contents> and many <Contents> look the same to the code.
 */
import type { XMLParser } from 'fast-xml-parser';
import type {
  DeleteResult,
  LifecycleRule,
  ListPage,
  ListPartsPage,
  ListUploadsPage,
  ObjectLockConfig,
  ObjectSummary,
} from './types.js';

export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

type Node = Record<string, unknown>;

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);/g, (_m, e: string) => {
    if (e[0] !== '#') return NAMED[e]!;
    const cp = e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    if (cp > 0x10ffff) throw new XmlError(`invalid character reference &${e};`);
    return String.fromCodePoint(cp);
  });
}

/** Element names that may occur more than once under their parent, in any S3 response we read. */
const REPEATED = new Set([
  'Contents',
  'CommonPrefixes',
  'Upload',
  'Part',
  'Deleted',
  'Rule',
  'Transition',
  'NoncurrentVersionTransition',
  'Tag',
  'Version',
  'DeleteMarker',
  'Bucket',
]);

const OPTIONS = {
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  tagValueProcessor: (_name: string, value: string) => decodeEntities(value),
  isArray: (name: string, jpath: unknown) => isRepeated(name, String(jpath)),
};

/** Whether element `name` at `jpath` (Root.Child…) is read as a list, one element or many. */
export function isRepeated(name: string, jpath: string): boolean {
  if (REPEATED.has(name)) {
    // <Bucket> is a scalar in most results and a list item only in ListAllMyBuckets
    if (name === 'Bucket') return jpath.endsWith('Buckets.Bucket');
    return true;
  }
  // <Error> is the root of an error body but a list item inside <DeleteResult>
  return name === 'Error' && jpath === 'DeleteResult.Error';
}

let parser: XMLParser | undefined;

/**
 * Loads fast-xml-parser; every path to an S3 body awaits this first (S3Transport before an error
 * body, S3Client before a result). A `status` is one HeadBucket without a body and never loads
 * the library, which costs the host's start-up about 2 ms.
 */
export async function loadXmlParser(): Promise<void> {
  if (parser !== undefined) return;
  const { XMLParser } = await import('fast-xml-parser');
  parser ??= new XMLParser(OPTIONS);
}

export interface XmlDocument {
  root: string;
  node: Node;
}

/**
 * The largest body the general parser is given. Its tree costs tens of times the body (a 15 MiB
 * listing page of namespaced elements, a new name per entry, took a listing to 1.08 GB), while
 * S3's own pages, however large, are read by the scanners (list-xml.ts, flat-xml.ts); what only
 * the general parser reads - a DeleteResult, ListParts, ListMultipartUploads, a lifecycle
 * configuration, a gateway's unusual page - stays far below this (1,000 entries of 1 KiB keys:
 * about 1.5 MiB). 4 MiB of the worst shape measured 159 MiB peak RSS for the process.
 */
export const GENERAL_XML_MAX = 4 * 1024 * 1024;

/** Parses one S3 XML body; the root element's name and content. */
export function parseXml(text: string): XmlDocument {
  if (/<!DOCTYPE/i.test(text)) throw new XmlError('refusing XML with a DOCTYPE');
  // a programming error, not a bad answer: never to be mistaken for an XmlError
  if (parser === undefined) throw new Error('parseXml before loadXmlParser(): await it on the way to every S3 body');
  let parsed: Node;
  try {
    parsed = parser.parse(text, true) as Node;
  } catch (e) {
    throw new XmlError(`malformed XML: ${(e as Error).message.split('\n')[0]}`);
  }
  const roots = Object.keys(parsed).filter((k) => k !== '#text');
  if (roots.length !== 1) throw new XmlError(`expected one root element, found ${roots.length}`);
  const root = roots[0]!;
  const v = parsed[root];
  return { root, node: typeof v === 'object' && v !== null ? (v as Node) : {} };
}

// --- accessors -------------------------------------------------------------------------------

function child(n: Node, name: string): Node | undefined {
  const v = n[name];
  if (Array.isArray(v)) return v[0] as Node;
  return typeof v === 'object' && v !== null ? (v as Node) : undefined;
}

function list(n: Node, name: string): Node[] {
  const v = n[name];
  if (v === undefined) return [];
  const a = Array.isArray(v) ? v : [v];
  // an empty element such as <Contents/> parses as ''
  return a.map((x) => (typeof x === 'object' && x !== null ? (x as Node) : {}));
}

/** Text of a child element; '' for an empty element, undefined when absent. */
export function text(n: Node, name: string): string | undefined {
  const v = n[name];
  if (v === undefined) return undefined;
  const x = Array.isArray(v) ? v[0] : v;
  if (typeof x === 'string') return x;
  if (typeof x === 'object' && x !== null) {
    const t = (x as Node)['#text'];
    return typeof t === 'string' ? t : '';
  }
  return String(x);
}

function need(n: Node, name: string, where: string): string {
  const v = text(n, name);
  if (v === undefined) throw new XmlError(`<${where}> has no <${name}>`);
  return v;
}

function int(n: Node, name: string, where: string): number | undefined {
  return intOf(text(n, name), name, where);
}

/** A count or size: absent or blank is undefined, anything but digits is refused. */
function intOf(v: string | undefined, name: string, where: string): number | undefined {
  if (v === undefined || v.trim() === '') return undefined;
  const t = v.trim();
  if (!/^[0-9]+$/.test(t)) throw new XmlError(`<${where}><${name}> is not a non-negative integer: '${t.slice(0, 40)}'`);
  const x = Number(t);
  if (!Number.isSafeInteger(x)) throw new XmlError(`<${where}><${name}> is too large: ${t}`);
  return x;
}

function bool(n: Node, name: string): boolean | undefined {
  return boolOf(text(n, name));
}

function boolOf(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  return v.trim().toLowerCase() === 'true';
}

function date(n: Node, name: string): Date | undefined {
  return dateOf(text(n, name));
}

function dateOf(v: string | undefined): Date | undefined {
  if (v === undefined) return undefined;
  const fast = isoMillis(v);
  if (fast !== undefined) return new Date(fast);
  if (v.trim() === '') return undefined;
  const d = new Date(v.trim());
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/**
 * `YYYY-MM-DDTHH:MM:SS.sssZ`, the form S3 writes every LastModified in, without Date's general
 * parser (a listing of 5,000 backups has 20,000 of them). Undefined for any other form, and for
 * a day past the 28th, which Date's parser judges by the month: both go to `new Date`.
 */
export function isoMillis(v: string): number | undefined {
  if (v.length !== 24 || v.charCodeAt(23) !== 90 /* Z */) return undefined;
  const n = (from: number, len: number, sep: number): number => {
    if (v.charCodeAt(from + len) !== sep && sep !== 0) return NaN;
    let x = 0;
    for (let i = from; i < from + len; i++) {
      const c = v.charCodeAt(i) - 48;
      if (c < 0 || c > 9) return NaN;
      x = x * 10 + c;
    }
    return x;
  };
  // separators - - T : : . (Z checked above)
  const y = n(0, 4, 45);
  const mo = n(5, 2, 45);
  const d = n(8, 2, 84);
  const h = n(11, 2, 58);
  const mi = n(14, 2, 58);
  const se = n(17, 2, 46);
  const ms = n(20, 3, 0);
  // NaN fails every comparison below; Date.UTC reads years 0-99 as 1900-1999, the parser does not
  if (!(mo >= 1 && mo <= 12 && d >= 1 && d <= 28 && h <= 23 && mi <= 59 && se <= 59 && ms >= 0 && y >= 100)) return undefined;
  return Date.UTC(y, mo - 1, d, h, mi, se, ms);
}

/** EncodingType=url answers: S3 encodes a space as '+', so '+' itself arrives as %2B. */
export function urlDecode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    throw new XmlError(`invalid URL-encoded value in listing: '${s.slice(0, 80)}'`);
  }
}

// --- errors ----------------------------------------------------------------------------------

export interface ErrorBody {
  code: string;
  message?: string;
  requestId?: string;
  hostId?: string;
  resource?: string;
  /** every scalar child, for the fields a code adds (ServerTime, AWSAccessKeyId, ...) */
  fields: Record<string, string>;
}

export function parseErrorNode(n: Node): ErrorBody {
  const fields: Record<string, string> = {};
  for (const k of Object.keys(n)) {
    if (k === '#text') continue;
    const v = text(n, k);
    if (v !== undefined) fields[k] = v;
  }
  return {
    code: (fields.Code ?? '').trim() || 'UnknownError',
    message: fields.Message,
    requestId: fields.RequestId,
    hostId: fields.HostId,
    resource: fields.Resource,
    fields,
  };
}

/** An error body, or undefined when the text is not an S3 <Error> document. */
export function parseErrorBody(body: string): ErrorBody | undefined {
  if (!body.trim()) return undefined;
  try {
    const d = parseXml(body);
    return d.root === 'Error' ? parseErrorNode(d.node) : undefined;
  } catch (e) {
    if (e instanceof XmlError) return undefined;
    throw e;
  }
}

function docOf(body: string | XmlDocument): XmlDocument {
  return typeof body === 'string' ? parseXml(body) : body;
}

function expectRoot(d: XmlDocument, root: string): Node {
  if (d.root !== root) throw new XmlError(`expected <${root}>, got <${d.root}>`);
  return d.node;
}

// --- listings --------------------------------------------------------------------------------
// A listing page is read in two steps: its text values (RawListPage, from the general parser's
// tree here or from list-xml.ts's scanner), then the rules below turn them into a page. Both
// parsers share these rules, so a page means the same whichever one read it.

/** The text values of one <Contents> (first occurrence of each; undefined when absent). */
export interface RawContents {
  Key?: string;
  Size?: string;
  ETag?: string;
  LastModified?: string;
  StorageClass?: string;
}

/** The <ListBucketResult> children a page is made of. */
export const LIST_FIELDS = ['Name', 'EncodingType', 'IsTruncated', 'NextContinuationToken', 'KeyCount', 'Marker', 'NextMarker'] as const;
export const CONTENTS_FIELDS = ['Key', 'Size', 'ETag', 'LastModified', 'StorageClass'] as const;

export interface RawListPage {
  fields: Partial<Record<(typeof LIST_FIELDS)[number], string>>;
  contents: RawContents[];
  /** each <CommonPrefixes>' <Prefix> (undefined: it has none) */
  prefixes: Array<string | undefined>;
}

/** The text values of a ListBucketResult the general parser read. */
export function rawListPage(body: string | XmlDocument): RawListPage {
  const n = expectRoot(docOf(body), 'ListBucketResult');
  const fields: RawListPage['fields'] = {};
  for (const f of LIST_FIELDS) {
    const v = text(n, f);
    if (v !== undefined) fields[f] = v;
  }
  const contents = list(n, 'Contents').map((c) => {
    const r: RawContents = {};
    for (const f of CONTENTS_FIELDS) {
      const v = text(c, f);
      if (v !== undefined) r[f] = v;
    }
    return r;
  });
  return { fields, contents, prefixes: list(n, 'CommonPrefixes').map((p) => text(p, 'Prefix')) };
}

function decoderOf(raw: RawListPage): (s: string) => string {
  return raw.fields.EncodingType?.trim() === 'url' ? urlDecode : (s: string) => s;
}

function summaries(raw: RawListPage, decode: (s: string) => string): ObjectSummary[] {
  return raw.contents.map((c) => {
    if (c.Key === undefined) throw new XmlError('<Contents> has no <Key>');
    return {
      key: decode(c.Key),
      size: intOf(c.Size, 'Size', 'Contents') ?? 0,
      etag: normalizeETag(c.ETag ?? ''),
      lastModified: dateOf(c.LastModified) ?? new Date(0),
      storageClass: c.StorageClass,
    };
  });
}

function prefixes(ps: ReadonlyArray<string | undefined>, decode: (s: string) => string): string[] {
  return ps.map((p) => {
    if (p === undefined) throw new XmlError('<CommonPrefixes> has no <Prefix>');
    return decode(p);
  });
}

export interface ListV2Result extends ListPage {
  keyCount?: number;
  name?: string;
}

/** A gateway that ignores list-type=2 answers a V1 listing: a Marker and no KeyCount. */
export function isV1Listing(raw: RawListPage): boolean {
  return raw.fields.KeyCount === undefined && raw.fields.Marker !== undefined;
}

export function parseListObjectsV2(body: string | XmlDocument | RawListPage): ListV2Result {
  const raw = typeof body !== 'string' && 'fields' in body ? body : rawListPage(body);
  const f = raw.fields;
  const dec = decoderOf(raw);
  const truncated = boolOf(f.IsTruncated) ?? false;
  const next = f.NextContinuationToken;
  if (truncated && !next) throw new XmlError('truncated ListObjectsV2 page without <NextContinuationToken>');
  return {
    name: f.Name,
    objects: summaries(raw, dec),
    prefixes: prefixes(raw.prefixes, dec),
    isTruncated: truncated,
    nextContinuationToken: truncated ? next : undefined,
    keyCount: intOf(f.KeyCount, 'KeyCount', 'ListBucketResult'),
  };
}

export interface ListV1Result {
  objects: ObjectSummary[];
  prefixes: string[];
  isTruncated: boolean;
  /** where the next page starts: NextMarker, or the greatest key/prefix of this page */
  nextMarker?: string;
}

export function parseListObjectsV1(body: string | XmlDocument | RawListPage): ListV1Result {
  const raw = typeof body !== 'string' && 'fields' in body ? body : rawListPage(body);
  const dec = decoderOf(raw);
  const objects = summaries(raw, dec);
  const pfx = prefixes(raw.prefixes, dec);
  const truncated = boolOf(raw.fields.IsTruncated) ?? false;
  let nextMarker: string | undefined;
  if (truncated) {
    const nm = raw.fields.NextMarker;
    if (nm) nextMarker = dec(nm);
    else {
      // V1 only returns NextMarker with a delimiter; otherwise the last key is the marker
      const last = [objects.at(-1)?.key, pfx.at(-1)].filter((x): x is string => x !== undefined).sort().at(-1);
      if (last === undefined) throw new XmlError('truncated ListObjects page without keys or NextMarker');
      nextMarker = last;
    }
  }
  return { objects, prefixes: pfx, isTruncated: truncated, nextMarker };
}

export function parseListParts(body: string | XmlDocument): ListPartsPage {
  const n = expectRoot(docOf(body), 'ListPartsResult');
  const truncated = bool(n, 'IsTruncated') ?? false;
  return {
    parts: list(n, 'Part').map((p) => ({
      partNumber: int(p, 'PartNumber', 'Part') ?? 0,
      etag: normalizeETag(text(p, 'ETag') ?? ''),
      size: int(p, 'Size', 'Part') ?? 0,
      lastModified: date(p, 'LastModified'),
    })),
    isTruncated: truncated,
    nextPartNumberMarker: int(n, 'NextPartNumberMarker', 'ListPartsResult'),
  };
}

export function parseListMultipartUploads(body: string | XmlDocument): ListUploadsPage {
  const n = expectRoot(docOf(body), 'ListMultipartUploadsResult');
  const dec = text(n, 'EncodingType')?.trim() === 'url' ? urlDecode : (s: string) => s;
  const nk = text(n, 'NextKeyMarker');
  const nu = text(n, 'NextUploadIdMarker');
  return {
    uploads: list(n, 'Upload').map((u) => ({
      key: dec(need(u, 'Key', 'Upload')),
      uploadId: need(u, 'UploadId', 'Upload'),
      initiated: date(u, 'Initiated'),
      storageClass: text(u, 'StorageClass'),
    })),
    prefixes: prefixes(
      list(n, 'CommonPrefixes').map((p) => text(p, 'Prefix')),
      dec,
    ),
    isTruncated: bool(n, 'IsTruncated') ?? false,
    nextKeyMarker: nk ? dec(nk) : undefined,
    nextUploadIdMarker: nu || undefined,
  };
}

// --- multipart, copy, delete -----------------------------------------------------------------

export function parseInitiateMultipartUpload(body: string | XmlDocument): { bucket?: string; key?: string; uploadId: string } {
  const n = expectRoot(docOf(body), 'InitiateMultipartUploadResult');
  const uploadId = need(n, 'UploadId', 'InitiateMultipartUploadResult');
  if (!uploadId) throw new XmlError('empty <UploadId>');
  return { bucket: text(n, 'Bucket'), key: text(n, 'Key'), uploadId };
}

export function parseCompleteMultipartUpload(body: string | XmlDocument): { location?: string; bucket?: string; key?: string; etag: string } {
  const n = expectRoot(docOf(body), 'CompleteMultipartUploadResult');
  return {
    location: text(n, 'Location'),
    bucket: text(n, 'Bucket'),
    key: text(n, 'Key'),
    etag: normalizeETag(need(n, 'ETag', 'CompleteMultipartUploadResult')),
  };
}

export function parseCopyObjectResult(body: string | XmlDocument): { etag: string; lastModified?: Date } {
  const d = docOf(body);
  // CopyObject answers CopyObjectResult; UploadPartCopy answers CopyPartResult
  if (d.root !== 'CopyObjectResult' && d.root !== 'CopyPartResult') throw new XmlError(`expected <CopyObjectResult>, got <${d.root}>`);
  return { etag: normalizeETag(need(d.node, 'ETag', d.root)), lastModified: date(d.node, 'LastModified') };
}

export function parseDeleteResult(body: string | XmlDocument): DeleteResult & { deletedVersions: { key: string; versionId?: string }[] } {
  const n = expectRoot(docOf(body), 'DeleteResult');
  const deleted = list(n, 'Deleted').map((d) => ({ key: need(d, 'Key', 'Deleted'), versionId: text(d, 'VersionId') }));
  return {
    deleted: deleted.map((d) => d.key),
    deletedVersions: deleted,
    errors: list(n, 'Error').map((e) => ({
      key: need(e, 'Key', 'Error'),
      code: text(e, 'Code') ?? 'UnknownError',
      message: text(e, 'Message') ?? '',
    })),
  };
}

// --- lifecycle -------------------------------------------------------------------------------

export function parseLifecycle(body: string | XmlDocument): LifecycleRule[] {
  const n = expectRoot(docOf(body), 'LifecycleConfiguration');
  return list(n, 'Rule').map((r) => {
    const status = (text(r, 'Status') ?? '').trim();
    if (status !== 'Enabled' && status !== 'Disabled') throw new XmlError(`lifecycle rule with Status '${status}'`);
    const rule: LifecycleRule = { status };
    const id = text(r, 'ID');
    if (id !== undefined) rule.id = id;
    const legacy = text(r, 'Prefix');
    if (legacy !== undefined) rule.legacyPrefix = legacy;
    const f = child(r, 'Filter') ?? (r.Filter === '' ? {} : undefined);
    if (f) {
      const and = child(f, 'And');
      const src = and ?? f;
      const filter: NonNullable<LifecycleRule['filter']> = {};
      const p = text(src, 'Prefix');
      if (p !== undefined) filter.prefix = p;
      const tags = list(src, 'Tag').map((t) => ({ key: text(t, 'Key') ?? '', value: text(t, 'Value') ?? '' }));
      if (tags.length) filter.tags = tags;
      const gt = int(src, 'ObjectSizeGreaterThan', 'Filter');
      if (gt !== undefined) filter.objectSizeGreaterThan = gt;
      const lt = int(src, 'ObjectSizeLessThan', 'Filter');
      if (lt !== undefined) filter.objectSizeLessThan = lt;
      rule.filter = filter;
    }
    const ex = child(r, 'Expiration');
    if (ex) {
      rule.expiration = {};
      const d = int(ex, 'Days', 'Expiration');
      if (d !== undefined) rule.expiration.days = d;
      const dt = text(ex, 'Date');
      if (dt) rule.expiration.date = dt.trim();
      const dm = bool(ex, 'ExpiredObjectDeleteMarker');
      if (dm !== undefined) rule.expiration.expiredObjectDeleteMarker = dm;
    }
    const tr = list(r, 'Transition');
    if (tr.length) {
      rule.transitions = tr.map((t) => {
        const o: { days?: number; date?: string; storageClass: string } = { storageClass: (text(t, 'StorageClass') ?? '').trim() };
        const d = int(t, 'Days', 'Transition');
        if (d !== undefined) o.days = d;
        const dt = text(t, 'Date');
        if (dt) o.date = dt.trim();
        return o;
      });
    }
    const nve = child(r, 'NoncurrentVersionExpiration');
    if (nve) {
      rule.noncurrentVersionExpiration = {};
      const d = int(nve, 'NoncurrentDays', 'NoncurrentVersionExpiration');
      if (d !== undefined) rule.noncurrentVersionExpiration.noncurrentDays = d;
      const k = int(nve, 'NewerNoncurrentVersions', 'NoncurrentVersionExpiration');
      if (k !== undefined) rule.noncurrentVersionExpiration.newerNoncurrentVersions = k;
    }
    const nvt = list(r, 'NoncurrentVersionTransition');
    if (nvt.length) {
      rule.noncurrentVersionTransitions = nvt.map((t) => {
        const o: { noncurrentDays?: number; storageClass: string; newerNoncurrentVersions?: number } = {
          storageClass: (text(t, 'StorageClass') ?? '').trim(),
        };
        const d = int(t, 'NoncurrentDays', 'NoncurrentVersionTransition');
        if (d !== undefined) o.noncurrentDays = d;
        const k = int(t, 'NewerNoncurrentVersions', 'NoncurrentVersionTransition');
        if (k !== undefined) o.newerNoncurrentVersions = k;
        return o;
      });
    }
    const ab = child(r, 'AbortIncompleteMultipartUpload');
    if (ab) {
      const d = int(ab, 'DaysAfterInitiation', 'AbortIncompleteMultipartUpload');
      if (d !== undefined) rule.abortIncompleteMultipartUpload = { daysAfterInitiation: d };
    }
    return rule;
  });
}

// --- writing ---------------------------------------------------------------------------------

/**
 * Escapes text for an XML element. Carriage returns and other control characters are written as
 * character references: a literal CR would be normalised to LF by the server's XML parser and a
 * key containing one could never be named again.
 */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"'\u0000-\u001f\u007f\ufffe\uffff]/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      case "'":
        return '&apos;';
      default:
        return `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`;
    }
  });
}

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const el = (name: string, value: string | number) => `<${name}>${typeof value === 'number' ? String(value) : escapeXml(value)}</${name}>`;

export function buildDeleteObjects(keys: readonly string[], quiet: boolean): string {
  let s = `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="${XMLNS}">`;
  if (quiet) s += '<Quiet>true</Quiet>';
  for (const k of keys) s += `<Object>${el('Key', k)}</Object>`;
  return s + '</Delete>';
}

/** checksum: the part's x-amz-checksum-* value, named by alg (required by S3 when the upload has one). */
export function buildCompleteMultipartUpload(
  parts: readonly { partNumber: number; etag: string; checksum?: string }[],
  alg?: 'CRC32C' | 'CRC64NVME',
): string {
  let s = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUpload xmlns="${XMLNS}">`;
  const tag = alg === 'CRC32C' ? 'ChecksumCRC32C' : alg === 'CRC64NVME' ? 'ChecksumCRC64NVME' : undefined;
  for (const p of parts) {
    s += `<Part>${el('PartNumber', p.partNumber)}${el('ETag', p.etag)}`;
    if (tag && p.checksum) s += el(tag, p.checksum);
    s += '</Part>';
  }
  return s + '</CompleteMultipartUpload>';
}

/** An object's tags (GetObjectTagging), in the order the server lists them. */
/** GetObjectLockConfiguration: whether the bucket holds locks, and its default retention if any. */
export function parseObjectLockConfiguration(body: string | XmlDocument): ObjectLockConfig {
  const n = expectRoot(docOf(body), 'ObjectLockConfiguration');
  const out: ObjectLockConfig = { enabled: text(n, 'ObjectLockEnabled') === 'Enabled' };
  const rule = child(n, 'Rule');
  const d = rule ? child(rule, 'DefaultRetention') : undefined;
  if (d) {
    const mode = text(d, 'Mode');
    const days = int(d, 'Days', 'DefaultRetention');
    const years = int(d, 'Years', 'DefaultRetention');
    out.defaultRetention = { ...(mode !== undefined ? { mode } : {}), ...(days !== undefined ? { days } : {}), ...(years !== undefined ? { years } : {}) };
  }
  return out;
}

/** GetBucketVersioning: a bucket that never had versioning answers without <Status>. */
export function parseVersioning(body: string | XmlDocument): 'Enabled' | 'Suspended' | 'Off' {
  const n = expectRoot(docOf(body), 'VersioningConfiguration');
  const s = text(n, 'Status');
  return s === 'Enabled' || s === 'Suspended' ? s : 'Off';
}

export function buildRetention(mode: string, retainUntil: Date): string {
  return `<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>${escapeXml(mode)}</Mode><RetainUntilDate>${retainUntil.toISOString()}</RetainUntilDate></Retention>`;
}

export function parseTagging(body: string | XmlDocument): Record<string, string> {
  const n = expectRoot(docOf(body), 'Tagging');
  const tags: Record<string, string> = {};
  for (const t of list(child(n, 'TagSet') ?? {}, 'Tag')) tags[need(t, 'Key', 'Tag')] = text(t, 'Value') ?? '';
  return tags;
}

export function buildTagging(tags: Record<string, string>): string {
  let s = `<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="${XMLNS}"><TagSet>`;
  for (const [k, v] of Object.entries(tags)) s += `<Tag>${el('Key', k)}${el('Value', v)}</Tag>`;
  return s + '</TagSet></Tagging>';
}

export function buildCreateBucket(region: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><CreateBucketConfiguration xmlns="${XMLNS}">${el('LocationConstraint', region)}</CreateBucketConfiguration>`;
}

function buildFilter(f: NonNullable<LifecycleRule['filter']>): string {
  const parts: string[] = [];
  if (f.prefix !== undefined) parts.push(el('Prefix', f.prefix));
  for (const t of f.tags ?? []) parts.push(`<Tag>${el('Key', t.key)}${el('Value', t.value)}</Tag>`);
  if (f.objectSizeGreaterThan !== undefined) parts.push(el('ObjectSizeGreaterThan', f.objectSizeGreaterThan));
  if (f.objectSizeLessThan !== undefined) parts.push(el('ObjectSizeLessThan', f.objectSizeLessThan));
  if (parts.length === 0) return '<Filter></Filter>';
  if (parts.length === 1) return `<Filter>${parts[0]}</Filter>`;
  return `<Filter><And>${parts.join('')}</And></Filter>`;
}

export function buildLifecycle(rules: readonly LifecycleRule[]): string {
  let s = `<?xml version="1.0" encoding="UTF-8"?><LifecycleConfiguration xmlns="${XMLNS}">`;
  for (const r of rules) {
    s += '<Rule>';
    if (r.id !== undefined) s += el('ID', r.id);
    if (r.filter !== undefined) s += buildFilter(r.filter);
    else if (r.legacyPrefix !== undefined) s += el('Prefix', r.legacyPrefix);
    else s += '<Filter></Filter>';
    s += el('Status', r.status);
    if (r.expiration) {
      s += '<Expiration>';
      if (r.expiration.days !== undefined) s += el('Days', r.expiration.days);
      if (r.expiration.date !== undefined) s += el('Date', r.expiration.date);
      if (r.expiration.expiredObjectDeleteMarker !== undefined)
        s += el('ExpiredObjectDeleteMarker', String(r.expiration.expiredObjectDeleteMarker));
      s += '</Expiration>';
    }
    for (const t of r.transitions ?? []) {
      s += '<Transition>';
      if (t.days !== undefined) s += el('Days', t.days);
      if (t.date !== undefined) s += el('Date', t.date);
      s += el('StorageClass', t.storageClass) + '</Transition>';
    }
    if (r.noncurrentVersionExpiration) {
      s += '<NoncurrentVersionExpiration>';
      const e = r.noncurrentVersionExpiration;
      if (e.noncurrentDays !== undefined) s += el('NoncurrentDays', e.noncurrentDays);
      if (e.newerNoncurrentVersions !== undefined) s += el('NewerNoncurrentVersions', e.newerNoncurrentVersions);
      s += '</NoncurrentVersionExpiration>';
    }
    for (const t of r.noncurrentVersionTransitions ?? []) {
      s += '<NoncurrentVersionTransition>';
      if (t.noncurrentDays !== undefined) s += el('NoncurrentDays', t.noncurrentDays);
      if (t.newerNoncurrentVersions !== undefined) s += el('NewerNoncurrentVersions', t.newerNoncurrentVersions);
      s += el('StorageClass', t.storageClass) + '</NoncurrentVersionTransition>';
    }
    if (r.abortIncompleteMultipartUpload)
      s += `<AbortIncompleteMultipartUpload>${el('DaysAfterInitiation', r.abortIncompleteMultipartUpload.daysAfterInitiation)}</AbortIncompleteMultipartUpload>`;
    s += '</Rule>';
  }
  return s + '</LifecycleConfiguration>';
}

// --- ETags -----------------------------------------------------------------------------------

/** ETags compare equal whichever way a server wrote them: RGW's CopyObjectResult omits the quotes. */
export function normalizeETag(e: string): string {
  const t = e.trim();
  if (t === '' || t.startsWith('"') || t.startsWith('W/')) return t;
  return `"${t}"`;
}

/** An ETag's value without its quotes (and weak marker): what an MD5 or a cache record compares. */
export function bareETag(e: string): string {
  return e.replace(/^(W\/)?"|"$/g, '');
}

/** Parts implied by an ETag: 1 without a '-N' suffix, N for 1 ≤ N ≤ 10000, null when malformed. */
export function partsFromETag(etag: string): number | null {
  let e = etag;
  if (e.startsWith('"')) e = e.slice(1);
  if (e.endsWith('"')) e = e.slice(0, -1);
  if (e === '') return null;
  const m = /^([^-]+)(?:-([0-9]+))?$/.exec(e);
  if (!m) return null;
  if (m[2] === undefined) return 1;
  const n = Number(m[2]);
  return n >= 1 && n <= 10000 ? n : null;
}
