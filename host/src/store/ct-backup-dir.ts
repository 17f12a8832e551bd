/**
 * The work directory of one container backup through the Backup Provider. PVE runs
 * `backup_container` as the container's root — an unprivileged uid (100000 by default) in a user
 * namespace of its own — which can write neither the storage's root-only `<path>/.pve-s3` nor
 * anything else of the host's, and whose view of host-owned files is "nobody". So
 * `backup_container_prepare`, still root, makes it a directory of its own, outside the storage's
 * path, in a tmpfs that a reboot empties (docs/BACKUP-PROVIDER.md §7):
 *
 *   /run/pve-s3/ct-backup/                     root 0711: entered, never listed, by that uid
 *   /run/pve-s3/ct-backup/<storage>/           root 0711
 *   /run/pve-s3/ct-backup/<storage>/<archive>.owner   root 0600: { owner (the vzdump worker's pid), start, uid, created }
 *   /run/pve-s3/ct-backup/<storage>/<archive>/        the uid's, 0700:
 *       run                    the backup host process's run record (provider-run.ts)
 *       conf/etc/vzdump/pct.conf   the guest config, and pct.fw: the first members of the tar
 *       pve-s3-fifo-…           the compressor's output FIFO while it is being opened
 *
 * What root later does there (discard, end, the sweep of abandoned ones) never writes through a
 * name the uid controls, reads the run record only as a regular file (no link, no FIFO), and
 * stops a recorded process only when it runs as that uid.
 */
import { chmod, chown, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isStorageId } from '../config/storage-id.js';
import { parseVolname } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { processStart, recordedAlive } from '../util/process.js';
import { abortRecorded, archiveKeys, liveRun, recordedUploads, stopRunAt, type RunStopped } from './provider-run.js';
import type { StoreContext } from './types.js';

export const CT_BACKUP_ROOT = '/run/pve-s3/ct-backup';

interface OwnerRecord {
  owner: number;
  /** the owner's start time (processStart): a pid reused after it died is not the owner */
  start?: number;
  uid: number;
  created: number;
}

function storageDir(ctx: StoreContext): string {
  const id = ctx.settings.storageId;
  if (!isStorageId(id)) {
    throw new PveS3Error('ConfigInvalid', `a container backup needs the storage's id (got '${id ?? ''}')`, { exitCode: EXIT.usage });
  }
  return join(CT_BACKUP_ROOT, id);
}

function archiveOf(volname: string): string {
  const v = parseVolname(volname);
  if (v.content !== 'backup' || v.guestType !== 'lxc' || v.format !== 'tar' || !v.isStdName) {
    throw new PveS3Error('InvalidArgument', `invalid volname '${volname}': a provider container backup is a vzdump-lxc-….tar.zst archive`, { exitCode: EXIT.usage });
  }
  return v.name;
}

/** where the backup of `volname` works: its directory and its root-owned owner record */
export function ctWorkDir(ctx: StoreContext, volname: string): { dir: string; owner: string } {
  const base = join(storageDir(ctx), archiveOf(volname));
  return { dir: base, owner: `${base}.owner` };
}

async function ensureRootDir(dir: string, mode: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== 0) {
    throw new PveS3Error('InvalidArgument', `'${dir}' is not a directory owned by root: remove it`, { exitCode: EXIT.failure });
  }
  await chmod(dir, mode);
}

/**
 * Makes the work directory for a backup run by `uid` (as root): removes what an earlier attempt
 * of the same name left, and the directories of backups whose vzdump worker died (sweepAbandoned);
 * `onLine`: where a line about what the sweep had to leave goes (the task log).
 */
export async function prepareCtWorkDir(ctx: StoreContext, volname: string, o: { uid: number; owner: number; onLine?: (line: string) => void }): Promise<string> {
  if (process.getuid?.() !== 0) {
    throw new PveS3Error('InvalidArgument', 'backup-container-prepare runs as root (PVE calls backup_container_prepare privileged)', { exitCode: EXIT.usage });
  }
  const w = ctWorkDir(ctx, volname);
  await ensureRootDir('/run/pve-s3', 0o755);
  await ensureRootDir(CT_BACKUP_ROOT, 0o711);
  await ensureRootDir(storageDir(ctx), 0o711);
  await sweepAbandoned(ctx, o.onLine);
  const prev = await readOwner(w.owner);
  if (prev && prev.owner !== o.owner && recordedAlive(prev.owner, prev.start)) {
    throw new PveS3Error('VolumeBusy', `a backup of '${volname}' is being made by process ${prev.owner}: not started twice`, { exitCode: EXIT.failure, retryable: true });
  }
  await removeCtWorkDir(ctx, volname);
  const start = processStart(o.owner);
  if (start === null) {
    throw new PveS3Error('InvalidArgument', `owner_pid ${o.owner} is not a running process (the vzdump worker making this backup)`, { exitCode: EXIT.usage });
  }
  const rec: OwnerRecord = { owner: o.owner, start, uid: o.uid, created: Math.floor(Date.now() / 1000) };
  await writeFile(w.owner, JSON.stringify(rec) + '\n', { mode: 0o600, flag: 'wx' });
  await mkdir(w.dir, { mode: 0o700 });
  await chown(w.dir, o.uid, o.uid);
  return w.dir;
}

