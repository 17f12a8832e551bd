/**
 * PVE volume names (`<content>/<file>`) for the four content types, their object keys in the
 * bucket, and the sidecar objects that travel with a backup. The accepted shapes are those of
 * PVE's own parse_volname / archive_info (reference §6), so anything PVE lists or passes to the
 * plugin parses here, and everything else is refused before a request is made.
 */
import { EXIT, PveS3Error } from '../util/errors.js';
import { formatBackupTime, parseBackupTime } from './backup-time.js';
import { CONTENT_DIR, type ContentType, isContentType } from './content.js';
import { NAME_RULES, compile, formatFrom } from './name-rules.js';

export type GuestType = 'qemu' | 'lxc' | 'openvz';
export type BackupFormat = 'vma' | 'tar';
export type Compression = 'gz' | 'lzo' | 'zst' | 'bz2' | 'xz';

export interface VolumeInfo {
  content: ContentType;
  /** file name without folder, e.g. `vzdump-qemu-100-2023_12_25-14_30_00.vma.gz` */
  name: string;
  /** `<content>/<name>`: what follows `<storeid>:` in a PVE volid */
  volname: string;
  /** backups named `vzdump-<type>-<digits>-…` (PVE's parse_volname uses it for access checks) */
  vmid?: number;
  guestType?: GuestType;
  /** epoch seconds from the name of a standard vzdump name, local time as PVE reads it */
  ctime?: number;
  /** true for `vzdump-<type>-<vmid>-<YYYY_MM_DD-HH_MM_SS>.<ext>`: the only names prune considers */
  isStdName?: boolean;
  /** backup: vma | tar; vztmpl: tar; iso: iso; snippets: snippet */
  format?: string;
  compression?: Compression;
  /** the `format` PVE's list_volumes reports: `vma.zst`, `tgz`, `tzst`, `iso`, `snippet` … */
  listFormat: string;
  /** why this volume (a name another tool stored) cannot be stored or restored to a file here */
  unusable?: string;
}

// ---------------------------------------------------------------------------------------------
// How long a volume name may be

/** Linux's limit on one file name (NAME_MAX on ext4, xfs, zfs, btrfs, tmpfs). */
export const NAME_MAX_BYTES = NAME_RULES.maxNameBytes;

/**
 * Every local file name made from a volume's file name, and the bytes it adds. The longest one
 * decides how long a volume name may be: a longer name can be listed, never given a local copy
 * (the download's temporary file cannot even be created: ENAMETOOLONG). Whoever adds a derived
 * name adds it here (test/unit/pve-volname-length.test.ts checks the host's own against the code).
 */
export const DERIVED_NAMES: ReadonlyArray<{ name: string; adds: number }> = [
  // transfer/temp-file.ts tempPathFor: '.' + name + TEMP_MARK ('.pve-s3-tmp-') + 12 hex
  { name: '.<name>.pve-s3-tmp-<12 hex> (download in progress)', adds: 1 + 12 + 12 },
  // PVE::Tools::download_file_from_url: "$dest.tmp_dwnl.$$" (and .tmp_dcom.), pids up to 4194304
  { name: "<name>.tmp_dwnl.<pid> (PVE's download from URL)", adds: 10 + 7 },
  // the plugin's with_volume_lock and store/volume-lock.ts: "<content>.<name>.lock", the longest
  // content being snippets
  { name: '<content>.<name>.lock (per-volume locks)', adds: 9 + 5 },
  // PVE's and our local sidecars beside the archive
  { name: '<name>.protected (local sidecar)', adds: 10 },
  // store/local-cache.ts recordPath
  { name: '<name>.json (cache record)', adds: 5 },
];

