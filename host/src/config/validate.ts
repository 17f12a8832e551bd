/**
 * Checks a set of raw `key value` strings (a storage.cfg section after merging flags/env) against
 * schema.ts, then the rules that span keys. Every refusal is a ConfigError naming the key, the
 * value and what is allowed; a secret is never echoed.
 */
import { ConfigError } from '../util/errors.js';
import type { ContentType } from '../pve/content.js';
import type { PruneKeep } from '../pve/prune.js';
import { type Provider, type ProviderSetting, resolveProvider } from '../s3/providers.js';
import type { RestoreTier } from '../s3/restore.js';
import {
  type ChecksumAlgorithm,
  type EndpointParts,
  type LockMode,
  SCHEMA,
  type SseType,
  type StorageClass,
} from './schema.js';

/** Normalised values of the keys present in the input (absent keys stay absent: no defaults). */
export interface ValidatedProps {
  bucket?: string;
  endpoint?: EndpointParts;
  region?: string;
  access_key?: string;
  secret_key?: string;
  prefix?: string;
  storage_class?: StorageClass;
  multipart_chunk_size?: number;
  max_concurrent_uploads?: number;
  connection_timeout?: number;
  server_side_encryption?: SseType;
  kms_key_id?: string;
  lifecycle_enabled?: boolean;
  transition_days?: number;
  glacier_days?: number;
  force_path_style?: boolean;
  use_ssl?: boolean;
  ca_file?: string;
  tls_verify?: boolean;
  tls_fingerprint?: string;
  checksum_algorithm?: ChecksumAlgorithm;
  provider?: ProviderSetting;
  lock_days?: number;
  lock_mode?: LockMode;
  restore_tier?: RestoreTier;
  restore_days?: number;
  request_timeout?: number;
  stall_timeout?: number;
  keep_local?: boolean;
  cache_max_size?: number;
  cache_max_age?: number;
  abort_incomplete_days?: number;
  path?: string;
  content?: ContentType[];
  nodes?: string[];
  disable?: boolean;
  shared?: boolean;
  'prune-backups'?: PruneKeep;
  'max-protected-backups'?: number;
  bwlimit?: Record<string, number>;
}

export interface ValidateOptions {
  /** keys not in the schema: 'error' (default) or 'ignore' (reported through onUnknown) */
  unknown?: 'error' | 'ignore';
  onUnknown?(key: string): void;
}

/** Validates every key present in `props`, then the cross-key rules. Throws the first ConfigError. */
export function validateStorage(
  props: Readonly<Record<string, string | undefined>>,
  o: ValidateOptions = {},
): ValidatedProps {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(props)) {
    if (raw === undefined || key === 'type') continue;
    const def = SCHEMA.get(key);
    if (!def) {
      if (o.unknown === 'ignore') {
        o.onUnknown?.(key);
        continue;
      }
      throw new ConfigError(
        key,
        /secret|password|token/i.test(key) ? '<hidden>' : raw,
        'unknown key; see docs/CONFIG.md for the keys of an s3 storage',
      );
    }
    out[key] = def.parse(raw);
  }
  const v = out as ValidatedProps;
  checkCrossKeys(v);
  return v;
}

function checkCrossKeys(v: ValidatedProps): void {
  if (v.kms_key_id !== undefined && v.server_side_encryption !== 'aws:kms') {
    throw new ConfigError(
      'kms_key_id',
      v.kms_key_id,
      `only allowed with server_side_encryption aws:kms (it is ${v.server_side_encryption ?? 'unset'})`,
    );
  }
  if (v.transition_days !== undefined && v.glacier_days !== undefined && v.glacier_days <= v.transition_days) {
    throw new ConfigError(
      'glacier_days',
      v.glacier_days,
      `must be greater than transition_days (${v.transition_days}): objects move to STANDARD_IA first, then to GLACIER`,
    );
  }
  if (v.endpoint?.scheme !== undefined && v.use_ssl !== undefined && (v.endpoint.scheme === 'https') !== v.use_ssl) {
    throw new ConfigError(
      'use_ssl',
      v.use_ssl ? 1 : 0,
      `contradicts the endpoint's scheme ${v.endpoint.scheme}://; drop use_ssl or the scheme`,
    );
  }
  if (v.lock_mode !== undefined && v.lock_days === undefined) {
    throw new ConfigError('lock_mode', v.lock_mode, 'only meaningful with lock_days (the retention in days): set lock_days too, or remove lock_mode');
  }
  checkProvider(v);
  if (v.endpoint?.scheme === 'http' || v.use_ssl === false) {
    const tlsKey = v.ca_file !== undefined ? 'ca_file' : v.tls_fingerprint !== undefined ? 'tls_fingerprint' : undefined;
    if (tlsKey) {
      throw new ConfigError(tlsKey, (v as Record<string, unknown>)[tlsKey], 'only meaningful with https (use_ssl 1)');
    }
  }
}

