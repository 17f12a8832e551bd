/**
 * Flat S3 documents read without fast-xml-parser: a root whose children are all text elements,
 * which is what an upload reads (InitiateMultipartUploadResult, CompleteMultipartUploadResult)
 * and what almost every error body is (<Error><Code>…</Code><Message>…</Message>…</Error>).
 * Loading fast-xml-parser and its dependencies costs a process ~60 ms of CPU and ~1,200 page
 * faults (measured in fresh processes), more than a tenth of a small upload's whole CPU; a
 * backup without notes paid it for the 404 of its .notes alone.
 *
 * The scanner reads the same lexical subset as the listing scanner (list-xml.ts, whose tag and
 * text rules it uses): an optional XML declaration, the root (attributes ignored, at most one, as
 * S3's xmlns), then child elements without attributes, each once, holding text with the five
 * entities and character references, and white space between them. Anything else — a nested
 * element, a repeated or list-like child, a comment, CDATA, DOCTYPE, a namespace prefix, text
 * beside elements, an unknown entity — makes it answer undefined, and the general parser reads the
 * body (or refuses it) as before. Its document is the one the general parser builds for such a
 * body (xml.ts parseXml: leaves as decoded strings, '' for an empty one), so every reader in
 * xml.ts means the same whichever parser read it; tests hold the two equal.
 */
import { blank, openTag, text } from './list-xml.js';
import { XmlError, isRepeated, loadXmlParser, parseErrorBody, parseErrorNode, type ErrorBody, type XmlDocument } from './xml.js';

/** at most one attribute, name="value" (the list scanner's ATTRS checked the syntax) */
const ONE_ATTR = /^\s*(?:[A-Za-z_:][A-Za-z0-9_.:-]*\s*=\s*(?:"[^"]*"|'[^']*')\s*)?$/;

/** The document of a flat body, or undefined when it is not one this scanner reads. */
export function scanFlat(s: string): XmlDocument | undefined {
  try {
    return scan(s);
  } catch (e) {
    // a character reference beyond Unicode: the general parser words the refusal
    if (e instanceof XmlError) return undefined;
    throw e;
  }
}

function scan(s: string): XmlDocument | undefined {
  // `<!` starts a comment, CDATA or DOCTYPE
  if (s.includes('<!')) return undefined;
  let i = s.indexOf('<');
  if (i < 0 || !blank(s, 0, i)) return undefined;
  if (s.startsWith('<?xml', i)) {
    const end = s.indexOf('?>', i);
    if (end < 0) return undefined;
    i = s.indexOf('<', end + 2);
    if (i < 0 || !blank(s, end + 2, i)) return undefined;
  }
  if (s.includes('<?', i)) return undefined;
  const rootGt = s.indexOf('>', i + 1);
  const root = rootGt < 0 ? undefined : openTag(s, i, rootGt);
  if (root === undefined || !ONE_ATTR.test(root.attrs)) return undefined;
  const node: Record<string, string> = {};
  if (root.selfClosing) return blank(s, root.end, s.length) ? { root: root.name, node } : undefined;
  i = root.end;
  for (;;) {
    const lt = s.indexOf('<', i);
    if (lt < 0 || !blank(s, i, lt)) return undefined;
    const gt = s.indexOf('>', lt + 1);
    if (gt < 0) return undefined;
    if (s.charCodeAt(lt + 1) === 47 /* '/' */) {
      if (s.slice(lt + 2, gt).trimEnd() !== root.name || !blank(s, gt + 1, s.length)) return undefined;
      return { root: root.name, node };
    }
    const t = openTag(s, lt, gt);
    // a name Object.prototype has would not be a plain property of the node
    if (t === undefined || t.attrs.trim() !== '' || t.name in node || t.name in Object.prototype || isRepeated(t.name, `${root.name}.${t.name}`)) return undefined;
    if (t.selfClosing) {
      node[t.name] = '';
      i = t.end;
      continue;
    }
    const close = s.indexOf('<', t.end);
    if (close < 0 || s.charCodeAt(close + 1) !== 47) return undefined; // an element inside the value
    const closeGt = s.indexOf('>', close + 2);
    if (closeGt < 0 || s.slice(close + 2, closeGt).trimEnd() !== t.name) return undefined;
    const v = text(s.slice(t.end, close));
    if (v === undefined) return undefined;
    node[t.name] = v;
    i = closeGt + 1;
  }
}

/** An error body (xml.ts parseErrorBody), read by scanFlat when it reads it. */
export async function readErrorBody(body: string): Promise<ErrorBody | undefined> {
  if (!body.trim()) return undefined;
  const flat = scanFlat(body);
  if (flat !== undefined) return flat.root === 'Error' ? parseErrorNode(flat.node) : undefined;
  await loadXmlParser();
  return parseErrorBody(body);
}
