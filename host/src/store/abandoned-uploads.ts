/**
 * Multipart uploads this node may have to abort itself, because nobody else will before the
 * lifecycle rule and the plugin's daily cleanup take uploads older than abort_incomplete_days
 * (7 days; for a VM's backup that can be hundreds of GB kept, and billed, for a week):
 *
 * - an upload whose abort failed: the gateway died (or stayed silent) in the middle of it, so the
 *   upload that failed could not undo itself. It is abandoned at once.
 * - an upload that cannot be resumed (a stream's: `pve-s3-backup --source -`, the protocol's
 *   upload from stdin, a Backup Provider VM backup; a replacement's server-side copy), while it
 *   runs: the next run gets a new object name, so a writer killed with SIGKILL (OOM killer, node
 *   reset, `kill -9` of a hung job) leaves its parts to nobody. It is remembered with its writer's
 *   volume lock (volume-lock.ts) and forgotten when it completes or is aborted; it is abandoned
 *   once that lock is free. An upload from a file is not remembered: its resume journal
 *   (transfer/journal.ts) continues it on the next run.
 *
 * The next multipart upload of the storage from this node and the stale-upload cleanup abort the
 * abandoned ones first (abortAbandoned), once the gateway answers; an upload whose writer still
 * holds its lock is never touched.
 *
 * `<path>/.pve-s3/multipart-uploads/<hash of the upload id>.json`: `{ "key", "uploadId", "at",
 * "writer"? }`, one file per upload, written whole and renamed, so that concurrent uploads never
 * rewrite each other's records. Without a path (commands run from S3_* alone) nothing is
 * remembered: a failed abort's warning names `pve-s3-maintenance --action abort-uploads
 * --older-than 1h`, and a killed stream's parts wait for that or the lifecycle rule, as before.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { laterAbort } from '../transfer/transfer-client.js';
import { writeJsonAtomic } from '../util/json-file.js';
import { STATE_DIR, stateDir } from './state-dir.js';
import type { StoreContext } from './types.js';

const DIR = 'multipart-uploads';
/** the list an earlier version kept, of abort failures only: taken over on the next sweep */
const OLD_FILE = 'abandoned-uploads.json';

interface Remembered {
  key: string;
  uploadId: string;
  /** when it was remembered (seconds) */
  at: number;
  /** the volume lock its writer holds while it runs; absent: abandoned already (its abort failed) */
  writer?: string;
}

/** Uploads this process remembered and has not finished: theirs is the writer's lock it holds. */
const liveHere = new Set<string>();

function dir(ctx: StoreContext): string | undefined {
  return ctx.settings.cacheDir !== undefined ? join(ctx.settings.cacheDir, STATE_DIR, DIR) : undefined;
}

const fileOf = (d: string, uploadId: string): string => join(d, `${createHash('sha256').update(uploadId).digest('hex').slice(0, 32)}.json`);

const isRemembered = (a: unknown): a is Remembered =>
  typeof (a as Remembered)?.key === 'string' && typeof (a as Remembered)?.uploadId === 'string' && ((a as Remembered).writer === undefined || typeof (a as Remembered).writer === 'string');

async function put(ctx: StoreContext, d: string, r: Remembered): Promise<void> {
  stateDir(ctx.settings.cacheDir!, DIR);
  await writeJsonAtomic(fileOf(d, r.uploadId), r);
}

/** A new upload that cannot be resumed, under the writer's lock `writer` (a lock file). */
export async function rememberUpload(ctx: StoreContext, key: string, uploadId: string, writer: string): Promise<void> {
  const d = dir(ctx);
  if (d === undefined) return;
  liveHere.add(uploadId);
  // only the prompt cleanup after a kill is lost: the lifecycle rule and the daily cleanup still come
  await put(ctx, d, { key, uploadId, at: Math.floor(Date.now() / 1000), writer }).catch(() => undefined);
}

/** The upload completed or was aborted: nothing to do for it any more. */
export async function forgetUpload(ctx: StoreContext, uploadId: string): Promise<void> {
  liveHere.delete(uploadId);
  const d = dir(ctx);
  if (d !== undefined) await rm(fileOf(d, uploadId), { force: true }).catch(() => undefined);
}

