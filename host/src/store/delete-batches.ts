/**
 * Deleting many volumes for retention (prune, cleanup by age): one deleteVolumes per 100 archives
 * (x6 sidecar keys stays under DeleteObjects' 1000-key limit). A batch refused as a whole, e.g.
 * because a backup was protected after the plan was made, is retried one volume at a time so the
 * rest still go and each refusal is reported against its own volume.
 */
import { PveS3Error } from '../util/errors.js';
import type { StoreContext } from './types.js';
import { deleteVolumes, type LockedVolume } from './volumes.js';

export interface BatchDeleteOutcome {
  removed: string[];
  errors: { volname: string; message: string }[];
  /** kept under Object Lock: not an error, they go once their retention has passed */
  locked: LockedVolume[];
  /** the gateway stopped answering (stalled, unreachable, throttling past every retry): the
   *  volumes not removed are in `errors` with its message, and nothing more was tried */
  stopped?: PveS3Error;
}

/** A failure of the gateway, not of the volumes: asking again one volume at a time would only
 *  wait out the same silence (stall_timeout) once per volume. */
function gatewayAway(e: unknown): e is PveS3Error {
  return e instanceof PveS3Error && (e.code === 'Stalled' || e.retryable);
}

export async function deleteInBatches(ctx: StoreContext, volnames: readonly string[]): Promise<BatchDeleteOutcome> {
  const out: BatchDeleteOutcome = { removed: [], errors: [], locked: [] };
  const take = (r: { deleted: string[]; locked: LockedVolume[] }): void => {
    out.removed.push(...r.deleted);
    out.locked.push(...r.locked);
  };
  const stop = (e: PveS3Error, from: number): BatchDeleteOutcome => {
    out.stopped = e;
    for (const volname of volnames.slice(from)) out.errors.push({ volname, message: e.message });
    return out;
  };
  for (let i = 0; i < volnames.length; i += 100) {
    const batch = volnames.slice(i, i + 100);
    try {
      take(await deleteVolumes(ctx, batch));
    } catch (e) {
      if (gatewayAway(e)) return stop(e, i);
      for (const [j, volname] of batch.entries()) {
        try {
          take(await deleteVolumes(ctx, [volname]));
        } catch (err) {
          if (gatewayAway(err)) return stop(err, i + j);
          out.errors.push({ volname, message: (err as Error).message });
        }
      }
    }
  }
  return out;
}
