/**
 * Request headers for object writes (metadata, SSE, storage class, Object Lock) and ObjectInfo
 * from response headers. Metadata values travel as RFC 2047 encoded words when they are not
 * plain printable ASCII: HTTP headers cannot carry UTF-8 reliably, and AWS itself answers with
 * this encoding for such values.
 */
import { parseRestoreHeader } from './restore.js';
import { Crc32c, Crc64Nvme, Md5 } from '../wasm/digests.js';
import { crc32cBase64, crc64Base64, toBase64 } from '../wasm/encoding.js';
import { s3EncodePath } from '../wasm/signer.js';
import { ConfigError } from '../util/errors.js';
import type { ObjectInfo, PutOptions, SseOptions } from './types.js';
import { normalizeETag } from './xml.js';

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

export function contentMd5(body: Uint8Array): string {
  return toBase64(Md5.hash(body));
}

/** RFC 2047 "B" encoded word for values HTTP cannot carry as they are. */
export function encodeMetaValue(v: string): string {
  // the signer (like every S3 server) trims values and collapses space runs: such values would change
  const plain = /^([\x21-\x7e]+( [\x21-\x7e]+)*)?$/.test(v) && !v.includes('=?');
  return plain ? v : `=?UTF-8?B?${Buffer.from(v, 'utf8').toString('base64')}?=`;
}

const WORD = /=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g;