/** The abort of this upload failed: remember it as abandoned where this process can (not without a
 *  path, nor where it may not write: a container's backup runs as the container's root), and
 *  warn where its parts stay and what aborts them. Returns those words (laterAbort), which the
 *  failed upload's message ends with too. */
export async function rememberAbandoned(ctx: StoreContext, key: string, uploadId: string, why: string): Promise<string> {
  liveHere.delete(uploadId);
  const d = dir(ctx);
  // only the prompt cleanup is lost: the lifecycle rule and the daily cleanup still come
  const remembered =
    d !== undefined &&
    (await put(ctx, d, { key, uploadId, at: Math.floor(Date.now() / 1000) }).then(
      () => true,
      () => false,
    ));
  const later = laterAbort({ remembered, storageId: ctx.settings.storageId });
  ctx.logger.warn(`the incomplete multipart upload of '${key}' could not be aborted (${why}): its parts stay in bucket ${ctx.settings.bucket}; ${later}`);
  return later;
}

/** The records in `d`, the earlier version's list taken over first. */
async function readAll(ctx: StoreContext, d: string): Promise<Array<{ file: string; r: Remembered }>> {
  const old = join(ctx.settings.cacheDir!, STATE_DIR, OLD_FILE);
  const listed = await readFile(old, 'utf8').then((t) => JSON.parse(t) as unknown, () => null);
  if (listed !== null) {
    const taken = await Promise.all(
      (Array.isArray(listed) ? listed.filter(isRemembered) : []).map((a) => put(ctx, d, { key: a.key, uploadId: a.uploadId, at: typeof a.at === 'number' ? a.at : 0 }).then(() => true, () => false)),
    );
    if (taken.every(Boolean)) await rm(old, { force: true }).catch(() => undefined);
  }
  const out: Array<{ file: string; r: Remembered }> = [];
  for (const name of (await readdir(d).catch(() => [] as string[])).sort()) {
    if (!name.endsWith('.json')) continue;
    const file = join(d, name);
    const r = await readFile(file, 'utf8').then((t) => JSON.parse(t) as unknown, () => null);
    // unreadable: a record nobody can act on (a torn write is never one: records are renamed into place)
    if (!isRemembered(r)) await rm(file, { force: true }).catch(() => undefined);
    else out.push({ file, r });
  }
  return out;
}

/**
 * Aborts the abandoned uploads remembered here: those whose abort failed, and those whose writer
 * is gone (its lock free); with `keys`, only those of these keys; `settled`: upload ids the caller
 * aborted already, whose records only go (uncounted). Those the gateway still cannot abort stay
 * remembered. Returns how many are gone (aborted now, or already: NoSuchUpload, as an upload that
 * completed meanwhile).
 */
export async function abortAbandoned(ctx: StoreContext, o: { keys?: readonly string[]; settled?: ReadonlySet<string> } = {}): Promise<number> {
  const d = dir(ctx);
  if (d === undefined) return 0;
  const { writerGone } = await import('./volume-lock.js');
  const gone: string[] = [];
  for (const { file, r } of await readAll(ctx, d)) {
    if (o.keys !== undefined && !o.keys.includes(r.key)) continue;
    if (o.settled?.has(r.uploadId)) {
      await rm(file, { force: true }).catch(() => undefined);
      continue;
    }
    if (r.writer !== undefined && (liveHere.has(r.uploadId) || !(await writerGone(ctx.settings.cacheDir!, r.writer)))) continue;
    try {
      await ctx.client.abortMultipartUpload(r.key, r.uploadId);
    } catch (e) {
      if ((e as { code?: string }).code !== 'NoSuchUpload') continue;
    }
    await rm(file, { force: true }).catch(() => undefined);
    gone.push(r.key);
  }
  if (gone.length > 0) ctx.logger.info('aborted multipart uploads left by failed or killed uploads', { count: gone.length, keys: gone });
  return gone.length;
}
