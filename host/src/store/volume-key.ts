/**
 * A volume's object key and the error naming a volume that is not there: a leaf, so that the
 * paths that need only these (a restore, an upload, the archive-state check) do not load
 * volumes.ts and, through it, the listing machinery.
 */
import { keyOfName, type VolumeInfo } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import type { StoreContext } from './types.js';

export function keyOf(ctx: StoreContext, v: VolumeInfo): string {
  return keyOfName(ctx.settings.prefix, v.content, v.name);
}

export function notFound(ctx: StoreContext, volname: string, key: string): PveS3Error {
  return new PveS3Error('NoSuchKey', `volume '${volname}' does not exist in storage '${ctx.settings.storageId}' (object '${key}' not found)`, {
    status: 404,
    exitCode: EXIT.notFound,
    key,
  });
}
