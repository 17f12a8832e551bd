/**
 * The integrity manifest: a JSON sidecar `<key>.s3manifest` written after the object is complete
 * (DESIGN.md §3). It is what makes a backup "good": per-part SHA-256 lets a download verify each
 * ranged GET on its own, and the composite digest identifies the whole object in one string.
 *
 * Composite digest: hex(SHA-256(d₁ ‖ d₂ ‖ … ‖ dₙ)) + "-" + n, where dᵢ is the 32-byte binary
 * SHA-256 of part i (the construction S3 uses for its COMPOSITE checksums, in hex). A single-PUT
 * object is one part, so its composite is SHA-256(SHA-256(data)) + "-1" and `sha256` is the
 * plain whole-object digest.
 *
 * Version 2 adds CRC-64/NVME (S3's x-amz-checksum-crc64nvme): `parts[i].crc64` per part and
 * `crc64` for the whole object (the part CRCs combined), 16 lower-case hex digits each. Restores
 * check the CRC by default and the SHA-256 on request (docs/INTEGRITY.md says why); version 1
 * manifests have no CRC and are checked by SHA-256.
 */
import { timingSafeEqual } from 'node:crypto';
import { EXIT, PveS3Error } from '../util/errors.js';
import { Crc64Nvme, hmacSha256, Sha256 } from '../wasm/digests.js';
import { toHex as hex } from '../wasm/encoding.js';
import type { SseOptions } from '../s3/types.js';
import type { TransferClient } from './transfer-client.js';
import { VERSION } from '../util/version.js';
import { MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE } from '../wasm/planner.js';

export const MANIFEST_SUFFIX = '.s3manifest';
export const MANIFEST_FORMAT = 'pve-s3-manifest';
/** what new uploads write; version 1 stays readable */
export const MANIFEST_VERSION = 2;
/**
 * A manifest of 10,000 parts is about 1.6 MiB of JSON. A bigger one is not ours, and parsing it
 * would let a bucket writer choose the memory taken (millions of tiny JSON objects in 20 MiB).
 */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

export interface ManifestPart {
  n: number;
  size: number;
  sha256: string;
  /** CRC-64/NVME of the part (version 2) */
  crc64?: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: 1 | 2;
  key: string;
  size: number;
  /** every part but the last has this size */
  partSize: number;
  multipart: boolean;
  parts: ManifestPart[];
  /** see the file comment */
  compositeSha256: string;
  /** SHA-256 of the whole object when it was computed (always for single PUT) */
  sha256: string | null;
  /** CRC-64/NVME of the whole object, the part CRCs combined (version 2) */
  crc64?: string;
  etag: string;
  uploadedAt: string;
  tool: string;
  /** the caller's metadata (Proxmox: vmid, guest type, backup time, node, format, ...) */
  meta: Record<string, unknown>;
  /** a provider-made archive's frame index sidecar (docs/BACKUP-PROVIDER.md §4) */
  index?: ManifestIndex;
  /** the guest's configuration texts, so Show Configuration reads only the manifest */
  guest?: ManifestGuest;
  /** what the reader found of the signature (never serialised from here: see signing below) */
  mac?: ManifestMac;
}

/** A manifest's signature as checked against the keys the reader holds. */
export interface ManifestMac {
  keyId: string;
  /** valid: the HMAC matches the key of that id; invalid: it does not (edited or forged);
   *  unknown-key: the reader holds no key of that id */
  status: 'valid' | 'invalid' | 'unknown-key';
}

/** The storage's manifest key(s): id → key bytes (docs/ARCHITECTURE.md, "Manifest key"). */
export type ManifestKeys = ReadonlyMap<string, Uint8Array>;

/** The key new manifests are signed with. */
export interface ManifestSigner {
  keyId: string;
  key: Uint8Array;
}

export interface ManifestIndex {
  type: string;
  key: string;
  size: number;
  sha256: string;
}

export interface ManifestGuest {
  type: 'qemu' | 'lxc';
  config?: string;
  firewall?: string;
  devices?: Array<{ name: string; size: number }>;
}

/** fields a caller adds once the object is complete (UploadOptions.manifestExtra) */
export type ManifestExtra = Pick<Manifest, 'index' | 'guest'>;

export function manifestKey(key: string): string {
  return key + MANIFEST_SUFFIX;
}

