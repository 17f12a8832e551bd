/**
 * The run record of a long provider operation and the discard of a failed backup
 * (docs/BACKUP-PROVIDER.md §3.2). vzdump's signal handler makes PVE's run_command die without
 * killing its child, so `backup_cleanup` after a failure must first stop a backup host process
 * still running for the archive, then remove every trace of it.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INDEX_SUFFIX, MANIFEST_SUFFIX, NOTES_SUFFIX, PROTECTED_SUFFIX, parseVolname } from '../pve/volname.js';
import { processStart, recordedAlive } from '../util/process.js';
import { STATE_DIR } from './state-dir.js';
import { deleteQuiet } from './objects.js';
import { headOrNull } from './object-lock.js';
import { RUN_META } from './provider-archive.js';
import { keyOf } from './volume-key.js';
import type { StoreContext } from './types.js';

function runFile(ctx: StoreContext, name: string): string | null {
  return ctx.settings.cacheDir ? join(ctx.settings.cacheDir, STATE_DIR, 'provider', `${name}.run`) : null;
}

/** Records this process as the one making `volname`; returns the function that removes it. */
export async function recordRun(ctx: StoreContext, volname: string): Promise<() => Promise<void>> {
  const f = runFile(ctx, parseVolname(volname).name);
  if (!f) return async () => undefined;
  await mkdir(join(f, '..'), { recursive: true, mode: 0o700 });
  return recordRunAt(f, volname);
}

/** recordRun into `file` (a container backup's: its work dir is all that uid may write) */
export async function recordRunAt(file: string, volname: string): Promise<() => Promise<void>> {
  await writeFile(file, JSON.stringify({ pid: process.pid, start: processStart(process.pid) ?? undefined, volname, started: Math.floor(Date.now() / 1000) }) + '\n', { mode: 0o600 });
  return async () => {
    await rm(file, { force: true });
  };
}

/** The pid a run record names while that process lives (and, with `uid`, runs as that user). */
export async function liveRun(file: string, uid?: number): Promise<number | null> {
  const rec = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { pid?: unknown; start?: unknown }, () => null);
  const pid = typeof rec?.pid === 'number' ? rec.pid : 0;
  const start = typeof rec?.start === 'number' ? rec.start : undefined;
  if (!(pid > 1 && pid !== process.pid && recordedAlive(pid, start))) return null;
  // a record in a directory an unprivileged user writes names a process of that user, or nothing
  if (uid !== undefined && processUid(pid) !== uid) return null;
  return pid;
}

function processUid(pid: number): number | null {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Stops the process a run record names (SIGTERM, 60 s, SIGKILL) and removes the record. */
export async function stopRunAt(file: string, uid?: number): Promise<boolean> {
  const pid = await liveRun(file, uid);
  if (pid !== null) {
    const start = processStart(pid) ?? undefined;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 600 && recordedAlive(pid, start); i++) await new Promise((r) => setTimeout(r, 100));
    if (recordedAlive(pid, start)) process.kill(pid, 'SIGKILL');
  }
  await rm(file, { force: true });
  return pid !== null;
}

async function stopRun(ctx: StoreContext, name: string): Promise<boolean> {
  const f = runFile(ctx, name);
  return f ? stopRunAt(f) : false;
}

/**
 * Stops a backup still running for `volname`, aborts its multipart uploads and deletes the
 * archive and its sidecars (not a `.log`: it may belong to another archive of that base name) —
 * only when the archive is the one run `run` made (provider-archive.ts RUN_META): an archive of
 * that name without the run's id is another writer's backup, and stays (`kept`, `keptWhy`).
 */
export async function discardBackup(
  ctx: StoreContext,
  volname: string,
  run?: string,
): Promise<{ removed: string[]; aborted: number; stopped: boolean; kept?: string; keptWhy?: string }> {
  const v = parseVolname(volname);
  let stopped = await stopRun(ctx, v.name);
  if (v.guestType === 'lxc' && v.format === 'tar' && v.isStdName) {
    // a container backup runs as the container's root and records itself in its work directory
    const { removeCtWorkDir } = await import('./ct-backup-dir.js');
    stopped = (await removeCtWorkDir(ctx, volname)).stopped || stopped;
  }
  const key = keyOf(ctx, v);
  const keys = [key, key + MANIFEST_SUFFIX, key + INDEX_SUFFIX, key + NOTES_SUFFIX, key + PROTECTED_SUFFIX];
  let aborted = 0;
  for (const u of await ctx.client.listMultipartUploads({ prefix: key })) {
    if (!keys.includes(u.key)) continue;
    await ctx.client.abortMultipartUpload(u.key, u.uploadId);
    aborted++;
  }
  const removed: string[] = [];
  const archive = await headOrNull(ctx, key);
  if (archive === null) return { removed, aborted, stopped };
  const madeBy = archive.metadata[RUN_META];
  if (run === undefined || madeBy !== run) {
    const keptWhy = `it was not made by this backup run (${madeBy === undefined ? 'it carries no run id' : 'another run id'}): another writer stored a backup under that name`;
    ctx.logger.warn(`backup discard: keeping '${key}': ${keptWhy}`);
    return { removed, aborted, stopped, kept: key, keptWhy };
  }
  // the archive last: a discard cut short leaves it, with its run id, for the next one to find
  for (const k of [...keys.slice(1), key]) {
    const there = await ctx.client.headObject(k).then(() => true, () => false);
    await deleteQuiet(ctx, k);
    if (there) removed.push(k);
  }
  return { removed, aborted, stopped };
}
