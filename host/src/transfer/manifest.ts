/**
 * The integrity manifest: a JSON sidecar `<key>.s3manifest` written after the object is complete
 * (DESIGN.md §3). It is what makes a backup "good": per-part SHA-256 lets a download verify each
 * ranged GET on its own, and the composite digest identifies the whole object in one string.
 *
 * Composite digest: hex(SHA-256(d₁ ‖ d₂ ‖ … ‖ dₙ)) + "-" + n, where dᵢ is the 32-byte binary
 * SHA-256 of part i (the construction S3 uses for its COMPOSITE checksums, in hex). A single-PUT
 * object is one part, so its composite is SHA-256(SHA-256(data)) + "-1" and `sha256` is the
 * plain whole-object digest.
 */
import { EXIT, PveS3Error } from '../util/errors.js';
import { Sha256 } from '../wasm/digests.js';
import { toHex as hex } from '../wasm/encoding.js';
import type { SseOptions } from '../s3/types.js';
import type { TransferClient } from './transfer-client.js';
import { VERSION } from '../util/version.js';
import { MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE } from '../wasm/planner.js';

export const MANIFEST_SUFFIX = '.s3manifest';
export const MANIFEST_FORMAT = 'pve-s3-manifest';
export const MANIFEST_VERSION = 1;
/**
 * A manifest of 10,000 parts is about 1.5 MiB of JSON. A bigger one is not ours, and parsing it
 * would let a bucket writer choose the memory taken (millions of tiny JSON objects in 20 MiB).
 */
export const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

export interface ManifestPart {
  n: number;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: typeof MANIFEST_VERSION;
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
  etag: string;
  uploadedAt: string;
  tool: string;
  /** the caller's metadata (Proxmox: vmid, guest type, backup time, node, format, ...) */
  meta: Record<string, unknown>;
  /** a provider-made archive's frame index sidecar (docs/BACKUP-PROVIDER.md §4) */
  index?: ManifestIndex;
  /** the guest's configuration texts, so Show Configuration reads only the manifest */
  guest?: ManifestGuest;
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

export function buildManifest(o: {
  key: string;
  size: number;
  partSize: number;
  multipart: boolean;
  partDigests: Uint8Array[];
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
    parts: o.partDigests.map((d, i) => ({ n: i + 1, size: o.partSizes[i]!, sha256: hex(d) })),
    compositeSha256: compositeDigest(o.partDigests),
    sha256: o.sha256 ? hex(o.sha256) : null,
    etag: o.etag,
    uploadedAt: (o.now ?? new Date()).toISOString(),
    tool: TOOL,
    meta: o.meta ?? {},
    ...(o.extra?.index ? { index: o.extra.index } : {}),
    ...(o.extra?.guest ? { guest: o.extra.guest } : {}),
  };
}

export function serializeManifest(m: Manifest): Buffer {
  return Buffer.from(JSON.stringify(m, null, 1) + '\n');
}

/**
 * Parses and checks a manifest: structure, part numbering, sizes adding up, the composite
 * matching the parts. Anything off is ManifestInvalid (exit 5): a manifest we cannot trust
 * verifies nothing.
 */
export function parseManifest(text: string, key: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw invalid(key, 'not valid JSON');
  }
  if (typeof v !== 'object' || v === null) throw invalid(key, 'not a JSON object');
  const m = v as Record<string, unknown>;
  if (m.format !== MANIFEST_FORMAT) throw invalid(key, `format is '${String(m.format)}', expected '${MANIFEST_FORMAT}'`);
  if (m.version !== MANIFEST_VERSION) throw invalid(key, `version ${String(m.version)} is not supported (this tool reads version ${MANIFEST_VERSION})`);
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
  parts.forEach((p, i) => {
    const q = p as Record<string, unknown>;
    if (typeof q !== 'object' || q === null || q.n !== i + 1) throw invalid(key, `part ${i + 1} is missing or out of order`);
    if (!isCount(q.size)) throw invalid(key, `part ${i + 1} has no valid size`);
    if (!isHex64(q.sha256)) throw invalid(key, `part ${i + 1} sha256 is not 64 hex digits`);
    const last = i === parts.length - 1;
    if (!last && q.size !== partSize) throw invalid(key, `part ${i + 1} is ${String(q.size)} bytes, expected partSize ${partSize}`);
    if (last && (q.size as number) > partSize) throw invalid(key, `last part is larger than partSize`);
    sum += q.size as number;
    digests.push(Buffer.from(q.sha256 as string, 'hex'));
  });
  if (sum !== size) throw invalid(key, `parts add up to ${sum} bytes, manifest says ${size}`);
  if (compositeDigest(digests) !== m.compositeSha256) throw invalid(key, 'compositeSha256 does not match the part digests');
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    key: typeof m.key === 'string' ? m.key : key,
    size,
    partSize,
    multipart: m.multipart === true,
    parts: parts as ManifestPart[],
    compositeSha256: m.compositeSha256,
    sha256: typeof m.sha256 === 'string' ? m.sha256 : null,
    etag: typeof m.etag === 'string' ? m.etag : '',
    uploadedAt: typeof m.uploadedAt === 'string' ? m.uploadedAt : '',
    tool: typeof m.tool === 'string' ? m.tool : '',
    meta: typeof m.meta === 'object' && m.meta !== null ? (m.meta as Record<string, unknown>) : {},
    ...parseExtra(m, key),
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

/** The object's manifest, or null when it has none (uploaded by another tool, or incomplete). */
export async function readManifest(client: TransferClient, key: string, o: { signal?: AbortSignal; sse?: SseOptions } = {}): Promise<Manifest | null> {
  let body: AsyncIterable<Uint8Array>;
  try {
    ({ body } = await client.getObject(manifestKey(key), { signal: o.signal, sse: o.sse }));
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  const chunks: Uint8Array[] = [];
  let len = 0;
  for await (const c of body) {
    len += c.length;
    // (leaving the loop destroys the body: the rest is never read)
    if (len > MANIFEST_MAX_BYTES) throw invalid(key, `larger than ${MANIFEST_MAX_BYTES} bytes (4 MiB), far more than a manifest of ${MAX_PARTS} parts takes`);
    chunks.push(c);
  }
  return parseManifest(Buffer.concat(chunks).toString('utf8'), key);
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

const TOOL = `pve-s3/${VERSION}`;
