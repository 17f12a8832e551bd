/**
 * What every archive the Backup Provider makes shares (VMs: provider-vm.ts, containers:
 * provider-ct.ts): its name must be free in the bucket — the provider never replaces a backup —
 * and it is uploaded as a stream with the storage's put options, lifecycle tags, Object Lock
 * retention, part limits and bandwidth limit, and the metadata every backup carries.
 */
import { randomBytes } from 'node:crypto';
import type { VolumeInfo } from '../pve/volname.js';
import type { UploadOptions } from '../transfer/upload.js';
import { EXIT, PveS3Error, asPveS3Error } from '../util/errors.js';
import { archiveTags } from './lifecycle.js';
import type { Retention } from '../s3/types.js';
import { deleteQuiet, exists } from './objects.js';
import { volumeMetadata } from './transfer.js';
import { keyOf } from './volume-key.js';
import { signing } from './trust.js';
import { providerOf, uploadLimits, type StoreContext } from './types.js';

/**
 * Which backup run made an archive: backup-init hands out a fresh id, the run writes it into its
 * archive's metadata, and backup_cleanup's discard removes an archive only when it carries the id
 * of the run being discarded. The name alone does not say: it is free when a backup starts, but
 * another writer of the bucket (another cluster with the same guest id and schedule) can store a
 * backup under it before this run fails, and that backup is not this run's to delete.
 */
export const RUN_META = 'backup-run';
const RUN_RE = /^[0-9a-f]{32}$/;

export function newRunId(): string {
  return randomBytes(16).toString('hex');
}

/** the run id a request names, checked; undefined when it names none */
export function runIdOf(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!RUN_RE.test(value)) throw new PveS3Error('InvalidArgument', `invalid run '${value}': must be the 32 hex digits backup-init answered`, { exitCode: EXIT.usage });
  return value;
}

/**
 * DestinationExists when the bucket holds `volname` already; else its key. `stored`: asked again
 * just before the archive is written (UploadOptions.beforeWrite), since the name was free when the
 * backup began, but another writer of the bucket (another cluster sharing it, the same guest id
 * and schedule) may have stored a backup under it while this one ran: that one stays.
 */
export async function freeArchiveKey(ctx: StoreContext, v: VolumeInfo, o: { stored?: boolean } = {}): Promise<string> {
  const key = keyOf(ctx, v);
  if (await exists(ctx, key)) {
    const what = o.stored
      ? `backup '${v.volname}' was stored in bucket '${ctx.settings.bucket}' by another writer while this backup ran: not overwritten, this backup is not stored`
      : `backup '${v.volname}' exists already in bucket '${ctx.settings.bucket}': not overwritten`;
    throw new PveS3Error('DestinationExists', what, { exitCode: EXIT.usage });
  }
  return key;
}

/**
 * the upload options of a provider archive; `bwlimitKiB`: the job's, besides the storage's;
 * `retention`: the storage's (retentionFor), the same for the archive's other locked objects;
 * the manifest is signed with the storage's key (store/trust.ts signing) unless `unsigned`: a
 * process that cannot read the key (the container backup runs as the container's uid) leaves the
 * signing to a root one (signStored)
 */
export async function archiveUploadOptions(
  ctx: StoreContext,
  v: VolumeInfo,
  o: { contentType: string; bwlimitKiB?: number; retention: Retention | undefined; unsigned?: boolean; run?: string },
): Promise<Pick<UploadOptions, 'chunkSizeMB' | 'concurrency' | 'put' | 'manifestMeta' | 'manifestSigner' | 'bwlimitKiB' | 'partLimits'>> {
  const tags = archiveTags(ctx.settings.lifecycle, providerOf(ctx));
  const limits = uploadLimits(ctx);
  const bw = [limits.bwlimitKiB, o.bwlimitKiB].filter((x): x is number => !!x);
  return {
    chunkSizeMB: ctx.settings.chunkSizeMB,
    concurrency: ctx.settings.concurrency,
    put: {
      ...(ctx.settings.put ?? {}),
      metadata: { ...volumeMetadata(ctx, v, null), ...(o.run !== undefined ? { [RUN_META]: o.run } : {}) },
      contentType: o.contentType,
      ...(ctx.settings.storageClass ? { storageClass: ctx.settings.storageClass } : {}),
      ...(tags !== undefined ? { tags } : {}),
      ...(o.retention !== undefined ? { objectLock: o.retention, contentMd5: true } : {}),
    },
    manifestMeta: { volname: v.volname, ...volumeMetadata(ctx, v, null) },
    partLimits: limits.partLimits,
    ...(bw.length ? { bwlimitKiB: Math.min(...bw) } : {}),
    ...(o.unsigned ? { manifestSigner: null } : await signing(ctx)),
  };
}

/**
 * After a backup failed once its archive's Complete went out: removes what it may have stored
 * (`keys`), and returns the error to report. Not while the endpoint is silent already (stall_timeout
 * reached in this operation): each DELETE would wait another last try of 10 s (s3/stall.ts) for
 * nothing certain, since a gateway that was only frozen may carry the Complete out after it. The
 * message then says what may stay and how to remove it; the job's cleanup (backup-discard) removes
 * it too if the gateway answers by then.
 */
export async function removeFailedArchive(ctx: StoreContext, volname: string, keys: readonly string[], e: unknown): Promise<unknown> {
  if (!ctx.client.silent) {
    for (const k of keys) await deleteQuiet(ctx, k).catch(() => undefined);
    return e;
  }
  const err = asPveS3Error(e);
  return new PveS3Error(
    err.code,
    `${err.message}; '${volname}' may be stored all the same and was not removed while the gateway is silent: the job's cleanup removes it if the gateway answers by then, else pvesm free ${ctx.settings.storageId}:${volname} once it answers`,
    { cause: err, key: err.key, status: err.status, retryable: err.retryable, exitCode: err.exitCode },
  );
}
