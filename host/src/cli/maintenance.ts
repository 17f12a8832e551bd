/**
 * pve-s3-maintenance: the operator's actions on a storage, each one store call (status,
 * cleanupByAge, checkIntegrity, lifecycle, abortStaleUploads, prune) and its report.
 */
import type { LifecycleRule } from '../s3/types.js';
import type { ProviderReport } from '../store/provider-report.js';
import type { MaintenanceStatus } from '../store/status.js';
import { volid, type StoreContext } from '../store/types.js';
import { EXIT, PveS3Error, type ExitCode } from '../util/errors.js';
import { COMMON_HELP, COMMON_OPTIONS, RESTORE_HELP, RESTORE_OPTIONS, UsageError, flag, intOpt, list, oneOf, parse, restoreOpts, str, vmidOpt, type Parsed } from './args.js';
import { createCliLogger, openStore, resolveFrom } from './context.js';
import { runCommand } from './exit.js';
import type { PendingFile, SyncFileState } from '../store/sync-state.js';
import { describeChecks, formatAge, formatBytes, formatTime, note, printable, table, writeJson, writeOut } from './output.js';

const CMD = 'pve-s3-maintenance';
const ACTIONS = ['status', 'cleanup', 'check-integrity', 'lifecycle', 'abort-uploads', 'prune', 'adopt', 'manifest-key'] as const;
type Action = (typeof ACTIONS)[number];
const USAGE = `${CMD} [--storage ID] --action ${ACTIONS.join('|')} [options]`;

