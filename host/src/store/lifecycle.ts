/**
 * Bucket lifecycle rules for one storage. A bucket is often shared (other prefixes, other tools),
 * and PutBucketLifecycle replaces the whole configuration, so we always read, replace only the
 * rules whose ids are ours for this prefix, and write the union back.
 */
import { CONTENT_DIR } from '../pve/content.js';
import { STAGING_DIR, classifyKey } from '../pve/volname.js';
import { ConfigError, EXIT, PveS3Error } from '../util/errors.js';
import type { Provider } from '../s3/providers.js';
import type { LifecycleRule } from '../s3/types.js';
import { providerOf, type LifecycleSettings, type StoreContext } from './types.js';

/** Used when abort-incomplete-multipart is wanted but no day count was given. */
export const DEFAULT_ABORT_INCOMPLETE_DAYS = 7;

/**
 * Transitions move backup archives only. Sidecars (.notes, .protected, .log, .s3manifest) live in
 * the same folder and must stay readable: an archived manifest or notes object cannot be read
 * without a restore request, which would break listing, verification and restore. S3 lifecycle
 * filters know prefixes, tags and sizes, not suffixes, and RadosGW ignores size filters; so
 * archives are tagged at upload (only while transitions are configured: some providers reject
 * tagging, and they have no storage classes to move to either) and the rule selects the tag.
 * ISOs and templates never transition: a VM start must not wait for a Glacier restore.
 */
export const ARCHIVE_TAG = { key: 'pve-s3', value: 'archive' } as const;

const wantsTransitions = (l: LifecycleSettings | undefined): boolean =>
  l !== undefined && l.enabled && ((l.transitionDays ?? 0) > 0 || (l.glacierDays ?? 0) > 0);

/**
 * The tags a backup archive is uploaded with under this storage's lifecycle settings: none where
 * the provider has no tagging or no transitions (x-amz-tagging would fail the upload, or tag for
 * a rule that cannot exist).
 */
export function archiveTags(l: LifecycleSettings | undefined, p?: Provider): Record<string, string> | undefined {
  if (!wantsTransitions(l)) return undefined;
  if (p && (p.tagging === false || p.lifecycle.transitions === false)) return undefined;
  return { [ARCHIVE_TAG.key]: ARCHIVE_TAG.value };
}

/**
 * Refuses, naming the provider, what it cannot do over the S3 API: any lifecycle rule at all
 * (Swift's s3api answers GET ?lifecycle with a bucket listing), or the transitions this
 * storage's keys ask for. Unknown capabilities are tried: the server's own answer then speaks.
 */
export function assertLifecycleSupported(p: Provider, l: LifecycleSettings | undefined, o: { apply: boolean }): void {
  const who = `${p.name} (provider ${p.id})`;
  if (p.lifecycle.rules === false) {
    throw new PveS3Error(
      'NotSupported',
      `${who} has no bucket lifecycle over the S3 API: nothing to ${o.apply ? 'apply' : 'show'}; remove stale uploads with 'pve-s3-maintenance --action abort-uploads' instead`,
      { exitCode: EXIT.usage },
    );
  }
  if (o.apply && wantsTransitions(l) && (p.lifecycle.transitions === false || p.tagging === false)) {
    const key = (l!.transitionDays ?? 0) > 0 ? 'transition_days' : 'glacier_days';
    throw new PveS3Error(
      'NotSupported',
      `${who} cannot move objects between storage classes by lifecycle rules: unset transition_days and glacier_days (${key} is set)`,
      { exitCode: EXIT.usage },
    );
  }
}

/**
 * The folders an abort rule covers: each content folder and the staging folder of replacing
 * uploads, never the whole prefix. Another storage may live below this one's prefix ('site/' and
 * 'site/b/' in one bucket); a rule on the prefix would abort its uploads too. (One whose prefix
 * lies inside this storage's own folders, 'site/dump/x/', cannot be told apart by any filter.)
 */
export const ABORT_FOLDERS: readonly string[] = [...Object.values(CONTENT_DIR), STAGING_DIR];

/**
 * Our rule ids carry the prefix, so two storages sharing a bucket never replace each other's; an
 * abort rule's id is its folder's key prefix. `legacyAbort` is the one abort rule on the whole
 * prefix that earlier versions wrote: still ours, so applying replaces it.
 */
export function ruleIds(prefix: string): { transition: string; abort: string[]; legacyAbort: string; noncurrent: string[] } {
  const scope = prefix === '' ? '/' : prefix;
  return {
    transition: `pve-s3-transition:${scope}`,
    abort: ABORT_FOLDERS.map((f) => `pve-s3-abort-mpu:${prefix}${f}`),
    legacyAbort: `pve-s3-abort-multipart:${scope}`,
    noncurrent: ABORT_FOLDERS.map((f) => `pve-s3-noncurrent:${prefix}${f}`),
  };
}

