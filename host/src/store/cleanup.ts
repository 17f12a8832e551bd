/**
 * Cleanup by age: removes backups whose time in the archive name (never LastModified) is older
 * than the cutoff, skipping protected ones, keeping the newest `keepLast` of each guest, and
 * ignoring names without a time (they cannot be dated, so they are never removed by age).
 */
import { durationCutoff, parseDuration } from '../pve/duration.js';
import { parseArchiveName } from '../pve/volname.js';
import { listVolumes } from './list.js';
import { nowOf, type StoreContext } from './types.js';
import { deleteVolumes } from './volumes.js';

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
  // batches: one DeleteObjects per 100 archives (x6 sidecar keys stays under the 1000-key limit)
  for (let i = 0; i < doomed.length; i += 100) {
    const batch = doomed.slice(i, i + 100);
    try {
      const r = await deleteVolumes(ctx, batch);
      out.removed.push(...r.deleted);
    } catch (e) {
      // a backup protected meanwhile refuses the whole batch: retry one by one to save the rest
      for (const volname of batch) {
        try {
          const r = await deleteVolumes(ctx, [volname]);
          out.removed.push(...r.deleted);
        } catch (err) {
          out.errors.push({ volname, message: (err as Error).message });
        }
      }
      void e;
    }
  }
  ctx.logger.info('cleanup by age', { olderThan: o.olderThan, removed: out.removed.length, errors: out.errors.length });
  return out;
}