export const HELP = `Usage: ${USAGE}

Actions:
  status           endpoint, credentials and bucket check; objects, volumes and bytes per content
                   type; oldest and newest backup; incomplete multipart uploads and their bytes;
                   lifecycle rules in force on the bucket; the local files of this node that
                   are not in the bucket yet, how long they have waited and the background
                   sync's last result for each (its error, if it failed)
  cleanup          delete backups older than --older-than (by the time in the archive name, never
                   the upload date), with their sidecars; protected backups and names without a
                   time are never deleted; --keep-last N keeps the newest N of each guest anyway;
                   only verified backups count and go: unverified ones are kept and listed, and
                   each guest keeps its last verified backup unless --allow-last
  check-integrity  download every backup (or --vmid / --source) in full and compare each part
                   with the CRC-64/NVME its manifest records (--deep: the SHA-256 too); reports
                   good / unverified (intact, not signed with the storage's key) / corrupt /
                   missing-manifest / missing-sidecar / orphan-sidecar; exit 5 if any is not
                   good. Backups in an archive storage class (GLACIER, DEEP_ARCHIVE, an
                   INTELLIGENT_TIERING archive tier) are counted apart as archived, not read;
                   --restore-archived requests their restore (then exit 6 while any is pending:
                   run it again once restored to check them)
  lifecycle        apply the storage's lifecycle_enabled, transition_days (STANDARD_IA),
                   glacier_days (GLACIER) and abort-incomplete-multipart rules, scoped to its
                   own folders, merged with the bucket's other rules (in a versioned bucket
                   also: noncurrent versions and lone delete markers expire after 1 day);
                   with lifecycle_enabled 0 it removes this storage's rules; --show only
                   prints them
  abort-uploads    abort the storage's incomplete multipart uploads older than --older-than
                   (default 1d, at least 1h), and those this node could not abort when their
                   upload failed; lists the younger ones it keeps and what they hold
  prune            apply the storage's prune-backups setting (PVE's keep-last/hourly/daily/
                   weekly/monthly/yearly), or --prune-backups / --keep-last given here; only
                   verified backups are counted and removed, unverified ones are kept and listed
  adopt            sign the manifests of what the bucket holds with the storage's manifest key
                   (created if missing): each volume not verified is read in full and signed only
                   if every byte matches its manifest (one signed with an older key of the storage
                   is re-signed as is); run it once after upgrading from unsigned manifests, after
                   a --dry-run, and remove whatever it lists that you did not store
  manifest-key     show the storage's manifest key file and key ids (never the key); --rotate
                   makes a new signing key (the old ones keep verifying), --retire ID drops an
                   old one (what only it signed becomes unverified)

Options:
  --older-than D   age: 36h (hours), 90d (days), 12w (weeks), 6mo (months; 6m also means
                   months, never minutes), 1y (years) (cleanup: required)
  --keep-last N    cleanup: always keep the newest N verified backups per guest; prune: keep-last=N
  --allow-last     cleanup: also remove a guest's last verified backup when it is old enough
  --prune-backups S  prune: e.g. keep-last=3,keep-daily=7 instead of the storage's setting
  --vmid N         only backups of guest N (cleanup, check-integrity, prune, adopt)
  --type qemu|lxc  prune: only this guest type
  --source NAME    check-integrity, adopt: only this volume (archive name, backup/… or volume id); repeatable
  --dry-run        cleanup, prune, lifecycle, abort-uploads, adopt: show what would happen, change nothing
  --rotate         manifest-key: a new signing key
  --retire ID      manifest-key: remove the older key ID
  --show           lifecycle: print the rules in force, change nothing
  --parallel N     check-integrity, adopt: volumes checked at once (default 2)
  --deep           check-integrity: also compare every part's SHA-256, which catches deliberate
                   tampering as well as corruption (more CPU; docs/INTEGRITY.md)
  --restore-archived
                   check-integrity: request the restore of the archived backups it finds
${RESTORE_HELP}

${COMMON_HELP}

Examples:
  ${CMD} --storage my-s3 --action status
  ${CMD} --storage my-s3 --action cleanup --older-than 90d
  ${CMD} --storage my-s3 --action cleanup --older-than 30d --keep-last 3 --dry-run
  ${CMD} --storage my-s3 --action check-integrity
  ${CMD} --storage my-s3 --action check-integrity --vmid 100
  ${CMD} --storage my-s3 --action check-integrity --deep
  ${CMD} --storage my-s3 --action check-integrity --restore-archived --restore-tier Bulk
  ${CMD} --storage my-s3 --action lifecycle --show
  ${CMD} --storage my-s3 --action prune --dry-run
  ${CMD} --storage my-s3 --action adopt --dry-run
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  action: { type: 'string' },
  'older-than': { type: 'string' },
  'keep-last': { type: 'string' },
  'allow-last': { type: 'boolean' },
  'prune-backups': { type: 'string' },
  vmid: { type: 'string' },
  type: { type: 'string' },
  source: { type: 'string', multiple: true },
  'dry-run': { type: 'boolean' },
  show: { type: 'boolean' },
  parallel: { type: 'string' },
  deep: { type: 'boolean' },
  'restore-archived': { type: 'boolean' },
  ...RESTORE_OPTIONS,
  rotate: { type: 'boolean' },
  retire: { type: 'string' },
} as const;

/** Options that only mean something to some actions: accepting them silently would mislead. */
const ONLY_FOR: Record<string, readonly Action[]> = {
  'older-than': ['cleanup', 'abort-uploads'],
  'keep-last': ['cleanup', 'prune'],
  'allow-last': ['cleanup'],
  'prune-backups': ['prune'],
  vmid: ['cleanup', 'check-integrity', 'prune', 'adopt'],
  type: ['prune'],
  source: ['check-integrity', 'adopt'],
  'dry-run': ['cleanup', 'prune', 'lifecycle', 'abort-uploads', 'adopt'],
  show: ['lifecycle'],
  parallel: ['check-integrity', 'adopt'],
  deep: ['check-integrity'],
  'restore-archived': ['check-integrity'],
  'restore-tier': ['check-integrity'],
  'restore-days': ['check-integrity'],
  rotate: ['manifest-key'],
  retire: ['manifest-key'],
};

const ts = (s: number) => formatTime(s);

async function status(ctx: StoreContext, json: boolean, endpoint: string): Promise<ExitCode> {
  const { maintenanceStatus } = await import('../store/status.js');
  const { pendingWithSyncState } = await import('../store/sync-state.js');
  const s = await maintenanceStatus(ctx);
  // what waits on this node's disk for the bucket matters most when the bucket is away
  const local = await pendingWithSyncState(ctx);
  // the store answers a failed probe with a report; the command still has to fail with its code
  let code: ExitCode = EXIT.ok;
  if (s.error) {
    const { exitCodeFor } = await import('../s3/errors.js');
    code = exitCodeFor(s.error.code);
    if (code === EXIT.ok) code = EXIT.failure;
  }
  // a failed probe ends like every failed command: one line with the code, whatever the format
  const failed = async (): Promise<void> => {
    if (!s.error) return;
    const { errorLine } = await import('./exit.js');
    const { redact } = await import('../util/logger.js');
    note(printable(redact(errorLine(CMD, s.error.message, s.error.code))));
  };
  if (json) {
    writeJson({ storage: ctx.settings.storageId, endpoint, ...s, local });
    await failed();
    return code;
  }
  const provider = describeProvider(s.provider);
  if (s.error) {
    writeOut(
      [
        `storage     ${ctx.settings.storageId}`,
        `endpoint    ${endpoint} (${s.endpointReachable ? 'reachable' : 'NOT reachable'}${s.endpointReachable ? `, credentials ${s.auth ? 'accepted' : 'REFUSED'}` : ''})`,
        provider,
        `bucket      ${s.bucket}${s.prefix ? ` (prefix ${s.prefix})` : ''}`,
        `error       ${printable(s.error.message)} [${printable(s.error.code)}]`,
        ...pendingLines(local),
      ].join('\n'),
    );
    await failed();
    return code;
  }
  const lines = [
    `storage     ${ctx.settings.storageId}`,
    `endpoint    ${endpoint} (reachable, credentials accepted)`,
    provider,
    `bucket      ${s.bucket}${s.prefix ? ` (prefix ${s.prefix})` : ''}`,
    '',
    table(
      Object.entries(s.contents).map(([c, v]) => ({ c, ...v })),
      [
        { title: 'CONTENT', get: (r) => r.c },
        { title: 'VOLUMES', get: (r) => String(r.volumes), right: true },
        { title: 'OBJECTS', get: (r) => String(r.objects), right: true },
        { title: 'SIZE', get: (r) => formatBytes(r.bytes), right: true },
      ],
    ).trimEnd(),
    `total       ${s.totalObjects} objects, ${formatBytes(s.totalBytes)}`,
    `backups     ${s.backups.count}${s.backups.oldest ? `; oldest ${s.backups.oldest.volname} (${ts(s.backups.oldest.ctime)})` : ''}${s.backups.newest ? `; newest ${s.backups.newest.volname} (${ts(s.backups.newest.ctime)})` : ''}`,
    `incomplete  ${s.multipart.count} multipart upload(s), ${formatBytes(s.multipart.bytes)}`,
    `lifecycle   ${
      s.provider.lifecycle === false
        ? `not offered by ${s.provider.name}`
        : s.lifecycle === null
          ? 'unknown (the gateway refused to show the rules)'
          : s.lifecycle.length === 0
            ? 'no rules'
            : s.lifecycle.map(describeRule).join('; ')
    }`,
    `object lock ${describeObjectLock(s.objectLock)}`,
    `classes     ${describeClasses(s.archive)}`,
    ...pendingLines(local),
  ];
  writeOut(lines.join('\n'));
  if (s.objectLock.problem !== undefined) {
    // the storage cannot do what lock_days asks: every backup would fail its locked write
    const { errorLine } = await import('./exit.js');
    note(printable(errorLine(CMD, s.objectLock.problem, 'BucketNotLockable')));
    return EXIT.failure;
  }
  return EXIT.ok;
}

/** `object lock 30 days, governance; bucket: Object Lock enabled, versioning enabled` */
/** "STANDARD 10, GLACIER 3; in archive classes: 1 archived, 1 restoring, 1 restored (the first restored copy expires …)" */
function describeClasses(a: MaintenanceStatus['archive']): string {
  const counts = Object.entries(a.classes).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  if (counts.length === 0) return 'no backups';
  const states = (['archived', 'restoring', 'restored'] as const).filter((k) => a[k] > 0).map((k) => `${a[k]} ${k}`);
  const expiry = a.firstExpiry !== null ? ` (the first restored copy expires ${ts(Math.floor(a.firstExpiry.getTime() / 1000))})` : '';
  return `backups by storage class: ${counts.map(([c, n]) => `${c} ${n}`).join(', ')}${states.length > 0 ? `; must be restored before a read: ${states.join(', ')}${expiry}` : ''}`;
}

function describeObjectLock(l: MaintenanceStatus['objectLock']): string {
  const asked = l.days === null ? 'off (lock_days unset)' : `${l.days} days, ${l.mode}`;
  if (l.bucket === null) return `${asked}; bucket: unknown`;
  const dflt = l.bucket.defaultRetention ? `, default retention ${l.bucket.defaultRetention.days ?? l.bucket.defaultRetention.years}${l.bucket.defaultRetention.days !== undefined ? ' days' : ' years'} ${(l.bucket.defaultRetention.mode ?? '').toLowerCase()}` : '';
  return `${asked}; bucket: Object Lock ${l.bucket.objectLock ? 'enabled' : 'not enabled'}, versioning ${l.bucket.versioning.toLowerCase()}${dflt}${l.problem ? ` - ${l.problem}` : ''}`;
}

/** `provider    Cloudflare R2 (r2, detected from the endpoint): up to 10000 parts of at most 4.99 GiB; …` */
function describeProvider(p: ProviderReport): string {
  const limits = `up to ${p.maxParts} parts of at most ${formatBytes(p.maxPartBytes)}${p.equalParts ? ', equal sizes' : ''}`;
  return `provider    ${p.name} (${p.id}, ${p.detected ? 'detected from the endpoint' : 'set in the configuration'}): ${limits}${p.note ? `; ${p.note}` : ''}`;
}

/** Local files not in the bucket yet (this node's cache dir), with the background sync's last word. */
function pendingLines(local: { last_run: number | null; pending: PendingFile[] }): string[] {
  const run = local.last_run === null ? 'no background sync has run yet' : `last sync ${formatAge(Date.now() / 1000 - local.last_run)} ago`;
  if (local.pending.length === 0) return [`pending     none on this node (${run})`];
  return [
    `pending     ${local.pending.length} local file(s) not in the bucket yet (${run})`,
    table(local.pending, [
      { title: 'VOLUME', get: (p) => printable(p.volname) },
      { title: 'SIZE', get: (p) => formatBytes(p.size), right: true },
      { title: 'WAITING', get: (p) => formatAge(p.age), right: true },
      { title: 'LAST SYNC', get: (p) => describeSync(p.last_sync) },
    ]).trimEnd(),
  ];
}

function describeSync(s: SyncFileState | null): string {
  if (s === null) return '-';
  const when = `${formatAge(Date.now() / 1000 - s.at)} ago`;
  if (s.result === 'error') return `${when}: FAILED: ${printable(s.reason ?? '')}`;
  if (s.result === 'skipped') return `${when}: skipped (${printable(s.reason ?? '')})`;
  return `${when}: uploaded`;
}

function describeRule(r: LifecycleRule): string {
  const parts: string[] = [];
  // gateways hand transitions back in any order; the chain reads oldest step first
  const transitions = [...(r.transitions ?? [])].sort((a, b) => (a.days ?? 0) - (b.days ?? 0));
  for (const t of transitions) parts.push(t.days !== undefined ? `${t.storageClass} after ${t.days}d` : `${t.storageClass} on ${t.date}`);
  if (r.expiration?.days) parts.push(`expire after ${r.expiration.days}d`);
  if (r.abortIncompleteMultipartUpload) parts.push(`abort incomplete uploads after ${r.abortIncompleteMultipartUpload.daysAfterInitiation}d`);
  if (r.noncurrentVersionExpiration?.noncurrentDays !== undefined) parts.push(`expire noncurrent versions after ${r.noncurrentVersionExpiration.noncurrentDays}d`);
  if (r.expiration?.expiredObjectDeleteMarker) parts.push('remove lone delete markers');
  const prefix = r.filter?.prefix ?? r.legacyPrefix ?? '';
  return `${printable(r.id ?? '(no id)')} [${printable(r.status)}${prefix ? ` ${printable(prefix)}` : ''}]: ${printable(parts.join(', ')) || 'other'}`;
}

/** Retention never counts or removes what no valid manifest vouches for: say so, and what to do. */
function unverifiedNote(n: number): void {
  if (n === 0) return;
  note(
    `${n} unverified backup${n === 1 ? ' was' : 's were'} kept and not counted (no valid manifest vouches for ${n === 1 ? 'it' : 'them'}): ` +
      'check them with --action check-integrity, and remove what you do not trust with pvesm free',
  );
}

async function cleanup(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const olderThan = str(p, 'older-than');
  if (olderThan === undefined) throw new UsageError(CMD, '--action cleanup needs --older-than (e.g. 90d)', USAGE);
  const keepLast = intOpt(p, 'keep-last', 0, 1_000_000);
  const vmid = vmidOpt(p);
  const { cleanupByAge } = await import('../store/cleanup.js');
  const r = await cleanupByAge(ctx, {
    olderThan,
    ...(keepLast !== undefined ? { keepLast } : {}),
    ...(vmid !== undefined ? { vmid } : {}),
    dryRun: flag(p, 'dry-run'),
    allowLast: flag(p, 'allow-last'),
  });
  if (json) writeJson(r);
  else {
    const removing = r.items.filter((i) => i.action === 'remove');
    const verb = r.dryRun ? 'would remove' : 'removed';
    for (const i of r.items) {
      const done = r.dryRun ? i.action === 'remove' : r.removed.includes(i.volname);
      const failed = r.errors.find((e) => e.volname === i.volname);
      const held = r.locked.find((l) => l.volname === i.volname);
      const what = failed ? `FAILED: ${printable(failed.message)}` : held ? `kept (${held.reason})` : done ? verb : `kept (${i.reason})`;
      writeOut(`${volid(ctx, i.volname)}  ${ts(i.ctime)}  ${what}`);
    }
    writeOut(`cleanup older than ${olderThan} (before ${ts(r.cutoff)}): ${r.dryRun ? `${removing.length} would be removed` : `${r.removed.length} removed`}, ${r.items.length - removing.length + r.locked.length} kept${lockedCount(r.locked)}${r.errors.length ? `, ${r.errors.length} failed` : ''}${r.dryRun ? ' (dry run)' : ''}`);
    const last = r.items.filter((i) => i.reason === 'last-verified');
    if (last.length > 0) note(`kept the last verified backup of ${last.length} guest${last.length === 1 ? '' : 's'} although older than ${olderThan}: add --allow-last to remove ${last.length === 1 ? 'it' : 'them'} too`);
    unverifiedNote(r.items.filter((i) => i.reason === 'unverified').length);
  }
  if (r.stopped) throw r.stopped;
  return r.errors.length > 0 ? EXIT.failure : EXIT.ok;
}

/** ", 2 of them locked": Object Lock keeps them; a later run removes them once retention passed */
function lockedCount(locked: readonly unknown[]): string {
  return locked.length > 0 ? ` (${locked.length} locked by S3 Object Lock: removed by a run after their retention)` : '';
}

/** What an operator does about each bad verdict (stderr, after the table). */
const ADVICE: Record<string, string | ((adopt: string) => string)> = {
  corrupt: "the stored data differs from what was uploaded: do not restore it; take a new backup of that guest, then remove the corrupt one (on a PVE node: pvesm free STORAGE:backup/NAME)",
  unverified: (adopt) =>
    `the bytes match a manifest that is not signed with this storage's key (uploaded before signing, by another tool, or by someone else): if you know they are yours, sign them: ${adopt}; otherwise remove them`,
  'missing-manifest': 'nothing vouches for these bytes (upload interrupted, manifest lost, or copied in by another tool): take a new backup rather than rely on it',
  'missing-sidecar': 'the archive matches its manifest but its log is gone: it restores fine; re-upload the log if you still have it (pve-s3-backup --source FILE.log)',
  'orphan-sidecar': 'a sidecar whose archive is gone: delete it once you know the archive is not coming back',
  archived:
    'in an archive storage class, so not read (neither corrupt nor missing): --restore-archived requests their restore (--restore-tier, --restore-days); run check-integrity again once they are restored',
  error: 'the check itself failed: see the message, fix the cause and run it again',
};

