/**
 * PVE's retention: the `prune-backups` property string and the marking of
 * PVE::Storage::prune_mark_backup_group / Plugin::prune_backups (reference §7.5), rewritten from
 * their documented behaviour so the CLIs mark exactly what `pvesm prune-backups` would.
 *
 * Periods are computed in local time (hour, day, ISO week + ISO week-year, month, year), like
 * Perl's localtime in PVE; the process TZ decides, as it does for vzdump's names.
 */
import { ConfigError } from '../util/errors.js';
import { isoWeek } from './backup-time.js';
import { type GuestType, parseArchiveName } from './volname.js';

export const KEEP_OPTIONS = ['keep-last', 'keep-hourly', 'keep-daily', 'keep-weekly', 'keep-monthly', 'keep-yearly'] as const;
export type KeepOption = (typeof KEEP_OPTIONS)[number];

export type PruneKeep = { 'keep-all'?: boolean } & { [K in KeepOption]?: number };

/** PVE's four marks, plus `unverified`: a backup nobody can vouch for (issue 10 §5), kept and not
 *  counted, so it never pushes a verified backup out. PVE's own API knows only the four (the
 *  plugin shows an unverified backup as `renamed` there, docs/PROTOCOL.md prune). */
export type PruneMark = 'keep' | 'remove' | 'protected' | 'renamed' | 'unverified';

const ALLOWED =
  'a comma-separated list of keep-all=1 or keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly =N (N ≥ 0), e.g. keep-last=3,keep-daily=7';

/**
 * Parses `keep-last=3,keep-daily=7` as PVE's parse_property_string('prune-backups') does,
 * including its normalisation: no positive count at all means `{ 'keep-all': true }`, and
 * keep-all together with a positive count is an error.
 */
export function parsePruneBackups(value: string, key = 'prune-backups'): PruneKeep {
  const raw: PruneKeep = {};
  const seen = new Set<string>();
  for (const part0 of value.split(',')) {
    const part = part0.trim();
    if (part === '') continue;
    const m = /^([^=]+)=(.+)$/.exec(part);
    if (!m) throw new ConfigError(key, value, `'${part}' has no value; ${ALLOWED}`);
    const k = m[1]!.trim();
    const v = m[2]!.trim();
    if (seen.has(k)) throw new ConfigError(key, value, `duplicate key '${k}'; ${ALLOWED}`);
    seen.add(k);
    if (k === 'keep-all') {
      if (/^(1|on|yes|true)$/i.test(v)) raw['keep-all'] = true;
      else if (/^(0|off|no|false)$/i.test(v)) raw['keep-all'] = false;
      else throw new ConfigError(key, value, `keep-all must be 0 or 1; ${ALLOWED}`);
    } else if ((KEEP_OPTIONS as readonly string[]).includes(k)) {
      if (!/^\d{1,9}$/.test(v)) throw new ConfigError(key, value, `${k} must be an integer ≥ 0; ${ALLOWED}`);
      raw[k as KeepOption] = Number(v);
    } else {
      throw new ConfigError(key, value, `unknown option '${k}'; ${ALLOWED}`);
    }
  }
  const positive = KEEP_OPTIONS.some((o) => (raw[o] ?? 0) > 0);
  if (!positive) return { 'keep-all': true };
  if (raw['keep-all']) throw new ConfigError(key, value, 'keep-all cannot be set together with other options');
  delete raw['keep-all'];
  return raw;
}

/** The property string of a PruneKeep (the inverse of parsePruneBackups, canonical order). */
export function formatPruneBackups(keep: PruneKeep): string {
  if (keep['keep-all'] || !KEEP_OPTIONS.some((o) => (keep[o] ?? 0) > 0)) return 'keep-all=1';
  return KEEP_OPTIONS.filter((o) => keep[o] !== undefined)
    .map((o) => `${o}=${keep[o]}`)
    .join(',');
}

export interface PruneItem {
  ctime: number;
  mark?: PruneMark;
}

type IdFn = (ctime: number) => string;

const local = (ctime: number) => new Date(ctime * 1000);