export function compositeDigest(partDigests: Uint8Array[]): string {
  const h = new Sha256();
  for (const d of partDigests) h.update(d);
  return `${hex(h.digest())}-${partDigests.length}`;
}

/** 16 lower-case hex digits, as the manifest spells a CRC-64. */
export function crc64Hex(c: bigint): string {
  return c.toString(16).padStart(16, '0');
}

/** The whole object's CRC-64/NVME from its parts' CRCs and sizes. */
export function combinedCrc64(crcs: readonly bigint[], sizes: readonly number[]): bigint {
  let c = 0n;
  crcs.forEach((p, i) => (c = i === 0 ? p : Crc64Nvme.combine(c, p, sizes[i]!)));
  return c;
}

export function buildManifest(o: {
  key: string;
  size: number;
  partSize: number;
  multipart: boolean;
  partDigests: Uint8Array[];
  partCrcs: bigint[];
  partSizes: number[];
  sha256: Uint8Array | null;
  etag: string;
  meta?: Record<string, unknown>;
  now?: Date;
  extra?: ManifestExtra;
}): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    key: o.key,
    size: o.size,
    partSize: o.partSize,
    multipart: o.multipart,
    parts: o.partDigests.map((d, i) => ({ n: i + 1, size: o.partSizes[i]!, sha256: hex(d), crc64: crc64Hex(o.partCrcs[i]!) })),
    compositeSha256: compositeDigest(o.partDigests),
    sha256: o.sha256 ? hex(o.sha256) : null,
    crc64: crc64Hex(combinedCrc64(o.partCrcs, o.partSizes)),
    etag: o.etag,
    uploadedAt: (o.now ?? new Date()).toISOString(),
    tool: TOOL,
    meta: o.meta ?? {},
    ...(o.extra?.index ? { index: o.extra.index } : {}),
    ...(o.extra?.guest ? { guest: o.extra.guest } : {}),
  };
}

/**
 * The stored form: the body serialised once with JSON.stringify and, with a signer, that exact
 * text with `,"mac":"<keyId>:<HMAC-SHA256 hex>"` inserted before its final `}` (TEAM contract
 * "Manifest version 2"). The HMAC covers the body's bytes as stored, so a reader checks the
 * bytes it got, never a re-serialisation.
 */
export function serializeManifest(m: Manifest, signer?: ManifestSigner | null): Buffer {
  const { mac: _checked, ...fields } = m;
  const body = JSON.stringify(fields);
  if (!signer) return Buffer.from(body);
  return Buffer.from(signedText(body, signer));
}

/** A JSON object's text signed as a manifest is: its mac inserted before the final `}`. */
export function signedText(body: string, signer: ManifestSigner): string {
  return `${body.slice(0, -1)},"mac":"${signer.keyId}:${hex(hmacSha256(signer.key, body))}"}`;
}

const MAC_SUFFIX = /,"mac":"([0-9a-f]{16}):([0-9a-f]{64})"\}\s*$/;

/** Splits a stored manifest (or other signedText) into the signed body and its mac (checked against `keys`). */
export function splitMac(text: string, keys: ManifestKeys | undefined): { body: string; mac?: ManifestMac } {
  const m = MAC_SUFFIX.exec(text);
  if (!m) return { body: text };
  const body = text.slice(0, m.index) + '}';
  const keyId = m[1]!;
  const key = keys?.get(keyId);
  if (!key) return { body, mac: { keyId, status: 'unknown-key' } };
  const ok = timingSafeEqual(Buffer.from(hex(hmacSha256(key, body))), Buffer.from(m[2]!));
  return { body, mac: { keyId, status: ok ? 'valid' : 'invalid' } };
}

/**
 * Parses and checks a manifest: structure, part numbering, sizes adding up, the composite
 * matching the parts. Anything off is ManifestInvalid (exit 5): a manifest we cannot trust
 * verifies nothing.
 */
