/**
 * What pve-s3 knows about each S3 implementation, and the one place that decides behaviour by
 * provider: the storage key `provider` (`auto` = from the endpoint's host name) picks a row, and
 * config validation, addressing, the multipart planner, lifecycle and status read it from here.
 * docs/PROVIDERS.md gives the source of every value; a value nobody documented stays undefined
 * here (unknown: nothing is refused on a guess).
 *
 * Pure data and string matching: status loads it, so it imports nothing.
 */

export const PROVIDER_IDS = ['aws', 'minio', 'ceph', 'wasabi', 'b2', 'r2', 'ovh', 'scaleway', 'swift', 'garage', 'other'] as const;
export type ProviderId = (typeof PROVIDER_IDS)[number];

/** The storage key's values: `auto` plus one per provider. */
export const PROVIDER_KEY_VALUES = ['auto', ...PROVIDER_IDS] as const;
export type ProviderSetting = (typeof PROVIDER_KEY_VALUES)[number];

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface Provider {
  readonly id: ProviderId;
  readonly name: string;
  /** host names of its public endpoints, for `provider auto` */
  readonly hosts?: RegExp;
  /** the region encoded in those host names (group 1), used when `region` is not set */
  readonly regionInHost?: RegExp;
  /** the region its signatures use whatever the host says (R2: `auto`) */
  readonly fixedRegion?: string;
  /** `auto` addressing: bucket in the host name (true) or in the path */
  readonly virtualHosted: boolean;
  /** most parts one multipart upload may have */
  readonly maxParts: number;
  /** largest part (and single PUT) it accepts, in bytes */
  readonly maxPartBytes: number;
  /** smallest part but the last, in bytes */
  readonly minPartBytes: number;
  /** every part but the last must have the same size (pve-s3's planner always does so) */
  readonly equalParts: boolean;
  /**
   * x-amz-checksum-* algorithms it verifies; [] = it ignores or refuses them, so setting
   * checksum_algorithm is refused; undefined = not documented, allowed.
   */
  readonly checksumAlgorithms?: readonly ('CRC32C' | 'CRC64NVME')[];
  /** storage_class values it accepts; [] = none (leave it unset); undefined = not documented */
  readonly storageClasses?: readonly string[];
  /** server_side_encryption values it accepts; undefined = not documented */
  readonly sse?: readonly ('AES256' | 'aws:kms')[];
  /** Get/PutObjectTagging and x-amz-tagging work */
  readonly tagging: boolean | undefined;
  /**
   * Bucket lifecycle over the S3 API: rules at all, storage-class transitions, the
   * AbortIncompleteMultipartUpload action. A field left out is not documented.
   */
  readonly lifecycle: { readonly rules?: boolean; readonly transitions?: boolean; readonly abortIncomplete?: boolean };
  /** S3 Object Lock (retention on objects) */
  readonly objectLock: boolean | undefined;
  /** ListObjects version to start with (every listed provider has V2; the client still falls back to V1) */
  readonly listApi: 'v1' | 'v2';
  /** one line for status and messages: what to keep in mind */
  readonly note?: string;
}

const S3_LIMITS = { maxParts: 10_000, maxPartBytes: 5 * GiB, minPartBytes: 5 * MiB } as const;

const AWS_CLASSES = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'GLACIER_IR', 'DEEP_ARCHIVE', 'REDUCED_REDUNDANCY'];

