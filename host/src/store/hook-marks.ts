/**
 * What the vzdump hook's backup-end stored, for its log-end: a separate process, called by vzdump
 * for a failed backup too. An archive of the right name in the bucket does not show that this
 * job stored it: another cluster sharing the bucket may have (vzdump's names are unique per guest
 * and second on one cluster only), and this job's failure log would then replace that backup's.
 * backup-end leaves `<path>/.pve-s3/hook/<archive>.json` ({ etag }) once its upload is verified;
 * log-end takes it, and uploads the log only while the bucket's archive still has that ETag.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { bareETag } from '../s3/xml.js';
import { writeJsonAtomic } from '../util/json-file.js';
import { stateDir } from './state-dir.js';

const DIR = 'hook';

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