const PERIOD: Record<KeepOption, IdFn> = {
  'keep-last': (c) => String(c),
  'keep-hourly': (c) => {
    const d = local(c);
    return `${d.getHours()}/${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`;
  },
  'keep-daily': (c) => {
    const d = local(c);
    return `${d.getDate()}/${d.getMonth()}/${d.getFullYear()}`;
  },
  'keep-weekly': (c) => {
    const w = isoWeek(local(c));
    return `${w.week}/${w.year}`;
  },
  'keep-monthly': (c) => {
    const d = local(c);
    return `${d.getMonth()}/${d.getFullYear()}`;
  },
  'keep-yearly': (c) => String(local(c).getFullYear()),
};

function markPass(list: PruneItem[], count: number | undefined, id: IdFn): void {
  if (!count) return;
  // periods already covered by a kept backup (from a shorter option) do not count again
  const covered = new Set<string>();
  for (const e of list) if (e.mark === 'keep') covered.add(id(e.ctime));
  const chosen = new Set<string>();
  for (const e of list) {
    if (e.mark !== undefined) continue;
    const pid = id(e.ctime);
    if (covered.has(pid)) continue;
    if (!chosen.has(pid)) {
      if (chosen.size >= count) break;
      chosen.add(pid);
      e.mark = 'keep';
    } else {
      e.mark = 'remove';
    }
  }
}

/**
 * Marks one backup group (one guest type + vmid) in place, as prune_mark_backup_group does.
 * Entries arriving with a mark (`protected`, `renamed`) keep it and are not counted.
 */
export function markBackupGroup<T extends PruneItem>(group: T[], keep: PruneKeep): void {
  const positive = KEEP_OPTIONS.some((o) => (keep[o] ?? 0) > 0);
  if (keep['keep-all'] || !positive) {
    for (const e of group) if (!e.mark || e.mark === 'remove') e.mark = 'keep';
    return;
  }
  // newest first; Array.prototype.sort is stable, like Perl's mergesort, so equal times keep order
  const list = [...group].sort((a, b) => b.ctime - a.ctime);
  for (const o of KEEP_OPTIONS) markPass(list, keep[o], PERIOD[o]);
  for (const e of list) e.mark ??= 'remove';
}

export interface BackupForPrune {
  /** archive file name, e.g. vzdump-qemu-100-2023_12_25-14_30_00.vma.zst */
  name: string;
  /** used for names without a time in them (they are never removed anyway) */
  ctime?: number;
  protected?: boolean;
  /** true: no valid manifest vouches for it; kept, outside its group, never counted */
  unverified?: boolean;
}

export interface PruneResult<T extends BackupForPrune> {
  backup: T;
  name: string;
  ctime: number;
  /** qemu | lxc | openvz | unknown */
  type: GuestType | 'unknown';
  vmid?: number;
  mark: PruneMark;
}

/**
 * The whole of PVE's prune_backups marking over a storage's backups: names outside the standard
 * vzdump pattern are `renamed`, protected ones `protected` (both never removed), the rest grouped
 * by guest type + vmid and marked per group. `type`/`vmid` narrow the list like pvesm's options.
 * Unverified standard-named backups (not protected) are marked `unverified` and left out of their
 * group: the marking of the verified ones is exactly PVE's over the verified ones alone.
 */
export function markPrune<T extends BackupForPrune>(
  backups: T[],
  keep: PruneKeep,
  filter: { type?: GuestType; vmid?: number } = {},
): PruneResult<T>[] {
  type Draft = Omit<PruneResult<T>, 'mark'> & { mark?: PruneMark };
  const out: Draft[] = [];
  const groups = new Map<string, Draft[]>();
  for (const b of backups) {
    let info: ReturnType<typeof parseArchiveName> | null;
    try {
      info = parseArchiveName(b.name);
    } catch {
      info = null;
    }
    const type = info?.guestType ?? 'unknown';
    if (filter.type !== undefined && filter.type !== type) continue;
    const vmid = info?.vmid;
    if (filter.vmid !== undefined && vmid !== filter.vmid) continue;
    const e: Draft = { backup: b, name: b.name, ctime: info?.ctime ?? b.ctime ?? 0, type };
    if (vmid !== undefined) e.vmid = vmid;
    if (info?.isStdName && b.unverified && !b.protected) {
      e.mark = 'unverified';
    } else if (info?.isStdName) {
      const g = `${type}/${vmid}`;
      let list = groups.get(g);
      if (!list) groups.set(g, (list = []));
      list.push(e);
    } else {
      e.mark = 'renamed';
    }
    if (b.protected) e.mark = 'protected';
    out.push(e);
  }
  for (const g of groups.values()) markBackupGroup(g, keep);
  return out as PruneResult<T>[];
}
