/**
 * Cleanup by age: removes backups whose time in the archive name (never LastModified) is older
 * than the cutoff, skipping protected ones, keeping the newest `keepLast` of each guest, and
 * ignoring names without a time (they cannot be dated, so they are never removed by age).
 */
import { durationCutoff, parseDuration } from '../pve/duration.js';
import { parseArchiveName } from '../pve/volname.js';
import { deleteInBatches } from './delete-batches.js';
import { listVolumes } from './list.js';
import { nowOf, type StoreContext } from './types.js';

export interface CleanupItem {
  volname: string;
  ctime: number;
  vmid: number | null;
  type: string;
  action: 'remove' | 'keep';
  reason: 'older' | 'newer' | 'protected' | 'keep-last' | 'unnamed';
}

export interface CleanupOutcome {
  cutoff: number;
  items: CleanupItem[];
  removed: string[];
  errors: { volname: string; message: string }[];
  dryRun: boolean;
}

export async function cleanupByAge(
  ctx: StoreContext,
  o: { olderThan: string; keepLast?: number; vmid?: number; dryRun?: boolean },
): Promise<CleanupOutcome> {
  const cutoff = Math.floor(durationCutoff(parseDuration(o.olderThan, 'older-than'), nowOf(ctx)).getTime() / 1000);
  const vols = await listVolumes(ctx, { content: ['backup'], notes: false, pending: false, ...(o.vmid !== undefined ? { vmid: o.vmid } : {}) });
  const items: CleanupItem[] = [];
  const groups = new Map<string, CleanupItem[]>();
  for (const v of vols) {
    const info = parseArchiveName(v.name);
    const item: CleanupItem = { volname: v.volname, ctime: v.ctime, vmid: v.vmid ?? null, type: v.subtype ?? 'unknown', action: 'keep', reason: 'newer' };
    items.push(item);
    if (!info.isStdName) {
      item.reason = 'unnamed';
      continue;
    }
    const g = `${item.type}/${item.vmid}`;
    let list = groups.get(g);
    if (!list) groups.set(g, (list = []));
    list.push(item);
    if (v.protected) item.reason = 'protected';
    else if (v.ctime < cutoff) {
      item.action = 'remove';
      item.reason = 'older';
    }
  }
  const keepLast = o.keepLast ?? 0;
  if (keepLast > 0) {
    for (const list of groups.values()) {
      list.sort((a, b) => b.ctime - a.ctime);
      for (const it of list.slice(0, keepLast)) {
        if (it.action === 'remove') {
          it.action = 'keep';
          it.reason = 'keep-last';
        }
      }
    }
  }
  const out: CleanupOutcome = { cutoff, items, removed: [], errors: [], dryRun: o.dryRun === true };
  const doomed = items.filter((i) => i.action === 'remove').map((i) => i.volname);
  if (o.dryRun || doomed.length === 0) return out;
  const r = await deleteInBatches(ctx, doomed);
  out.removed = r.removed;
  out.errors = r.errors;
  ctx.logger.info('cleanup by age', { olderThan: o.olderThan, removed: out.removed.length, errors: out.errors.length });
  return out;
}