async function checkIntegrity(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const { volnameFromArg } = await import('../store/volume-arg.js');
  const volnames = list(p, 'source').map((s) => volnameFromArg(s, { storageId: ctx.settings.storageId }));
  const vmid = vmidOpt(p);
  const parallel = intOpt(p, 'parallel', 1, 16);
  const asked = restoreOpts(p);
  if (!flag(p, 'restore-archived') && Object.keys(asked).length > 0) {
    throw new UsageError(CMD, `--${asked.tier !== undefined ? 'restore-tier' : 'restore-days'} needs --restore-archived`, USAGE);
  }
  const { restoreDefaults } = await import('../store/archived-volume.js');
  const restoreArchived = flag(p, 'restore-archived') ? { ...restoreDefaults(ctx), ...asked } : undefined;
  const { checkIntegrity: check } = await import('../store/integrity.js');
  // a 32 GiB backup reads for 40 s on a local gateway, many minutes over a WAN: progress on a
  // terminal, or with --progress (volumes read at once share the terminal: cli/progress.ts Board)
  const { progressBoard } = await import('./progress.js');
  const board = progressBoard(flag(p, 'progress'));
  let r;
  try {
    r = await check(ctx, {
      ...(volnames.length ? { volnames } : {}),
      ...(vmid !== undefined ? { vmid } : {}),
      ...(parallel !== undefined ? { parallel } : {}),
      ...(restoreArchived ? { restoreArchived } : {}),
      deep: flag(p, 'deep'),
      onPlan: (n, bytes) => board.plan(n, bytes),
      onProgress: (key, x) => board.update(key, key.slice(key.lastIndexOf('/') + 1), x),
      onItem: (i) => board.finish(i.key, i.size ?? 0, json ? undefined : `checked ${printable(i.volname)}: ${i.status}`),
    });
  } finally {
    board.done();
  }
  if (json) writeJson(r);
  else {
    for (const i of r.items) {
      writeOut(`${i.status.toUpperCase().padEnd(16)} ${printable(volid(ctx, i.volname))}${i.size !== undefined ? ` (${formatBytes(i.size)})` : ''}${i.message && i.status !== 'good' ? `: ${printable(i.message)}` : ''}`);
    }
    const s = r.summary as Record<string, number>;
    const parts = Object.entries(s)
      .filter(([k, v]) => k === 'good' || k === 'corrupt' || v > 0)
      .map(([k, v]) => `${v} ${k.replace('-', ' ')}`);
    writeOut(`integrity: ${parts.join(', ')}`);
    const compared = [...new Set(r.items.map((i) => (i.checks ? describeChecks(i.checks) : '')).filter((c) => c !== ''))];
    if (compared.length > 0) note(`${CMD}: compared every part's ${compared.join(' or ')} with the manifest${flag(p, 'deep') ? '' : ' (--deep: SHA-256 too)'}`);
    if (r.items.length === 0) note(`${CMD}: no backups to check in storage '${ctx.settings.storageId}'${vmid !== undefined ? ` for guest ${vmid}` : ''}`);
    const { adoptCommand } = await import('../store/trust.js');
    for (const [status, advice] of Object.entries(ADVICE)) {
      if (r.items.some((i) => i.status === status)) note(`${CMD}: ${status}: ${typeof advice === 'string' ? advice : advice(adoptCommand(ctx))}`);
    }
  }
  // every verdict other than good, archived and error is something wrong with the data (exit 5)
  const bad = r.items.filter((i) => i.status !== 'good' && i.status !== 'error' && i.status !== 'archived');
  if (bad.length > 0) return EXIT.integrity;
  const errors = r.items.filter((i) => i.status === 'error');
  if (errors.length > 0) return errors.every((i) => i.message === 'volume does not exist') ? EXIT.notFound : EXIT.failure;
  // archived is a state, not damage; once restores were asked for, the check is not done yet
  if (restoreArchived && r.items.some((i) => i.status === 'archived')) return EXIT.restorePending;
  return EXIT.ok;
}

