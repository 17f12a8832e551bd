/**
 * PVE's section-config format as /etc/pve/storage.cfg uses it (pve-common SectionConfig):
 *
 *   s3: my-s3                 ← `type: id` header at column 0
 *       bucket my-bucket      ← indented `key value`; a key alone is a flag meaning 1
 *                             ← a blank line ends the section
 *   # comment                 ← whole-line comments anywhere
 *
 * Differences from PVE, all lenient: CRLF is accepted, a header also ends the previous section
 * without a blank line, and a trailing ` # …` after a value is dropped so the commented example
 * config of DESIGN.md §2 works unchanged. Duplicate keys keep the first value, as PVE does.
 */

export interface CfgSection {
  type: string;
  props: Record<string, string>;
}

export interface ParseCfgOptions {
  /** called for lines PVE would warn about (and skip) */
  onWarning?(message: string): void;
  /** file name used in warnings */
  file?: string;
}

const HEADER_RE = /^(\S+):\s*(\S+)\s*$/;
const PROP_RE = /^\s+(\S+)(?:\s+(.*\S))?\s*$/;

// warnings show only the first word: a misplaced `secret_key …` line must not reach the log whole
const firstWord = (line: string) => (line.trim().split(/\s+/)[0] ?? '').slice(0, 40);

export function parseStorageCfg(text: string, o: ParseCfgOptions = {}): Map<string, CfgSection> {
  const out = new Map<string, CfgSection>();
  const file = o.file ?? 'storage.cfg';
  const warn = (line: number, msg: string) => o.onWarning?.(`${file} line ${line}: ${msg}`);
  let current: CfgSection | null = null;
  let currentId = '';
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const n = i + 1;
    if (/^\s*#/.test(line)) continue;
    if (line.trim() === '') {
      current = null;
      continue;
    }
    const h = /^\S/.test(line) ? HEADER_RE.exec(line) : null;
    if (h) {
      const [, type, id] = h as unknown as [string, string, string];
      if (out.has(id)) {
        warn(n, `duplicate section '${id}' ignored`);
        current = { type, props: {} }; // swallow its lines
        currentId = '';
        continue;
      }
      current = { type, props: {} };
      currentId = id;
      out.set(id, current);
      continue;
    }
    if (!current) {
      warn(n, `ignored line outside a section (starting '${firstWord(line)}')`);
      continue;
    }
    const p = PROP_RE.exec(line);
    if (!p) {
      warn(n, `(section '${currentId}') ignored line starting '${firstWord(line)}'`);
      continue;
    }
    const key = p[1]!;
    let value: string | undefined = p[2];
    if (value !== undefined) {
      const stripped = value.startsWith('#') ? '' : value.replace(/\s+#.*$/, '');
      value = stripped === '' ? undefined : stripped;
    }
    if (key in current.props) {
      warn(n, `(section '${currentId}') duplicate attribute '${key}' ignored`);
      continue;
    }
    current.props[key] = value ?? '1';
  }
  return out;
}