const LONGEST = DERIVED_NAMES.reduce((a, b) => (b.adds > a.adds ? b : a));
/** The longest volume file name, in UTF-8 bytes, that every derived name still fits. */
export const MAX_NAME_BYTES = NAME_MAX_BYTES - LONGEST.adds;
/** S3's limit on a key. */
export const MAX_KEY_BYTES = 1024;
/** Where a replacing upload stages the new object first (store/replace.ts): the longest key of a
 *  volume is the staged copy's manifest, `<prefix>.pve-s3-staging/<dir><name>.s3manifest`. */
export const STAGING_DIR = '.pve-s3-staging/';

/** Why a local file of this name (a volume's, or a restore's destination) cannot be made. */
export function localNameProblem(name: string): string | undefined {
  const n = Buffer.byteLength(name);
  if (n <= MAX_NAME_BYTES) return undefined;
  return `name is ${n} bytes, at most ${MAX_NAME_BYTES} are usable: its local ${LONGEST.name} would exceed the ${NAME_MAX_BYTES}-byte file name limit`;
}

/**
 * Before a volume is stored, or restored to a file: the name must fit the longest derived name
 * (NameTooLong, exit 2) and its manifest's key S3's key limit. A name another tool stored may be
 * longer; it is listed with `unusable` and can still be deleted, or restored to a pipe.
 */
export function assertUsableName(v: VolumeInfo, prefix = ''): void {
  const why = v.unusable ?? localNameProblem(v.name);
  if (why !== undefined) throw new PveS3Error('NameTooLong', `volume '${v.volname}' cannot be used here: ${why}; rename it`, { exitCode: EXIT.usage });
  const key = keyOfName(prefix + STAGING_DIR, v.content, v.name) + MANIFEST_SUFFIX;
  const k = Buffer.byteLength(key);
  if (k > MAX_KEY_BYTES) {
    throw new PveS3Error('NameTooLong', `volume '${v.volname}' cannot be stored: the key of its staged copy's manifest '${key}' would be ${k} bytes, S3 allows ${MAX_KEY_BYTES}; use a shorter name or prefix`, { exitCode: EXIT.usage });
  }
}

/** Reserved suffix of our integrity manifest (DESIGN.md §3). */
export const MANIFEST_SUFFIX = '.s3manifest';
export const NOTES_SUFFIX = '.notes';
export const PROTECTED_SUFFIX = '.protected';
export const LOG_SUFFIX = '.log';
/** The frame index of a provider-made archive (docs/BACKUP-PROVIDER.md §4). */
export const INDEX_SUFFIX = '.s3index';

const COMPRESSORS = ['gz', 'lzo', 'zst', 'bz2'] as const;
// the shapes of name-rules.ts (the Perl plugin compiles the same table)
const BACKUP_RE = compile(NAME_RULES.volume.backup);
const VZTMPL_RE = compile(NAME_RULES.volume.vztmpl);
const ISO_RE = compile(NAME_RULES.volume.iso);
const SNIPPET_RE = compile(NAME_RULES.volume.snippets);
const OWNER_RE = compile(NAME_RULES.backupOwner);
const STD_NAME_RE = compile(NAME_RULES.standardBackup);
const REFUSE = NAME_RULES.refuse.map((r) => ({ re: compile(r), why: r.why }));
// a log sidecar in the bucket: any vzdump name ending in .log (the host's own listing rule)
const VZDUMP_RE = /^vzdump-(lxc|openvz|qemu)-.+/;

const ALLOWED: Record<ContentType, string> = {
  backup:
    'backup/<file> ending in .vma or .tar (optionally .gz, .lzo, .zst or .bz2) or .tgz, e.g. backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.zst',
  iso: 'iso/<file> ending in .iso or .img',
  vztmpl: 'vztmpl/<file> ending in .tar, .tar.gz, .tar.xz, .tar.zst or .tar.bz2',
  snippets: 'snippets/<file> not starting with a dot',
};

function invalid(what: string, why: string): PveS3Error {
  return new PveS3Error('InvalidVolume', `invalid volume name '${what}': ${why}`, { exitCode: EXIT.usage });
}