async function lifecycle(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const { ARCHIVE_TAG, lifecycleApply, lifecycleShow } = await import('../store/lifecycle.js');
  if (flag(p, 'show')) {
    const v = await lifecycleShow(ctx);
    if (json) writeJson(v);
    else if (v.rules.length === 0) writeOut('no lifecycle rules on the bucket');
    else for (const r of v.rules) writeOut(`${v.ours.includes(r.id ?? '') ? '*' : ' '} ${describeRule(r)}`);
    return EXIT.ok;
  }
  const r = await lifecycleApply(ctx, { dryRun: flag(p, 'dry-run') });
  if (json) writeJson(r);
  else {
    const removed = r.removed.length > 0 ? `, ${r.removed.length} ${r.dryRun ? 'would be removed' : 'removed'}` : '';
    writeOut(`${r.changed ? (r.dryRun ? 'would change' : 'applied') : 'unchanged'}: ${r.ours.length} rule(s) of this storage${removed}, ${r.kept} other rule(s) kept`);
    for (const id of r.removed) writeOut(`- ${printable(id)}${ctx.settings.lifecycle?.enabled ? '' : ' (lifecycle_enabled is 0)'}`);
    if (r.tagged > 0) writeOut(`backup archives stored before the transition rule: ${r.tagged} ${r.dryRun ? 'would be tagged' : 'tagged'} ${ARCHIVE_TAG.key}=${ARCHIVE_TAG.value}`);
    for (const rule of r.rules) writeOut(`${r.ours.includes(rule.id ?? '') ? '*' : ' '} ${describeRule(rule)}`);
  }
  return EXIT.ok;
}

