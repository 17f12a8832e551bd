/**
 * The operations of docs/PROTOCOL.md §4, each a thin mapping from args to a store call and from
 * the store's answer to the documented result. Store modules are imported inside each op so a
 * `status` never loads the transfer engine.
 */
import { Transform, type Readable } from 'node:stream';
import type { StoreContext, Volume } from '../store/types.js';
import { classLabel, describeArchiveState, type ArchiveState } from '../store/archive-state.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { badArg, bool, int, oneOf, str, strList } from './args.js';
import { PROVIDER_OPS } from './provider-ops.js';
import { STATUS_OPS } from './status-ops.js';
import { formatBytes } from '../util/size.js';

export interface OpResult {
  result: Record<string, unknown>;
  message: string;
}

/** stdin after the request line: only `upload` with `src: "-"` reads it */
export interface OpIo {
  stdin?: Readable;
  /** the request's storage section, secret included: for an op that starts another host process */
  storage?: Record<string, unknown>;
}

export type Op = (ctx: StoreContext, args: Record<string, unknown>, io?: OpIo) => Promise<OpResult>;

const invalidArg = (msg: string) => new PveS3Error('InvalidArgument', msg, { exitCode: EXIT.usage });

export function volumeJson(v: Volume): Record<string, unknown> {
  const o: Record<string, unknown> = {
    volname: v.volname,
    content: v.content,
    size: v.size,
    ctime: v.ctime,
    mtime: v.mtime ?? v.ctime,
    etag: (v.etag ?? '').replace(/^"|"$/g, ''),
    format: v.format,
  };
  if (v.content === 'backup') {
    if (v.vmid !== undefined) o.vmid = v.vmid;
    o.subtype = v.subtype ?? 'unknown';
    if (v.notes !== undefined && v.notes !== '') o.notes = v.notes;
    o.protected = v.protected;
    if (v.locked !== undefined) o.locked = v.locked;
  }
  if (v.storageClass !== undefined) o.storage_class = v.storageClass;
  if (v.archive !== undefined) o.archive = archiveJson(v.archive);
  o.verified = v.verified === true;
  if (v.unusable !== undefined) o.unusable = v.unusable;
  if (v.trust !== undefined) o.trust = v.trust;
  if (v.trustNote !== undefined) o.trust_note = v.trustNote;
  return o;
}

/** docs/PROTOCOL.md §4.1 `archive`: the state and the words every listing shows for it */
function archiveJson(a: ArchiveState): Record<string, unknown> {
  return {
    state: a.state,
    storage_class: classLabel(a),
    ...(a.restoredUntil !== undefined ? { restored_until: Math.floor(a.restoredUntil.getTime() / 1000) } : {}),
    text: describeArchiveState(a),
  };
}

/** Passes exactly `size` bytes through; more, or an end before that, is an error. */
function exactLength(size: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > size) done(invalidArg(`stdin holds more than the declared size of ${size} bytes: upload refused, nothing stored`));
      else done(null, chunk);
    },
    flush(done) {
      if (seen < size) done(invalidArg(`stdin ended after ${seen} of the declared ${size} bytes (did the producer fail?): upload refused, nothing stored`));
      else done();
    },
  });
}

const absPath = (name: string, p: string): string => {
  if (!p.startsWith('/')) throw invalidArg(`invalid ${name} '${p}': must be an absolute path`);
  return p;
};