export function isOurRule(rule: LifecycleRule, prefix: string): boolean {
  const ids = ruleIds(prefix);
  return rule.id === ids.transition || rule.id === ids.legacyAbort || (rule.id !== undefined && (ids.abort.includes(rule.id) || ids.noncurrent.includes(rule.id)));
}

/**
 * In a versioned bucket (every bucket with Object Lock is one) a DELETE or a replacement leaves the
 * old bytes as a noncurrent version and a delete marker: pve-s3's deletes (object-lock.ts) are
 * plain DELETEs, so these rules free the space a day after a version stops being current and
 * drop delete markers left alone. S3 lifecycle never removes a version still under Object Lock
 * retention, so a locked backup outlives the rule.
 */
export const NONCURRENT_DAYS = 1;

/** The rules this storage wants; empty when lifecycle is off. A provider that aborts incomplete
 *  uploads by itself and refuses the rule for it (Wasabi) gets no abort rule. */
export function desiredRules(prefix: string, l: LifecycleSettings | undefined, p?: Provider, o: { versioned?: boolean } = {}): LifecycleRule[] {
  if (!l || !l.enabled) return [];
  const ids = ruleIds(prefix);
  const rules: LifecycleRule[] = [];
  const transitions: { days: number; storageClass: string }[] = [];
  if (l.transitionDays !== undefined && l.transitionDays > 0) transitions.push({ days: l.transitionDays, storageClass: 'STANDARD_IA' });
  if (l.glacierDays !== undefined && l.glacierDays > 0) {
    if (l.transitionDays !== undefined && l.transitionDays > 0 && l.glacierDays <= l.transitionDays) {
      throw new ConfigError('glacier_days', l.glacierDays, `must be greater than transition_days (${l.transitionDays})`);
    }
    transitions.push({ days: l.glacierDays, storageClass: 'GLACIER' });
  }
  if (transitions.length > 0) {
    rules.push({
      id: ids.transition,
      status: 'Enabled',
      filter: { prefix: prefix + CONTENT_DIR.backup, tags: [{ ...ARCHIVE_TAG }] },
      transitions,
    });
  }
  if (o.versioned) {
    ABORT_FOLDERS.forEach((f, i) => {
      rules.push({
        id: ids.noncurrent[i],
        status: 'Enabled',
        filter: { prefix: prefix + f },
        noncurrentVersionExpiration: { noncurrentDays: NONCURRENT_DAYS },
        expiration: { expiredObjectDeleteMarker: true },
      });
    });
  }
  const abortDays = l.abortIncompleteDays ?? DEFAULT_ABORT_INCOMPLETE_DAYS;
  if (abortDays > 0 && p?.lifecycle.abortIncomplete !== false) {
    ABORT_FOLDERS.forEach((f, i) => {
      rules.push({ id: ids.abort[i], status: 'Enabled', filter: { prefix: prefix + f }, abortIncompleteMultipartUpload: { daysAfterInitiation: abortDays } });
    });
  }
  return rules;
}

export interface LifecycleView {
  /** every rule in force on the bucket */
  rules: LifecycleRule[];
  /** the ids among them that belong to this storage */
  ours: string[];
}

async function readRules(ctx: StoreContext): Promise<LifecycleRule[]> {
  return ctx.client.getBucketLifecycle();
}

export async function lifecycleShow(ctx: StoreContext): Promise<LifecycleView> {
  assertLifecycleSupported(providerOf(ctx), ctx.settings.lifecycle, { apply: false });
  const rules = await readRules(ctx);
  const prefix = ctx.settings.prefix;
  return { rules, ours: rules.filter((r) => isOurRule(r, prefix)).map((r) => r.id as string) };
}

export interface LifecycleApplyResult extends LifecycleView {
  changed: boolean;
  dryRun: boolean;
  /** foreign rules kept as they were */
  kept: number;
  /** ids of this storage's rules that were on the bucket and are gone now (would be, dry run):
   *  lifecycle_enabled 0 (or `remove`) drops them all, a key unset drops its rule */
  removed: string[];
  /** backup archives stored before transitions were configured, tagged now (would be, dry run) */
  tagged: number;
}

/** What a rule means, independent of the order and spelling a server hands it back in (RGW
 *  returns transitions in its own order). */
function canonical(r: LifecycleRule): string {
  return JSON.stringify({
    id: r.id ?? '',
    status: r.status,
    prefix: r.filter?.prefix ?? r.legacyPrefix ?? '',
    tags: (r.filter?.tags ?? []).map((t) => `${t.key}=${t.value}`).sort(),
    transitions: [...(r.transitions ?? [])].map((t) => [t.days ?? null, t.storageClass]).sort((x, y) => Number(x[0]) - Number(y[0])),
    abort: r.abortIncompleteMultipartUpload?.daysAfterInitiation ?? null,
    expiration: r.expiration?.days ?? null,
    markers: r.expiration?.expiredObjectDeleteMarker ?? null,
    noncurrent: r.noncurrentVersionExpiration?.noncurrentDays ?? null,
  });
}