async function abortUploads(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const { durationMs } = await import('../pve/duration.js');
  const olderThan = str(p, 'older-than') ?? '1d';
  const { abortStaleUploads } = await import('../store/multipart.js');
  const r = await abortStaleUploads(ctx, { olderThanSeconds: Math.floor(durationMs(olderThan) / 1000), dryRun: flag(p, 'dry-run'), measureKept: true });
  if (json) writeJson(r);
  else {
    for (const u of r.uploads) writeOut(`${printable(u.key)}  started ${u.initiated}  ${r.dryRun ? 'would abort' : u.aborted ? 'aborted' : `FAILED: ${printable(u.error ?? '')}`}`);
    writeOut(`incomplete uploads older than ${olderThan}: ${r.dryRun ? `${r.uploads.length} would be aborted` : `${r.aborted} aborted, ${r.failed} failed`}`);
    if (r.journals > 0) writeOut(`resume journals of uploads that are gone: ${r.journals} ${r.dryRun ? 'would be removed' : 'removed'}`);
    if (r.younger.length > 0) {
      for (const u of r.younger) writeOut(`${printable(u.key)}  started ${u.initiated ?? '(unknown)'}  kept${u.bytes !== null ? ` (${formatBytes(u.bytes)} stored)` : ''}`);
      const bytes = r.younger.reduce((n, u) => n + (u.bytes ?? 0), 0);
      writeOut(
        `incomplete uploads younger than ${olderThan}: ${r.younger.length} kept, ${formatBytes(bytes)} (each may still be running${durationMs(olderThan) > 3600_000 ? '; --older-than 1h aborts those started more than an hour ago' : ''})`,
      );
    }
  }
  return r.failed > 0 ? EXIT.failure : EXIT.ok;
}

