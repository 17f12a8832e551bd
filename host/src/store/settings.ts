/** StoreSettings from a resolved StorageConfig: the one mapping both front doors use. */
import { join } from 'node:path';
import type { StorageConfig } from '../config/types.js';
import { STATE_DIR } from './state-dir.js';
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
  if (cfg.lock) s.lock = { ...cfg.lock };
  // a config built by hand (tests) may lack it: the store then uses the schema's defaults
  if (cfg.restore) s.restore = { ...cfg.restore };
  if (cfg.sse) s.put = { sse: cfg.sse };
  if (cfg.path) {
    s.cacheDir = cfg.path;
    // next to the cache records: per node, like the files it resumes
    s.journalDir = join(cfg.path, STATE_DIR, 'upload-journal');
  }
  s.keepLocal = cfg.keepLocal;
  // a config built by hand (tests, other front doors) may lack it: providerOf then asks the client
  if (cfg.provider) s.provider = { ...cfg.provider };
  // PVE applies bwlimit's `restore` (else `default`) to restores; uploads from vzdump have their own
  const bw = cfg.bwlimit?.restore ?? cfg.bwlimit?.default;
  if (bw !== undefined && bw > 0) s.downloadBwlimitKiB = Math.max(1, Math.round(bw));
  // PVE's bwlimit keys name restore/migration/clone/move, none of which is "write a backup or ISO
  // to this storage"; `default` is PVE's limit for every operation without its own key, so
  // uploads take it. `clone`/`move` stay out: they cap disk copies between storages, and a user
  // who throttles those has not asked to throttle backups. vzdump's own bwlimit still throttles
  // the producer; with both set the lower one wins.
  const up = cfg.bwlimit?.default;
  if (up !== undefined && up > 0) s.uploadBwlimitKiB = Math.max(1, Math.round(up));
  return s;
}
