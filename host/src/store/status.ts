/**
 * Storage status. `probe` is what pvestatd can afford every 10 s (one small request); `usage`
 * is remembered from the last full listing; `maintenanceStatus` is the operator's full picture
 * (counts, bytes, oldest/newest backup, incomplete uploads, lifecycle), paid for with listings.
 */
import { CONTENT_DIR, CONTENT_TYPES } from '../pve/content.js';
import { classifyKey } from '../pve/volname.js';
import type { LifecycleRule } from '../s3/types.js';
import { PveS3Error } from '../util/errors.js';
import { listUploads, uploadBytes } from './multipart.js';
import { bucketLock, bucketLockProblem, headOrNull, type BucketLock } from './object-lock.js';
import type { ArchiveState } from './archive-state.js';
import { mapLimit } from './concurrency.js';
import { LIST_HEAD_PARALLEL, listedArchive } from './list.js';
import { providerReport, type ProviderReport } from './provider-report.js';
import type { Content, StoreContext } from './types.js';
import { probe, writeUsage } from './usage.js';

export { providerReport, type ProviderReport } from './provider-report.js';
export { NOMINAL_AVAIL, probe, pveStatus, readUsage, writeUsage, type PveStatus } from './usage.js';

export interface ContentStats {
  objects: number;
  bytes: number;
  volumes: number;
}

export interface MaintenanceStatus {
  provider: ProviderReport;
  endpointReachable: boolean;
  auth: boolean;
  bucket: string;
  prefix: string;
  contents: Record<Content, ContentStats>;
  totalObjects: number;
  totalBytes: number;
  backups: { count: number; oldest: { volname: string; ctime: number } | null; newest: { volname: string; ctime: number } | null };
  multipart: { count: number; bytes: number };
  /** null: unknown (the gateway refused to show them) or none to have (provider.lifecycle false) */
  lifecycle: LifecycleRule[] | null;
  /** S3 Object Lock: what the storage asks (lock_days) and what the bucket offers; problem: why
   *  the bucket cannot hold this storage's locked objects. null: the gateway would not say */
  objectLock: { days: number | null; mode: string | null; bucket: BucketLock | null; problem?: string };
  /** backups by the storage class their listing names (STANDARD when it names none), and how
   *  many of those in an archive class are archived, restoring or restored (one HEAD each: only
   *  objects in GLACIER, DEEP_ARCHIVE or INTELLIGENT_TIERING); firstExpiry: the earliest date a
   *  restored copy goes away */
  archive: { classes: Record<string, number>; archived: number; restoring: number; restored: number; firstExpiry: Date | null };
  /** set when the probe failed: what failed, in the S3 layer's words */
  error?: { code: string; message: string };
}

const NETWORK_CODES = new Set(['NetworkError', 'ConnectionRefused', 'ConnectTimeout', 'RequestTimeout', 'TlsError', 'Timeout', 'Aborted']);
const AUTH_CODES = new Set(['SignatureDoesNotMatch', 'InvalidAccessKeyId', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'RequestTimeTooSkewed']);

function emptyContents(): Record<Content, ContentStats> {
  const out = {} as Record<Content, ContentStats>;
  for (const c of CONTENT_TYPES) out[c] = { objects: 0, bytes: 0, volumes: 0 };
  return out;
}

/**
 * The operator's status. A failing probe is an answer, not an exception: the report says whether
 * the endpoint answered and whether the credentials were accepted, with the S3 layer's message.
 */
