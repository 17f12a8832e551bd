/**
 * The listing's side caches (notes by ETag, range bounds) are written whole under a temporary
 * name and renamed, so a reader sees the old file or the new one, never half of one. They only
 * save requests: a listing never fails because one cannot be written.
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