const MiB = 1024 * 1024;

/**
 * What the provider (docs/PROVIDERS.md) would refuse on every upload is refused here, once, with
 * the provider named: better than the same server error on each backup. Lifecycle keys are not:
 * they only matter to the lifecycle action, which says itself what the provider lacks.
 */
function checkProvider(v: ValidatedProps): void {
  const { provider: p, detected } = resolveProvider(v.provider, v.endpoint?.host ?? '');
  const who = `${p.name} (provider ${p.id}${detected ? ', detected from the endpoint' : ''})`;
  const escape = detected ? '; if the endpoint is not that, set provider other' : '';
  if (v.storage_class !== undefined && p.storageClasses !== undefined && !p.storageClasses.includes(v.storage_class)) {
    throw new ConfigError(
      'storage_class',
      v.storage_class,
      p.storageClasses.length === 0
        ? `${who} has no storage classes: leave storage_class unset${escape}`
        : `${who} accepts ${p.storageClasses.join(', ')}${escape}`,
    );
  }
  if (v.lock_days !== undefined && p.objectLock === false) {
    throw new ConfigError('lock_days', v.lock_days, `${who} has no S3 Object Lock: remove lock_days${escape}`);
  }
  if (v.server_side_encryption !== undefined && p.sse !== undefined && !p.sse.includes(v.server_side_encryption)) {
    throw new ConfigError(
      'server_side_encryption',
      v.server_side_encryption,
      p.sse.length === 0 ? `${who} offers no server-side encryption by header: leave it unset${escape}` : `${who} accepts ${p.sse.join(', ')}${escape}`,
    );
  }
  if (v.checksum_algorithm !== undefined && p.checksumAlgorithms !== undefined && !p.checksumAlgorithms.includes(v.checksum_algorithm)) {
    throw new ConfigError(
      'checksum_algorithm',
      v.checksum_algorithm,
      p.checksumAlgorithms.length === 0
        ? `${who} does not verify x-amz-checksum-* headers: leave checksum_algorithm unset (pve-s3's manifest still verifies every byte)${escape}`
        : `${who} verifies ${p.checksumAlgorithms.join(', ')}${escape}`,
    );
  }
  const hostRegion = v.endpoint ? p.regionInHost?.exec(v.endpoint.host)?.[1] : undefined;
  if (v.region !== undefined && hostRegion !== undefined && v.region !== hostRegion) {
    throw new ConfigError('region', v.region, `the endpoint ${v.endpoint!.host} is in region ${hostRegion}: set region ${hostRegion}, or leave region unset to take it from the endpoint`);
  }
  const maxMB = maxChunkMB(p);
  if (v.multipart_chunk_size !== undefined && v.multipart_chunk_size > maxMB) {
    throw new ConfigError('multipart_chunk_size', v.multipart_chunk_size, `${who} takes parts of at most ${p.maxPartBytes} bytes: at most ${maxMB} (MiB)${escape}`);
  }
}

/** The largest multipart_chunk_size (MiB) a provider's largest part allows. */
export function maxChunkMB(p: Provider): number {
  return Math.min(5120, Math.floor(p.maxPartBytes / MiB));
}

/** The endpoint as a URL origin: scheme from the endpoint, else use_ssl, else https. */
export function endpointUrl(e: EndpointParts, useSsl?: boolean): string {
  const scheme = e.scheme ?? (useSsl === false ? 'http' : 'https');
  const defaultPort = scheme === 'https' ? 443 : 80;
  const port = e.port !== undefined && e.port !== defaultPort ? `:${e.port}` : '';
  return `${scheme}://${e.host}${port}`;
}
