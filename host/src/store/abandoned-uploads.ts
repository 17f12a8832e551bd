/**
 * Multipart uploads whose abort failed: the gateway died (or stayed silent) in the middle of an
 * upload, so the upload that failed could not undo itself. Its parts stay in the bucket, billed,
 * until something aborts them; the lifecycle rule and the plugin's daily cleanup only take
 * uploads older than abort_incomplete_days (7 days), which for a VM's backup can be hundreds of
 * GB kept for a week. So this node remembers them, under the storage's path, and the next
 * multipart upload of the storage from this node (the next backup, the background sync) and the
 * stale-upload cleanup abort them first, once the gateway answers again.
 *
 * `<path>/.pve-s3/abandoned-uploads.json`: `[{ "key", "uploadId", "at" }]`, written whole and
 * renamed. Without a path (commands run from S3_* alone) nothing is remembered: the failure's
 * warning names `pve-s3-maintenance --action abort-uploads`.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/json-file.js';
import { stateDir } from './state-dir.js';
import type { StoreContext } from './types.js';

const FILE = 'abandoned-uploads.json';

interface Abandoned {
  key: string;
  uploadId: string;
  /** when the abort failed (seconds) */
  at: number;
}

function file(ctx: StoreContext): string | undefined {
  return ctx.settings.cacheDir !== undefined ? join(stateDir(ctx.settings.cacheDir), FILE) : undefined;
}

async function read(f: string): Promise<Abandoned[]> {
  try {
    const v = JSON.parse(await readFile(f, 'utf8')) as unknown;
    return Array.isArray(v) ? v.filter((a): a is Abandoned => typeof a?.key === 'string' && typeof a?.uploadId === 'string') : [];
  } catch {
    return [];
  }
}

async function write(f: string, list: Abandoned[]): Promise<void> {
  if (list.length === 0) return void (await rm(f, { force: true }));
  await writeJsonAtomic(f, list);
}

/** The abort of this upload failed: remember it, and tell the operator where it stays. */
export async function rememberAbandoned(ctx: StoreContext, key: string, uploadId: string, why: string): Promise<void> {
  const f = file(ctx);
  const how = f !== undefined ? 'the next multipart upload to this storage from this node aborts it once the gateway answers, or' : 'once the gateway answers:';
  ctx.logger.warn(
    `the incomplete multipart upload of '${key}' could not be aborted (${why}): its parts stay in bucket ${ctx.settings.bucket}; ${how} pve-s3-maintenance${ctx.settings.storageId ? ` --storage ${ctx.settings.storageId}` : ''} --action abort-uploads`,
  );
  if (f === undefined) return;
  try {
    const list = await read(f);
    if (!list.some((a) => a.uploadId === uploadId)) list.push({ key, uploadId, at: Math.floor(Date.now() / 1000) });
    await write(f, list);
  } catch {
    // only the prompt cleanup is lost: the lifecycle rule and the daily cleanup still come
  }
}

/**
 * Aborts the uploads remembered here; those the gateway still cannot abort stay remembered.
 * Returns how many are gone (aborted now, or already: NoSuchUpload).
 */
export async function abortAbandoned(ctx: StoreContext): Promise<number> {
  const f = file(ctx);
  if (f === undefined) return 0;
  const list = await read(f);
  if (list.length === 0) return 0;
  const left: Abandoned[] = [];
  for (const a of list) {
    try {
      await ctx.client.abortMultipartUpload(a.key, a.uploadId);
    } catch (e) {
      if ((e as { code?: string }).code !== 'NoSuchUpload') left.push(a);
    }
  }
  const gone = list.length - left.length;
  if (gone > 0) ctx.logger.info('aborted multipart uploads left by failed uploads', { count: gone, keys: list.filter((a) => !left.includes(a)).map((a) => a.key) });
  // a concurrent writer may have added one meanwhile: keep what is in the file and not done here
  const now = await read(f);
  await write(f, [...left, ...now.filter((a) => !list.some((b) => b.uploadId === a.uploadId))]).catch(() => undefined);
  return gone;
}