const same = (a: LifecycleRule[], b: LifecycleRule[]): boolean => {
  const ca = a.map(canonical).sort();
  const cb = b.map(canonical).sort();
  return ca.length === cb.length && ca.every((x, i) => x === cb[i]);
};

/** Times the configuration may change under us between our read and our write before we give up. */
const LIFECYCLE_ATTEMPTS = 3;

export async function lifecycleApply(ctx: StoreContext, o: { dryRun?: boolean; remove?: boolean } = {}): Promise<LifecycleApplyResult> {
  const prefix = ctx.settings.prefix;
  const provider = providerOf(ctx);
  assertLifecycleSupported(provider, o.remove ? undefined : ctx.settings.lifecycle, { apply: true });
  const versioned = o.remove ? false : await isVersioned(ctx);
  const want = o.remove ? [] : desiredRules(prefix, ctx.settings.lifecycle, provider, { versioned });
  const dryRun = o.dryRun === true;
  // PutBucketLifecycle replaces the whole configuration and no S3 server offers a conditional
  // write for it (its GET has no ETag for If-Match). So: read, merge, read again just before the
  // write, and merge anew if the configuration changed meanwhile. What remains is one round
  // trip between that second read and the write in which another writer's change can be lost.
  let before = await readRules(ctx);
  for (let attempt = 1; ; attempt++) {
    const foreign = before.filter((r) => !isOurRule(r, prefix));
    const after = [...foreign, ...want];
    const changed = !same(before.filter((r) => isOurRule(r, prefix)), want);
    if (changed && !dryRun) {
      const now = await readRules(ctx);
      if (!same(now, before)) {
        if (attempt >= LIFECYCLE_ATTEMPTS) {
          throw new PveS3Error(
            'LifecycleBusy',
            `the lifecycle configuration of bucket ${ctx.settings.bucket} changed ${attempt} times while these rules were being merged into it: nothing written; run it again when the other tool is done`,
            { retryable: true },
          );
        }
        before = now;
        continue;
      }
      // [] makes the client delete the configuration: only ever when no foreign rule is left
      await ctx.client.putBucketLifecycle(after);
      ctx.logger.info('lifecycle rules applied', { prefix, rules: want.map((r) => r.id), kept: foreign.length });
    }
    const wanted = new Set(want.map((r) => r.id));
    const removed = before.filter((r) => isOurRule(r, prefix) && !wanted.has(r.id)).map((r) => r.id as string);
    return finishApply(ctx, o, { after, want, changed, dryRun, kept: foreign.length, removed, provider });
  }
}

/** Versioning enabled or suspended (suspended still keeps the versions made before); a gateway
 *  that cannot say has no versions to expire. */
async function isVersioned(ctx: StoreContext): Promise<boolean> {
  if (providerOf(ctx).objectLock === false) return false;
  const v = await ctx.client.getBucketVersioning(ctx.signal ? { signal: ctx.signal } : {}).catch(() => 'Off' as const);
  return v !== 'Off';
}

/** Tags what the transition rule needs, then the result. */
async function finishApply(
  ctx: StoreContext,
  o: { remove?: boolean },
  m: { after: LifecycleRule[]; want: LifecycleRule[]; changed: boolean; dryRun: boolean; kept: number; removed: string[]; provider: Provider },
): Promise<LifecycleApplyResult> {
  const tags = o.remove ? undefined : archiveTags(ctx.settings.lifecycle, m.provider);
  const tagged = tags === undefined ? 0 : await tagStoredArchives(ctx, m.dryRun);
  return { rules: m.after, ours: m.want.map((x) => x.id as string), changed: m.changed, dryRun: m.dryRun, kept: m.kept, removed: m.removed, tagged };
}

/**
 * The transition rule selects archives by tag, and archives get the tag at upload only while
 * transitions are configured: those stored before would never move. So applying the rules also
 * tags every backup archive under the prefix that lacks the tag, keeping its other tags
 * (PutObjectTagging replaces them all). Sidecars, ISOs and templates stay untagged.
 */
async function tagStoredArchives(ctx: StoreContext, dryRun: boolean): Promise<number> {
  const prefix = ctx.settings.prefix;
  const signal = ctx.signal ? { signal: ctx.signal } : {};
  let tagged = 0;
  for await (const o of ctx.client.listAll({ prefix: prefix + CONTENT_DIR.backup })) {
    const c = classifyKey(prefix, o.key);
    if (c.kind !== 'volume' || c.volume.content !== 'backup') continue;
    const tags = await ctx.client.getObjectTagging(o.key, signal);
    if (tags[ARCHIVE_TAG.key] === ARCHIVE_TAG.value) continue;
    if (!dryRun) await ctx.client.putObjectTagging(o.key, { ...tags, [ARCHIVE_TAG.key]: ARCHIVE_TAG.value }, signal);
    tagged++;
  }
  if (tagged > 0 && !dryRun) ctx.logger.info('tagged stored backup archives for the transition rule', { count: tagged, prefix });
  return tagged;
}
