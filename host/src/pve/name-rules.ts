/**
 * The name rules both ends of the storage plugin apply, as data. The host compiles them here
 * (volname.ts, store/local-cache.ts); scripts/gen-perl-rules.mjs writes them, with the property
 * schema, into the Perl plugin's Rules.pm at build time (docs/ARCHITECTURE.md, "One table for
 * both ends"). So PVE's side parses a volume name, tells its listing format, skips a temporary
 * file and finds an archive's log exactly as the host does, and test/contract/rules-cases.json
 * is checked against both.
 *
 * Expressions are written in the part of the syntax JavaScript and Perl read alike: groups,
 * `(?:…)`, classes, `\d`, `\.`, `\xNN`, anchors, the `i` flag. A `format` list gives the listing
 * format: the first template whose `$N` groups all matched, each `$N` lower-cased.
 */

export interface NameRegex {
  re: string;
  flags?: 'i';
}

export interface VolumeNameRule extends NameRegex {
  format: readonly string[];
}

export const NAME_RULES = {
  /** Linux's NAME_MAX: no longer file name can exist on the node */
  maxNameBytes: 255,
  /** refused in any file name, with the reason the host gives */
  refuse: [
    { re: '/', why: "'/' not allowed in the file name" },
    { re: '\\.\\.', why: "'..' not allowed" },
    { re: '[\\x00-\\x1f\\x7f]', why: 'control characters not allowed' },
    { re: '\\.s3manifest$', why: "'.s3manifest' is reserved for integrity manifests" },
  ],
  /** a file name of each content type (PVE's parse_volname shapes, reference §6) */
  volume: {
    // PVE's BACKUP_EXT_RE_2, case-sensitive: .tgz, or .tar/.vma with an optional compressor.
    // Groups: 1 listing format, 2 archive format, 3 compressor
    backup: { re: '^.+?\\.(tgz|(tar|vma)(?:\\.(gz|lzo|zst|bz2))?)$', format: ['$1'] },
    // PVE's ISO_EXT_RE_0
    iso: { re: '^.+\\.(?:iso|img)$', flags: 'i', format: ['iso'] },
    // PVE's VZTMPL_EXT_RE_1 (9.x: a bare .tar too). Group 1: compressor
    vztmpl: { re: '^.+?\\.tar(?:\\.(gz|xz|zst|bz2))?$', flags: 'i', format: ['t$1', 'tar'] },
    // any name but a hidden one: ours are temporary files (see `temporary`)
    snippets: { re: '^[^.]', format: ['snippet'] },
  },
  /** backups named vzdump-<type>-<vmid>-…: group 1 guest type, group 2 vmid (PVE's parse_volname) */
  backupOwner: { re: '^vzdump-(openvz|lxc|qemu)-(\\d+)-' },
  /**
   * A standard vzdump name, whose log vzdump names after its base name: group 1 the base (the log
   * is `<base>.log`), 2 guest type, 3 vmid, 4 time, 5 must equal the listing format.
   */
  standardBackup: {
    re: '^(vzdump-(lxc|openvz|qemu)-([1-9][0-9]{2,8})-(\\d{4}_\\d{2}_\\d{2}-\\d{2}_\\d{2}_\\d{2}))\\.(.+)$',
    log: '$1.log',
  },
  /**
   * Names in the storage's directories that are files being written, never pending uploads nor
   * cached copies: hidden names (our downloads' `.<name>.pve-s3-tmp-<hex>`), vzdump's `.dat` /
   * `.tmp`, browsers' `.part`, PVE's `.tmp_dwnl.<pid>` / `.tmp_dcom.<pid>`, our `.tmp.<pid>`.
   */
  temporary: [
    { re: '^\\.' },
    { re: '\\.pve-s3-tmp' },
    { re: '\\.(?:dat|tmp|part|partial)$' },
    { re: '\\.tmp_(?:dwnl|dcom)\\.\\d+$' },
    { re: '\\.tmp\\.\\d+$' },
  ],
} as const satisfies {
  maxNameBytes: number;
  refuse: ReadonlyArray<NameRegex & { why: string }>;
  volume: Record<'backup' | 'iso' | 'vztmpl' | 'snippets', VolumeNameRule>;
  backupOwner: NameRegex;
  standardBackup: NameRegex & { log: string };
  temporary: readonly NameRegex[];
};

export const compile = (r: NameRegex): RegExp => new RegExp(r.re, r.flags ?? '');

/** A template cut at its `$N`: literal, group, literal, … (literal parts at even indexes). */
type Template = ReadonlyArray<string | number>;
const templates = new Map<string, Template>();

function templateOf(t: string): Template {
  let parts = templates.get(t);
  if (parts === undefined) {
    parts = t.split(/\$(\d)/).map((x, i) => (i % 2 === 1 ? Number(x) : x));
    templates.set(t, parts);
  }
  return parts;
}

/** A `format` list applied to a match (see the file comment). Templates are cut once: a
 *  listing applies them to every one of thousands of names. */
export function formatFrom(templates: readonly string[], m: RegExpExecArray): string {
  outer: for (const t of templates) {
    const parts = templateOf(t);
    let out = parts[0] as string;
    for (let i = 1; i < parts.length; i += 2) {
      const g = m[parts[i] as number];
      if (g === undefined) continue outer;
      out += g.toLowerCase() + (parts[i + 1] as string);
    }
    return out;
  }
  return templates[templates.length - 1]!;
}