export async function maintenanceStatus(ctx: StoreContext): Promise<MaintenanceStatus> {
  try {
    await probe(ctx);
  } catch (e) {
    // only S3/network failures are answers; a bug stays an exception
    if (!(e instanceof PveS3Error)) throw e;
    const code = e.code;
    return {
      provider: providerReport(ctx),
      endpointReachable: !NETWORK_CODES.has(code),
      auth: !NETWORK_CODES.has(code) && !AUTH_CODES.has(code),
      bucket: ctx.settings.bucket,
      prefix: ctx.settings.prefix,
      contents: emptyContents(),
      totalObjects: 0,
      totalBytes: 0,
      backups: { count: 0, oldest: null, newest: null },
      multipart: { count: 0, bytes: 0 },
      lifecycle: null,
      objectLock: { days: ctx.settings.lock?.days ?? null, mode: ctx.settings.lock?.mode ?? null, bucket: null },
      archive: { classes: {}, archived: 0, restoring: 0, restored: 0, firstExpiry: null },
      error: { code, message: (e as Error).message },
    };
  }
  const contents = {} as Record<Content, ContentStats>;
  let totalObjects = 0;
  let totalBytes = 0;
  let oldest: { volname: string; ctime: number } | null = null;
  let newest: { volname: string; ctime: number } | null = null;
  let backupCount = 0;
  const classes: Record<string, number> = {};
  const toHead: Array<{ key: string; archive: ArchiveState }> = [];
  for (const c of CONTENT_TYPES) {
    const st: ContentStats = { objects: 0, bytes: 0, volumes: 0 };
    for await (const o of ctx.client.listAll({ prefix: ctx.settings.prefix + CONTENT_DIR[c] })) {
      st.objects++;
      st.bytes += o.size;
      const k = classifyKey(ctx.settings.prefix, o.key);
      if (k.kind !== 'volume') continue;
      st.volumes++;
      if (c === 'backup') {
        backupCount++;
        const ctime = k.volume.ctime ?? Math.floor(o.lastModified.getTime() / 1000);
        if (!oldest || ctime < oldest.ctime) oldest = { volname: k.volume.volname, ctime };
        if (!newest || ctime > newest.ctime) newest = { volname: k.volume.volname, ctime };
        const archive = listedArchive(o);
        const cls = archive?.storageClass ?? (o.storageClass || 'STANDARD');
        classes[cls] = (classes[cls] ?? 0) + 1;
        if (archive !== undefined) toHead.push({ key: o.key, archive });
      }
    }
    contents[c] = st;
    totalObjects += st.objects;
    totalBytes += st.bytes;
  }
  await writeUsage(ctx, totalBytes);
  const archive = await archiveCounts(ctx, classes, toHead);
  const multipart = { count: 0, bytes: 0 };
  for await (const u of listUploads(ctx)) {
    multipart.count++;
    multipart.bytes += await uploadBytes(ctx, u).catch(() => 0);
  }
  const provider = providerReport(ctx);
  let lifecycle: LifecycleRule[] | null = null;
  // a provider without lifecycle may answer the request with something else entirely (Swift's
  // s3api lists the bucket): not asked
  if (provider.lifecycle !== false) {
    try {
      lifecycle = await ctx.client.getBucketLifecycle();
    } catch (e) {
      const code = (e as { code?: string }).code;
      lifecycle = code === 'NoSuchLifecycleConfiguration' ? [] : null;
    }
  }
  // a provider known to lack Object Lock is not asked (Swift's s3api answers ?object-lock oddly)
  let lockOfBucket: BucketLock | null = null;
  if (provider.objectLock !== false) lockOfBucket = await bucketLock(ctx).catch(() => null);
  const objectLock: MaintenanceStatus['objectLock'] = { days: ctx.settings.lock?.days ?? null, mode: ctx.settings.lock?.mode ?? null, bucket: lockOfBucket };
  const problem = lockOfBucket ? bucketLockProblem(ctx, lockOfBucket) : ctx.settings.lock ? `the Object Lock configuration of bucket ${ctx.settings.bucket} could not be read` : undefined;
  if (problem !== undefined) objectLock.problem = problem;
  return {
    provider,
    objectLock,
    endpointReachable: true,
    auth: true,
    bucket: ctx.settings.bucket,
    prefix: ctx.settings.prefix,
    contents,
    totalObjects,
    totalBytes,
    backups: { count: backupCount, oldest, newest },
    multipart,
    lifecycle,
    archive,
  };
}

/** The states of the backups whose listed class may need a restore: a HEAD each, as list does. */
async function archiveCounts(
  ctx: StoreContext,
  classes: Record<string, number>,
  listed: ReadonlyArray<{ key: string; archive: ArchiveState }>,
): Promise<MaintenanceStatus['archive']> {
  const out: MaintenanceStatus['archive'] = { classes, archived: 0, restoring: 0, restored: 0, firstExpiry: null };
  await mapLimit(listed, LIST_HEAD_PARALLEL, async ({ key, archive }) => {
    const info = archive.exact ? null : await headOrNull(ctx, key);
    const a = info !== null ? listedArchive(info) : archive;
    if (a === undefined || a.state === 'available') return;
    out[a.state]++;
    if (a.restoredUntil !== undefined && (out.firstExpiry === null || a.restoredUntil < out.firstExpiry)) out.firstExpiry = a.restoredUntil;
  });
  return out;
}
