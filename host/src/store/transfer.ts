/**
 * Putting volumes into the bucket and getting them out, with the Proxmox rules around the raw
 * transfer: metadata from the name, sidecars after the archive (never before: a sidecar without
 * its archive would look like a finished backup), cache records, and skipping a download whose
 * local copy is already the object.
 */
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { lstat, stat } from 'node:fs/promises';
import type { UploadSource } from '../transfer/upload.js';
import { NOTES_SUFFIX, PROTECTED_SUFFIX, assertUsableName, keyOfName, localNameProblem, parseVolname, sidecarNames, type VolumeInfo } from '../pve/volname.js';
import type { Progress } from '../transfer/progress.js';
import type { Check, VerifyMode } from '../transfer/download.js';
import { bareETag } from '../s3/xml.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { isCachePath, localPath, writeRecord } from './local-cache.js';
import { exists, isNotFound, putSmall } from './objects.js';
import { checkNotes } from './notes.js';
import { checkDestinationDir, destinationExists } from '../transfer/temp-file.js';
import { keyOf, notFound } from './volume-key.js';
import { providerOf, readSse, transferClient, uploadClient, uploadLimits, volid, type StoreContext, type Volume } from './types.js';
import { bucketLock, bucketLockProblem, explainLockedWriteRefusal, retentionFor } from './object-lock.js';
import { allInOrder } from './concurrency.js';
import type { VolumeLook } from './volume-look.js';
import type { FileLock } from '../util/flock.js';

const invalidArg = (msg: string) => new PveS3Error('InvalidArgument', msg, { exitCode: EXIT.usage });

/** x-amz-meta-* for a volume (DESIGN.md §3); values are plain ASCII so every provider keeps them. */
export function volumeMetadata(ctx: StoreContext, v: VolumeInfo, size: number | null): Record<string, string> {
  const m: Record<string, string> = { 'pve-content': v.content, node: ctx.settings.node ?? hostname() };
  if (v.vmid !== undefined) m.vmid = String(v.vmid);
  if (v.guestType) m['guest-type'] = v.guestType;
  if (v.ctime !== undefined) m['backup-time'] = String(v.ctime);
  if (v.format) m.format = v.format;
  if (v.compression) m.compression = v.compression;
  if (size !== null) m.size = String(size);
  return m;
}

const CONTENT_TYPE: Record<string, string> = { iso: 'application/x-iso9660-image', snippet: 'text/plain' };

export interface PutVolumeOptions {
  /** a local file, or a stream (its `maxSize` or `expectedSize` picks the part size: transfer/upload.ts) */
  src: UploadSource;
  notes?: string;
  protected?: boolean;
  /** a local vzdump log to store as the archive's `.log` sidecar */
  logPath?: string;
  /** replace an object of that name already in the bucket (never a protected backup); default: refuse */
  replace?: boolean;
  /** said after a refusal to replace, e.g. the flag that allows it */
  hint?: string;
  storageClass?: string;
  onProgress?(p: Progress): void;
}

/**
 * One volume into the bucket, as the only writer of it on this node (volume-lock.ts): a stream,
 * or a file that is not the storage's own pending file (those go through putLocalVolume, which
 * also reads their sidecars and removes or records the local copy).
 */
export async function putVolume(ctx: StoreContext, volname: string, o: PutVolumeOptions & { who?: string }): Promise<Volume> {
  const v = parseVolname(volname);
  assertUsableName(v, ctx.settings.prefix); // before the lock: its file name is derived from it
  const { lockVolumeWriter, WAIT_FOR_WRITER_SECONDS } = await import('./volume-lock.js');
  const lock = await lockVolumeWriter(ctx, v, { waitSeconds: WAIT_FOR_WRITER_SECONDS, who: o.who ?? 'upload', onWait: (m) => ctx.logger.warn(m) });
  try {
    const { assertMayReplace } = await import('./replace.js');
    const existing = await assertMayReplace(ctx, volname, { replace: o.replace === true, ...(o.hint !== undefined ? { hint: o.hint } : {}) });
    return await putVolumeLocked(ctx, v, o, existing !== null, lock);
  } finally {
    await lock.release();
  }
}