/** One row per provider; docs/PROVIDERS.md has the sources, in the same order. */
export const PROVIDERS: Readonly<Record<ProviderId, Provider>> = {
  aws: {
    id: 'aws',
    name: 'Amazon S3',
    hosts: /(^|\.)amazonaws\.com(\.cn)?$/,
    regionInHost: /(?:^|\.)s3[.-](?:dualstack\.)?([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com(?:\.cn)?$/,
    virtualHosted: true,
    ...S3_LIMITS,
    equalParts: false,
    checksumAlgorithms: ['CRC32C', 'CRC64NVME'],
    storageClasses: AWS_CLASSES,
    sse: ['AES256', 'aws:kms'],
    tagging: true,
    lifecycle: { rules: true, transitions: true, abortIncomplete: true },
    objectLock: true,
    listApi: 'v2',
  },
  minio: {
    id: 'minio',
    name: 'MinIO',
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    storageClasses: ['STANDARD', 'REDUCED_REDUNDANCY'],
    tagging: true,
    lifecycle: { rules: true, transitions: true, abortIncomplete: true },
    objectLock: true,
    listApi: 'v2',
  },
  ceph: {
    id: 'ceph',
    name: 'Ceph RadosGW',
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    tagging: true,
    lifecycle: { rules: true, transitions: true, abortIncomplete: true },
    objectLock: true,
    listApi: 'v2',
    note: 'storage classes are the placement targets the cluster defines; x-amz-checksum-* is verified from Squid (19.2) on',
  },
  wasabi: {
    id: 'wasabi',
    name: 'Wasabi',
    hosts: /(^|\.)wasabisys\.com$/,
    regionInHost: /(?:^|\.)s3\.([a-z]{2}-[a-z]+-\d)\.wasabisys\.com$/,
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    tagging: undefined,
    lifecycle: { rules: true, abortIncomplete: false },
    objectLock: true,
    listApi: 'v2',
    note: 'Wasabi removes incomplete multipart uploads after 30 days itself and bills deleted objects for a minimum storage period',
  },
  b2: {
    id: 'b2',
    name: 'Backblaze B2',
    hosts: /(^|\.)backblazeb2\.com$/,
    regionInHost: /(?:^|\.)s3\.([a-z]{2}-[a-z]+-\d{3})\.backblazeb2\.com$/,
    virtualHosted: false,
    maxParts: 10_000,
    // B2 counts in decimal units: 5 MB .. 5 GB
    maxPartBytes: 5_000_000_000,
    minPartBytes: 5_000_000,
    equalParts: false,
    sse: ['AES256'],
    tagging: undefined,
    lifecycle: { rules: true, transitions: false, abortIncomplete: true },
    objectLock: true,
    listApi: 'v2',
    note: 'B2 has no storage classes; S3 lifecycle expiration hides files (B2 lifecycle rules)',
  },
  r2: {
    id: 'r2',
    name: 'Cloudflare R2',
    hosts: /(^|\.)r2\.cloudflarestorage\.com$/,
    fixedRegion: 'auto',
    virtualHosted: false,
    maxParts: 10_000,
    // "5 MiB less than 5 GiB"
    maxPartBytes: 5 * GiB - 5 * MiB,
    minPartBytes: 5 * MiB,
    equalParts: true,
    checksumAlgorithms: ['CRC32C', 'CRC64NVME'],
    storageClasses: ['STANDARD', 'STANDARD_IA'],
    tagging: undefined,
    lifecycle: { rules: true, transitions: true, abortIncomplete: true },
    objectLock: undefined,
    listApi: 'v2',
    note: 'every part but the last must have the same size (pve-s3 always uploads that way)',
  },
  ovh: {
    id: 'ovh',
    name: 'OVHcloud Object Storage',
    hosts: /(^|\.)cloud\.ovh\.(net|us)$/,
    regionInHost: /(?:^|\.)s3\.([a-z0-9-]+)\.(?:io|perf)\.cloud\.ovh\.(?:net|us)$/,
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    tagging: undefined,
    lifecycle: {},
    objectLock: undefined,
    listApi: 'v2',
    note: 'lifecycle rules only on the .io.cloud.ovh.net endpoints, not on the legacy .perf ones',
  },
  scaleway: {
    id: 'scaleway',
    name: 'Scaleway Object Storage',
    hosts: /(^|\.)scw\.cloud$/,
    regionInHost: /(?:^|\.)s3\.([a-z]{2}-[a-z]{3})\.scw\.cloud$/,
    virtualHosted: false,
    maxParts: 1_000,
    // "5 MB to 5 GB per part": read as decimal, the smaller reading
    maxPartBytes: 5_000_000_000,
    minPartBytes: 5 * MiB,
    equalParts: false,
    tagging: undefined,
    lifecycle: {},
    objectLock: undefined,
    listApi: 'v2',
    note: 'at most 1,000 parts per upload: big archives get bigger parts',
  },
  swift: {
    id: 'swift',
    name: 'OpenStack Swift (s3api)',
    virtualHosted: false,
    // s3api's max_upload_part_num default; Swift's max_file_size is 5 GiB + 2 bytes
    maxParts: 1_000,
    maxPartBytes: 5 * GiB,
    minPartBytes: 5 * MiB,
    equalParts: false,
    checksumAlgorithms: [],
    storageClasses: ['STANDARD'],
    sse: ['AES256'],
    tagging: false,
    lifecycle: { rules: false, transitions: false, abortIncomplete: false },
    objectLock: false,
    listApi: 'v2',
    note: 'no lifecycle, no tagging, no Object Lock; at most 1,000 parts (max_upload_part_num); AES256 needs the encryption middleware',
  },
  garage: {
    id: 'garage',
    name: 'Garage',
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    storageClasses: [],
    sse: [],
    tagging: false,
    lifecycle: { rules: true, transitions: false, abortIncomplete: true },
    objectLock: false,
    listApi: 'v2',
    note: 'no storage classes, tagging, versioning or Object Lock; lifecycle only expires and aborts uploads',
  },
  other: {
    id: 'other',
    name: 'an S3-compatible server',
    virtualHosted: false,
    ...S3_LIMITS,
    equalParts: false,
    tagging: undefined,
    lifecycle: {},
    objectLock: undefined,
    listApi: 'v2',
  },
};

/** The provider whose public endpoints use this host name; `other` for anything unknown. */
export function detectProvider(hostname: string): ProviderId {
  const host = hostname.toLowerCase().replace(/\.$/, '');
  for (const id of PROVIDER_IDS) if (PROVIDERS[id].hosts?.test(host)) return id;
  return 'other';
}

/** `auto` resolved against the endpoint host; an explicit id stays as it is. */
export function resolveProvider(setting: ProviderSetting | undefined, hostname: string): { provider: Provider; detected: boolean } {
  if (setting === undefined || setting === 'auto') return { provider: PROVIDERS[detectProvider(hostname)], detected: true };
  return { provider: PROVIDERS[setting], detected: false };
}

/** The region a provider's endpoint host names, or its fixed signing region; undefined when neither. */
export function regionFor(p: Provider, hostname: string): string | undefined {
  if (p.fixedRegion) return p.fixedRegion;
  return p.regionInHost?.exec(hostname.toLowerCase())?.[1];
}
