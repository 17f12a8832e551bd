/**
 * ListObjects pages read without building a document tree. The general parser (xml.ts,
 * fast-xml-parser with validation) spent ~40 ms of CPU and most of the garbage of a 1000-key page:
 * a warm listing of 5,000 backups (20 pages) spent more time parsing than the gateway answering.
 *
 * This scanner reads only the XML that S3 servers send for a listing: an optional XML declaration,
 * then elements (attributes allowed and ignored), text with the five entities and character
 * references, whitespace between elements. Anything else — a comment, CDATA, DOCTYPE, a processing
 * instruction, a namespace prefix, text beside elements, an unknown entity, a tag that does not
 * close, a root other than ListBucketResult, a page the rules would refuse (a Contents without Key)
 * — makes it answer undefined, and the caller parses the body with the general parser, which then
 * reads it, or refuses it with its usual message. The values go through the same rules as the
 * general parser's (xml.ts RawListPage), and tests hold both parsers' pages equal.
 */
import { CONTENTS_FIELDS, LIST_FIELDS, decodeEntities, type RawContents, type RawListPage } from './xml.js';

const ROOT = 'ListBucketResult';
const ROOT_LEAVES = new Set<string>(LIST_FIELDS);
const CONTENTS_LEAVES = new Set<string>(CONTENTS_FIELDS);
/** an element name without a namespace prefix */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** what may follow the name inside a tag: attributes, then an optional '/' */
const ATTRS = /^(?:\s+[A-Za-z_:][A-Za-z0-9_.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*\/?$/;
/** an '&' that does not start one of the references decodeEntities knows */
const BAD_AMP = /&(?!(?:#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|amp|lt|gt|quot|apos);)/;

const enum In {
  Root,
  Contents,
  Prefixes,
}

/** The page's text values, or undefined when the body is not in the subset this scanner reads. */
export function scanListPage(s: string): RawListPage | undefined {
  // `<!` starts a comment, CDATA or DOCTYPE; `<?` after the declaration a processing instruction
  if (s.includes('<!')) return undefined;
  let i = 0;
  const first = s.indexOf('<');
  if (first < 0 || !blank(s, 0, first)) return undefined;
  i = first;
  if (s.startsWith('<?xml', i)) {
    const end = s.indexOf('?>', i);
    if (end < 0) return undefined;
    i = end + 2;
  }
  if (s.includes('<?', i)) return undefined;

  const page: RawListPage = { fields: {}, contents: [], prefixes: [] };
  const stack: string[] = [];
  let where: In = In.Root;
  let contents: RawContents | undefined;
  let prefix: string | undefined;
  let hasPrefix = false;
  /** the leaf whose text is being read (a field of the page), and where its text starts */
  let leaf: string | undefined;
  let leafAt = 0;
  /** depth of the element whose subtree is skipped (0: none) */
  let skipFrom = 0;
  let done = false;

  for (;;) {
    const lt = s.indexOf('<', i);
    if (lt < 0) break;
    if (lt > i && leaf === undefined && skipFrom === 0 && !blank(s, i, lt)) return undefined;
    if (done) return undefined; // a second root, or text after the root
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return undefined;
    if (s.charCodeAt(lt + 1) === 47 /* '/' */) {
      const name = s.slice(lt + 2, gt).trimEnd();
      if (stack.pop() !== name) return undefined;
      const depth = stack.length;
      if (leaf !== undefined) {
        // a leaf's closing tag at its own depth: its text is complete
        const v = text(s.slice(leafAt, lt));
        if (v === undefined) return undefined;
        store(leaf, v);
        leaf = undefined;
      } else if (skipFrom !== 0) {
        if (depth + 1 === skipFrom) skipFrom = 0;
      } else if (depth === 1 && where === In.Contents) {
        if (contents!.Key === undefined) return undefined;
        page.contents.push(contents!);
        where = In.Root;
      } else if (depth === 1 && where === In.Prefixes) {
        if (!hasPrefix) return undefined;
        page.prefixes.push(prefix);
        where = In.Root;
      } else if (depth === 0) done = true;
      i = gt + 1;
      continue;
    }
    if (leaf !== undefined) return undefined; // an element inside a value
    const t = openTag(s, lt, gt);
    if (t === undefined) return undefined;
    const { name, selfClosing } = t;
    i = t.end;
    const depth = stack.length;
    if (skipFrom !== 0) {
      if (!selfClosing) stack.push(name);
      continue;
    }
    if (depth === 0) {
      if (name !== ROOT) return undefined;
      if (selfClosing) done = true;
      else stack.push(name);
      continue;
    }
    let isLeaf = false;
    if (depth === 1) {
      if (name === 'Contents') {
        if (selfClosing) return undefined; // a Contents without Key: the general parser says so
        where = In.Contents;
        contents = {};
        stack.push(name);
        continue;
      }
      if (name === 'CommonPrefixes') {
        if (selfClosing) return undefined;
        where = In.Prefixes;
        prefix = undefined;
        hasPrefix = false;
        stack.push(name);
        continue;
      }
      isLeaf = ROOT_LEAVES.has(name);
    } else if (depth === 2) {
      isLeaf = where === In.Contents ? CONTENTS_LEAVES.has(name) : name === 'Prefix';
    }
    if (selfClosing) {
      if (isLeaf) store(name, '');
      continue;
    }
    stack.push(name);
    if (isLeaf) {
      leaf = name;
      leafAt = i;
    } else skipFrom = stack.length;
  }
  if (!done || stack.length !== 0 || !blank(s, i, s.length)) return undefined;
  return page;

  /** the first occurrence of a field wins, as the general parser's accessors read it */
  function store(name: string, v: string): void {
    if (stack.length === 1) {
      const f = page.fields as Record<string, string>;
      if (f[name] === undefined) f[name] = v;
    } else if (where === In.Contents) {
      const c = contents as Record<string, string>;
      if (c[name] === undefined) c[name] = v;
    } else if (!hasPrefix) {
      prefix = v;
      hasPrefix = true;
    }
  }
}

/**
 * The start tag at s[lt] whose first '>' is s[gt]: its name, whether it closes itself, its
 * attributes' text (ignored by both scanners) and the index after it; undefined for a tag the
 * scanners do not read (a namespace prefix, an attribute that is not name="value").
 */
export function openTag(s: string, lt: number, gt: number): { name: string; selfClosing: boolean; attrs: string; end: number } | undefined {
  let tag = s.slice(lt + 1, gt);
  if (tag.includes('"') || tag.includes("'")) {
    // a quoted attribute value may hold '>'
    gt = tagEnd(s, lt + 1);
    if (gt < 0) return undefined;
    tag = s.slice(lt + 1, gt);
  }
  const selfClosing = tag.endsWith('/');
  let nameEnd = 0;
  while (nameEnd < tag.length && !isSpaceOrSlash(tag.charCodeAt(nameEnd))) nameEnd++;
  const name = tag.slice(0, nameEnd);
  const attrs = tag.slice(nameEnd, selfClosing ? -1 : undefined);
  if (!NAME.test(name) || (nameEnd < tag.length && !ATTRS.test(tag.slice(nameEnd)))) return undefined;
  return { name, selfClosing, attrs, end: gt + 1 };
}

/** A value's text with its references decoded; undefined for an '&' that is not one. */
export function text(raw: string): string | undefined {
  const amp = raw.indexOf('&');
  if (amp < 0) return raw;
  // the ETag as S3 writes it, &quot;…&quot;, once per key: without the general decoder's regexps
  const end = raw.length - 6;
  if (amp === 0 && end > 6 && raw.startsWith('&quot;') && raw.indexOf('&', 6) === end && raw.endsWith('&quot;')) return `"${raw.slice(6, end)}"`;
  if (BAD_AMP.test(raw)) return undefined;
  return decodeEntities(raw);
}

/** Only XML's white space (space, tab, CR, LF) in s[from, to). */
export function blank(s: string, from: number, to: number): boolean {
  for (let j = from; j < to; j++) {
    const c = s.charCodeAt(j);
    if (c !== 32 && c !== 10 && c !== 9 && c !== 13) return false;
  }
  return true;
}

function isSpaceOrSlash(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13 || c === 47;
}

/** The '>' that ends the tag starting at `from`, outside quoted attribute values. */
function tagEnd(s: string, from: number): number {
  let q = 0;
  for (let j = from; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (q !== 0) {
      if (c === q) q = 0;
    } else if (c === 34 || c === 39) q = c;
    else if (c === 62) return j;
    else if (c === 60) return -1;
  }
  return -1;
}