async function prune(ctx: StoreContext, p: Parsed, json: boolean, configured: import('../pve/prune.js').PruneKeep | undefined): Promise<ExitCode> {
  const { parsePruneBackups, formatPruneBackups } = await import('../pve/prune.js');
  const given = str(p, 'prune-backups');
  const keepLast = intOpt(p, 'keep-last', 0, 1_000_000);
  const keep = given !== undefined ? parsePruneBackups(given, '--prune-backups') : keepLast !== undefined ? parsePruneBackups(`keep-last=${keepLast}`, '--keep-last') : configured;
  if (keep === undefined) {
    throw new PveS3Error('ConfigMissing', `storage '${ctx.settings.storageId}' has no prune-backups setting: set it (pvesm set ${ctx.settings.storageId} --prune-backups keep-last=3) or give --prune-backups / --keep-last`, { exitCode: EXIT.usage });
  }
  const vmid = vmidOpt(p);
  const type = oneOf(p, 'type', ['qemu', 'lxc'] as const);
  const { prune: run } = await import('../store/prune.js');
  const r = await run(ctx, keep, { ...(vmid !== undefined ? { vmid } : {}), ...(type ? { type } : {}), dryRun: flag(p, 'dry-run') });
  if (json) writeJson({ keep: formatPruneBackups(keep), ...r });
  else {
    for (const e of r.entries) {
      const failed = r.errors.find((x) => x.volname === e.volname);
      const held = r.locked.find((l) => l.volname === e.volname);
      const what = failed ? `FAILED: ${printable(failed.message)}` : held ? `kept (${held.reason})` : e.mark === 'remove' ? (r.dryRun ? 'would remove' : 'removed') : e.mark;
      writeOut(`${volid(ctx, e.volname)}  ${ts(e.ctime)}  ${what}`);
    }
    const n = r.entries.filter((e) => e.mark === 'remove').length;
    writeOut(`prune (${formatPruneBackups(keep)}): ${r.dryRun ? `${n} would be removed` : `${r.removed.length} removed`}, ${r.entries.length - n + r.locked.length} kept${lockedCount(r.locked)}${r.errors.length ? `, ${r.errors.length} failed` : ''}${r.dryRun ? ' (dry run)' : ''}`);
    unverifiedNote(r.entries.filter((e) => e.mark === 'unverified').length);
  }
  // its message last, as the command's: the gateway, not the volumes, is what to look at
  if (r.stopped) throw r.stopped;
  return r.errors.length > 0 ? EXIT.failure : EXIT.ok;
}

