/**
 * Where a storage's manifest key file is (config/manifest-key.ts reads and writes it). Kept apart
 * so the front doors can name the file without loading the key code: a `status` never needs it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const MANIFEST_KEY_SUFFIX = '.manifest-key';

export function manifestKeyPath(privDir: string, storageId: string): string {
  return join(privDir, `${storageId}${MANIFEST_KEY_SUFFIX}`);
}

/** Where a storage's key is and whether an upload may create it when it is missing. */
export interface ManifestKeyLocation {
  file: string;
  /** true on a PVE node (the priv dir's parent exists) or when the path was given explicitly */
  mayCreate: boolean;
}

/** The key file for a storage: PVE_S3_MANIFEST_KEY_FILE, else `<priv dir>/<id>.manifest-key`
 *  (`privDir` from config/resolve.ts configPaths);
 *  none without a storage id (the commands run with S3_* alone and no --storage). */
export function locateManifestKey(o: { storageId?: string | undefined; privDir: string; env?: NodeJS.ProcessEnv }): ManifestKeyLocation | undefined {
  const env = o.env ?? process.env;
  const explicit = env.PVE_S3_MANIFEST_KEY_FILE;
  if (explicit) return { file: explicit, mayCreate: true };
  if (o.storageId === undefined) return undefined;
  // never make /etc/pve/priv on a machine that is not a PVE node
  const mayCreate = Boolean(env.PVE_S3_PRIV_DIR) || existsSync(dirname(o.privDir));
  return { file: manifestKeyPath(o.privDir, o.storageId), mayCreate };
}
