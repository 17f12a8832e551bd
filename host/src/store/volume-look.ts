/**
 * What a restore learns about a volume before its first data byte, asked in one round of parallel
 * requests: the object's HEAD (size, ETag, storage class, restore state), its manifest (a GET,
 * judged with the storage's keys: trust.ts) and, for a backup, the HEAD of its frame index. The
 * restore then decides from these alone whether the volume can be read now (archived-volume.ts),
 * whether it is verified, and how to fetch it (store/transfer.ts), instead of asking S3 the same
 * again at each step: one round trip before the first range instead of four.
 *
 * The manifest is fetched rather than HEADed: a GET answers what a HEAD would (it exists, it is
 * readable) and brings the content along. Only when it is refused as archived (InvalidObjectState:
 * a lifecycle rule of the bucket's owner moved it too; pve-s3's own rule moves archives only) is
 * it HEADed, for the storage class and restore state that requesting its restore needs.
 */
import { INDEX_SUFFIX, MANIFEST_SUFFIX, parseVolname } from '../pve/volname.js';
import type { ObjectInfo } from '../s3/types.js';
import type { Manifest } from '../transfer/manifest.js';
import { archiveState, needsRestore, type ArchiveState } from './archive-state.js';
import { allInOrder } from './concurrency.js';
import { headOrNull } from './object-lock.js';
import { fetchManifest, judgeFetched, type TrustVerdict } from './trust.js';
import type { StoreContext } from './types.js';
import { keyOf, notFound } from './volume-key.js';

export interface VolumeLook {
  volname: string;
  key: string;
  /** the object's HEAD */
  info: ObjectInfo;
  /** its manifest and the verdict on the object by it; absent when the manifest could not be
   *  read because it is archived (it is then among `archived`, or was restored meanwhile) */
  trusted?: { manifest: Manifest | null; verdict: TrustVerdict; present: boolean };
  /** the objects a restore reads that are not readable now (archived or restoring), object first */
  archived: { key: string; info: ObjectInfo; state: ArchiveState }[];
}

/** S3's refusal to GET an object in an archive class that is not restored. */
const isArchivedRefusal = (e: unknown): boolean => (e as { code?: unknown } | null)?.code === 'InvalidObjectState';

/**
 * The one round of a restore's metadata requests. A missing object is NoSuchKey naming the volume
 * (whatever the other answers were); a missing manifest or index is left to the restore's verdict.
 */
export async function lookVolume(ctx: StoreContext, volname: string): Promise<VolumeLook> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  const [info, manifest, index] = await allInOrder([
    headOrObjectNotFound(ctx, volname, key),
    fetchManifest(ctx, key).catch((e: unknown) => {
      if (isArchivedRefusal(e)) return 'archived' as const;
      throw e;
    }),
    // a provider restore reads it (BACKUP-PROVIDER.md): its archive state matters, its content not here
    v.content === 'backup' ? headOrNull(ctx, key + INDEX_SUFFIX) : null,
  ] as const);
  const archived: VolumeLook['archived'] = [];
  const consider = (k: string, i: ObjectInfo | null) => {
    if (i === null) return;
    const state = archiveState(i);
    if (needsRestore(state)) archived.push({ key: k, info: i, state });
  };
  consider(key, info);
  if (manifest === 'archived') consider(key + MANIFEST_SUFFIX, await headOrNull(ctx, key + MANIFEST_SUFFIX));
  consider(key + INDEX_SUFFIX, index);
  const trusted = manifest === 'archived' ? {} : { trusted: judgeFetched(manifest, { key, size: info.size, etag: info.etag }) };
  return { volname: v.volname, key, info, ...trusted, archived };
}

async function headOrObjectNotFound(ctx: StoreContext, volname: string, key: string): Promise<ObjectInfo> {
  const info = await headOrNull(ctx, key);
  if (info === null) throw notFound(ctx, volname, key);
  return info;
}

/**
 * The object's HEAD and the verdict of its manifest for a read: `look`'s when the caller made the
 * first round already, else both asked now, at once (a restore that waited for an archive
 * restore, a container restore). A missing object is NoSuchKey naming the volume; a manifest S3
 * refuses to give (archived, denied) fails the read with S3's own error.
 */
export async function objectAndManifest(ctx: StoreContext, volname: string, look?: VolumeLook): Promise<{ key: string; info: ObjectInfo; trusted: NonNullable<VolumeLook['trusted']> }> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  if (look?.trusted !== undefined && look.key === key) return { key, info: look.info, trusted: look.trusted };
  const [info, manifest] = await allInOrder([headOrObjectNotFound(ctx, volname, key), fetchManifest(ctx, key)] as const);
  return { key, info, trusted: judgeFetched(manifest, { key, size: info.size, etag: info.etag }) };
}
