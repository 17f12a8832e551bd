/**
 * Deleting many volumes for retention (prune, cleanup by age): one deleteVolumes per 100 archives
 * (x6 sidecar keys stays under DeleteObjects' 1000-key limit). A batch refused as a whole, e.g.
 * because a backup was protected after the plan was made, is retried one volume at a time so the
 * rest still go and each refusal is reported against its own volume.
 */
import type { StoreContext } from './types.js';
import { deleteVolumes, type LockedVolume } from './volumes.js';

export interface BatchDeleteOutcome {
  removed: string[];
  errors: { volname: string; message: string }[];
  /** kept under Object Lock: not an error, they go once their retention has passed */
  locked: LockedVolume[];
}

export async function deleteInBatches(ctx: StoreContext, volnames: readonly string[]): Promise<BatchDeleteOutcome> {
  const out: BatchDeleteOutcome = { removed: [], errors: [], locked: [] };
  const take = (r: { deleted: string[]; locked: LockedVolume[] }): void => {
    out.removed.push(...r.deleted);
    out.locked.push(...r.locked);
  };
  for (let i = 0; i < volnames.length; i += 100) {
    const batch = volnames.slice(i, i + 100);
    try {
      take(await deleteVolumes(ctx, batch));
    } catch {
      for (const volname of batch) {
        try {
          take(await deleteVolumes(ctx, [volname]));
        } catch (err) {
          out.errors.push({ volname, message: (err as Error).message });
        }
      }
    }
  }
  return out;
}