export function parseManifest(text: string, key: string, keys?: ManifestKeys): Manifest {
  // only the signed bytes are parsed: what the mac vouches for is exactly what is read
  const { body, mac } = splitMac(text, keys);
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    throw invalid(key, 'not valid JSON');
  }
  if (typeof v !== 'object' || v === null) throw invalid(key, 'not a JSON object');
  const m = v as Record<string, unknown>;
  if (m.format !== MANIFEST_FORMAT) throw invalid(key, `format is '${String(m.format)}', expected '${MANIFEST_FORMAT}'`);
  if (m.version !== 1 && m.version !== 2) throw invalid(key, `version ${String(m.version)} is not supported (this tool reads versions 1 and ${MANIFEST_VERSION})`);
  const v2 = m.version === 2;
  if (v2 && !isHex16(m.crc64)) throw invalid(key, 'crc64 is not 16 hex digits');
  if (!isCount(m.size)) throw invalid(key, 'size is not a non-negative integer');
  if (!isCount(m.partSize) || (m.partSize as number) === 0) throw invalid(key, 'partSize is not a positive integer');
  if (!Array.isArray(m.parts) || m.parts.length === 0) throw invalid(key, 'parts is not a non-empty list');
  // sizes are checked before anything is sized by them (a stream restore buffers a part): S3's
  // own limits, and exactly as many parts as the size and part size make
  if ((m.size as number) > MAX_OBJECT_SIZE) throw invalid(key, `size ${String(m.size)} exceeds S3's maximum object size of ${MAX_OBJECT_SIZE} bytes`);
  if ((m.partSize as number) > MAX_PART_SIZE) throw invalid(key, `partSize ${String(m.partSize)} exceeds S3's maximum part size of ${MAX_PART_SIZE} bytes`);
  if (m.parts.length > MAX_PARTS) throw invalid(key, `${m.parts.length} parts exceed S3's maximum of ${MAX_PARTS}`);
  const expectedParts = Math.max(1, Math.ceil((m.size as number) / (m.partSize as number)));
  if (m.parts.length !== expectedParts) {
    throw invalid(key, `${m.parts.length} parts, but ${String(m.size)} bytes in parts of ${String(m.partSize)} make ${expectedParts}`);
  }
  if (m.multipart !== true && m.parts.length !== 1) throw invalid(key, `${m.parts.length} parts in a single-PUT object`);
  if (typeof m.compositeSha256 !== 'string') throw invalid(key, 'compositeSha256 missing');
  if (m.sha256 !== null && m.sha256 !== undefined && !isHex64(m.sha256)) throw invalid(key, 'sha256 is not 64 hex digits');
  const size = m.size as number;
  const partSize = m.partSize as number;
  const parts = m.parts as unknown[];
  let sum = 0;
  const digests: Uint8Array[] = [];
  const crcs: bigint[] = [];
  const sizes: number[] = [];
  parts.forEach((p, i) => {
    const q = p as Record<string, unknown>;
    if (typeof q !== 'object' || q === null || q.n !== i + 1) throw invalid(key, `part ${i + 1} is missing or out of order`);
    if (!isCount(q.size)) throw invalid(key, `part ${i + 1} has no valid size`);
    if (!isHex64(q.sha256)) throw invalid(key, `part ${i + 1} sha256 is not 64 hex digits`);
    if (v2 && !isHex16(q.crc64)) throw invalid(key, `part ${i + 1} crc64 is not 16 hex digits`);
    const last = i === parts.length - 1;
    if (!last && q.size !== partSize) throw invalid(key, `part ${i + 1} is ${String(q.size)} bytes, expected partSize ${partSize}`);
    if (last && (q.size as number) > partSize) throw invalid(key, `last part is larger than partSize`);
    sum += q.size as number;
    digests.push(Buffer.from(q.sha256 as string, 'hex'));
    if (v2) crcs.push(BigInt(`0x${q.crc64 as string}`));
    sizes.push(q.size as number);
  });
  if (sum !== size) throw invalid(key, `parts add up to ${sum} bytes, manifest says ${size}`);
  if (compositeDigest(digests) !== m.compositeSha256) throw invalid(key, 'compositeSha256 does not match the part digests');
  if (v2 && crc64Hex(combinedCrc64(crcs, sizes)) !== m.crc64) throw invalid(key, 'crc64 does not match the part CRCs');
  return {
    format: MANIFEST_FORMAT,
    version: v2 ? 2 : 1,
    key: typeof m.key === 'string' ? m.key : key,
    size,
    partSize,
    multipart: m.multipart === true,
    // rebuilt, not passed through: a version 1 manifest carries no CRC anyone could rely on
    parts: (parts as ManifestPart[]).map((q) => (v2 ? { n: q.n, size: q.size, sha256: q.sha256, crc64: q.crc64! } : { n: q.n, size: q.size, sha256: q.sha256 })),
    compositeSha256: m.compositeSha256,
    sha256: typeof m.sha256 === 'string' ? m.sha256 : null,
    ...(v2 ? { crc64: m.crc64 as string } : {}),
    etag: typeof m.etag === 'string' ? m.etag : '',
    uploadedAt: typeof m.uploadedAt === 'string' ? m.uploadedAt : '',
    tool: typeof m.tool === 'string' ? m.tool : '',
    meta: typeof m.meta === 'object' && m.meta !== null ? (m.meta as Record<string, unknown>) : {},
    ...parseExtra(m, key),
    ...(mac ? { mac } : {}),
  };
}

