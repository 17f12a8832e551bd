/**
 * PVE's own restores of an archived backup (issue 14 §1): activate_volume (the `download` op) and
 * the Backup Provider's restore-vm-init / restore-container-init. A PVE task cannot wait the hours
 * a restore from GLACIER takes, so before anything is read the backup's archived objects get their
 * restore requested with the storage's restore_tier / restore_days (once: a restore already
 * running is not requested again, store/archived-volume.ts), and the task fails with one line —
 * the plugin dies with the envelope's message — that says what was done, when it is typically
 * ready and how to see that it is.
 *
 * Why the line names `--list` and not `pve-s3-restore --wait`: --wait ends by downloading the
 * archive to a local file, which a restore through PVE does not need (the provider reads the
 * bucket, activate_volume fetches its own copy); the listing shows "restored until DATE" once
 * the restore is done, and the same PVE restore then succeeds.
 */
import { parseVolname } from '../pve/volname.js';
import type { StoreContext } from '../store/types.js';
import type { VolumeLook } from '../store/volume-look.js';

/** What a PVE caller is told to run (the listing of this volume's guest or content). */
export function pveRetry(ctx: StoreContext, volname: string): string {
  const v = parseVolname(volname);
  const which = v.content === 'backup' ? (v.vmid !== undefined ? `--vmid ${v.vmid}` : '--content backup') : `--content ${v.content}`;
  return `start this restore again once it is done: 'pve-s3-restore --storage ${ctx.settings.storageId} --list ${which}' shows it as 'restored until DATE' then`;
}

/**
 * Returns when the volume can be read now, with what the one round of requests that found it out
 * learnt (store/volume-look.ts: the read uses it instead of asking again); else requests its
 * restore and throws ArchiveRestorePending (exit 6).
 */
export async function readableForPve(ctx: StoreContext, volname: string): Promise<VolumeLook> {
  const { lookVolume } = await import('../store/volume-look.js');
  const { requestArchivedVolume, restoreDefaults } = await import('../store/archived-volume.js');
  const o = restoreDefaults(ctx);
  const look = await lookVolume(ctx, volname);
  const r = await requestArchivedVolume(ctx, volname, o, look);
  if (r.ready) return look;
  const { restorePendingError } = await import('../store/archive-state.js');
  throw restorePendingError(parseVolname(volname).name, r.objects, { tier: o.tier, retry: pveRetry(ctx, volname) });
}
