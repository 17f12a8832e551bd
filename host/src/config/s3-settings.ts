/**
 * StorageConfig → the S3Settings of docs/ARCHITECTURE.md (S3 layer). The shape is declared here
 * structurally so config/ does not import from s3/ (arrows point down only); TypeScript checks it
 * against the client's type wherever the two meet.
 */
import type { StorageConfig } from './types.js';

export interface S3SettingsShape {
  endpoint: string;
  region: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  forcePathStyle?: boolean;
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  stallTimeoutMs?: number;
  stallReason?: string;
  tls?: { caFile?: string; insecure?: boolean; fingerprint?: string };
  maxRetries?: number;
  checksumAlgorithm?: 'CRC32C' | 'CRC64NVME';
  provider?: StorageConfig['provider']['id'];
}

export function toS3Settings(cfg: StorageConfig): S3SettingsShape {
  const s: S3SettingsShape = {
    endpoint: cfg.endpoint,
    region: cfg.region,
    bucket: cfg.bucket,
    credentials: { accessKeyId: cfg.accessKey, secretAccessKey: cfg.secretKey },
    connectTimeoutMs: cfg.connectionTimeoutS * 1000,
    requestTimeoutMs: cfg.requestTimeoutS * 1000,
  };
  if (cfg.stallTimeoutS !== undefined) s.stallTimeoutMs = cfg.stallTimeoutS * 1000;
  if (cfg.forcePathStyle !== undefined) s.forcePathStyle = cfg.forcePathStyle;
  const tls: NonNullable<S3SettingsShape['tls']> = {};
  if (cfg.tls.caFile) tls.caFile = cfg.tls.caFile;
  if (!cfg.tls.verify) tls.insecure = true;
  if (cfg.tls.fingerprint) tls.fingerprint = cfg.tls.fingerprint;
  if (Object.keys(tls).length > 0) s.tls = tls;
  if (cfg.checksumAlgorithm) s.checksumAlgorithm = cfg.checksumAlgorithm;
  // a config built by hand (tests, other front doors) may lack it: the client then detects it
  if (cfg.provider) s.provider = cfg.provider.id;
  return s;
}
