/**
 * The one upload of a local file into the bucket. The vzdump hook, pve-s3-backup, sync-local and
 * the protocol's upload all run it, so they share every step and its order:
 *
 *   lock the volume (volume-lock.ts) → read the sidecars beside a backup → refuse to replace a
 *   protected backup, or any object unless asked → skip a file the bucket already holds byte for
 *   byte → upload (a replacement staged first, replace.ts) → verify the stored object → remove
 *   the local file when asked and allowed, else record it as a cached copy.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { READ_BY_PATH } from '../pve/content.js';
import { assertUsableName, parseVolname, sidecarNames, type VolumeInfo } from '../pve/volname.js';
import type { Progress } from '../transfer/progress.js';
import { bareETag } from '../s3/xml.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { isCachePath, writeRecord } from './local-cache.js';
import { assertUploadVerified, putBackupLog, readLocalSidecars, removeVerifiedSource } from './local-files.js';
import { assertMayReplace, isReplaceRefusal, sameAsStored } from './replace.js';
import { putVolumeLocked } from './transfer.js';
import { volid, type StoreContext, type Volume } from './types.js';
import { lockVolumeWriter } from './volume-lock.js';
import type { FileLock } from '../util/flock.js';
import { keyOf } from './volume-key.js';
import { setAttribute, statVolume } from './volumes.js';

export interface LocalUploadOptions {
  /**
   * replace an object of that name already in the bucket (never a protected backup);
   * `unverified`: only one no manifest of this storage vouches for (a run that stopped before its
   * manifest). A verified one with other bytes is another writer's: the vzdump hook's archive
   * names are unique per guest and second on one cluster, not across clusters sharing a bucket.
   */
  replace: boolean | 'unverified';
  /** said after a refusal to replace, e.g. the flag that allows it */
  hint?: string;
  /** read what vzdump leaves beside a backup (`.notes`, `.protected`, the log); default true */
  sidecars?: boolean;
  /** given values win over the local sidecars (protected: either one protects) */
  notes?: string;
  protected?: boolean;
  logPath?: string;
  /** remove the local file (and its sidecars) once the stored object is verified */
  removeSource?: boolean;
  storageClass?: string;
  onProgress?(p: Progress): void;
  /** how long to wait for another writer of this volume on this node; 0: VolumeBusy at once */
  waitSeconds: number;
  /** who this writer is, for the message another writer prints while it waits */
  who: string;
  onWait?(message: string): void;
}

export interface LocalUploadOutcome {
  volume: Volume;
  /** `identical`: the bucket held these bytes already, nothing was sent; `by-other`: another
   *  writer stored the file and removed it while this one waited */
  result: 'uploaded' | 'identical' | 'by-other';
  sourceRemoved: boolean;
  /** why the local file stays although its removal was asked */
  keptBecause?: string;
}

export interface LocalSidecarPlan {
  notes?: string;
  protected: boolean;
  logPath?: string;
}

/**
 * What goes up with a local file: for a backup its local sidecars (unless `read` is false) under
 * the values given. A log belongs to the archive's own name, so a file stored under another name
 * takes none from beside it.
 */
export async function localSidecarPlan(
  v: VolumeInfo,
  path: string,
  given: { notes?: string; protected?: boolean; logPath?: string },
  read = true,
): Promise<LocalSidecarPlan> {
  if (v.content !== 'backup') {
    const out: LocalSidecarPlan = { protected: given.protected === true };
    if (given.notes !== undefined) out.notes = given.notes;
    return out;
  }
  const side = read ? await readLocalSidecars(path) : { protected: false };
  const out: LocalSidecarPlan = { protected: given.protected === true || side.protected };
  const notes = given.notes ?? side.notes;
  if (notes !== undefined) out.notes = notes;
  const logPath = given.logPath ?? (v.name === basename(path) ? side.logPath : undefined);
  if (logPath !== undefined) out.logPath = logPath;
  return out;
}

