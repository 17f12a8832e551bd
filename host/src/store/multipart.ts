/**
 * Incomplete multipart uploads under the storage prefix: their bytes cost money while invisible to
 * a normal listing, so status reports them and maintenance aborts the stale ones.
 */
import { isOwnKey } from '../pve/volname.js';
import type { UploadInfo } from '../s3/types.js';
import { nowOf, type StoreContext } from './types.js';

/** Our incomplete uploads: under the prefix and in our folders (isOwnKey), not another storage's
 *  that lives below our prefix. */
export async function* listUploads(ctx: StoreContext): AsyncIterable<UploadInfo> {
  const all = await ctx.client.listMultipartUploads({ prefix: ctx.settings.prefix, ...(ctx.signal ? { signal: ctx.signal } : {}) });
  for (const u of all) if (isOwnKey(ctx.settings.prefix, u.key)) yield u;
}

/** Bytes already stored for one upload (sum of its parts). */
export async function uploadBytes(ctx: StoreContext, u: UploadInfo): Promise<number> {
  const parts = await ctx.client.listParts(u.key, u.uploadId);
  return parts.reduce((n, p) => n + p.size, 0);
}

export interface StaleUpload {
  key: string;
  uploadId: string;
  initiated: string | null;
  aborted: boolean;
  error?: string;
}

/** An upload left alone for being younger than the cutoff (or undated): it may still be running. */
export interface YoungerUpload {
  key: string;
  uploadId: string;
  initiated: string | null;
  /** what its parts hold so far (measureKept); null when not asked, or not listed (it finished meanwhile) */
  bytes: number | null;
}

/**
 * Aborts uploads under the prefix initiated more than `olderThanSeconds` ago. Uploads without an
 * initiation date are left alone: we cannot tell a running upload from a stale one. Then the
 * resume journals of this node (the cache dir's) whose upload the server no longer has go too:
 * those of the uploads just aborted, and older ones aborted some other way. A journal younger
 * than the cutoff is kept: its upload may have started after the listing.
 */
export async function abortStaleUploads(
  ctx: StoreContext,
  o: { olderThanSeconds: number; dryRun?: boolean; /** also list what the kept ones hold (a ListParts each: the command shows it; the plugin's daily run has no reader) */ measureKept?: boolean },
): Promise<{ uploads: StaleUpload[]; aborted: number; failed: number; journals: number; dryRun: boolean; younger: YoungerUpload[] }> {
  const cutoff = nowOf(ctx).getTime() - o.olderThanSeconds * 1000;
  const out: StaleUpload[] = [];
  // the uploads this node could not abort when they failed, and those whose writer was killed,
  // go first, whatever their age (abandoned-uploads.ts)
  let aborted = o.dryRun ? 0 : await (await import('./abandoned-uploads.js')).abortAbandoned(ctx);
  if (!o.dryRun && ctx.settings.cacheDir !== undefined) await (await import('./volume-lock.js')).sweepLockFiles(ctx.settings.cacheDir);
  let failed = 0;
  const live = new Set<string>();
  const younger: UploadInfo[] = [];
  for await (const u of listUploads(ctx)) {
    live.add(u.uploadId);
    if (u.initiated === undefined || u.initiated.getTime() >= cutoff) {
      younger.push(u);
      continue;
    }
    const item: StaleUpload = { key: u.key, uploadId: u.uploadId, initiated: u.initiated.toISOString(), aborted: false };
    if (!o.dryRun) {
      try {
        await ctx.client.abortMultipartUpload(u.key, u.uploadId);
        item.aborted = true;
        aborted++;
      } catch (e) {
        // Gone meanwhile (completed or aborted by someone else) is the outcome we wanted.
        if ((e as { code?: string }).code === 'NoSuchUpload') {
          item.aborted = true;
          aborted++;
        } else {
          item.error = (e as Error).message;
          failed++;
        }
      }
    }
    out.push(item);
    if (item.aborted || o.dryRun) live.delete(u.uploadId);
  }
  if (aborted > 0) ctx.logger.info('aborted stale multipart uploads', { count: aborted, prefix: ctx.settings.prefix });
  let journals = 0;
  if (ctx.settings.journalDir !== undefined) {
    const { sweepJournals } = await import('../transfer/journal.js');
    const ours = (j: { bucket?: string; key?: string }) => j.bucket === undefined || (j.bucket === ctx.settings.bucket && isOwnKey(ctx.settings.prefix, j.key ?? ''));
    const swept = await sweepJournals(
      ctx.settings.journalDir,
      (j) => j.mtimeMs < cutoff && ours(j) && (j.uploadId === undefined || !live.has(j.uploadId)),
      { dryRun: o.dryRun === true },
    );
    journals = swept.length;
    if (journals > 0 && !o.dryRun) ctx.logger.info('removed resume journals of uploads that are gone', { count: journals, dir: ctx.settings.journalDir });
  }
  // what stays is said too: a backup killed minutes ago leaves its parts (GiBs, billed) where
  // '0 aborted' alone reads as nothing left
  const kept: YoungerUpload[] = [];
  for (const u of younger) {
    const bytes = o.measureKept === true ? await uploadBytes(ctx, u).catch(() => null) : null;
    kept.push({ key: u.key, uploadId: u.uploadId, initiated: u.initiated?.toISOString() ?? null, bytes });
  }
  return { uploads: out, aborted, failed, journals, dryRun: o.dryRun === true, younger: kept };
}