const ADOPTED: Record<string, string> = {
  verified: 'verified',
  resigned: 're-signed',
  adopted: 'checked and signed',
  corrupt: 'NOT SIGNED: corrupt',
  'no-manifest': 'NOT SIGNED: no manifest',
  error: 'FAILED',
};

async function adopt(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const { volnameFromArg } = await import('../store/volume-arg.js');
  const volnames = list(p, 'source').map((s) => volnameFromArg(s, { storageId: ctx.settings.storageId }));
  const vmid = vmidOpt(p);
  const parallel = intOpt(p, 'parallel', 1, 16);
  const dryRun = flag(p, 'dry-run');
  const { adopt: run } = await import('../store/adopt.js');
  const r = await run(ctx, {
    ...(volnames.length ? { volnames } : {}),
    ...(vmid !== undefined ? { vmid } : {}),
    ...(parallel !== undefined ? { parallel } : {}),
    dryRun,
  });
  if (json) writeJson(r);
  else {
    for (const i of r.items) {
      const what = dryRun && i.message !== undefined && (i.action === 'adopted' || i.action === 'resigned') ? `would be signed (${printable(i.message)})` : `${ADOPTED[i.action]}${i.message ? `: ${printable(i.message)}` : ''}`;
      writeOut(`${printable(volid(ctx, i.volname))}  ${what}`);
    }
    const count = (a: string) => r.items.filter((i) => i.action === a).length;
    writeOut(
      `adopt (key ${r.keyId ?? 'none yet'}): ${count('verified')} already verified, ${dryRun ? `${count('adopted') + count('resigned')} to sign` : `${count('adopted')} checked and signed, ${count('resigned')} re-signed`}, ${r.items.length - count('verified') - count('adopted') - count('resigned')} not signed${dryRun ? ' (dry run)' : ''}`,
    );
    if (dryRun && count('adopted') > 0) note('every volume listed to be signed is read in full first; sign only what you stored: remove anything else before running adopt without --dry-run');
    if (!r.ok && !dryRun) note('volumes not signed stay unverified: retention ignores them and PVE refuses to restore or use them; remove them, or restore one as it is with pve-s3-restore --allow-unverified');
  }
  return r.ok || dryRun ? EXIT.ok : EXIT.integrity;
}

