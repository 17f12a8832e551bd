/**
 * A backup whose objects an S3 lifecycle rule moved to an archive class (archive-state.ts): which
 * of them a restore reads, requesting their restore, and waiting for it.
 *
 * A restore reads the archive, its manifest (verification: a restore refuses an archive whose
 * manifest it cannot read) and, for a provider-made archive, its frame index. pve-s3's own
 * lifecycle rule transitions only archives (tag pve-s3=archive, lifecycle.ts), but a rule the
 * bucket's owner wrote on the prefix moves every object, so all three are asked about. Notes,
 * protected flag and log are not needed to restore and are left alone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { INDEX_SUFFIX, MANIFEST_SUFFIX, parseVolname } from '../pve/volname.js';
import type { RestoreTier } from '../s3/restore.js';
import type { ObjectInfo } from '../s3/types.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import {
  archiveState,
  classLabel,
  needsRestore,
  requestArchiveRestore,
  type ArchiveState,
  type RestoreRequestOptions,
  type RestoreRequestResult,
} from './archive-state.js';
import { headOrNull } from './object-lock.js';
import type { StoreContext } from './types.js';
import type { VolumeLook } from './volume-look.js';
import { keyOf, notFound } from './volume-key.js';

/** The defaults the storage's restore_tier / restore_days give (the schema's when a hand-built
 *  context lacks them). */
export function restoreDefaults(ctx: StoreContext): RestoreRequestOptions {
  return { tier: ctx.settings.restore?.tier ?? 'Standard', days: ctx.settings.restore?.days ?? 7 };
}

export interface ArchivedObject {
  key: string;
  state: ArchiveState;
  /** what requestArchivedVolume did for it (absent: nothing asked) */
  result?: RestoreRequestResult;
}

/**
 * The objects of a backup that a restore reads and that are not readable now (archived or
 * restoring), from one HEAD each (in parallel); [] when the backup can be restored at once. A
 * missing archive is NoSuchKey (the usual "not found" naming the volume); a missing manifest or
 * index is left to the restore's own verdict.
 */
export async function archivedObjectsOf(ctx: StoreContext, volname: string): Promise<{ key: string; info: ObjectInfo; state: ArchiveState }[]> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  const keys = v.content === 'backup' ? [key, key + MANIFEST_SUFFIX, key + INDEX_SUFFIX] : [key, key + MANIFEST_SUFFIX];
  const heads = await Promise.all(keys.map((k) => headOrNull(ctx, k)));
  if (!heads[0]) throw notFound(ctx, volname, key);
  const out: { key: string; info: ObjectInfo; state: ArchiveState }[] = [];
  heads.forEach((info, i) => {
    if (!info) return;
    const state = archiveState(info);
    if (needsRestore(state)) out.push({ key: keys[i]!, info, state });
  });
  return out;
}

/**
 * Requests the restore of every object of the backup that needs one (a running restore is not
 * requested again: requestArchiveRestore HEADs first, and this passes its HEAD on). `ready`:
 * nothing to wait for (all restored or never archived). `look`: what a restore's first round
 * found (volume-look.ts), used instead of asking again.
 */
export async function requestArchivedVolume(
  ctx: StoreContext,
  volname: string,
  o: RestoreRequestOptions,
  look?: Pick<VolumeLook, 'archived'>,
): Promise<{ ready: boolean; objects: ArchivedObject[] }> {
  const archived = look?.archived ?? (await archivedObjectsOf(ctx, volname));
  const objects: ArchivedObject[] = [];
  for (const a of archived) {
    const r = await requestArchiveRestore(ctx, a.key, o, a.info);
    objects.push({ key: a.key, state: r.state, result: r.result });
  }
  return { ready: objects.every((x) => x.result === 'available' || x.result === 'restored'), objects };
}

export interface WaitOptions {
  /** seconds between HEADs */
  intervalS: number;
  /** a line for the operator after each round: "2 of 3 objects restored, 00:12:00 waited" */
  onProgress?(line: string): void;
}

/**
 * Waits until none of `keys` is archived or restoring any more, HEADing them every intervalS
 * seconds; ends early (Aborted) when the context's signal fires (Ctrl-C). An object found
 * archived again without a restore running (its restore expired or was never accepted) fails the
 * wait instead of polling for ever.
 */
export async function waitRestored(ctx: StoreContext, name: string, keys: readonly string[], o: WaitOptions): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const states = await Promise.all(keys.map(async (k) => ({ key: k, info: await headOrNull(ctx, k) })));
    let waiting = 0;
    for (const s of states) {
      if (!s.info) continue;
      const st = archiveState(s.info);
      if (st.state === 'archived') {
        throw new PveS3Error('RestoreNotRunning', `'${s.key}' of backup '${name}' is archived in ${classLabel(st)} and no restore of it is running (it expired or was refused): run the command again to request it`, {
          exitCode: EXIT.failure,
        });
      }
      if (st.state === 'restoring') waiting++;
    }
    const waited = Math.round((Date.now() - t0) / 1000);
    const hms = `${String(Math.floor(waited / 3600)).padStart(2, '0')}:${String(Math.floor(waited / 60) % 60).padStart(2, '0')}:${String(waited % 60).padStart(2, '0')}`;
    o.onProgress?.(`waiting for the restore of '${name}' from its archive class: ${keys.length - waiting} of ${keys.length} object${keys.length === 1 ? '' : 's'} restored, ${hms} waited`);
    if (waiting === 0) return;
    try {
      await sleep(o.intervalS * 1000, undefined, ctx.signal ? { signal: ctx.signal } : {});
    } catch {
      throw new PveS3Error('Aborted', `waiting for the restore of '${name}' was interrupted; the restore goes on in S3: run the command again to continue`, { exitCode: EXIT.failure });
    }
  }
}

/** The poll interval fitting AWS's times for a tier: a minute for Expedited, else five. */
export function defaultWaitIntervalS(tier: RestoreTier): number {
  return tier === 'Expedited' ? 60 : 300;
}
