/**
 * S3 Object Lock for a storage with `lock_days` (docs/CONFIG.md): the retention each archive and
 * its manifest are written with, what a delete does with a version still under retention, and
 * whether the bucket can hold locked objects at all.
 *
 * A bucket with Object Lock is always versioned, so a DELETE without a version id succeeds even
 * on a locked object: it only hides it behind a delete marker. pve-s3 therefore asks HEAD before
 * deleting a volume and keeps every key of a volume whose archive is still retained ("locked
 * until DATE"), so a backup never vanishes from PVE's view while S3 still holds (and bills) it.
 * Once the retention has passed the volume is deleted with plain DELETEs like anywhere else: its
 * versions become noncurrent and the lifecycle rule for noncurrent versions (lifecycle.ts)
 * removes them; pve-s3 never deletes a version by id and never sends the governance bypass.
 */
import type { ObjectInfo, ObjectLockConfig, Retention } from '../s3/types.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { isNotFound } from './objects.js';
import { nowOf, readSse, type StoreContext } from './types.js';

const DAY_MS = 86_400_000;

/** The retention new archives and manifests get now; undefined when the storage locks nothing. */
export function retentionFor(ctx: StoreContext): Retention | undefined {
  const l = ctx.settings.lock;
  if (!l) return undefined;
  // whole seconds: S3 answers the date without milliseconds, so a compare after HEAD stays exact
  const until = new Date(Math.ceil((nowOf(ctx).getTime() + l.days * DAY_MS) / 1000) * 1000);
  return { mode: l.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', retainUntil: until };
}

export interface HeldBy {
  /** the retention date, or absent for a legal hold without one */
  until?: Date;
  mode?: string;
  legalHold: boolean;
}

/** What keeps an object version from being deleted now, from its HEAD; null when nothing does. */
export function heldBy(info: Pick<ObjectInfo, 'objectLock'>, now: Date): HeldBy | null {
  const l = info.objectLock;
  if (!l) return null;
  const retained = l.retainUntil !== undefined && l.retainUntil.getTime() > now.getTime();
  if (!retained && l.legalHold !== true) return null;
  return { ...(retained ? { until: l.retainUntil!, mode: l.mode } : {}), legalHold: l.legalHold === true };
}

/** "locked until 2026-12-06T13:00:00Z (GOVERNANCE)" / "under a legal hold" */
export function describeHold(h: HeldBy): string {
  const parts: string[] = [];
  if (h.until) parts.push(`locked until ${h.until.toISOString().replace('.000Z', 'Z')}${h.mode ? ` (${h.mode})` : ''}`);
  if (h.legalHold) parts.push('under a legal hold');
  return parts.join(' and ');
}

/** HEAD of a volume's object: null when it does not exist. */
export async function headOrNull(ctx: StoreContext, key: string): Promise<ObjectInfo | null> {
  try {
    return await ctx.client.headObject(key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
}

export interface BucketLock {
  /** Object Lock enabled on the bucket (only possible from its creation on AWS and RadosGW) */
  objectLock: boolean;
  versioning: 'Enabled' | 'Suspended' | 'Off';
  defaultRetention?: ObjectLockConfig['defaultRetention'];
}

export async function bucketLock(ctx: StoreContext): Promise<BucketLock> {
  const o = ctx.signal ? { signal: ctx.signal } : {};
  const [cfg, versioning] = await Promise.all([ctx.client.getObjectLockConfiguration(o), ctx.client.getBucketVersioning(o)]);
  return { objectLock: cfg.enabled, versioning, ...(cfg.defaultRetention ? { defaultRetention: cfg.defaultRetention } : {}) };
}

/**
 * Why this storage's bucket cannot hold its locked objects, as one sentence naming the bucket,
 * the key and what to do; undefined when it can (or the storage locks nothing).
 */
export function bucketLockProblem(ctx: StoreContext, b: BucketLock): string | undefined {
  const l = ctx.settings.lock;
  if (!l) return undefined;
  const bucket = ctx.settings.bucket;
  if (!b.objectLock) {
    return `bucket '${bucket}' has no S3 Object Lock, so lock_days ${l.days} cannot make backups immutable (uploads would fail): Object Lock can only be enabled when a bucket is created (x-amz-bucket-object-lock-enabled, e.g. 'aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket'): use such a bucket, or remove lock_days`;
  }
  if (b.versioning !== 'Enabled') {
    return `bucket '${bucket}' has Object Lock but versioning is ${b.versioning.toLowerCase()}: S3 refuses locked writes without versioning; enable it ('aws s3api put-bucket-versioning --bucket ${bucket} --versioning-configuration Status=Enabled')`;
  }
  return undefined;
}

/**
 * A locked write the bucket refused: S3 answers 400 InvalidRequest ("Bucket is missing Object Lock
 * Configuration" on AWS, nothing more on RadosGW), which tells an administrator nothing. When the
 * bucket indeed cannot hold locked objects (lock_days set by hand, or the bucket replaced since
 * pvesm checked it), the error says so as status does, naming the bucket, lock_days and the way
 * out; any other refusal is left as it was.
 */
export async function explainLockedWriteRefusal(ctx: StoreContext, volname: string, e: unknown): Promise<unknown> {
  if (ctx.settings.lock === undefined || !(e instanceof PveS3Error) || e.status !== 400) return e;
  const problem = await bucketLock(ctx).then(
    (b) => bucketLockProblem(ctx, b),
    () => undefined,
  );
  if (problem === undefined) return e;
  return new PveS3Error('BucketNotLockable', `'${volname}' not stored: ${problem}`, { cause: e, exitCode: EXIT.failure });
}