/**
 * The bucket side of an upload, for a caller that holds the volume's writer lock and has decided
 * that `replacing` an object of that name is allowed: metadata from the name, the object (staged
 * first when it replaces one, replace.ts), its manifest, then the sidecars. `writer`: the lock it
 * holds, with which an upload that cannot be resumed is remembered (abandoned-uploads.ts).
 */
export async function putVolumeLocked(ctx: StoreContext, v: VolumeInfo, o: PutVolumeOptions, replacing: boolean, writer: FileLock): Promise<Volume> {
  const volname = v.volname;
  const key = keyOf(ctx, v);
  let size: number | null = null;
  if ('path' in o.src) {
    const st = await stat(o.src.path).catch(() => null);
    if (!st || !st.isFile()) throw invalidArg(`invalid src '${o.src.path}': not an existing regular file`);
    size = st.size;
  }
  if (o.logPath !== undefined) {
    if (v.content !== 'backup') throw invalidArg(`invalid log '${o.logPath}': only backups have a log`);
    if (!sidecarNames(v.name).log) throw invalidArg(`invalid log '${o.logPath}': '${v.name}' is not a standard vzdump name, so it has no log name`);
    const st = await stat(o.logPath).catch(() => null);
    if (!st || !st.isFile()) throw invalidArg(`invalid log '${o.logPath}': not an existing regular file`);
  }
  if ((o.notes !== undefined && o.notes !== '') || o.protected) {
    if (v.content !== 'backup') throw invalidArg(`cannot set notes or protection on '${volname}': only backups can have notes or protection`);
  }
  checkNotes(volname, o.notes);
  const { uploadObject } = await import('../transfer/upload.js');
  const { signing } = await import('./trust.js');
  const signed = await signing(ctx);
  const { archiveTags } = await import('./lifecycle.js');
  const tags = archiveTags(ctx.settings.lifecycle, providerOf(ctx));
  const retention = retentionFor(ctx);
  const put = {
    ...(ctx.settings.put ?? {}),
    metadata: volumeMetadata(ctx, v, size),
    contentType: CONTENT_TYPE[v.listFormat] ?? 'application/octet-stream',
    ...(o.storageClass ?? ctx.settings.storageClass ? { storageClass: o.storageClass ?? ctx.settings.storageClass } : {}),
    ...(v.content === 'backup' && tags !== undefined ? { tags } : {}),
    // backups only: ISOs, templates and snippets are replaced and deleted as a matter of course
    // AWS refuses a locked write without Content-MD5 (or a checksum); on parts too (objects.ts)
    ...(v.content === 'backup' && retention !== undefined ? { objectLock: retention, contentMd5: true } : {}),
  };
  const uploadOptions = {
    chunkSizeMB: ctx.settings.chunkSizeMB,
    concurrency: ctx.settings.concurrency,
    put,
    // the log named here is part of the backup: check-integrity reports it if it goes missing
    manifestMeta: { volname: v.volname, ...volumeMetadata(ctx, v, null), ...(o.logPath !== undefined ? { log: sidecarNames(v.name).log } : {}) },
    ...signed,
    signal: ctx.signal,
    onProgress: o.onProgress,
    ...uploadLimits(ctx),
  };
  if (put.objectLock !== undefined && replacing) {
    // a replacement is copied over the old object before its retention is set (replace.ts,
    // s3/client.ts): a bucket that refuses the retention only then would keep the new bytes under
    // the old manifest, so the bucket is asked first
    const problem = bucketLockProblem(ctx, await bucketLock(ctx));
    if (problem !== undefined) throw new PveS3Error('BucketNotLockable', `'${volname}' not replaced: ${problem}`, { exitCode: EXIT.failure });
  }
  let res;
  try {
    if (replacing) {
      const { uploadReplacing } = await import('./replace.js');
      res = await uploadReplacing(ctx, v, o.src, uploadOptions, writer);
    } else {
      // the name was free when the upload began; another writer of the bucket (another cluster
      // sharing it: vzdump's names are unique per guest and second on one cluster only) may have
      // stored an object under it since, which this upload must not overwrite
      const beforeWrite = async (): Promise<void> => {
        if (await exists(ctx, key)) {
          throw new PveS3Error('DestinationExists', `'${volid(ctx, volname)}' was stored in the bucket by another writer while this upload ran: not overwritten, nothing stored`, {
            exitCode: EXIT.usage,
            key,
          });
        }
      };
      res = await uploadObject(uploadClient(ctx, o.src, writer), key, o.src, { ...uploadOptions, beforeWrite });
    }
  } catch (e) {
    if (put.objectLock === undefined) throw e;
    const explained = await explainLockedWriteRefusal(ctx, volname, e);
    // RadosGW takes a multipart upload's lock headers without keeping them, so the bucket refuses
    // only the retention set after Complete (s3/client.ts), when the object is already stored:
    // unlocked, without a manifest, and new (nothing was there to replace), so it goes again
    if (explained !== e && !replacing) await ctx.client.deleteObject(key).catch(() => undefined);
    throw explained;
  }
  ctx.logger.info('uploaded volume', { volname, key, size: res.size, parts: res.partCount });
  // the sidecars once the archive and its manifest are stored, all at once: none depends on
  // another, and statVolume below reports what the bucket then holds of each
  const logKey = o.logPath !== undefined ? keyOfName(ctx.settings.prefix, 'backup', sidecarNames(v.name).log!) : undefined;
  await allInOrder([
    o.notes !== undefined && o.notes !== '' ? putSmall(ctx, key + NOTES_SUFFIX, o.notes) : undefined,
    o.protected ? putSmall(ctx, key + PROTECTED_SUFFIX, '', 'application/octet-stream') : undefined,
    logKey !== undefined
      ? uploadObject(transferClient(ctx), logKey, { path: o.logPath! }, {
          chunkSizeMB: ctx.settings.chunkSizeMB,
          concurrency: ctx.settings.concurrency,
          put: { ...(ctx.settings.put ?? {}), contentType: 'text/plain; charset=utf-8' },
          ...signed,
          signal: ctx.signal,
          ...uploadLimits(ctx),
        })
      : undefined,
  ] as const);
  const { statVolume } = await import('./volumes.js');
  return statVolume(ctx, volname);
}

