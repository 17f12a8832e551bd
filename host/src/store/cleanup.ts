/**
 * Cleanup by age: removes backups whose time in the archive name (never LastModified) is older
 * than the cutoff, skipping protected ones, keeping the newest `keepLast` of each guest, and
 * ignoring names without a time (they cannot be dated, so they are never removed by age).
 *
 * Only verified backups (a valid manifest vouches for them, Volume.verified) take part (issue 10
 * §5): an unverified one is kept and listed as such, never counted towards keep-last, so a
 * planted or half-written object cannot push a verified backup out. And a guest keeps its last
 * verified backup unless `allowLast`: backups that stopped a month ago are not all removed by
 * `--older-than 30d`.
 */
import { durationCutoff, parseDuration } from '../pve/duration.js';
import { parseArchiveName } from '../pve/volname.js';
import { deleteInBatches } from './delete-batches.js';
import { listVolumes } from './list.js';
import { nowOf, type StoreContext } from './types.js';
import type { LockedVolume } from './volumes.js';
import type { PveS3Error } from '../util/errors.js';

export interface CleanupItem {
  volname: string;
  ctime: number;
  vmid: number | null;
  type: string;
  action: 'remove' | 'keep';
  /** why it is kept or removed; `last-verified`: the guest's last verified backup (see allowLast) */
  reason: 'older' | 'newer' | 'protected' | 'keep-last' | 'unnamed' | 'unverified' | 'last-verified';
}

export interface CleanupOutcome {
  cutoff: number;
  items: CleanupItem[];
  removed: string[];
  errors: { volname: string; message: string }[];
  /** older than the cutoff but kept under Object Lock ("locked until DATE") */
  locked: LockedVolume[];
  dryRun: boolean;
  /** the gateway stopped answering part-way (delete-batches.ts): what was not removed is in errors */
  stopped?: PveS3Error;
}

export async function cleanupByAge(
  ctx: StoreContext,
  o: { olderThan: string; keepLast?: number; vmid?: number; dryRun?: boolean; allowLast?: boolean },
): Promise<CleanupOutcome> {
  const cutoff = Math.floor(durationCutoff(parseDuration(o.olderThan, 'older-than'), nowOf(ctx)).getTime() / 1000);
  const vols = await listVolumes(ctx, { content: ['backup'], notes: false, pending: false, ...(o.vmid !== undefined ? { vmid: o.vmid } : {}) });
  const items: CleanupItem[] = [];
  /** the verified backups of each guest: the only ones keep-last and the last-backup rule count */
  const groups = new Map<string, CleanupItem[]>();
  for (const v of vols) {
    const info = parseArchiveName(v.name);
    const item: CleanupItem = { volname: v.volname, ctime: v.ctime, vmid: v.vmid ?? null, type: v.subtype ?? 'unknown', action: 'keep', reason: 'newer' };
    items.push(item);
    if (!info.isStdName) {
      item.reason = 'unnamed';
      continue;
    }
    if (v.protected) item.reason = 'protected';
    else if (v.verified !== true) {
      item.reason = 'unverified';
      continue;
    } else if (v.ctime < cutoff) {
      item.action = 'remove';
      item.reason = 'older';
    }
    const g = `${item.type}/${item.vmid}`;
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(item);
  }
  const keepLast = o.keepLast ?? 0;
  for (const list of groups.values()) {
    list.sort((a, b) => b.ctime - a.ctime);
    for (const it of list.slice(0, keepLast)) {
      if (it.action === 'remove') {
        it.action = 'keep';
        it.reason = 'keep-last';
      }
    }
    if (!o.allowLast && list.every((it) => it.action === 'remove')) {
      list[0]!.action = 'keep';
      list[0]!.reason = 'last-verified';
    }
  }
  const out: CleanupOutcome = { cutoff, items, removed: [], errors: [], locked: [], dryRun: o.dryRun === true };
  const doomed = items.filter((i) => i.action === 'remove').map((i) => i.volname);
  if (o.dryRun || doomed.length === 0) return out;
  const r = await deleteInBatches(ctx, doomed);
  out.removed = r.removed;
  out.errors = r.errors;
  out.locked = r.locked;
  if (r.stopped) out.stopped = r.stopped;
  ctx.logger.info('cleanup by age', { olderThan: o.olderThan, removed: out.removed.length, locked: out.locked.length, errors: out.errors.length });
  return out;
}