function parseExtra(m: Record<string, unknown>, key: string): ManifestExtra {
  const out: ManifestExtra = {};
  if (m.index !== undefined) {
    const i = m.index as Record<string, unknown>;
    if (typeof i !== 'object' || i === null || typeof i.type !== 'string' || typeof i.key !== 'string' || !isCount(i.size) || !isHex64(i.sha256)) {
      throw invalid(key, 'index is not { type, key, size, sha256 }');
    }
    out.index = { type: i.type, key: i.key, size: i.size as number, sha256: i.sha256 as string };
  }
  if (m.guest !== undefined) {
    const g = m.guest as Record<string, unknown>;
    if (typeof g !== 'object' || g === null || (g.type !== 'qemu' && g.type !== 'lxc')) throw invalid(key, 'guest is not { type: qemu|lxc, … }');
    const guest: ManifestGuest = { type: g.type };
    if (typeof g.config === 'string') guest.config = g.config;
    if (typeof g.firewall === 'string') guest.firewall = g.firewall;
    if (Array.isArray(g.devices)) {
      guest.devices = g.devices.map((d: unknown) => {
        const x = d as Record<string, unknown>;
        if (typeof x?.name !== 'string' || !isCount(x.size)) throw invalid(key, 'guest.devices entries are not { name, size }');
        return { name: x.name, size: x.size as number };
      });
    }
    out.guest = guest;
  }
  return out;
}

/**
 * The object's manifest, or null when it has none (uploaded by another tool, or incomplete).
 * Read through the lean GET path (getObjectInto) like the object itself: a restore then sends
 * only lean requests and never loads undici's pool.
 */
export async function readManifest(
  client: TransferClient,
  key: string,
  o: { signal?: AbortSignal; sse?: SseOptions; keys?: ManifestKeys } = {},
): Promise<Manifest | null> {
  const text = await fetchManifestText(client, key, o);
  return text === null ? null : parseManifest(text, key, o.keys);
}

/** The text of the manifest of `key` (null: none), refused past MANIFEST_MAX_BYTES; parseManifest
 *  makes it a Manifest. Apart so the GET need not wait for the keys that check its signature. */
export async function fetchManifestText(client: TransferClient, key: string, o: { signal?: AbortSignal; sse?: SseOptions } = {}): Promise<string | null> {
  const chunks: Buffer[] = [];
  let len = 0;
  try {
    await client.getObjectInto(manifestKey(key), { signal: o.signal, sse: o.sse }, (c) => {
      len += c.length;
      // (the throw ends the request: the rest is never read)
      if (len > MANIFEST_MAX_BYTES) throw invalid(key, `larger than ${MANIFEST_MAX_BYTES} bytes (4 MiB), far more than a manifest of ${MAX_PARTS} parts takes`);
      // a view of the connection's read buffer, valid only during this call
      chunks.push(Buffer.from(c));
    });
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  return Buffer.concat(chunks, len).toString('utf8');
}

export function isNotFound(e: unknown): boolean {
  const c = (e as { code?: unknown } | null)?.code;
  return c === 'NoSuchKey' || c === 'NotFound' || (e as { status?: unknown } | null)?.status === 404 && c !== 'NoSuchBucket';
}

function invalid(key: string, why: string): PveS3Error {
  return new PveS3Error('ManifestInvalid', `manifest '${manifestKey(key)}' is invalid: ${why}; the object cannot be verified`, {
    exitCode: EXIT.integrity,
    key,
  });
}

const isCount = (x: unknown): boolean => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isHex64 = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x);
const isHex16 = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{16}$/.test(x);

const TOOL = `pve-s3/${VERSION}`;
