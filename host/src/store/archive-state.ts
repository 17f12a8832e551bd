/**
 * Archived objects (issue 14 §1): whether an object can be read now, and asking S3 to bring it
 * back. Every front door (pve-s3-restore, check-integrity, activate_volume, the provider's
 * restore, listings) takes the state and the restore request from here, so the rules live once.
 *
 * What AWS documents (https://docs.aws.amazon.com/AmazonS3/latest/userguide/archived-objects.html):
 * objects in GLACIER (Flexible Retrieval), DEEP_ARCHIVE, and INTELLIGENT_TIERING objects in its
 * Archive Access / Deep Archive Access tiers are "not accessible in real time": a GET answers 403
 * InvalidObjectState until a RestoreObject has finished. GLACIER_IR is not archived ("provides
 * real-time access ... does not require a restore operation"). HeadObject tells the state:
 * x-amz-storage-class, x-amz-archive-status (ARCHIVE_ACCESS | DEEP_ARCHIVE_ACCESS, INTELLIGENT_TIERING
 * only) and x-amz-restore (ongoing-request="true" while running; ongoing-request="false",
 * expiry-date="…" once a restored copy exists) —
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html.
 *
 * A GLACIER/DEEP_ARCHIVE restore makes a temporary copy for `days` and the object keeps its
 * storage class; an INTELLIGENT_TIERING restore moves the object back to the Frequent Access tier
 * (its archive status disappears) and accepts no days
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects.html).
 */
import type { ObjectInfo, ObjectSummary } from '../s3/types.js';
import type { RestoreTier } from '../s3/restore.js';
import { ConfigError, EXIT, PveS3Error } from '../util/errors.js';
import { readSse, type StoreContext } from './types.js';

export type ArchiveStateName = 'available' | 'archived' | 'restoring' | 'restored';

export interface ArchiveState {
  /** x-amz-storage-class (S3 leaves it out for STANDARD: then 'STANDARD') */
  storageClass: string;
  /** INTELLIGENT_TIERING's archive tier, when HEAD reported one */
  accessTier?: 'ARCHIVE_ACCESS' | 'DEEP_ARCHIVE_ACCESS';
  state: ArchiveStateName;
  /** state 'restored': when S3 deletes the restored copy */
  restoredUntil?: Date;
  /**
   * false when read from a listing entry, which has the storage class only: a GLACIER or
   * DEEP_ARCHIVE entry may be restoring or restored, an INTELLIGENT_TIERING one may be in an
   * archive tier. Ask HEAD (archiveStateOf) before acting on it.
   */
  exact: boolean;
}

/** The storage classes whose objects must be restored before a GET (GLACIER_IR is not one). */
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);
const IT_ARCHIVE_TIERS = new Set(['ARCHIVE_ACCESS', 'DEEP_ARCHIVE_ACCESS']);

/** The state of an object from its HEAD (exact) or from a ListObjects entry (see `exact`). */
export function archiveState(o: Pick<ObjectInfo, 'storageClass' | 'restore' | 'archiveStatus'> | ObjectSummary): ArchiveState {
  const storageClass = (o.storageClass ?? '').trim().toUpperCase() || 'STANDARD';
  // a HEAD's ObjectInfo always carries metadata; a listing entry never does
  const fromHead = 'metadata' in o;
  const info = o as Pick<ObjectInfo, 'restore' | 'archiveStatus'>;
  if (ARCHIVE_CLASSES.has(storageClass)) {
    const r = info.restore;
    if (r?.ongoing) return { storageClass, state: 'restoring', exact: true };
    // a restored copy whose expiry date has passed is gone: S3 stops sending the header then,
    // but a HEAD answered a moment before the expiry is read as still restored
    if (r && !r.ongoing) return { storageClass, state: 'restored', ...(r.expiry ? { restoredUntil: r.expiry } : {}), exact: true };
    return { storageClass, state: 'archived', exact: fromHead };
  }
  if (storageClass === 'INTELLIGENT_TIERING') {
    const tier = info.archiveStatus?.trim().toUpperCase();
    if (tier && IT_ARCHIVE_TIERS.has(tier)) {
      const accessTier = tier as 'ARCHIVE_ACCESS' | 'DEEP_ARCHIVE_ACCESS';
      return { storageClass, accessTier, state: info.restore?.ongoing ? 'restoring' : 'archived', exact: true };
    }
    return { storageClass, state: 'available', exact: fromHead };
  }
  return { storageClass, state: 'available', exact: true };
}

/** True when a GET of the object fails until it is restored. */
export const needsRestore = (s: ArchiveState): boolean => s.state === 'archived' || s.state === 'restoring';

/** The class a restore works on, for AWS's tier rules and times: deep or not. */
function isDeep(s: ArchiveState): boolean {
  return s.storageClass === 'DEEP_ARCHIVE' || s.accessTier === 'DEEP_ARCHIVE_ACCESS';
}

/** "GLACIER", "INTELLIGENT_TIERING (DEEP_ARCHIVE_ACCESS)" */
export function classLabel(s: ArchiveState): string {
  return s.accessTier ? `${s.storageClass} (${s.accessTier})` : s.storageClass;
}

/** For listings and messages: "archived (GLACIER)", "restoring (GLACIER)", "restored until DATE (GLACIER)". */
export function describeArchiveState(s: ArchiveState): string {
  const at = classLabel(s);
  switch (s.state) {
    case 'archived':
      return `archived (${at})`;
    case 'restoring':
      return `restoring (${at})`;
    case 'restored':
      return s.restoredUntil ? `restored until ${s.restoredUntil.toISOString().replace('.000Z', 'Z')} (${at})` : `restored (${at})`;
    default:
      return at;
  }
}

