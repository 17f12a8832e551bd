/**
 * The cheap half of status, kept apart so that pvestatd's `status` (every 10 s per storage)
 * loads nothing but this: one small request, and the usage remembered from the last full listing.
 * Synchronous file calls on purpose: node:fs/promises costs a status 1 ms to load, for one small
 * file.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { S3Error } from '../s3/errors.js';
import { STATE_DIR, stateDir } from './state-dir.js';
import type { StoreContext } from './types.js';

/** S3 reports no capacity; PVE needs one. 1 PiB is "plenty" without overflowing anything. */
export const NOMINAL_AVAIL = 2 ** 50;

/**
 * Proves reachability, credentials and the bucket with one HeadBucket: no body, so no XML to
 * load or parse. When the server refuses it (a policy may allow listing only under our prefix,
 * and a bodiless 403 cannot tell a bad secret from a denial), one ListObjectsV2 of at most one
 * key under the prefix decides, with the server's own error code and message.
 */
export async function probe(ctx: StoreContext): Promise<void> {
  try {
    await ctx.client.headBucket();
    return;
  } catch (e) {
    // no answer (refused, timed out, TLS) or a failing server: asking differently would not help
    if (!(e instanceof S3Error) || e.status === undefined || e.status >= 500) throw e;
  }
  await ctx.client.listObjects({ prefix: ctx.settings.prefix, maxKeys: 1 });
}

export async function readUsage(ctx: StoreContext): Promise<number> {
  if (ctx.settings.cacheDir === undefined) return 0;
  try {
    const u = JSON.parse(readFileSync(join(ctx.settings.cacheDir, STATE_DIR, 'usage.json'), 'utf8')) as { used?: unknown };
    return typeof u.used === 'number' && u.used >= 0 ? u.used : 0;
  } catch {
    return 0;
  }
}

export async function writeUsage(ctx: StoreContext, used: number): Promise<void> {
  if (ctx.settings.cacheDir === undefined) return;
  try {
    const dir = stateDir(ctx.settings.cacheDir);
    const tmp = join(dir, `usage.json.tmp.${process.pid}`);
    writeFileSync(tmp, JSON.stringify({ used, at: Math.floor(Date.now() / 1000) }));
    renameSync(tmp, join(dir, 'usage.json'));
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

