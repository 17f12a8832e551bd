/** Shapes the S3 client hands to its callers (docs/ARCHITECTURE.md, S3 layer). */
export type SseOptions = { type: 'AES256' } | { type: 'aws:kms'; keyId?: string } | { type: 'SSE-C'; key: Uint8Array };

export interface PutOptions {
  contentType?: string;
  /** names without the x-amz-meta- prefix; values may be any Unicode (RFC 2047 on the wire) */
  metadata?: Record<string, string>;
  storageClass?: string;
  /** object tags (x-amz-tagging); lifecycle rules can select on them */
  tags?: Record<string, string>;
  sse?: SseOptions;
  objectLock?: Retention & { legalHold?: boolean };
  /** send Content-MD5 (Object Lock buckets and some providers require it) */
  contentMd5?: boolean;
  /** the body's SHA-256 when the caller already has it: saves hashing it twice */
  sha256Hex?: string;
  signal?: AbortSignal;
  /** bwlimit on the wire: awaited before each slice of the body goes to the socket */
  pace?: (bytes: number, signal?: AbortSignal) => Promise<void>;
}

/** Object Lock retention of one object version (x-amz-object-lock-* / PutObjectRetention). */
export interface Retention {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  retainUntil: Date;
}

/** GetObjectLockConfiguration: a bucket without one answers ObjectLockConfigurationNotFoundError. */
export interface ObjectLockConfig {
  enabled: boolean;
  defaultRetention?: { mode?: string; days?: number; years?: number };
}

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified?: Date;
  contentType?: string;
  metadata: Record<string, string>;
  storageClass?: string;
  /** x-amz-tagging-count, when the server reports it */
  tagCount?: number;
  versionId?: string;
  sse?: { type: string; keyId?: string };
  objectLock?: { mode?: string; retainUntil?: Date; legalHold?: boolean };
  /** ranged GETs: the bytes this response holds (inclusive); size stays the whole object's */
  contentRange?: { start: number; end: number };
  /** parts count when the server reports it (x-amz-mp-parts-count) */
  partsCount?: number;
  /** x-amz-restore: a restore of an archived object is running, or its restored copy lasts until expiry */
  restore?: import('./restore.js').RestoreHeader;
  /** x-amz-archive-status of an INTELLIGENT_TIERING object in an archive tier
   *  (ARCHIVE_ACCESS, DEEP_ARCHIVE_ACCESS) */
  archiveStatus?: string;
}

export interface ObjectSummary {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
  storageClass?: string;
}

export interface ListPage {
  objects: ObjectSummary[];
  prefixes: string[];
  isTruncated: boolean;
  /** opaque: pass back as continuationToken to get the next page */
  nextContinuationToken?: string;
}

export interface PartInfo {
  partNumber: number;
  etag: string;
  size: number;
  lastModified?: Date;
}

export interface ListPartsPage {
  parts: PartInfo[];
  isTruncated: boolean;
  nextPartNumberMarker?: number;
}

export interface UploadInfo {
  key: string;
  uploadId: string;
  initiated?: Date;
  storageClass?: string;
}

export interface ListUploadsPage {
  uploads: UploadInfo[];
  prefixes: string[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

export interface DeleteResult {
  deleted: string[];
  errors: { key: string; code: string; message: string }[];
}

/** One lifecycle rule; only the fields S3 defines, so a get → put round trip keeps them all. */
export interface LifecycleRule {
  id?: string;
  status: 'Enabled' | 'Disabled';
  /** the rule's filter; an empty object (or none) means the whole bucket */
  filter?: {
    prefix?: string;
    tags?: { key: string; value: string }[];
    objectSizeGreaterThan?: number;
    objectSizeLessThan?: number;
  };
  /** the legacy top-level <Prefix> (rules written by old tools) */
  legacyPrefix?: string;
  expiration?: { days?: number; date?: string; expiredObjectDeleteMarker?: boolean };
  transitions?: { days?: number; date?: string; storageClass: string }[];
  noncurrentVersionExpiration?: { noncurrentDays?: number; newerNoncurrentVersions?: number };
  noncurrentVersionTransitions?: { noncurrentDays?: number; storageClass: string; newerNoncurrentVersions?: number }[];
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number };
}
