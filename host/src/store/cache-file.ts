/**
 * The listing's side caches (notes by ETag, range bounds, trust verdicts) are written whole under
 * a temporary name and renamed, so a reader sees the old file or the new one, never half of one.
 * They only save requests: a listing never fails because one cannot be written.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import type { StoreContext } from './types.js';

/** Writes `doc` as JSON to `file` (0600); false, after a warning naming `what`, when it cannot. */
export function saveCacheFile(ctx: StoreContext, file: string, doc: unknown, what: string): boolean {
  const tmp = `${file}.${process.pid}.${Math.random().toString(16).slice(2, 10)}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify(doc), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, file);
    return true;
  } catch (e) {
    rmSync(tmp, { force: true });
    ctx.logger.warn(`cannot write the ${what}`, { file, error: (e as Error).message });
    return false;
  }
}

/** How often a cold listing writes what it has fetched so far. */
export const CHECKPOINT_MS = 1000;

/**
 * Calls `save` every CHECKPOINT_MS while a listing fetches what its caches lack, so that a listing
 * killed part way (pveproxy ends an API call after 30 s, and a cold listing of thousands of
 * backups may take longer) leaves what it fetched to the next one instead of nothing. The
 * returned function stops it. The timer keeps no process alive.
 */
export function checkpoints(save: () => void): () => void {
  const t = setInterval(save, CHECKPOINT_MS);
  t.unref();
  return () => clearInterval(t);
}
