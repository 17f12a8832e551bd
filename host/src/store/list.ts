/**
 * list_volumes: one LIST per content folder, sidecars joined to their archive from the same
 * listing (no HEAD per volume), notes read only for archives that have a .notes object whose
 * ETag the notes cache does not hold (notes-cache.ts), and local files still waiting in the cache
 * dir merged in (DESIGN.md §6).
 */
import { CONTENT_DIR, CONTENT_TYPES } from '../pve/content.js';
import { MANIFEST_SUFFIX, NOTES_SUFFIX, PROTECTED_SUFFIX, classifyKey, logNameOfVolume, type VolumeInfo } from '../pve/volname.js';
import type { ObjectSummary } from '../s3/types.js';
import { listPending } from './local-cache.js';
import { ListBounds, listPrefix } from './list-bounds.js';
import { writeUsage } from './usage.js';
import { mapLimit } from './concurrency.js';
import { describeHold, headOrNull, heldBy } from './object-lock.js';
import { archiveState, type ArchiveState } from './archive-state.js';
import { nowOf, volid, type Content, type GuestType, type StoreContext, type Volume } from './types.js';

export interface ListOptions {
  content?: Content[];
  /** only backups of this guest (PVE skips iso/vztmpl/snippets when a vmid is given) */
  vmid?: number;
  /** only backups of this guest type */
  guestType?: 'qemu' | 'lxc' | 'openvz';
  /** merge files that exist only in the cache dir (default true when a cache dir is set) */
  pending?: boolean;
  /** fetch notes (default true): the first line, as PVE lists them, unless notesFull */
  notes?: boolean;
  notesFull?: boolean;
  /** HEAD each backup archive for its Object Lock retention (Volume.locked); default: only when
   *  the storage locks (lock_days), since ListObjects does not carry retention */
  locks?: boolean;
}

/** HEADs of listed objects at once (Object Lock retention, archive state): as many as the notes
 *  cache's GETs, so a cold listing of thousands stays within pveproxy's 30 s */
export const LIST_HEAD_PARALLEL = 16;

/**
 * What a listing says of an object's archive state: nothing for a class that is read at once
 * (STANDARD, STANDARD_IA, GLACIER_IR, …), else the state, exact only once a HEAD told it.
 */
export function listedArchive(o: Parameters<typeof archiveState>[0]): ArchiveState | undefined {
  const a = archiveState(o);
  return a.exact && a.state === 'available' ? undefined : a;
}

/** Everything under one content folder, keyed by file name (in ranges at once with `bounds`). */
export async function listFolder(ctx: StoreContext, content: Content, bounds?: ListBounds): Promise<Map<string, ObjectSummary>> {
  const dir = ctx.settings.prefix + CONTENT_DIR[content];
  const out = new Map<string, ObjectSummary>();
  for (const o of await listPrefix(ctx, dir, bounds)) {
    const name = o.key.slice(dir.length);
    if (name !== '' && !name.includes('/')) out.set(name, o);
  }
  return out;
}

/** A Volume from parsed name + its listing entry + the sidecars seen in the same folder. */
export function toVolume(ctx: StoreContext, v: VolumeInfo, o: ObjectSummary, folder: Map<string, ObjectSummary>): Volume {
  const vol: Volume = {
    volid: volid(ctx, v.volname),
    volname: v.volname,
    content: v.content,
    name: v.name,
    key: o.key,
    size: o.size,
    ctime: v.ctime ?? Math.floor(o.lastModified.getTime() / 1000),
    format: v.listFormat,
    protected: false,
    manifest: folder.has(v.name + MANIFEST_SUFFIX),
    etag: o.etag,
    mtime: Math.floor(o.lastModified.getTime() / 1000),
  };
  // trust (verified) needs the manifest's content: listVolumes asks store/trust.ts for it
  if (o.storageClass) vol.storageClass = o.storageClass;
  const archive = listedArchive(o);
  if (archive !== undefined) vol.archive = archive;
  if (v.unusable !== undefined) vol.unusable = v.unusable;
  if (v.content === 'backup') {
    if (v.vmid !== undefined) vol.vmid = v.vmid;
    vol.subtype = (v.guestType ?? 'unknown') as GuestType;
    vol.protected = folder.has(v.name + PROTECTED_SUFFIX);
    const logName = logNameOfVolume(v);
    vol.log = logName !== undefined && folder.has(logName);
  }
  return vol;
}

