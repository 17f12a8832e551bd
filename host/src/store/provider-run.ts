/**
 * The run record of a long provider operation and the discard of a failed backup
 * (docs/BACKUP-PROVIDER.md §3.2). vzdump's signal handler makes PVE's run_command die without
 * killing its child, so `backup_cleanup` after a failure must first stop a backup host process
 * still running for the archive, then remove what that run left — and only that.
 */
import { constants, readFileSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TransferClient } from '../transfer/transfer-client.js';
import { writeJsonAtomic } from '../util/json-file.js';
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

/** a multipart upload a run created */
export interface RunUpload {
  key: string;
  uploadId: string;
}

interface RunFile {
  pid: number;
  start?: number;
  volname: string;
  started: number;
  run?: string;
  /**
   * every multipart upload the run created, written the moment its id is known: what a discard
   * after a SIGKILL aborts — and only that, since another writer's upload of the same key (another
   * cluster sharing the bucket) looks no different in the bucket's listing
   */
  uploads: RunUpload[];
}

/** What a run writes into its record: its uploads; and the function that removes the record. */
export interface RunRecord {
  /** `c` noting each multipart upload it creates in the record before the first part goes out */
  client(c: TransferClient): TransferClient;
  done(): Promise<void>;
}

/** Records this process as the one making `volname` (in run `run`). */
export async function recordRun(ctx: StoreContext, volname: string, run?: string): Promise<RunRecord> {
  const f = runFile(ctx, parseVolname(volname).name);
  if (!f) return { client: (c) => c, done: async () => undefined };
  await mkdir(join(f, '..'), { recursive: true, mode: 0o700 });
  return recordRunAt(f, volname, run);
}

/**
 * recordRun into `file`. `keepUnfinished`: the record stays after the run when an upload it noted
 * was neither completed nor aborted (its abort failed): a container backup's, whose uid cannot
 * remember it with the node's abandoned uploads (abandoned-uploads.ts), so that the discard aborts it.
 */
export async function recordRunAt(file: string, volname: string, run?: string, o: { keepUnfinished?: boolean } = {}): Promise<RunRecord> {
  const start = processStart(process.pid);
  const rec: RunFile = { pid: process.pid, ...(start !== null ? { start } : {}), volname, started: Math.floor(Date.now() / 1000), ...(run !== undefined ? { run } : {}), uploads: [] };
  // renamed into place: a SIGKILL while an upload is noted leaves the record before or after it
  await writeJsonAtomic(file, rec);
  let writes = Promise.resolve();
  const open = new Set<string>();
  const note = (u: RunUpload): Promise<void> => {
    rec.uploads.push(u);
    open.add(u.uploadId);
    // a record that cannot be written costs only the discard's abort after a kill (the lifecycle
    // rule still comes); failing here would orphan the upload the engine was never told of
    writes = writes.then(() => writeJsonAtomic(file, rec)).catch(() => undefined);
    return writes;
  };
  return {
    client: (c) =>
      new Proxy(c, {
        get(target, prop) {
          if (prop === 'createMultipartUpload') {
            return async (...a: Parameters<TransferClient['createMultipartUpload']>) => {
              const uploadId = await target.createMultipartUpload(...a);
              await note({ key: a[0], uploadId });
              return uploadId;
            };
          }
          if (prop === 'completeMultipartUpload' || prop === 'abortMultipartUpload') {
            return async (key: string, uploadId: string, ...rest: unknown[]) => {
              try {
                const r = await (target[prop] as (...x: unknown[]) => Promise<unknown>).call(target, key, uploadId, ...rest);
                open.delete(uploadId);
                return r;
              } catch (e) {
                // gone already is what an abort wants
                if (prop === 'abortMultipartUpload' && (e as { code?: string }).code === 'NoSuchUpload') open.delete(uploadId);
                throw e;
              }
            };
          }
          const v = Reflect.get(target, prop, target) as unknown;
          return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(target) : v;
        },
      }),
    done: async () => {
      await writes;
      if (!(o.keepUnfinished && open.size > 0)) await rm(file, { force: true });
    },
  };
}

/**
 * A run record as JSON, or null: unreadable, or not a regular file. A container's record lives in
 * a directory its uid writes, where root must neither follow a link nor block on a FIFO put there.
 */
async function readRecord(file: string): Promise<Partial<Record<keyof RunFile, unknown>> | null> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!(await fh.stat()).isFile()) return null;
    const rec = JSON.parse(await fh.readFile('utf8')) as unknown;
    return typeof rec === 'object' && rec !== null ? (rec as Partial<Record<keyof RunFile, unknown>>) : null;
  } catch {
    return null;
  } finally {
    await fh?.close();
  }
}

/** The pid a run record names while that process lives (and, with `uid`, runs as that user). */
export async function liveRun(file: string, uid?: number): Promise<number | null> {
  const rec = await readRecord(file);
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

/** the run id and uploads a run record names (none when it is unreadable) */
export async function recordedUploads(file: string): Promise<{ run?: string; uploads: RunUpload[] }> {
  const rec = await readRecord(file);
  const uploads = (Array.isArray(rec?.uploads) ? (rec.uploads as unknown[]) : []).filter(
    (u): u is RunUpload => typeof (u as RunUpload)?.key === 'string' && typeof (u as RunUpload)?.uploadId === 'string',
  );
  return { ...(typeof rec?.run === 'string' ? { run: rec.run } : {}), uploads };
}

export interface RunStopped {
  stopped: boolean;
  run?: string;
  uploads: RunUpload[];
}

/**
 * Stops the process a run record names (SIGTERM, 60 s, SIGKILL) and removes the record; returns
 * whether it stopped one, and the run and uploads the record named once that process was gone
 * (a run that stops on SIGTERM aborts its own upload; a killed one's stays, named there).
 */
export async function stopRunAt(file: string, uid?: number): Promise<RunStopped> {
  const pid = await liveRun(file, uid);
  if (pid !== null) {
    const start = processStart(pid) ?? undefined;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 600 && recordedAlive(pid, start); i++) await new Promise((r) => setTimeout(r, 100));
    if (recordedAlive(pid, start)) process.kill(pid, 'SIGKILL');
  }
  const named = await recordedUploads(file);
  await rm(file, { force: true });
  return { stopped: pid !== null, ...named };
}

