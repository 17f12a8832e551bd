/**
 * A storage's `path` must be its own. The background sync takes every archive, ISO and template
 * it finds in `<path>/dump`, `<path>/template/…` for a file of this storage waiting to go up, and
 * removes what it uploaded (keep_local 0): with `path /var/lib/vz`, the path of PVE's `local`,
 * it moved local's backups into the bucket, where this storage's prune-backups, not local's, then
 * decided how many stay. Another storage in storage.cfg at the same directory makes the sync stop.
 */
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { configPaths } from '../config/resolve.js';
import { parseStorageCfg } from '../config/storage-cfg.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import type { StoreContext } from './types.js';

const canonical = async (p: string): Promise<string> => realpath(p).catch(() => resolve(p));

/** The other storage of storage.cfg whose `path` is this storage's cache dir, if any. */
export async function storageSharingPath(ctx: StoreContext): Promise<{ id: string; type: string } | null> {
  const dir = ctx.settings.cacheDir;
  if (dir === undefined) return null;
  const file = configPaths().storageCfg;
  // not a PVE node (commands run from S3_* alone): no other storage to share it with
  const text = await readFile(file, 'utf8').catch(() => null);
  if (text === null) return null;
  const mine = await canonical(dir);
  for (const [id, s] of parseStorageCfg(text, { file })) {
    if (id === ctx.settings.storageId || s.props.path === undefined) continue;
    if ((await canonical(s.props.path)) === mine) return { id, type: s.type };
  }
  return null;
}

/** PathShared when another storage uses this storage's `path`: nothing of it is synced. */
export async function assertOwnPath(ctx: StoreContext): Promise<void> {
  const other = await storageSharingPath(ctx);
  if (other === null) return;
  const me = ctx.settings.storageId ?? 'this storage';
  throw new PveS3Error(
    'PathShared',
    `path '${ctx.settings.cacheDir}' of storage '${me}' is also the path of storage '${other.id}' (${other.type}): its files there are not this storage's to upload or remove, so nothing is synced; give '${me}' a path of its own (pvesm set ${me} --path DIR)`,
    { exitCode: EXIT.usage },
  );
}