export interface GetVolumeResult {
  path: string;
  size: number;
  etag: string;
  mtime: number;
  /** a manifest signed with this storage's key vouched for the object and its bytes were checked */
  verified: boolean;
  downloaded: boolean;
  /** what the download compared (transfer/download.ts Check); none when nothing was transferred */
  checks: Check[];
  /** why it is not verified (downloaded only with allowUnverified) */
  trustNote?: string;
}

/**
 * Downloads a volume to `dest`, verified against its manifest (or by size/MD5 when it has none),
 * through a temporary name. A destination that already has the object's size and LastModified as
 * mtime is the object already: nothing is transferred unless `force`. `noClobber`: anything at
 * `dest` when the file is put in place (a symlink included) is refused, decided atomically then
 * (DestinationExists); otherwise it is replaced, a symlink itself and never its target. A volume
 * that is not verified (store/trust.ts) is refused unless `allowUnverified`; a snippet is made
 * executable only when verified. `look`: the caller's first round (volume-look.ts), whose HEAD and
 * manifest are used instead of asking again.
 */
export async function getVolume(
  ctx: StoreContext,
  volname: string,
  dest: string,
  o: { force?: boolean; noClobber?: boolean; onProgress?(p: Progress): void; verify?: VerifyMode; allowUnverified?: boolean; look?: VolumeLook } = {},
): Promise<GetVolumeResult> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  if (!dest.startsWith('/')) throw invalidArg(`invalid dest '${dest}': must be an absolute path`);
  const tooLong = localNameProblem(basename(dest));
  if (tooLong !== undefined) {
    throw new PveS3Error('NameTooLong', `cannot restore '${volname}' to '${dest}': ${tooLong}; give a shorter destination file name, or restore to a pipe`, { exitCode: EXIT.usage });
  }
  await checkDestinationDir(dest);
  const { objectAndManifest } = await import('./volume-look.js');
  const { info, trusted: { manifest, verdict } } = await objectAndManifest(ctx, volname, o.look);
  const mtime = Math.floor((info.lastModified?.getTime() ?? Date.now()) / 1000);
  const etag = bareETag(info.etag);
  const { unverifiedError } = await import('./trust.js');
  const verified = verdict.trust === 'verified';
  if (!verified && !o.allowUnverified) throw unverifiedError(ctx, v.volname, verdict);
  const note = verdict.note !== undefined ? { trustNote: verdict.note } : {};
  const cur = await lstat(dest).catch(() => null);
  const cachePath = isCachePath(ctx.settings.cacheDir, v.content, v.name, dest);
  if (cur && o.noClobber) throw destinationExists(dest, cur.isSymbolicLink() ? 'is a symbolic link' : 'already exists');
  if (cur && cur.isFile() && !o.force && cur.size === info.size && Math.floor(cur.mtimeMs / 1000) === mtime) {
    if (cachePath) await writeRecord(ctx.settings.cacheDir!, v.content, v.name, etag);
    return { path: dest, size: info.size, etag, mtime, verified, downloaded: false, checks: [], ...note };
  }
  const { downloadObject } = await import('../transfer/download.js');
  const res = await downloadObject(transferClient(ctx), key, { path: dest }, {
    info,
    // a manifest that does not match the object vouches for nothing: "as it is" means by size
    manifest: verdict.trust === 'incomplete' ? null : manifest,
    concurrency: ctx.settings.concurrency,
    force: !o.noClobber,
    // hookscripts must be executable (PVE checks -x; S3 keeps no mode bits), but only ours: a
    // snippet a bucket writer planted would run as root
    ...(v.content === 'snippets' && verified ? { mode: 0o755 } : {}),
    mtime,
    signal: ctx.signal,
    onProgress: o.onProgress,
    ...(o.verify ? { verify: o.verify } : {}),
    ...(ctx.settings.downloadBwlimitKiB ? { bwlimitKiB: ctx.settings.downloadBwlimitKiB } : {}),
    ...readSse(ctx),
  });
  if (cachePath) await writeRecord(ctx.settings.cacheDir!, v.content, v.name, etag);
  ctx.logger.info('downloaded volume', { volname, dest, size: res.size, verifiedBy: res.verifiedBy, checks: res.checks, trust: verdict.trust });
  return { path: dest, size: res.size, etag, mtime, verified: verified && res.verifiedBy === 'manifest', downloaded: true, checks: res.checks, ...note };
}