async function stopRun(ctx: StoreContext, name: string): Promise<RunStopped> {
  const f = runFile(ctx, name);
  return f ? stopRunAt(f) : { stopped: false, uploads: [] };
}

/** the keys a backup of `volname` writes: the archive first, then its sidecars */
export function archiveKeys(ctx: StoreContext, volname: string): string[] {
  const key = keyOf(ctx, parseVolname(volname));
  return [key, key + MANIFEST_SUFFIX, key + INDEX_SUFFIX, key + NOTES_SUFFIX, key + PROTECTED_SUFFIX];
}

/**
 * Aborts the uploads a run record names, of `keys` only: the ids the run itself noted, never
 * another writer's upload of the same key. `done`: ids settled already (skipped), to which those
 * settled here are added. Stops at the first failure but NoSuchUpload (completed, or aborted by
 * the run itself): a gateway that does not answer one abort answers none; `failed` is that error.
 */
export async function abortRecorded(
  ctx: StoreContext,
  uploads: readonly RunUpload[],
  keys: readonly string[],
  done: Set<string>,
  o: { signal?: AbortSignal } = {},
): Promise<{ aborted: number; failed?: Error }> {
  let aborted = 0;
  for (const u of uploads) {
    if (!keys.includes(u.key) || done.has(u.uploadId)) continue;
    try {
      await ctx.client.abortMultipartUpload(u.key, u.uploadId, o.signal ? { signal: o.signal } : {});
      aborted++;
    } catch (e) {
      if ((e as { code?: string }).code !== 'NoSuchUpload') return { aborted, failed: e as Error };
    }
    done.add(u.uploadId);
  }
  return { aborted };
}

/**
 * Stops a backup still running for `volname`, aborts the multipart uploads its run created and
 * deletes the archive and its sidecars (not a `.log`: it may belong to another archive of that
 * base name) — only when the archive is the one run `run` made (provider-archive.ts RUN_META): an
 * archive of that name without the run's id is another writer's backup, and stays (`kept`,
 * `keptWhy`). An incomplete upload of those keys is aborted only when it is the run's: named in
 * its run record, or remembered by this node with its writer gone (abandoned-uploads.ts). Any
 * other may be another writer's still under way and is left (`left`): an orphan among them goes
 * with the lifecycle rule or `pve-s3-maintenance --action abort-uploads`.
 */
export async function discardBackup(
  ctx: StoreContext,
  volname: string,
  run?: string,
): Promise<{ removed: string[]; aborted: number; left: number; stopped: boolean; kept?: string; keptWhy?: string }> {
  const v = parseVolname(volname);
  const records = [await stopRun(ctx, v.name)];
  if (v.guestType === 'lxc' && v.format === 'tar' && v.isStdName) {
    // a container backup runs as the container's root and records itself in its work directory
    const { removeCtWorkDir } = await import('./ct-backup-dir.js');
    records.push((await removeCtWorkDir(ctx, volname)).run);
  }
  const stopped = records.some((r) => r.stopped);
  const keys = archiveKeys(ctx, volname);
  const key = keys[0]!;
  let aborted = 0;
  const ours = new Set<string>();
  for (const rec of records) {
    if (rec.run !== run) continue;
    const r = await abortRecorded(ctx, rec.uploads, keys, ours);
    if (r.failed) throw r.failed;
    aborted += r.aborted;
  }
  const { abortAbandoned } = await import('./abandoned-uploads.js');
  aborted += await abortAbandoned(ctx, { keys, settled: ours });
  const others = (await ctx.client.listMultipartUploads({ prefix: key })).filter((u) => keys.includes(u.key) && !ours.has(u.uploadId));
  const left = others.length;
  if (left > 0) {
    ctx.logger.warn(
      `backup discard: left ${left} incomplete multipart upload(s) of '${key}' that this backup run did not make: another writer's backup under that name still under way, or one left behind, which the lifecycle rule or pve-s3-maintenance --storage ${ctx.settings.storageId} --action abort-uploads removes`,
    );
  }
  const removed: string[] = [];
  const archive = await headOrNull(ctx, key);
  if (archive === null) return { removed, aborted, left, stopped };
  const madeBy = archive.metadata[RUN_META];
  if (run === undefined || madeBy !== run) {
    const keptWhy = `it was not made by this backup run (${madeBy === undefined ? 'it carries no run id' : 'another run id'}): another writer stored a backup under that name`;
    ctx.logger.warn(`backup discard: keeping '${key}': ${keptWhy}`);
    return { removed, aborted, left, stopped, kept: key, keptWhy };
  }
  // the archive last: a discard cut short leaves it, with its run id, for the next one to find
  for (const k of [...keys.slice(1), key]) {
    const there = await ctx.client.headObject(k).then(() => true, () => false);
    await deleteQuiet(ctx, k);
    if (there) removed.push(k);
  }
  return { removed, aborted, left, stopped };
}
