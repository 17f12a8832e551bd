/**
 * The cheap half of status, kept apart so that pvestatd's `status` (every 10 s per storage)
 * loads nothing but this: one small request, and the usage remembered from the last full listing.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { STATE_DIR } from './state-dir.js';
import type { StoreContext } from './types.js';

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