/** The work directory as the backup process (the container's root) finds it: its own, 0700. */
export async function openCtWorkDir(ctx: StoreContext, volname: string): Promise<string> {
  const { dir } = ctWorkDir(ctx, volname);
  const st = await lstat(dir).catch(() => null);
  const uid = process.geteuid?.() ?? 0;
  if (!st || !st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new PveS3Error(
      'InvalidArgument',
      `the work directory '${dir}' of this container backup is missing or not private to uid ${uid} (backup_container_prepare makes it)`,
      { exitCode: EXIT.usage },
    );
  }
  return dir;
}

/**
 * Stops a backup process still running there, then removes the directory and its owner record;
 * `run`: what its run record said (provider-run.ts stopRunAt), for a discard to abort its uploads.
 */
export async function removeCtWorkDir(ctx: StoreContext, volname: string): Promise<{ stopped: boolean; removed: boolean; run: RunStopped }> {
  const w = ctWorkDir(ctx, volname);
  const st = await lstat(w.dir).catch(() => null);
  const run: RunStopped = st?.isDirectory() ? await stopRunAt(join(w.dir, 'run'), st.uid) : { stopped: false, uploads: [] };
  const stopped = run.stopped;
  // rm never follows a symbolic link the uid may have put there
  await rm(w.dir, { recursive: true, force: true });
  const had = (await lstat(w.owner).catch(() => null)) !== null;
  await rm(w.owner, { force: true });
  return { stopped, removed: !!st || had, run };
}

async function readOwner(file: string): Promise<OwnerRecord | null> {
  try {
    const r = JSON.parse(await readFile(file, 'utf8')) as OwnerRecord;
    return typeof r.owner === 'number' ? r : null;
  } catch {
    return null;
  }
}

/**
 * How long the sweep may wait for the gateway to abort what abandoned runs left: the prepare it runs
 * in has 30 s (the plugin's op_timeout), and a new backup must not fail for an old one's leftovers.
 */
const SWEEP_ABORT_MS = 10_000;

/**
 * Backups of this storage whose vzdump worker is gone and whose backup process is too. The multipart
 * uploads a run record names go first (only those: another writer's upload of the same key looks
 * no different in the bucket): the record is the only note of them — a container's uid cannot
 * remember them with the node's abandoned uploads — so while the gateway cannot abort them, the
 * directory stays for the next sweep, and one line says so.
 */
async function sweepAbandoned(ctx: StoreContext, onLine?: (line: string) => void): Promise<void> {
  const sdir = storageDir(ctx);
  const budget = AbortSignal.timeout(SWEEP_ABORT_MS);
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, budget]) : budget;
  for (const n of await readdir(sdir).catch(() => [] as string[])) {
    if (!n.endsWith('.owner')) continue;
    const name = n.slice(0, -'.owner'.length);
    const rec = await readOwner(join(sdir, n));
    if (rec && recordedAlive(rec.owner, rec.start)) continue;
    if (!rec && Date.now() - ((await stat(join(sdir, n)).catch(() => null))?.mtimeMs ?? 0) < 60_000) continue;
    const dst = await lstat(join(sdir, name)).catch(() => null);
    const runFile = join(sdir, name, 'run');
    if (dst?.isDirectory() && (await liveRun(runFile, dst.uid)) !== null) continue;
    const volname = `backup/${name}`;
    try {
      if (dst?.isDirectory() && !(await abortLeft(ctx, volname, runFile, signal, onLine))) continue;
      await removeCtWorkDir(ctx, volname);
    } catch {
      // not a backup's name, or gone meanwhile: nothing of ours to keep
    }
  }
}

/** Aborts the uploads the dead run's record names; false (and a line said) when some stay. */
async function abortLeft(ctx: StoreContext, volname: string, runFile: string, signal: AbortSignal, onLine?: (line: string) => void): Promise<boolean> {
  const { uploads } = await recordedUploads(runFile);
  if (uploads.length === 0) return true;
  const keys = archiveKeys(ctx, volname);
  const r = await abortRecorded(ctx, uploads, keys, new Set(), { signal });
  if (!r.failed) {
    if (r.aborted > 0) ctx.logger.info('aborted the multipart uploads of a container backup whose vzdump worker died', { volname, count: r.aborted });
    return true;
  }
  const why = signal.aborted && !ctx.signal?.aborted ? `no answer within ${SWEEP_ABORT_MS / 1000} s` : r.failed.message;
  const line = `warning: the incomplete multipart upload of '${keys[0]}' left by a container backup whose vzdump worker died could not be aborted (${why}): its run record stays in ${join(runFile, '..')}, and the next container backup on storage '${ctx.settings.storageId}' tries again`;
  ctx.logger.warn(line);
  onLine?.(line);
  return false;
}
