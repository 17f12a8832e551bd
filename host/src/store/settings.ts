/** StoreSettings from a resolved StorageConfig: the one mapping both front doors use. */
import type { StorageConfig } from '../config/types.js';
import type { StoreSettings } from './types.js';

export function storeSettingsFrom(cfg: StorageConfig, o: { storageId?: string } = {}): StoreSettings {
  const s: StoreSettings = {
    storageId: o.storageId ?? cfg.storageId ?? 'env',
    bucket: cfg.bucket,
    prefix: cfg.prefix,
    chunkSizeMB: cfg.multipartChunkSizeMB,
    concurrency: cfg.maxConcurrentUploads,
    lifecycle: {
      enabled: cfg.lifecycle.enabled,
      abortIncompleteDays: cfg.lifecycle.abortIncompleteDays,
      ...(cfg.lifecycle.transitionDays !== undefined ? { transitionDays: cfg.lifecycle.transitionDays } : {}),
      ...(cfg.lifecycle.glacierDays !== undefined ? { glacierDays: cfg.lifecycle.glacierDays } : {}),
    },
  };
  if (cfg.storageClass) s.storageClass = cfg.storageClass;
  if (cfg.sse) s.put = { sse: cfg.sse };
  if (cfg.path) s.cacheDir = cfg.path;
  s.keepLocal = cfg.keepLocal;
  // PVE applies bwlimit's `restore` (else `default`) to restores; uploads from vzdump have their own
  const bw = cfg.bwlimit?.restore ?? cfg.bwlimit?.default;
  if (bw !== undefined && bw > 0) s.downloadBwlimitKiB = Math.max(1, Math.round(bw));
  return s;
}
