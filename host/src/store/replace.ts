/**
 * Writing a volume under a name the bucket may already hold: whether that is allowed (never over
 * a protected backup, over anything else only when asked), whether the local file is that object
 * already, and how a replacement is done so that a failure never loses both the old object and
 * the new one: staged under a name of its own first, switched into place only once the staged
 * copy and its manifest are stored.
 */
import type { BigIntStats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { CONTENT_DIR } from '../pve/content.js';
import { PROTECTED_SUFFIX, STAGING_DIR, parseVolname, type VolumeInfo } from '../pve/volname.js';
import type { ObjectSummary } from '../s3/types.js';
import type { ManifestPart } from '../transfer/manifest.js';
import type { UploadOptions, UploadResult, UploadSource } from '../transfer/upload.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { exists } from './objects.js';
import { readSse, transferClient, uploadClient, volid, type StoreContext } from './types.js';
import { keyOf } from './volume-key.js';

/** Staged replacements live beside the content folders, where no listing of volumes looks. */
export { STAGING_DIR };

export function stagingKey(ctx: StoreContext, v: VolumeInfo): string {
  return `${ctx.settings.prefix}${STAGING_DIR}${CONTENT_DIR[v.content]}${v.name}`;
}

/**
 * Before an upload under a name the bucket may already hold: a protected backup is never
 * replaced (PVE will not even delete one), and anything else only when the caller says so
 * (`replace`), so a retyped name or a second stream in the same second cannot silently
 * overwrite a backup. Answers the object found (null: none), which a replacement needs.
 */
export async function assertMayReplace(ctx: StoreContext, volname: string, o: { replace: boolean; hint?: string }): Promise<ObjectSummary | null> {
  const key = keyOf(ctx, parseVolname(volname));
  // the object sorts first under its own name as a prefix, so one key of a LIST finds it (and a
  // refused signature comes back with S3's own error body rather than a bare 403 to a HEAD);
  // its protection marker is looked up by name, as every protection check is (volumes.ts)
  const page = await ctx.client.listObjects({ prefix: key, maxKeys: 1 });
  const cur = page.objects.find((x) => x.key === key);
  if (cur === undefined) return null;
  const id = volid(ctx, volname);
  if (await exists(ctx, key + PROTECTED_SUFFIX)) {
    throw new PveS3Error(
      'VolumeProtected',
      `'${id}' is already in the bucket and protected: a protected backup is never replaced; remove its protection in PVE first (GUI: the backup's Change Protection) or upload it under another name`,
      { exitCode: EXIT.usage, key },
    );
  }
  if (!o.replace) {
    const when = cur.lastModified.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
    throw new PveS3Error('DestinationExists', `'${id}' is already in the bucket (${cur.size} bytes, uploaded ${when}): nothing uploaded${o.hint ? `; ${o.hint}` : ''}`, {
      exitCode: EXIT.usage,
      key,
    });
  }
  return cur;
}

/** A refusal of assertMayReplace (as opposed to a failure to ask). */
export const isReplaceRefusal = (e: unknown): boolean => {
  const code = (e as { code?: unknown }).code;
  return code === 'DestinationExists' || code === 'VolumeProtected';
};

/**
 * The files this process found identical to a stored object: pve-s3-backup asks once for the whole
 * batch before uploading anything and again per file under the volume's lock, and hashing a 1 GiB
 * file twice was most of a repeated upload's CPU. An answer is reused only for the same object
 * (ETag, manifest digests) and the same file: device, inode, size, and modification and change
 * times to the nanosecond (a write moves both; utimes can set the first, never the second).
 */
const sameFiles = new Map<string, string>();

function sameFileMark(st: BigIntStats, etag: string, digests: string): string {
  return [st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, etag, digests].join('\0');
}

/**
 * Whether a local file is, byte for byte, the object at `key`, by the per-part SHA-256 its
 * manifest records: the file is read and hashed, nothing is downloaded. No verified manifest, another
 * size or any part that differs: false. (Lets a repeated upload be a no-op instead of a refusal.)
 */
export async function sameAsStored(ctx: StoreContext, key: string, localPath: string, size: number): Promise<boolean> {
  // the object's HEAD and its manifest in one round; only a verified copy stands in for the local
  // file: an unsigned one with the same bytes (planted, or from before signing) would leave the
  // backup unverified once the file is gone
  const { fetchManifest, judgeFetched } = await import('./trust.js');
  const [info, fetched] = await Promise.all([ctx.client.headObject(key, readSse(ctx)).catch(() => null), fetchManifest(ctx, key).catch(() => null)]);
  if (info === null) return false;
  const { manifest: m, verdict } = fetched === null ? { manifest: null, verdict: { trust: 'incomplete' as const } } : judgeFetched(fetched, { key, size: info.size, etag: info.etag });
  if (m === null || verdict.trust !== 'verified' || m.size !== size) return false;
  const { toHex } = await import('../wasm/encoding.js');
  const parts = [...m.parts].sort((a, b) => a.n - b.n);
  const fh = await open(localPath, 'r');
  try {
    const memo = `${key}\0${localPath}`;
    const mark = sameFileMark(await fh.stat({ bigint: true }), info.etag, parts.map((p) => `${p.n}:${p.size}:${p.sha256}`).join());
    if (sameFiles.get(memo) === mark) return true;
    sameFiles.delete(memo);
    const same = await hashedSame(fh, localPath, size, m.partSize, parts, toHex);
    if (same) sameFiles.set(memo, mark);
    return same;
  } finally {
    await fh.close();
  }
}

/** Hashes the file's parts and compares them with the manifest's SHA-256s. */
async function hashedSame(fh: FileHandle, localPath: string, size: number, partSize: number, parts: ManifestPart[], toHex: (b: Uint8Array) => string): Promise<boolean> {
  // the layout our uploads write (parts 1..N of partSize, the last one shorter): hashed four parts
  // at a time on the 4-lane core, as an upload hashes them (~0.8 CPU-s less per GiB than the scalar core)
  if (size > 0 && partSize > 0 && parts.length === Math.ceil(size / partSize) && parts.every((p, i) => p.n === i + 1 && p.size === Math.min(partSize, size - i * partSize))) {
    const { HashAhead } = await import('../transfer/hash-ahead.js');
    const ahead = new HashAhead(fh, localPath, size, partSize);
    try {
      for (const part of parts) if (toHex((await ahead.sums(part.n)).sha256) !== part.sha256) return false;
    } catch (e) {
      // shorter than it was a moment ago: not the stored bytes
      if ((e as { code?: unknown }).code === 'SourceChanged') return false;
      throw e;
    }
    return true;
  }
  const { Sha256 } = await import('../wasm/digests.js');
  const buf = new Uint8Array(Math.min(Math.max(size, 1), 4 << 20));
  let offset = 0;
  for (const part of parts) {
    const h = new Sha256();
    for (let left = part.size; left > 0; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, left), offset);
      if (bytesRead === 0) return false;
      h.update(buf.subarray(0, bytesRead));
      offset += bytesRead;
      left -= bytesRead;
    }
    if (toHex(h.digest()) !== part.sha256) return false;
  }
  return offset === size;
}

