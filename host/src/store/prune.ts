/**
 * Prune in the bucket with PVE's own marking (host/src/pve/prune.ts): the plan is pure, deleting
 * goes through deleteVolumes (in batches) so sidecars leave with their archive and protected
 * backups stay. Unverified backups are marked `unverified`: kept and not counted.
 */
import { markPrune, type PruneKeep, type PruneMark } from '../pve/prune.js';
import type { GuestType as PveGuestType } from '../pve/volname.js';
import { listVolumes } from './list.js';
import { deleteInBatches } from './delete-batches.js';
import { volid, type StoreContext, type Volume } from './types.js';
import type { LockedVolume } from './volumes.js';
import type { PveS3Error } from '../util/errors.js';

export interface PruneEntry {
  volname: string;
  ctime: number;
  type: 'qemu' | 'lxc' | 'openvz' | 'unknown';
  vmid: number | null;
  mark: PruneMark;
}

export async function prunePlan(
  ctx: StoreContext,
  keep: PruneKeep,
  filter: { vmid?: number; type?: PveGuestType } = {},
): Promise<PruneEntry[]> {
  // Notes are not needed to decide, and pending local files are not in the bucket to delete.
  const vols = await listVolumes(ctx, { content: ['backup'], notes: false, pending: false, ...(filter.vmid !== undefined ? { vmid: filter.vmid } : {}) });
  const marked = markPrune(
    // only backups a valid manifest vouches for count (issue 10 §5): a planted or half-written
    // object must never push a verified backup out
    vols.map((v: Volume) => ({ name: v.name, ctime: v.ctime, protected: v.protected, unverified: v.verified !== true, volname: v.volname })),
    keep,
    filter,
  );
  return marked.map((r) => ({ volname: r.backup.volname, ctime: r.ctime, type: r.type, vmid: r.vmid ?? null, mark: r.mark }));
}

export interface PruneOutcome {
  entries: PruneEntry[];
  removed: string[];
  errors: { volname: string; message: string }[];
  /** marked for removal but kept under Object Lock ("locked until DATE"); removed by a later prune */
  locked: LockedVolume[];
  dryRun: boolean;
  /** the gateway stopped answering part-way (delete-batches.ts): what was not removed is in errors */
  stopped?: PveS3Error;
}

export async function prune(
  ctx: StoreContext,
  keep: PruneKeep,
  o: { vmid?: number; type?: PveGuestType; dryRun?: boolean } = {},
): Promise<PruneOutcome> {
  const filter: { vmid?: number; type?: PveGuestType } = {};
  if (o.vmid !== undefined) filter.vmid = o.vmid;
  if (o.type !== undefined) filter.type = o.type;
  const entries = await prunePlan(ctx, keep, filter);
  const out: PruneOutcome = { entries, removed: [], errors: [], locked: [], dryRun: o.dryRun === true };
  if (o.dryRun) return out;
  const r = await deleteInBatches(ctx, entries.filter((e) => e.mark === 'remove').map((e) => e.volname));
  out.removed = r.removed;
  out.errors = r.errors;
  out.locked = r.locked;
  if (r.stopped) out.stopped = r.stopped;
  for (const volname of r.removed) ctx.logger.info(`removing backup '${volid(ctx, volname)}'`);
  return out;
}
