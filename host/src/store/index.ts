/**
 * The store's public surface (docs/ARCHITECTURE.md, Store): the CLIs and the protocol import from
 * here. Modules that load the transfer engine do so inside the functions that need it.
 */
export type { StoreClient, StoreContext, StoreSettings, LifecycleSettings, Volume, Content, GuestType } from './types.js';
export { openStore, type OpenStore } from './open.js';
export { storeSettingsFrom } from './settings.js';
export { listVolumes, type ListOptions } from './list.js';
export { statVolume, getAttribute, setAttribute, deleteVolumes, type AttrName, type DeleteOutcome } from './volumes.js';
export { putVolume, getVolume, streamVolume, cachePathOf, volumeMetadata, type PutVolumeOptions, type GetVolumeResult } from './transfer.js';
export { prunePlan, prune, type PruneEntry, type PruneOutcome } from './prune.js';
export { cleanupByAge, type CleanupItem, type CleanupOutcome } from './cleanup.js';
export { checkIntegrity, type IntegrityItem, type IntegrityReport, type IntegrityStatus } from './integrity.js';
export { maintenanceStatus, providerReport, type MaintenanceStatus, type ContentStats, type ProviderReport } from './status.js';
export { pveStatus, probe, readUsage, NOMINAL_AVAIL, type PveStatus } from './usage.js';
export { lifecycleApply, lifecycleShow, desiredRules, ruleIds, type LifecycleApplyResult, type LifecycleView } from './lifecycle.js';
export { abortStaleUploads, listUploads, type StaleUpload } from './multipart.js';
export { syncLocal, type SyncOutcome } from './sync.js';
export { localPath, readRecord, writeRecord, removeRecord, isSyncedCopy, type CacheRecord } from './local-cache.js';