/**
 * How long AWS says a restore typically takes, by tier and class
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects-retrieval-options.html):
 * GLACIER / IT Archive Access: Expedited 1-5 minutes, Standard 3-5 hours, Bulk 5-12 hours;
 * DEEP_ARCHIVE / IT Deep Archive Access: Standard within 12 hours, Bulk within 48 hours, and no
 * Expedited. Undefined for a tier the class does not offer.
 */
export function typicalRestoreTime(s: ArchiveState, tier: RestoreTier): string | undefined {
  if (isDeep(s)) return tier === 'Standard' ? 'within 12 hours' : tier === 'Bulk' ? 'within 48 hours' : undefined;
  return tier === 'Expedited' ? 'in 1-5 minutes' : tier === 'Standard' ? 'in 3-5 hours' : 'in 5-12 hours';
}

export interface RestoreRequestOptions {
  tier: RestoreTier;
  /** how long the restored copy of a GLACIER/DEEP_ARCHIVE object stays (ignored for INTELLIGENT_TIERING) */
  days: number;
}

export type RestoreRequestResult =
  /** not archived: nothing to do */
  | 'available'
  /** a restored copy exists (or the restore of an INTELLIGENT_TIERING object is done) */
  | 'restored'
  /** a restore was running already: nothing sent */
  | 'already-ongoing'
  /** RestoreObject accepted now */
  | 'requested';

/** HEAD of an object and its state (NoSuchKey propagates). */
export async function archiveStateOf(ctx: StoreContext, key: string): Promise<{ info: ObjectInfo; state: ArchiveState }> {
  const info = await ctx.client.headObject(key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
  return { info, state: archiveState(info) };
}

/**
 * Makes an archived object readable: HEAD first (or the caller's HEAD in `head`), so a restore
 * already running is never requested again (each accepted RestoreObject is billed), then
 * RestoreObject with the tier (and days, except for INTELLIGENT_TIERING). A tier the class does
 * not offer (Expedited on DEEP_ARCHIVE) is refused before anything is sent.
 */
export async function requestArchiveRestore(
  ctx: StoreContext,
  key: string,
  o: RestoreRequestOptions,
  head?: ObjectInfo,
): Promise<{ result: RestoreRequestResult; state: ArchiveState }> {
  const info = head ?? (await archiveStateOf(ctx, key)).info;
  const state = archiveState(info);
  if (state.state === 'available') return { result: 'available', state };
  if (state.state === 'restored') return { result: 'restored', state };
  if (state.state === 'restoring') return { result: 'already-ongoing', state };
  checkTier(state, o.tier);
  const r = await ctx.client.restoreObject(key, {
    tier: o.tier,
    ...(state.storageClass === 'INTELLIGENT_TIERING' ? {} : { days: o.days }),
    ...(info.versionId !== undefined ? { versionId: info.versionId } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  if (r === 'in-progress') return { result: 'already-ongoing', state: { ...state, state: 'restoring' } };
  if (r === 'restored') return { result: 'restored', state: { ...state, state: 'restored' } };
  ctx.logger.info(`requested the restore of '${key}' from ${classLabel(state)} at tier ${o.tier}${state.storageClass === 'INTELLIGENT_TIERING' ? '' : ` for ${o.days} days`}`);
  return { result: 'requested', state: { ...state, state: 'restoring' } };
}

/** Expedited is not offered for DEEP_ARCHIVE nor IT's Deep Archive Access tier (AWS retrieval options). */
export function checkTier(s: ArchiveState, tier: RestoreTier): void {
  if (typicalRestoreTime(s, tier) === undefined) {
    throw new ConfigError(
      'restore_tier',
      tier,
      `${classLabel(s)} offers no ${tier} retrieval: use Standard (typically within 12 hours) or Bulk (within 48 hours) (--restore-tier or the storage's restore_tier)`,
    );
  }
}

/** The stable code of "archived; a restore is requested or running; try again later". */
export const RESTORE_PENDING = 'ArchiveRestorePending';

/**
 * The error every front door answers while a restore is pending (exit code EXIT.restorePending,
 * distinct from every failure): what is archived, what was done now, when to expect it, what to
 * run then. `retry` is the front door's own instruction ("run the same command again", or the
 * command a PVE caller should run).
 */
export function restorePendingError(
  name: string,
  objects: readonly { key: string; result?: RestoreRequestResult; state: ArchiveState }[],
  o: { tier: RestoreTier; retry: string },
): PveS3Error {
  const pending = objects.filter((x) => x.result === 'requested' || x.result === 'already-ongoing');
  const first = pending[0] ?? objects[0];
  const label = first ? classLabel(first.state) : 'an archive storage class';
  const requested = pending.filter((x) => x.result === 'requested').length;
  const what = pending.length > 1 ? `${pending.length} of its objects are` : 'it is';
  const done = requested === pending.length ? `a restore was requested at tier ${o.tier}` : requested > 0 ? `restores were requested at tier ${o.tier} (some were running already)` : 'its restore was requested before and is still running';
  // the tier of a restore requested earlier is not known: a time only for what was asked now
  const eta = first && requested > 0 ? typicalRestoreTime(first.state, o.tier) : undefined;
  const when = eta ? `, typically ready ${eta}` : '';
  return new PveS3Error(RESTORE_PENDING, `backup '${name}' is archived in ${label}: ${what} not readable until restored; ${done}${when}; ${o.retry}`, {
    exitCode: EXIT.restorePending,
    retryable: true,
  });
}
