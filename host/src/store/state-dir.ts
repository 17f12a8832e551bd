/**
 * Where the store keeps its per-node state inside the storage's `path` (cache records, usage,
 * upload journals, the sync lock). Its own module so that `status`, which only reads usage, does
 * not load the cache code to learn one name.
 */
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';

export const STATE_DIR = '.pve-s3';
/** Cache records under the state dir: `records/<content>/<name>.json` (docs/PROTOCOL.md §6). */
export const RECORDS_DIR = 'records';

/**
 * The state directory and every directory in it: root's alone. Records, journals and locks name
 * the backups and hold upload ids; nobody else on the node has any business reading them. The
 * plugin reads it from the rules table generated from here (scripts/gen-perl-rules.mjs).
 */
export const STATE_DIR_MODE = 0o700;

/**
 * `<cacheDir>/.pve-s3[/sub…]`, created where missing with STATE_DIR_MODE (the cache dir itself,
 * if missing, with the default mode: PVE's directories inside it are ordinary ones). A `.pve-s3`
 * an earlier version left 0755 is made 0700; anything there that is not a directory (a symlink)
 * is refused rather than followed.
 */
export function stateDir(cacheDir: string, ...sub: string[]): string {
  mkdirSync(cacheDir, { recursive: true });
  const top = join(cacheDir, STATE_DIR);
  try {
    mkdirSync(top, { mode: STATE_DIR_MODE });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(top);
  if (!st.isDirectory()) {
    throw new PveS3Error('InvalidState', `'${top}' is not a directory: remove it (pve-s3 keeps its cache records there)`, { exitCode: EXIT.failure });
  }
  if ((st.mode & 0o777) !== STATE_DIR_MODE) chmodSync(top, STATE_DIR_MODE);
  if (sub.length === 0) return top;
  const dir = join(top, ...sub);
  mkdirSync(dir, { recursive: true, mode: STATE_DIR_MODE });
  return dir;
}