export const OPS: Record<string, Op> = {
  ...STATUS_OPS,

  // the Backup Provider's job_init: one HeadBucket fails a job before any guest is touched
  async activate(ctx) {
    await ctx.client.headBucket();
    return { result: { bucket: ctx.settings.bucket, reachable: true }, message: `bucket ${ctx.settings.bucket} is reachable` };
  },

  async 'check-lock'(ctx) {
    const { bucketLock, bucketLockProblem } = await import('../store/object-lock.js');
    const b = await bucketLock(ctx);
    const problem = bucketLockProblem(ctx, b);
    const lock = ctx.settings.lock;
    return {
      result: {
        ok: problem === undefined,
        object_lock: b.objectLock,
        versioning: b.versioning,
        message:
          problem ??
          (lock
            ? `bucket ${ctx.settings.bucket} has Object Lock and versioning: backups are kept ${lock.days} days in ${lock.mode} mode`
            : `bucket ${ctx.settings.bucket}: Object Lock ${b.objectLock ? 'enabled' : 'not enabled'}, versioning ${b.versioning.toLowerCase()} (lock_days unset: nothing is locked)`),
      },
      message: problem ?? `bucket ${ctx.settings.bucket} can hold locked objects`,
    };
  },

  async list(ctx, args) {
    const { listVolumes } = await import('../store/list.js');
    const content = strList(args, 'content', { commas: true });
    const allowed = ['backup', 'iso', 'vztmpl', 'snippets'];
    for (const c of content ?? []) if (!allowed.includes(c)) throw invalidArg(`invalid args.content '${c}': must be one of ${allowed.join(', ')}`);
    const vmid = int(args, 'vmid', { min: 1 });
    const vols = await listVolumes(ctx, {
      ...(content ? { content: content as Volume['content'][] } : {}),
      ...(vmid !== undefined ? { vmid } : {}),
      pending: false,
      notesFull: true,
    });
    return { result: { volumes: vols.map(volumeJson) }, message: `listed ${vols.length} volume${vols.length === 1 ? '' : 's'}` };
  },

  async stat(ctx, args) {
    const { statVolume } = await import('../store/volumes.js');
    const v = await statVolume(ctx, str(args, 'volname'));
    return { result: { volume: volumeJson(v) }, message: `${v.volname}: ${formatBytes(v.size)}` };
  },

  async download(ctx, args) {
    const { getVolume } = await import('../store/transfer.js');
    const volname = str(args, 'volname');
    const dest = absPath('dest', str(args, 'dest'));
    // activate_volume: an archived volume is requested from its archive class, PVE told to come back
    const { readableForPve } = await import('./archived.js');
    const look = await readableForPve(ctx, volname);
    const r = await getVolume(ctx, volname, dest, { force: bool(args, 'force') === true, look });
    return {
      result: { ...r },
      message: r.downloaded ? `downloaded ${volname} (${formatBytes(r.size)})${r.verified ? '' : `, not verified: ${r.trustNote ?? 'no manifest'}`}` : `${volname} already cached`,
    };
  },

  async upload(ctx, args, io) {
    const volname = str(args, 'volname');
    const notes = str(args, 'notes', true);
    const log = str(args, 'log', true);
    const srcArg = str(args, 'src');
    const replace = bool(args, 'replace') === true;
    const given = {
      ...(notes !== undefined ? { notes } : {}),
      protected: bool(args, 'protected') === true,
      ...(log !== undefined ? { logPath: absPath('log', log) } : {}),
    };
    const { WAIT_FOR_WRITER_SECONDS } = await import('../store/volume-lock.js');
    if (srcArg === '-') {
      // A pipe's EOF looks the same whether the producer finished or died, so a stream upload
      // must say how many bytes make it complete; anything else fails and leaves no object.
      const size = int(args, 'size', { min: 0 });
      if (size === undefined) throw badArg('size', '', 'required with src "-": the exact number of bytes that follow the request line');
      if (bool(args, 'remove_source') === true) throw badArg('remove_source', true, 'not allowed with src "-" (there is no local file)');
      if (bool(args, 'sidecars') === true) throw badArg('sidecars', true, 'not allowed with src "-" (there is no local file to find them beside)');
      if (!io?.stdin) throw invalidArg(`invalid src '-': no data on stdin after the request line`);
      const { putVolume } = await import('../store/transfer.js');
      const v = await putVolume(ctx, volname, { src: { stream: io.stdin.pipe(exactLength(size)), maxSize: size }, ...given, replace, who: 'protocol upload' });
      const { assertUploadVerified } = await import('../store/local-files.js');
      assertUploadVerified(v);
      return { result: { volume: volumeJson(v), outcome: 'uploaded', source_removed: false }, message: `uploaded ${volname} (${formatBytes(v.size)})` };
    }
    const { putLocalVolume } = await import('../store/put-local.js');
    const r = await putLocalVolume(ctx, volname, absPath('src', srcArg), {
      ...given,
      replace,
      sidecars: bool(args, 'sidecars') === true,
      removeSource: bool(args, 'remove_source') === true,
      waitSeconds: WAIT_FOR_WRITER_SECONDS,
      who: 'protocol upload',
      onWait: (m) => ctx.logger.warn(m),
    });
    const what = r.result === 'uploaded' ? `uploaded ${volname} (${formatBytes(r.volume.size)})` : r.result === 'identical' ? `${volname} already in the bucket with the same bytes: not sent again` : `${volname} uploaded by another process meanwhile`;
    return {
      result: { volume: volumeJson(r.volume), outcome: r.result, source_removed: r.sourceRemoved },
      message: `${what}${r.keptBecause !== undefined ? `; local file kept: ${r.keptBecause}` : ''}`,
    };
  },

  async delete(ctx, args) {
    const { deleteVolumes } = await import('../store/volumes.js');
    const volnames = strList(args, 'volnames') ?? (str(args, 'volname', true) !== undefined ? [str(args, 'volname')] : undefined);
    if (!volnames || volnames.length === 0) throw badArg('volnames', '', 'required: a non-empty list of volume names');
    const r = await deleteVolumes(ctx, volnames);
    // a locked archive is not a failure (issue 14 §2): PVE's free/prune go on, the message says why it stays
    const held = r.locked.map((l) => `kept '${l.volname}': ${l.reason}`).join('; ');
    return {
      result: { ...r },
      message: `deleted ${r.deleted.length} volume${r.deleted.length === 1 ? '' : 's'}${r.missing.length ? `, ${r.missing.length} missing` : ''}${held ? `; ${held}` : ''}`,
    };
  },

  async 'get-attr'(ctx, args) {
    const { getAttribute } = await import('../store/volumes.js');
    const attr = oneOf(args, 'attr', ['notes', 'protected'] as const);
    if (!attr) throw invalidArg(`invalid args.attr '': must be notes or protected`);
    const volname = str(args, 'volname');
    const value = await getAttribute(ctx, volname, attr);
    return { result: { value }, message: `${attr} of ${volname} read` };
  },

  async 'set-attr'(ctx, args) {
    const { setAttribute } = await import('../store/volumes.js');
    const attr = oneOf(args, 'attr', ['notes', 'protected'] as const);
    if (!attr) throw invalidArg(`invalid args.attr '': must be notes or protected`);
    const volname = str(args, 'volname');
    let value: string | boolean;
    if (attr === 'notes') {
      const raw = args.value;
      if (raw !== undefined && raw !== null && typeof raw !== 'string') throw badArg('value', raw, 'notes must be a string');
      value = (raw as string | undefined) ?? '';
    } else {
      const b = bool(args, 'value');
      if (b === undefined) throw badArg('value', '', 'protected must be true or false');
      value = b;
    }
    const stored = await setAttribute(ctx, volname, attr, value);
    return { result: { value: stored }, message: `${attr} of ${volname} updated` };
  },

  async 'abort-stale-uploads'(ctx, args) {
    const { abortStaleUploads } = await import('../store/multipart.js');
    // the plugin's daily background run sends none: the storage's own abort_incomplete_days decides
    const hours = int(args, 'older_than_hours', { min: 0 }) ?? (ctx.settings.lifecycle?.abortIncompleteDays ?? 7) * 24;
    const r = await abortStaleUploads(ctx, { olderThanSeconds: hours * 3600, dryRun: bool(args, 'dryrun') === true });
    const aborted = r.uploads
      .filter((u) => r.dryRun || u.aborted)
      .map((u) => ({ key: u.key, upload_id: u.uploadId, initiated: u.initiated ? Math.floor(Date.parse(u.initiated) / 1000) : null }));
    if (r.failed > 0) throw new PveS3Error('AbortFailed', `${r.failed} stale upload(s) could not be aborted: ${r.uploads.find((u) => u.error)?.error ?? ''}`);
    const journals = r.journals > 0 ? `, ${r.dryRun ? 'would remove' : 'removed'} ${r.journals} resume journal${r.journals === 1 ? '' : 's'}` : '';
    return {
      result: { aborted, journals_removed: r.journals },
      message: `${r.dryRun ? 'would abort' : 'aborted'} ${aborted.length} stale upload${aborted.length === 1 ? '' : 's'}${journals}`,
    };
  },

  async 'manifest-key'(ctx, args) {
    const { manageKey } = await import('../store/trust.js');
    const action = oneOf(args, 'action', ['show', 'create'] as const) ?? 'show';
    const k = await manageKey(ctx, { action });
    return {
      result: { file: k.file, key_ids: k.ids, created: k.created },
      message: k.ids.length > 0 ? `manifest key ${k.ids[0]} of storage '${ctx.settings.storageId}' ${k.created ? 'created' : 'present'} in ${k.file}` : `storage '${ctx.settings.storageId}' has no manifest key (${k.file})`,
    };
  },

  async 'sync-local'(ctx, args) {
    const { syncLocal } = await import('../store/sync.js');
    const r = await syncLocal(ctx, {
      quietSeconds: int(args, 'quiet_seconds', { min: 0 }),
      dryRun: bool(args, 'dryrun') === true,
      keepLocal: ctx.settings.keepLocal !== false,
    });
    return { result: { uploaded: r.uploaded, skipped: r.skipped, errors: r.errors }, message: `synced ${r.uploaded.length} file${r.uploaded.length === 1 ? '' : 's'}${r.errors.length ? `, ${r.errors.length} failed` : ''}` };
  },
  ...PROVIDER_OPS,
};

export const OP_NAMES: readonly string[] = ['version', ...Object.keys(OPS)];