export async function putLocalVolume(ctx: StoreContext, volname: string, path: string, o: LocalUploadOptions): Promise<LocalUploadOutcome> {
  const v = parseVolname(volname);
  assertUsableName(v, ctx.settings.prefix); // before the lock: its file name is derived from it
  let waited = false;
  const lock = await lockVolumeWriter(ctx, v, {
    waitSeconds: o.waitSeconds,
    who: o.who,
    onWait: (m) => {
      waited = true;
      o.onWait?.(m);
    },
  });
  try {
    return await underLock(ctx, v, path, o, waited, lock);
  } finally {
    await lock.release();
  }
}

async function underLock(ctx: StoreContext, v: VolumeInfo, path: string, o: LocalUploadOptions, waited: boolean, lock: FileLock): Promise<LocalUploadOutcome> {
  const st = await stat(path).catch(() => null);
  if (!st?.isFile()) {
    // the writer we waited for stored it and removed the local file: done, by someone else
    if (waited) {
      const vol = await statVolume(ctx, v.volname).catch(() => null);
      if (vol?.verified === true) return { volume: vol, result: 'by-other', sourceRemoved: false };
    }
    throw new PveS3Error('InvalidArgument', `invalid src '${path}': not an existing regular file`, { exitCode: EXIT.usage });
  }
  const size = st.size;
  const plan = await localSidecarPlan(v, path, o, o.sidecars !== false);

  let existing;
  let identical = false;
  try {
    existing = await assertMayReplace(ctx, v.volname, { replace: o.replace !== false, ...(o.hint !== undefined ? { hint: o.hint } : {}) });
    // a replace of an object with these very bytes (a re-run) sends nothing
    if (existing !== null) identical = await sameAsStored(ctx, keyOf(ctx, v), path, size);
  } catch (e) {
    // the same file again (a repeated command, a retried batch) is not a conflict
    if (!isReplaceRefusal(e) || !(await sameAsStored(ctx, keyOf(ctx, v), path, size))) throw e;
    identical = true;
  }
  if (existing !== null && existing !== undefined && !identical && o.replace === 'unverified' && (await statVolume(ctx, v.volname)).verified === true) {
    throw new PveS3Error(
      'DestinationExists',
      `'${volid(ctx, v.volname)}' is already in the bucket, verified, with other bytes: another writer of the bucket (another cluster sharing it?) stored it; not replaced, the local archive is kept${o.hint !== undefined ? `; ${o.hint}` : ''}`,
      { exitCode: EXIT.usage, key: keyOf(ctx, v) },
    );
  }

  let vol: Volume;
  if (identical) {
    vol = await keepStored(ctx, v, plan);
  } else {
    vol = await putVolumeLocked(
      ctx,
      v,
      {
        src: { path },
        ...plan,
        ...(o.storageClass !== undefined ? { storageClass: o.storageClass } : {}),
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      },
      existing !== null && existing !== undefined,
      lock,
    );
  }
  assertUploadVerified(vol, { path, size });

  const out: LocalUploadOutcome = { volume: vol, result: identical ? 'identical' : 'uploaded', sourceRemoved: false };
  const inCache = isCachePath(ctx.settings.cacheDir, v.content, v.name, path);
  if (o.removeSource && inCache && READ_BY_PATH.includes(v.content)) {
    out.keptBecause = `PVE reads ${v.content === 'iso' ? 'ISO images' : 'snippets'} from the node's disk without fetching them first`;
  } else if (o.removeSource) {
    await removeVerifiedSource(vol, path, st, plan.logPath !== undefined ? { logPath: plan.logPath } : {});
    out.sourceRemoved = true;
    return out;
  }
  if (inCache) await writeRecord(ctx.settings.cacheDir!, v.content, v.name, bareETag(vol.etag ?? ''));
  return out;
}

/** An archive the bucket already holds byte for byte: only what travels with it is brought up to
 *  date (notes, protection, log), as an upload would have written them. */
async function keepStored(ctx: StoreContext, v: VolumeInfo, plan: LocalSidecarPlan): Promise<Volume> {
  if (v.content === 'backup') {
    if (plan.notes !== undefined) await setAttribute(ctx, v.volname, 'notes', plan.notes);
    if (plan.protected) await setAttribute(ctx, v.volname, 'protected', true);
    if (plan.logPath !== undefined) await putBackupLog(ctx, plan.logPath, sidecarNames(v.name).log);
  }
  return statVolume(ctx, v.volname);
}
