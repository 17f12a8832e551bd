/**
 * The run record of a long provider operation and the discard of a failed backup
 * (docs/BACKUP-PROVIDER.md §3.2). vzdump's signal handler makes PVE's run_command die without
 * killing its child, so `backup_cleanup` after a failure must first stop a backup host process
 * still running for the archive, then remove every trace of it.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { INDEX_SUFFIX, MANIFEST_SUFFIX, NOTES_SUFFIX, PROTECTED_SUFFIX, parseVolname } from '../pve/volname.js';
import { pidAlive } from '../util/process.js';
import { STATE_DIR } from './state-dir.js';
import { deleteQuiet } from './objects.js';
import { keyOf } from './volumes.js';
import type { StoreContext } from './types.js';

function runFile(ctx: StoreContext, name: string): string | null {
  return ctx.settings.cacheDir ? join(ctx.settings.cacheDir, STATE_DIR, 'provider', `${name}.run`) : null;
}

/** Records this process as the one making `volname`; returns the function that removes it. */
export async function recordRun(ctx: StoreContext, volname: string): Promise<() => Promise<void>> {
  const f = runFile(ctx, parseVolname(volname).name);
  if (!f) return async () => undefined;
  await mkdir(join(f, '..'), { recursive: true, mode: 0o700 });
  await writeFile(f, JSON.stringify({ pid: process.pid, volname, started: Math.floor(Date.now() / 1000) }) + '\n', { mode: 0o600 });
  return async () => {
    await rm(f, { force: true });
  };
}

async function stopRun(ctx: StoreContext, name: string): Promise<boolean> {
  const f = runFile(ctx, name);
  if (!f) return false;
  const rec = await readFile(f, 'utf8').then((t) => JSON.parse(t) as { pid?: unknown }, () => null);
  const pid = typeof rec?.pid === 'number' ? rec.pid : 0;
  let stopped = false;
  if (pid > 1 && pid !== process.pid && pidAlive(pid)) {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 600 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    stopped = true;
  }
  await rm(f, { force: true });
  return stopped;
}

/** Stops a backup still running for `volname`, aborts its multipart uploads and deletes the
 *  archive and its sidecars (not a `.log`: it may belong to another archive of that base name). */
export async function discardBackup(ctx: StoreContext, volname: string): Promise<{ removed: string[]; aborted: number; stopped: boolean }> {
  const v = parseVolname(volname);
  const stopped = await stopRun(ctx, v.name);
  const key = keyOf(ctx, v);
  const keys = [key, key + MANIFEST_SUFFIX, key + INDEX_SUFFIX, key + NOTES_SUFFIX, key + PROTECTED_SUFFIX];
  let aborted = 0;
  for (const u of await ctx.client.listMultipartUploads({ prefix: key })) {
    if (!keys.includes(u.key)) continue;
    await ctx.client.abortMultipartUpload(u.key, u.uploadId);
    aborted++;
  }
  const removed: string[] = [];
  for (const k of keys) {
    const there = await ctx.client.headObject(k).then(() => true, () => false);
    await deleteQuiet(ctx, k);
    if (there) removed.push(k);
  }
  return { removed, aborted, stopped };
}