function checkFileName(full: string, name: string, content: ContentType): void {
  if (name === '') throw invalid(full, `empty file name; expected ${ALLOWED[content]}`);
  for (const r of REFUSE) if (r.re.test(name)) throw invalid(full, r.why);
  if (Buffer.byteLength(name) > NAME_MAX_BYTES) throw invalid(full, `file name longer than ${NAME_MAX_BYTES} bytes`);
}

/** What the name says about a backup archive (PVE's archive_info, without the decompressor). */
export interface ArchiveInfo {
  name: string;
  format: BackupFormat;
  compression?: Compression;
  listFormat: string;
  guestType?: GuestType;
  vmid?: number;
  ctime?: number;
  isStdName: boolean;
  /** `vzdump-qemu-100-DATE.log` for standard names: PVE names the log after the base name */
  logName?: string;
  notesName: string;
}

/** A backup archive's file name (no folder). Throws InvalidVolume for anything PVE would not list. */
export function parseArchiveName(name: string): ArchiveInfo {
  checkFileName(name, name, 'backup');
  return archiveInfo(name);
}

/** parseArchiveName of a name checkFileName passed already (a listing parses thousands). */
function archiveInfo(name: string): ArchiveInfo {
  const ext = BACKUP_RE.exec(name);
  if (!ext) throw invalid(name, `unknown backup extension; expected ${ALLOWED.backup}`);
  const listFormat = formatFrom(NAME_RULES.volume.backup.format, ext);
  let format: BackupFormat;
  let compression: Compression | undefined;
  if (listFormat === 'tgz') {
    format = 'tar';
    compression = 'gz';
  } else {
    format = ext[2] as BackupFormat;
    compression = ext[3] as Compression | undefined;
  }
  const info: ArchiveInfo = { name, format, listFormat, isStdName: false, notesName: name + NOTES_SUFFIX };
  if (compression) info.compression = compression;

  const typed = VZDUMP_RE.exec(name);
  if (typed) info.guestType = typed[1] as GuestType;
  const owner = OWNER_RE.exec(name);
  if (owner) info.vmid = Number(owner[2]);

  const std = standardName(name, listFormat);
  if (std) {
    info.logName = logNameOf(std);
    const ctime = parseBackupTime(std[4]!);
    if (ctime !== null) {
      info.isStdName = true;
      info.vmid = Number(std[3]);
      info.ctime = ctime;
    }
  }
  return info;
}

/** The match of a standard vzdump name of this listing format, else null. */
function standardName(name: string, listFormat: string): RegExpExecArray | null {
  const std = STD_NAME_RE.exec(name);
  return std && std[5] === listFormat ? std : null;
}

// vzdump names the log after the base name, whatever the time in it says
const logNameOf = (std: RegExpExecArray): string => formatFrom([NAME_RULES.standardBackup.log], std);

/** The log sidecar's name of a parsed backup (sidecarNames(v.name).log without parsing the name
 *  again: a listing asks it of every backup). */
export function logNameOfVolume(v: VolumeInfo): string | undefined {
  if (v.content !== 'backup') return undefined;
  const std = standardName(v.name, v.listFormat);
  return std ? logNameOf(std) : undefined;
}

/** `backup/…`, `iso/…`, `vztmpl/…`, `snippets/…` → what it is. Throws InvalidVolume otherwise. */
export function parseVolname(volname: string): VolumeInfo {
  if (typeof volname !== 'string' || volname === '') throw invalid(String(volname), 'empty volume name');
  const slash = volname.indexOf('/');
  const vtype = slash < 0 ? volname : volname.slice(0, slash);
  if (slash < 0 || !isContentType(vtype)) {
    throw invalid(volname, `expected <content>/<file> with content backup, iso, vztmpl or snippets`);
  }
  return parseVolumeFile(vtype, volname.slice(slash + 1), volname);
}

/** A file name of the given content type → VolumeInfo (validated as parseVolname does; a name
 *  too long for a local copy parses, with `unusable` saying so). */
