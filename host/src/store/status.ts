/**
 * Storage status. `probe` is what pvestatd can afford every 10 s (one small request); `usage`
 * is remembered from the last full listing; `maintenanceStatus` is the operator's full picture
 * (counts, bytes, oldest/newest backup, incomplete uploads, lifecycle), paid for with listings.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_DIR, CONTENT_TYPES } from '../pve/content.js';
import { classifyKey } from '../pve/volname.js';
import type { LifecycleRule } from '../s3/types.js';
import { STATE_DIR } from './local-cache.js';
import { listUploads, uploadBytes } from './multipart.js';
import type { Content, StoreContext } from './types.js';

/** S3 reports no capacity; PVE needs one. 1 PiB is "plenty" without overflowing anything. */
export const NOMINAL_AVAIL = 2 ** 50;

/** One ListObjectsV2 of at most one key: proves reachability, credentials and the bucket. */
export async function probe(ctx: StoreContext): Promise<void> {
  await ctx.client.listObjects({ prefix: ctx.settings.prefix, maxKeys: 1 });
}

export async function readUsage(ctx: StoreContext): Promise<number> {
  if (ctx.settings.cacheDir === undefined) return 0;
  try {
    const u = JSON.parse(await readFile(join(ctx.settings.cacheDir, STATE_DIR, 'usage.json'), 'utf8')) as { used?: unknown };
    return typeof u.used === 'number' && u.used >= 0 ? u.used : 0;
  } catch {
    return 0;
  }
}

export async function writeUsage(ctx: StoreContext, used: number): Promise<void> {
  if (ctx.settings.cacheDir === undefined) return;
  try {
    const dir = join(ctx.settings.cacheDir, STATE_DIR);
    await mkdir(dir, { recursive: true });
    const tmp = join(dir, `usage.json.tmp.${process.pid}`);
    await writeFile(tmp, JSON.stringify({ used, at: Math.floor(Date.now() / 1000) }));
    await rename(tmp, join(dir, 'usage.json'));
  } catch (e) {
    // usage is a nicety for the GUI; never fail an operation over it
    ctx.logger.warn('cannot record usage', { error: (e as Error).message });
  }
}

export interface PveStatus {
  active: boolean;
  total: number;
  used: number;
  avail: number;
}

export async function pveStatus(ctx: StoreContext): Promise<PveStatus> {
  await probe(ctx);
  const used = await readUsage(ctx);
  return { active: true, total: used + NOMINAL_AVAIL, used, avail: NOMINAL_AVAIL };
}

export interface ContentStats {
  objects: number;
  bytes: number;
  volumes: number;
}

export interface MaintenanceStatus {
  endpointReachable: boolean;
  auth: boolean;
  bucket: string;
  prefix: string;
  contents: Record<Content, ContentStats>;
  totalObjects: number;
  totalBytes: number;
  backups: { count: number; oldest: { volname: string; ctime: number } | null; newest: { volname: string; ctime: number } | null };
  multipart: { count: number; bytes: number };
  lifecycle: LifecycleRule[] | null;
}

export async function maintenanceStatus(ctx: StoreContext): Promise<MaintenanceStatus> {
  await probe(ctx); // errors (auth, bucket, network) surface here with their own message
  const contents = {} as Record<Content, ContentStats>;
  let totalObjects = 0;
  let totalBytes = 0;
  let oldest: { volname: string; ctime: number } | null = null;
  let newest: { volname: string; ctime: number } | null = null;
  let backupCount = 0;
  for (const c of CONTENT_TYPES) {
    const st: ContentStats = { objects: 0, bytes: 0, volumes: 0 };
    for await (const o of ctx.client.listAll({ prefix: ctx.settings.prefix + CONTENT_DIR[c] })) {
      st.objects++;
      st.bytes += o.size;
      const k = classifyKey(ctx.settings.prefix, o.key);
      if (k.kind !== 'volume') continue;
      st.volumes++;
      if (c === 'backup') {
        backupCount++;
        const ctime = k.volume.ctime ?? Math.floor(o.lastModified.getTime() / 1000);
        if (!oldest || ctime < oldest.ctime) oldest = { volname: k.volume.volname, ctime };
        if (!newest || ctime > newest.ctime) newest = { volname: k.volume.volname, ctime };
      }
    }
    contents[c] = st;
    totalObjects += st.objects;
    totalBytes += st.bytes;
  }
  await writeUsage(ctx, totalBytes);
  const multipart = { count: 0, bytes: 0 };
  for await (const u of listUploads(ctx)) {
    multipart.count++;
    multipart.bytes += await uploadBytes(ctx, u).catch(() => 0);
  }
  let lifecycle: LifecycleRule[] | null;
  try {
    lifecycle = await ctx.client.getBucketLifecycle();
  } catch (e) {
    const code = (e as { code?: string }).code;
    lifecycle = code === 'NoSuchLifecycleConfiguration' ? [] : null;
  }
  return {
    endpointReachable: true,
    auth: true,
    bucket: ctx.settings.bucket,
    prefix: ctx.settings.prefix,
    contents,
    totalObjects,
    totalBytes,
    backups: { count: backupCount, oldest, newest },
    multipart,
    lifecycle,
  };
}
