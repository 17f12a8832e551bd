/**
 * A StoreContext from a resolved StorageConfig: the S3 client, the store settings and the logger
 * wired the same way for every front door. The client module is imported here, on demand, so a
 * caller that fails validation never pays for loading the HTTP stack.
 */
import type { ManifestKeyLocation } from '../config/manifest-key-location.js';
import type { StorageConfig } from '../config/types.js';
import type { S3Settings } from '../s3/settings.js';
import type { Logger } from '../util/log.js';
import { storeSettingsFrom } from './settings.js';
import type { StoreContext } from './types.js';

export interface OpenStore extends StoreContext {
  /** closes the client's connections (idle sockets would keep a CLI alive) */
  close(): Promise<void>;
}

export async function openStore(
  cfg: StorageConfig,
  o: {
    logger: Logger;
    storageId?: string;
    signal?: AbortSignal;
    /** last word on the client settings (the protocol caps timeouts to its deadline) */
    s3?: (s: S3Settings) => void;
    /** the storage's manifest key file; default: where this node keeps it
     *  (config/manifest-key-location.ts: PVE_S3_MANIFEST_KEY_FILE, else beside the secret) */
    manifestKey?: ManifestKeyLocation;
    /** a line per request retried, for whoever watches (stderr of a CLI or of the plugin's host) */
    retryNotice?: (line: string) => void;
  },
): Promise<OpenStore> {
  const { toS3Settings } = await import('../config/s3-settings.js');
  const s3 = toS3Settings(cfg) as S3Settings;
  o.s3?.(s3);
  const { S3Client } = await import('../s3/client.js');
  const client = new S3Client(s3, { logger: o.logger, ...(o.retryNotice ? { notice: o.retryNotice } : {}) });
  const ctx: OpenStore = {
    client,
    settings: storeSettingsFrom(cfg, o.storageId !== undefined ? { storageId: o.storageId } : {}),
    logger: o.logger,
    close: () => client.close(),
  };
  if (o.signal) ctx.signal = o.signal;
  // every front door opens the store here, so every reader and writer has the same key
  const { configPaths } = await import('../config/resolve.js');
  const { locateManifestKey } = await import('../config/manifest-key-location.js');
  const key = o.manifestKey ?? locateManifestKey({ storageId: o.storageId ?? cfg.storageId, privDir: configPaths().privDir });
  if (key) ctx.settings.manifestKey = key;
  return ctx;
}