/**
 * Uploads `src` over the object at `key`: first to the staging key with its manifest (a failure
 * there leaves the old object untouched), then a server-side copy into place and the manifest
 * under the final name (a failure there leaves the new bytes verified under the staging key),
 * then the staged copy is dropped.
 */
export async function uploadReplacing(ctx: StoreContext, v: VolumeInfo, src: UploadSource, o: UploadOptions, writer: { readonly path: string }): Promise<UploadResult> {
  const { uploadObject } = await import('../transfer/upload.js');
  const { copyUploaded } = await import('../transfer/copy.js');
  const { manifestKey } = await import('../transfer/manifest.js');
  // remembered with the writer's lock (abandoned-uploads.ts): the copy, and a stream's upload;
  // a file's upload is resumed by its journal instead
  const client = transferClient(ctx, writer);
  const key = keyOf(ctx, v);
  // the staged copy is dropped at once: only the copy in place gets the Object Lock retention
  const { objectLock: _lock, ...stagedPut } = o.put ?? {};
  const staged = await uploadObject(uploadClient(ctx, src, writer), stagingKey(ctx, v), src, { ...o, put: stagedPut });
  const dropStaged = async (): Promise<void> => {
    const r = await ctx.client.deleteObjects([staged.key, manifestKey(staged.key)]).catch((e: Error) => ({ errors: [{ message: e.message }] }));
    if (r.errors.length > 0) ctx.logger.warn('staged copy not removed', { key: staged.key, error: r.errors[0]!.message });
  };
  let res: UploadResult;
  try {
    res = await copyUploaded(client, staged, key, { put: o.put, concurrency: o.concurrency, manifestSigner: o.manifestSigner, ...(o.signal ? { signal: o.signal } : {}) });
  } catch (e) {
    // the copy never completed: the old object is as it was and the staged one is not needed;
    // a manifest that failed after the copy leaves the staged copy as the verified one
    if ((e as { code?: unknown }).code !== 'ManifestWriteFailed') await dropStaged();
    throw e;
  }
  await dropStaged();
  ctx.logger.info('replaced object', { key, staged: staged.key, size: res.size });
  return res;
}