/**
 * Streams a volume to `out` (a restore pipeline: `pve-s3-restore … --destination - | qmrestore -`).
 * Every range is verified before it is written; a mismatch fails the stream, so the consumer sees
 * an error rather than silently wrong data. `look` as for getVolume.
 */
export async function streamVolume(
  ctx: StoreContext,
  volname: string,
  out: import('node:stream').Writable,
  o: { onProgress?(p: Progress): void; verify?: VerifyMode; allowUnverified?: boolean; look?: VolumeLook } = {},
): Promise<{ size: number; etag: string; verified: boolean; checks: Check[]; trustNote?: string }> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  const { downloadObject } = await import('../transfer/download.js');
  const { unverifiedError } = await import('./trust.js');
  const { objectAndManifest } = await import('./volume-look.js');
  try {
    const { info, trusted: { manifest, verdict } } = await objectAndManifest(ctx, volname, o.look);
    const verified = verdict.trust === 'verified';
    if (!verified && !o.allowUnverified) throw unverifiedError(ctx, v.volname, verdict);
    const res = await downloadObject(transferClient(ctx), key, { stream: out }, {
      info,
      manifest: verdict.trust === 'incomplete' ? null : manifest,
      concurrency: ctx.settings.concurrency,
      signal: ctx.signal,
      onProgress: o.onProgress,
      ...(o.verify ? { verify: o.verify } : {}),
      ...(ctx.settings.downloadBwlimitKiB ? { bwlimitKiB: ctx.settings.downloadBwlimitKiB } : {}),
      ...readSse(ctx),
    });
    return {
      size: res.size,
      etag: bareETag(res.etag),
      verified: verified && res.verifiedBy === 'manifest',
      checks: res.checks,
      ...(verdict.note !== undefined ? { trustNote: verdict.note } : {}),
    };
  } catch (e) {
    if (isNotFound(e)) throw notFound(ctx, volname, key);
    throw e;
  }
}

/** The cache location of a volume (for callers that want PVE's path). */
export function cachePathOf(ctx: StoreContext, volname: string): string {
  const v = parseVolname(volname);
  if (ctx.settings.cacheDir === undefined) throw invalidArg(`storage '${ctx.settings.storageId}' has no path (cache dir)`);
  return localPath(ctx.settings.cacheDir, v.content, v.name);
}