export function parseVolumeFile(content: ContentType, name: string, full = `${content}/${name}`): VolumeInfo {
  const v = parseVolumeFileShape(content, name, full);
  const why = localNameProblem(name);
  if (why !== undefined) v.unusable = why;
  return v;
}

function parseVolumeFileShape(content: ContentType, name: string, full: string): VolumeInfo {
  checkFileName(full, name, content);
  const volname = `${content}/${name}`;
  switch (content) {
    case 'backup': {
      let a: ArchiveInfo;
      try {
        a = archiveInfo(name);
      } catch {
        throw invalid(full, `unknown backup extension; expected ${ALLOWED.backup}`);
      }
      const v: VolumeInfo = { content, name, volname, format: a.format, listFormat: a.listFormat, isStdName: a.isStdName };
      if (a.compression) v.compression = a.compression;
      if (a.vmid !== undefined) v.vmid = a.vmid;
      if (a.guestType) v.guestType = a.guestType;
      if (a.ctime !== undefined) v.ctime = a.ctime;
      return v;
    }
    case 'iso': {
      const m = ISO_RE.exec(name);
      if (!m) throw invalid(full, `unknown ISO extension; expected ${ALLOWED.iso}`);
      return { content, name, volname, format: 'iso', listFormat: formatFrom(NAME_RULES.volume.iso.format, m) };
    }
    case 'vztmpl': {
      const m = VZTMPL_RE.exec(name);
      if (!m) throw invalid(full, `unknown template extension; expected ${ALLOWED.vztmpl}`);
      const comp = m[1]?.toLowerCase() as Compression | undefined;
      const v: VolumeInfo = { content, name, volname, format: 'tar', listFormat: formatFrom(NAME_RULES.volume.vztmpl.format, m) };
      if (comp) v.compression = comp;
      return v;
    }
    case 'snippets': {
      const m = SNIPPET_RE.exec(name);
      if (!m) throw invalid(full, `hidden names are the storage's temporary files; expected ${ALLOWED.snippets}`);
      return { content, name, volname, format: 'snippet', listFormat: formatFrom(NAME_RULES.volume.snippets.format, m) };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Object keys

/** The key layout, `<prefix><dir>/<name>` (prefix already normalised: '' or 'x/'), for a name
 *  that was checked already (a parsed volume, or a sidecar name derived from one). */
export function keyOfName(prefix: string, content: ContentType, name: string): string {
  return prefix + CONTENT_DIR[content] + name;
}

/** Object key of a volume file. */
export function objectKey(prefix: string, content: ContentType, name: string): string {
  parseVolumeFile(content, name); // refuses bad names before anything reaches the wire
  return keyOfName(prefix, content, name);
}

/** Object key of a volname (`backup/…`). */
export function volnameKey(prefix: string, volname: string): string {
  const v = parseVolname(volname);
  return keyOfName(prefix, v.content, v.name);
}

export type SidecarKind = 'notes' | 'protected' | 'manifest' | 'log' | 'index';

export type KeyClass =
  | { kind: 'volume'; volume: VolumeInfo }
  /**
   * `archive`: the archive file name the sidecar belongs to. A log has `base` instead (its name
   * without `.log`): it belongs to the archive(s) named `<base>.<vma|tar>[.<comp>]`.
   */
  | { kind: 'sidecar'; content: ContentType; sidecar: SidecarKind; name: string; archive?: string; base?: string }
  | { kind: 'other' };

// checked longest first so template/iso/ is not mistaken for something shorter
const DIRS = (Object.entries(CONTENT_DIR) as Array<[ContentType, string]>).sort((a, b) => b[1].length - a[1].length);

/** What an object key under the storage prefix is: a volume, a sidecar of one, or something else. */
export function classifyKey(prefix: string, key: string): KeyClass {
  if (!key.startsWith(prefix)) return { kind: 'other' };
  const rest = key.slice(prefix.length);
  for (const [content, dir] of DIRS) {
    if (!rest.startsWith(dir)) continue;
    const name = rest.slice(dir.length);
    if (name === '' || name.includes('/')) return { kind: 'other' };
    if (name.endsWith(MANIFEST_SUFFIX)) {
      return { kind: 'sidecar', content, sidecar: 'manifest', name, archive: name.slice(0, -MANIFEST_SUFFIX.length) };
    }
    if (content === 'backup') {
      for (const [suffix, sidecar] of [
        [NOTES_SUFFIX, 'notes'],
        [PROTECTED_SUFFIX, 'protected'],
        [INDEX_SUFFIX, 'index'],
      ] as const) {
        if (name.endsWith(suffix)) {
          const archive = name.slice(0, -suffix.length);
          if (BACKUP_RE.test(archive)) return { kind: 'sidecar', content, sidecar, name, archive };
        }
      }
      if (name.endsWith(LOG_SUFFIX) && VZDUMP_RE.test(name)) {
        return { kind: 'sidecar', content, sidecar: 'log', name, base: name.slice(0, -LOG_SUFFIX.length) };
      }
    }
    try {
      return { kind: 'volume', volume: parseVolumeFile(content, name) };
    } catch {
      return { kind: 'other' };
    }
  }
  return { kind: 'other' };
}

/**
 * Whether a key is one this storage writes: a volume or sidecar in one of its folders, or the
 * staged copy of one. Another storage may live below this one's prefix ('site/' holding
 * 'site/b/'): its keys are not ours, though they start with our prefix.
 */
export function isOwnKey(prefix: string, key: string): boolean {
  if (classifyKey(prefix, key).kind !== 'other') return true;
  return classifyKey(prefix + STAGING_DIR, key).kind !== 'other';
}

/** key → volume, or null for sidecars and anything that is not a volume of ours. */
export function keyToVolume(prefix: string, key: string): VolumeInfo | null {
  const c = classifyKey(prefix, key);
  return c.kind === 'volume' ? c.volume : null;
}

/** Sidecar file names of a backup archive (same folder). `log` only for standard names. */
export function sidecarNames(archive: string): { notes: string; protected: string; manifest: string; log?: string } {
  const a = parseArchiveName(archive);
  const out: { notes: string; protected: string; manifest: string; log?: string } = {
    notes: archive + NOTES_SUFFIX,
    protected: archive + PROTECTED_SUFFIX,
    manifest: archive + MANIFEST_SUFFIX,
  };
  if (a.logName) out.log = a.logName;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Names for new archives (streams from `vzdump --stdout`)

const COMPRESSION_ALIASES: Record<string, Compression | null> = {
  '': null,
  '0': null,
  none: null,
  gz: 'gz',
  gzip: 'gz',
  pigz: 'gz',
  lzo: 'lzo',
  '1': 'lzo', // vzdump's --compress 1 means lzo
  zst: 'zst',
  zstd: 'zst',
  bz2: 'bz2',
};

/**
 * PVE's archive name for a new backup: `vzdump-<type>-<vmid>-<local time>.<vma|tar>[.<comp>]`.
 * `format` defaults to vma for qemu and tar for lxc; `compression` takes vzdump's names too.
 */
export function archiveName(o: {
  vmid: number | string;
  guestType: 'qemu' | 'lxc';
  format?: BackupFormat;
  compression?: string;
  time: Date;
}): string {
  const vmid = String(o.vmid);
  if (!/^[1-9][0-9]{2,8}$/.test(vmid)) {
    throw new PveS3Error('InvalidVolume', `invalid vmid '${vmid}': must be an integer 100..999999999`, {
      exitCode: EXIT.usage,
    });
  }
  if (o.guestType !== 'qemu' && o.guestType !== 'lxc') {
    throw new PveS3Error('InvalidVolume', `invalid guest type '${String(o.guestType)}': must be qemu or lxc`, {
      exitCode: EXIT.usage,
    });
  }
  const format = o.format ?? (o.guestType === 'qemu' ? 'vma' : 'tar');
  if (format !== 'vma' && format !== 'tar') {
    throw new PveS3Error('InvalidVolume', `invalid format '${String(format)}': must be vma or tar`, { exitCode: EXIT.usage });
  }
  if (o.guestType === 'lxc' && format !== 'tar') {
    throw new PveS3Error('InvalidVolume', `invalid format '${format}' for lxc: containers are backed up as tar`, {
      exitCode: EXIT.usage,
    });
  }
  const compKey = (o.compression ?? '').toLowerCase();
  if (!(compKey in COMPRESSION_ALIASES)) {
    throw new PveS3Error(
      'InvalidVolume',
      `invalid compression '${o.compression}': must be one of none, ${[...COMPRESSORS, 'gzip', 'zstd'].join(', ')}`,
      { exitCode: EXIT.usage },
    );
  }
  const comp = COMPRESSION_ALIASES[compKey];
  const t = o.time;
  if (!(t instanceof Date) || Number.isNaN(t.getTime())) {
    throw new PveS3Error('InvalidVolume', 'invalid backup time: not a valid date', { exitCode: EXIT.usage });
  }
  return `vzdump-${o.guestType}-${vmid}-${formatBackupTime(t)}.${format}${comp ? '.' + comp : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Volume ids and local files

/** `<storeid>:<volname>`, split at the first ':' as PVE does. */
export function parseVolumeId(volid: string): { storeId: string; volname: string } {
  const i = volid.indexOf(':');
  if (i < 1 || i === volid.length - 1) {
    throw new PveS3Error('InvalidVolume', `invalid volume id '${volid}': expected <storage>:<content>/<file>`, {
      exitCode: EXIT.usage,
    });
  }
  return { storeId: volid.slice(0, i), volname: volid.slice(i + 1) };
}

/**
 * PVE's upload name rule: the directory part is dropped and every character outside
 * [A-Za-z0-9_.-] becomes '_' (so a GUI upload and a CLI upload of one file get one name).
 */
export function normaliseUploadName(fileName: string): string {
  const base = fileName.slice(fileName.lastIndexOf('/') + 1);
  return base.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/**
 * What a local file becomes in the bucket, from its name (directory part ignored): a backup
 * archive or one of its sidecars (`.log`, `.notes`), an ISO, a container template, or else a
 * snippet. `content` forces the type; the name must then fit it. vzdump names win over the
 * template extensions (`vzdump-lxc-….tar.gz` is a backup, `debian-12.tar.gz` a template).
 */
export function classifyFile(fileName: string, content?: ContentType): KeyClass & { kind: 'volume' | 'sidecar' } {
  const name = fileName.slice(fileName.lastIndexOf('/') + 1);
  const asBackup = classifyKey('', CONTENT_DIR.backup + name);
  if (content === 'backup' || (content === undefined && asBackup.kind !== 'other')) {
    if (asBackup.kind === 'sidecar' && asBackup.sidecar !== 'manifest') return asBackup;
    if (asBackup.kind === 'volume') {
      const v = asBackup.volume;
      const templateLike = content === undefined && v.format === 'tar' && !v.guestType && VZTMPL_RE.test(name);
      if (!templateLike) return asBackup;
    } else if (content === 'backup') {
      parseVolumeFile('backup', name); // throws the precise reason
      throw invalid(`backup/${name}`, 'reserved sidecar name');
    }
  }
  if (content !== undefined) return { kind: 'volume', volume: parseVolumeFile(content, name) };
  for (const c of ['iso', 'vztmpl'] as const) {
    try {
      return { kind: 'volume', volume: parseVolumeFile(c, name) };
    } catch {
      /* next */
    }
  }
  return { kind: 'volume', volume: parseVolumeFile('snippets', name) };
}
