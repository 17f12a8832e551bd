/** The resolved configuration of one s3 storage, as every layer above config/ sees it. */
import type { ContentType } from '../pve/content.js';
import type { PruneKeep } from '../pve/prune.js';
import type { ProviderId } from '../s3/providers.js';
import type { RestoreTier } from '../s3/restore.js';
import type { ChecksumAlgorithm, LockMode, StorageClass } from './schema.js';

/** Where a value came from, for messages: `flag`, `env S3_BUCKET`, `storage.cfg`, … */
export type ValueSource = string;

export interface StorageConfig {
  /** the storage id; undefined when running on S3_* variables alone without --storage */
  storageId?: string;
  /** true when storage.cfg had the section; false: flags/env/credentials file only */
  fromStorageCfg: boolean;
  bucket: string;
  /** origin with scheme, no trailing slash: `https://s3.amazonaws.com`, `http://127.0.0.1:7480` */
  endpoint: string;
  region: string;
  accessKey: string;
  /**
   * The secret. A resolved config carries non-enumerable toJSON / util.inspect hooks that print
   * it as [redacted], and the logger knows it (registerSecret), so dumping the config is safe;
   * spreading the object keeps it (so copies still sign requests).
   */
  secretKey: string;
  /** '' or ends with '/', never starts with '/' */
  prefix: string;
  content: ContentType[];
  storageClass?: StorageClass;
  multipartChunkSizeMB: number;
  maxConcurrentUploads: number;
  connectionTimeoutS: number;
  requestTimeoutS: number;
  /** undefined: requestTimeoutS */
  stallTimeoutS?: number;
  sse?: { type: 'AES256' } | { type: 'aws:kms'; keyId?: string };
  lifecycle: { enabled: boolean; transitionDays?: number; glacierDays?: number; abortIncompleteDays: number };
  /** undefined = auto */
  forcePathStyle?: boolean;
  tls: { caFile?: string; verify: boolean; fingerprint?: string };
  checksumAlgorithm?: ChecksumAlgorithm;
  /** S3 Object Lock retention of each archive and manifest (lock_days, lock_mode); absent: none */
  lock?: { days: number; mode: LockMode };
  /** restores of archived objects (restore_tier, restore_days; store/archive-state.ts) */
  restore: { tier: RestoreTier; days: number };
  /** the S3 implementation (docs/PROVIDERS.md); detected: chosen by `provider auto` from the endpoint host */
  provider: { id: ProviderId; detected: boolean };
  keepLocal: boolean;
  cache: { maxSizeGiB: number; maxAgeDays: number };
  path?: string;
  nodes?: string[];
  disable: boolean;
  pruneBackups?: PruneKeep;
  maxProtectedBackups?: number;
  bwlimit?: Record<string, number>;
  /** key → where its value came from (every key set, defaults as 'default') */
  sources: Record<string, ValueSource>;
}