export async function listVolumes(ctx: StoreContext, o: ListOptions = {}): Promise<Volume[]> {
  let contents = o.content && o.content.length > 0 ? o.content : [...CONTENT_TYPES];
  // A guest filter only makes sense for backups (PVE's own rule for list_volumes with a vmid).
  if (o.vmid !== undefined || o.guestType !== undefined) contents = contents.filter((c) => c === 'backup');
  const out: Volume[] = [];
  const judged: Array<{ vol: Volume; manifest: ObjectSummary | undefined }> = [];
  const withNotes: Volume[] = [];
  let bytes = 0;
  // the four folders are independent listings: one round trip of latency instead of four; a
  // large one is listed in ranges at once where the previous listing left bounds (list-bounds.ts)
  const bounds = ListBounds.load(ctx);
  const folders = await Promise.all(contents.map((c) => listFolder(ctx, c, bounds)));
  bounds.save(ctx);
  for (const [i, content] of contents.entries()) {
    const folder = folders[i]!;
    for (const x of folder.values()) bytes += x.size;
    for (const [, obj] of folder) {
      const c = classifyKey(ctx.settings.prefix, obj.key);
      if (c.kind !== 'volume') continue;
      const v = c.volume;
      if (o.vmid !== undefined && v.vmid !== o.vmid) continue;
      if (o.guestType !== undefined && v.guestType !== o.guestType) continue;
      const vol = toVolume(ctx, v, obj, folder);
      if (content === 'backup' && folder.has(v.name + NOTES_SUFFIX)) withNotes.push(vol);
      judged.push({ vol, manifest: folder.get(v.name + MANIFEST_SUFFIX) });
      out.push(vol);
    }
  }
  const [{ assessListed }, { keyringOf }, index] = await Promise.all([import('./trust-listing.js'), import('./trust.js'), import('./listing-index.js')]);
  const filtered = o.vmid !== undefined || o.guestType !== undefined;
  const backups = contents.indexOf('backup');
  const ring = await keyringOf(ctx);
  // read only when a cache lacks many entries (listing-index.ts), once for both
  const shared = index.indexReader(ctx, ring);
  // manifests and notes the caches lack are fetched together: a cold listing waits for one
  // stream of small GETs, not two in a row
  const [trust, notes] = await Promise.all([
    assessListed(ctx, judged, filtered ? [] : contents.map((c) => ctx.settings.prefix + CONTENT_DIR[c]), shared),
    o.notes !== false && backups >= 0
      ? import('./notes-cache.js').then(({ fillListedNotes }) => fillListedNotes(ctx, withNotes, folders[backups]!, o.notesFull === true, shared))
      : undefined,
  ]);
  // a listing of every backup shares what its caches now hold once this node fetched many entries
  if (!filtered && notes !== undefined && trust.entries !== null && notes.entries !== null) {
    await index.shareListing(ctx, ring, trust.fetched + notes.fetched, { trust: trust.entries, notes: notes.entries });
  }
  // a listing of everything is the usage figure `status` reports (docs/PROTOCOL.md, status)
  if (contents.length === CONTENT_TYPES.length) await writeUsage(ctx, bytes);
  // ListObjects carries neither Object Lock retention nor x-amz-restore: one HEAD per backup when
  // the storage locks, else one only per object in an archive class (the listing's class says
  // which), so a storage without archived backups lists with its pages alone
  const locks = o.locks ?? ctx.settings.lock !== undefined;
  const now = nowOf(ctx);
  await mapLimit(
    out.filter((v) => (locks && v.content === 'backup') || (v.archive !== undefined && !v.archive.exact)),
    LIST_HEAD_PARALLEL,
    async (vol) => {
      const info = await headOrNull(ctx, vol.key);
      if (info === null) return; // deleted since the listing
      const h = locks ? heldBy(info, now) : null;
      if (h) vol.locked = describeHold(h);
      const archive = listedArchive(info);
      if (archive !== undefined) vol.archive = archive;
      else delete vol.archive;
    },
  );
  if (o.pending ?? ctx.settings.cacheDir !== undefined) {
    const seen = new Set(out.map((v) => v.volname));
    for (const p of await listPending(ctx, contents)) {
      if (seen.has(p.volname)) continue;
      if (o.vmid !== undefined && p.vmid !== o.vmid) continue;
      if (o.guestType !== undefined && p.subtype !== o.guestType) continue;
      out.push(p);
    }
  }
  // each volid lower-cased once, not twice per comparison (5,000 backups: ~60,000 comparisons)
  const byId = out.map((v) => ({ id: v.volid.toLowerCase(), v }));
  byId.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return byId.map((x) => x.v);
}