async function manifestKey(ctx: StoreContext, p: Parsed, json: boolean): Promise<ExitCode> {
  const retire = str(p, 'retire');
  if (retire !== undefined && flag(p, 'rotate')) throw new UsageError(CMD, '--rotate and --retire exclude each other', USAGE);
  const { manageKey, whoMakesKey } = await import('../store/trust.js');
  const k = await manageKey(ctx, flag(p, 'rotate') ? { action: 'rotate' } : retire !== undefined ? { action: 'retire', keyId: retire } : { action: 'show' });
  if (json) writeJson(k);
  else if (k.ids.length === 0) {
    writeOut(`storage '${ctx.settings.storageId}': no manifest key yet (${k.file}); ${whoMakesKey(ctx)}`);
  } else {
    writeOut(`file     ${k.file}`);
    writeOut(`signing  ${k.ids[0]}`);
    for (const id of k.ids.slice(1)) writeOut(`verifies ${id}`);
  }
  return EXIT.ok;
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(CMD, async () => {
    const p = parse(CMD, USAGE, argv, OPTIONS);
    if (flag(p, 'help')) {
      writeOut(HELP);
      return EXIT.ok;
    }
    if (str(p, 'action') === undefined) throw new UsageError(CMD, 'no --action given', USAGE);
    const action = oneOf(p, 'action', ACTIONS)!;
    for (const [opt, actions] of Object.entries(ONLY_FOR)) {
      if (p.values[opt] !== undefined && !actions.includes(action)) {
        throw new UsageError(CMD, `--${opt} does not apply to --action ${action} (only ${actions.join(', ')})`, USAGE);
      }
    }
    const older = str(p, 'older-than');
    if (older !== undefined) {
      const { parseDuration } = await import('../pve/duration.js');
      parseDuration(older, '--older-than'); // a bad duration is a usage error before any request
    }
    const logger = await createCliLogger('cli:maintenance');
    const cfg = await resolveFrom(p, logger);
    const opened = await openStore(cfg, logger);
    const json = flag(p, 'json');
    try {
      switch (action) {
        case 'status':
          return await status(opened.ctx, json, cfg.endpoint);
        case 'cleanup':
          return await cleanup(opened.ctx, p, json);
        case 'check-integrity':
          return await checkIntegrity(opened.ctx, p, json);
        case 'lifecycle':
          return await lifecycle(opened.ctx, p, json);
        case 'abort-uploads':
          return await abortUploads(opened.ctx, p, json);
        case 'prune':
          return await prune(opened.ctx, p, json, cfg.pruneBackups);
        case 'adopt':
          return await adopt(opened.ctx, p, json);
        case 'manifest-key':
          return await manifestKey(opened.ctx, p, json);
      }
    } finally {
      await opened.close();
    }
  });
}
