/**
 * What the vzdump hook's backup-end stored, for its log-end: a separate process, called by vzdump
 * for a failed backup too. An archive of the right name in the bucket does not show that this
 * job stored it: another cluster sharing the bucket may have (vzdump's names are unique per guest
 * and second on one cluster only), and this job's failure log would then replace that backup's.
 * backup-end leaves `<path>/.pve-s3/hook/<archive>.json` ({ etag }) once its upload is verified;
 * log-end takes it, and uploads the log only while the bucket's archive still has that ETag.
 * A job killed between the two never takes its mark: the next hook run on the storage removes
 * marks older than MARK_MAX_AGE_MS (dropStaleMarks).
 */
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { bareETag } from '../s3/xml.js';
import { writeJsonAtomic } from '../util/json-file.js';
import { stateDir } from './state-dir.js';

const DIR = 'hook';

/**
 * A mark older than this is a killed job's. vzdump runs log-end in the same worker right after
 * the guest's backup-end (PVE::VZDump exec_backup_task): between them only the guest's unlock,
 * the snapshot's removal, its resume or restart with the pre-/post-restart hooks, and the removal
 * of the temporary directory — minutes, an hour for a huge suspend-mode copy. A day is far beyond
 * any of that and still soon enough for a directory nobody looks at.
 */
export const MARK_MAX_AGE_MS = 24 * 3600 * 1000;

function markFile(cacheDir: string, name: string): string {
  return join(stateDir(cacheDir, DIR), `${name}.json`);
}

/** backup-end: `name` is stored and verified, as `etag` */
export async function markStored(cacheDir: string, name: string, etag: string): Promise<void> {
  await writeJsonAtomic(markFile(cacheDir, name), { etag: bareETag(etag) });
}

/** log-end: the ETag backup-end stored `name` as (the mark is removed), or null when it did not */
export async function takeStored(cacheDir: string, name: string): Promise<string | null> {
  const file = markFile(cacheDir, name);
  const mark = await readFile(file, 'utf8').then((t) => JSON.parse(t) as { etag?: unknown }, () => null);
  await rm(file, { force: true });
  return typeof mark?.etag === 'string' && mark.etag !== '' ? mark.etag : null;
}

/**
 * Removes the marks (and a killed write's temporary files) older than MARK_MAX_AGE_MS, never
 * `keep`'s (the running job's own archive); returns how many went. A mark from the future (the
 * clock set back) is a running job's as far as anyone can tell, and stays.
 */
export async function dropStaleMarks(cacheDir: string, o: { keep?: string } = {}): Promise<number> {
  const dir = stateDir(cacheDir, DIR);
  const now = Date.now();
  let dropped = 0;
  for (const n of await readdir(dir).catch(() => [] as string[])) {
    if (o.keep !== undefined && (n === `${o.keep}.json` || n.startsWith(`${o.keep}.json.tmp-`))) continue;
    const f = join(dir, n);
    const st = await lstat(f).catch(() => null);
    if (!st?.isFile() || now - st.mtimeMs <= MARK_MAX_AGE_MS) continue;
    await rm(f, { force: true });
    dropped++;
  }
  return dropped;
}