export function decodeMetaValue(v: string): string {
  // HTTP header bytes arrive as Latin-1; other tools may have sent raw UTF-8, which then reads as
  // mojibake: take it as UTF-8 when it is valid UTF-8
  if (/[\u0080-\u00ff]/.test(v) && !/[^\u0000-\u00ff]/.test(v)) {
    const u = Buffer.from(v, 'latin1').toString('utf8');
    if (!u.includes('\ufffd')) return u;
  }
  if (!v.includes('=?')) return v;
  // adjacent encoded words separated by whitespace join without it (RFC 2047 §6.2)
  const joined = v.replace(/\?=\s+=\?/g, '?==?');
  return joined.replace(WORD, (m, charset: string, enc: string, data: string) => {
    const cs = charset.toLowerCase().split('*')[0];
    if (cs !== 'utf-8' && cs !== 'us-ascii' && cs !== 'iso-8859-1') return m;
    let bytes: Buffer;
    if (enc === 'B' || enc === 'b') bytes = Buffer.from(data, 'base64');
    else bytes = Buffer.from(data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return bytes.toString(cs === 'iso-8859-1' ? 'latin1' : 'utf8');
  });
}

export function metadataHeaders(meta: Record<string, string> | undefined, h: Record<string, string>): void {
  if (!meta) return;
  for (const [name, value] of Object.entries(meta)) {
    if (!TOKEN.test(name)) {
      throw new ConfigError('metadata name', name, "must be letters, digits and !#$%&'*+.^_`|~- (no spaces)");
    }
    if (typeof value !== 'string') throw new ConfigError(`metadata ${name}`, value, 'must be a string');
    h[`x-amz-meta-${name.toLowerCase()}`] = encodeMetaValue(value);
  }
}

/** SSE-C headers: the key itself, its algorithm and its MD5 (also needed to read the object). */
export function sseCHeaders(key: Uint8Array, h: Record<string, string>, prefix = 'x-amz-server-side-encryption-customer-'): void {
  if (key.byteLength !== 32) throw new ConfigError('SSE-C key', `${key.byteLength} bytes`, 'must be 32 bytes (AES-256)');
  h[`${prefix}algorithm`] = 'AES256';
  h[`${prefix}key`] = toBase64(key);
  h[`${prefix}key-md5`] = toBase64(Md5.hash(key));
}

export function sseHeaders(sse: SseOptions | undefined, h: Record<string, string>): void {
  if (!sse) return;
  switch (sse.type) {
    case 'AES256':
      h['x-amz-server-side-encryption'] = 'AES256';
      break;
    case 'aws:kms':
      h['x-amz-server-side-encryption'] = 'aws:kms';
      if (sse.keyId) h['x-amz-server-side-encryption-aws-kms-key-id'] = sse.keyId;
      break;
    case 'SSE-C':
      sseCHeaders(sse.key, h);
      break;
    default:
      throw new ConfigError('sse', (sse as { type: string }).type, 'must be AES256, aws:kms or SSE-C');
  }
}

/** S3 tag rules: at most 10 tags, keys 1..128 and values 0..256 characters; sent as a query string. */
export function taggingHeader(tags: Record<string, string>): string {
  const entries = Object.entries(tags);
  if (entries.length > 10) throw new ConfigError('tags', entries.length, 'at most 10 tags per object');
  for (const [k, v] of entries) {
    if (k.length < 1 || k.length > 128) throw new ConfigError('tag key', k, 'must be 1..128 characters');
    if (v.length > 256) throw new ConfigError(`tag ${k}`, v, 'must be at most 256 characters');
  }
  return entries.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

/** Headers an object write carries (PutObject, CreateMultipartUpload, CopyObject with REPLACE). */
export function putHeaders(o: PutOptions | undefined): Record<string, string> {
  const h: Record<string, string> = {};
  if (!o) return h;
  if (o.contentType) h['content-type'] = o.contentType;
  metadataHeaders(o.metadata, h);
  if (o.storageClass) {
    if (!/^[A-Z0-9_]+$/.test(o.storageClass)) throw new ConfigError('storage_class', o.storageClass, 'must be an S3 storage class such as STANDARD or STANDARD_IA');
    h['x-amz-storage-class'] = o.storageClass;
  }
  if (o.tags && Object.keys(o.tags).length > 0) h['x-amz-tagging'] = taggingHeader(o.tags);
  sseHeaders(o.sse, h);
  if (o.objectLock) {
    if (o.objectLock.mode !== 'GOVERNANCE' && o.objectLock.mode !== 'COMPLIANCE') {
      throw new ConfigError('object lock mode', o.objectLock.mode, 'must be GOVERNANCE or COMPLIANCE');
    }
    h['x-amz-object-lock-mode'] = o.objectLock.mode;
    h['x-amz-object-lock-retain-until-date'] = o.objectLock.retainUntil.toISOString();
    if (o.objectLock.legalHold !== undefined) h['x-amz-object-lock-legal-hold'] = o.objectLock.legalHold ? 'ON' : 'OFF';
  }
  return h;
}

/** Only the SSE-C part of an SSE option matters for reads and parts. */
export function readSseHeaders(sse: SseOptions | undefined, h: Record<string, string>): void {
  if (sse?.type === 'SSE-C') sseCHeaders(sse.key, h);
}

function num(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v.trim());
}

export function objectInfo(key: string, h: Record<string, string>): ObjectInfo {
  const metadata: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith('x-amz-meta-')) metadata[k.slice(11)] = decodeMetaValue(v);
  }
  const info: ObjectInfo = { key, size: num(h['content-length']) ?? 0, etag: normalizeETag(h['etag'] ?? ''), metadata };
  const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(h['content-range'] ?? '');
  if (range) {
    info.contentRange = { start: Number(range[1]), end: Number(range[2]) };
    if (range[3] !== '*') info.size = Number(range[3]);
  }
  if (h['last-modified']) {
    const d = new Date(h['last-modified']);
    if (!Number.isNaN(d.getTime())) info.lastModified = d;
  }
  if (h['content-type']) info.contentType = h['content-type'];
  if (h['x-amz-storage-class']) info.storageClass = h['x-amz-storage-class'];
  if (h['x-amz-version-id']) info.versionId = h['x-amz-version-id'];
  const tagCount = num(h['x-amz-tagging-count']);
  if (tagCount !== undefined) info.tagCount = tagCount;
  const sse = h['x-amz-server-side-encryption'] ?? (h['x-amz-server-side-encryption-customer-algorithm'] ? 'SSE-C' : undefined);
  if (sse) {
    info.sse = { type: sse };
    const kid = h['x-amz-server-side-encryption-aws-kms-key-id'];
    if (kid) info.sse.keyId = kid;
  }
  if (h['x-amz-object-lock-mode'] || h['x-amz-object-lock-retain-until-date'] || h['x-amz-object-lock-legal-hold']) {
    const ru = h['x-amz-object-lock-retain-until-date'] ? new Date(h['x-amz-object-lock-retain-until-date']) : undefined;
    info.objectLock = {
      mode: h['x-amz-object-lock-mode'],
      retainUntil: ru && !Number.isNaN(ru.getTime()) ? ru : undefined,
      legalHold: h['x-amz-object-lock-legal-hold'] ? h['x-amz-object-lock-legal-hold'] === 'ON' : undefined,
    };
  }
  const pc = num(h['x-amz-mp-parts-count']);
  if (pc !== undefined) info.partsCount = pc;
  const restore = parseRestoreHeader(h['x-amz-restore']);
  if (restore) info.restore = restore;
  if (h['x-amz-archive-status']) info.archiveStatus = h['x-amz-archive-status'].trim();
  return info;
}

/**
 * x-amz-copy-source: "/bucket/key" with the key percent-encoded (every byte but the RFC 3986
 * unreserved characters and '/'), as S3 decodes it once.
 */
export function copySource(bucket: string, key: string): string {
  // the canonical-URI encoding is exactly this set, so the signer's encoder serves
  return s3EncodePath(`/${bucket}/${key}`);
}

export type ChecksumAlgorithm = 'CRC32C' | 'CRC64NVME';

/** x-amz-checksum-<alg> header name and value for a body (only when the storage asks for it). */
export function checksumHeader(alg: ChecksumAlgorithm, body: Uint8Array): [string, string] {
  if (alg === 'CRC32C') return ['x-amz-checksum-crc32c', crc32cBase64(Crc32c.hash(body))];
  if (alg === 'CRC64NVME') return ['x-amz-checksum-crc64nvme', crc64Base64(Crc64Nvme.hash(body))];
  throw new ConfigError('checksum_algorithm', alg, 'must be CRC32C or CRC64NVME');
}
