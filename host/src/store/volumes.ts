/**
 * One volume at a time: stat, attributes (notes, protected as sidecar objects, like a PVE dir
 * storage), and deletion of archives together with every sidecar.
 */
import {
  LOG_SUFFIX,
  MANIFEST_SUFFIX,
  INDEX_SUFFIX,
  NOTES_SUFFIX,
  PROTECTED_SUFFIX,
  keyOfName,
  parseVolname,
  sidecarNames,
  type VolumeInfo,
} from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { allInOrder, mapLimit } from './concurrency.js';
import { rm } from 'node:fs/promises';
import { isSyncedCopy, localPath, removeRecord } from './local-cache.js';
import { deleteQuiet, exists, isNotFound, putSmall } from './objects.js';
import { describeHold, headOrNull, heldBy } from './object-lock.js';
import { checkNotes, readNotes } from './notes.js';
import { listedArchive } from './list.js';
import { nowOf, readSse, volid, type GuestType, type StoreContext, type Volume } from './types.js';
import { keyOf, notFound } from './volume-key.js';


/**
 * Full description of one volume: HEAD, and every sidecar looked up by its own name (HEAD or
 * exact GET), never inferred from a listing of the key as prefix: a page of such a listing can be
 * filled by other keys sorting between `<key>` and `<key>.protected` (`X.vma.gz`, `X.vma.bz2`, …
 * and their sidecars), which would hide the marker. All in one round of parallel requests (the
 * manifest is judged against the HEAD once both are in); a missing object is NoSuchKey naming the
 * volume whatever the sidecars answered.
 */
export async function statVolume(ctx: StoreContext, volname: string): Promise<Volume> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  const backup = v.content === 'backup';
  const logName = backup ? sidecarNames(v.name).log : undefined;
  const { fetchManifest, judgeFetched, applyVerdict } = await import('./trust.js');
  const [info, fetched, isProtected, notes, log] = await allInOrder([
    ctx.client.headObject(key, readSse(ctx)).catch((e: unknown) => {
      throw isNotFound(e) ? notFound(ctx, volname, key) : e;
    }),
    fetchManifest(ctx, key),
    backup ? exists(ctx, key + PROTECTED_SUFFIX) : false,
    backup ? readNotes(ctx, key, { whole: false }) : null,
    logName !== undefined ? exists(ctx, keyOfName(ctx.settings.prefix, 'backup', logName)) : undefined,
  ] as const);
  const manifest = judgeFetched(fetched, { key, size: info.size, etag: info.etag });
  const mtime = Math.floor((info.lastModified?.getTime() ?? Date.now()) / 1000);
  const vol: Volume = {
    volid: volid(ctx, v.volname),
    volname: v.volname,
    content: v.content,
    name: v.name,
    key,
    size: info.size,
    ctime: v.ctime ?? mtime,
    format: v.listFormat,
    protected: isProtected,
    manifest: manifest.present,
    etag: info.etag,
  };
  applyVerdict(vol, manifest.verdict);
  if (info.storageClass) vol.storageClass = info.storageClass;
  const archive = listedArchive(info);
  if (archive !== undefined) vol.archive = archive;
  if (v.unusable !== undefined) vol.unusable = v.unusable;
  if (backup) {
    if (v.vmid !== undefined) vol.vmid = v.vmid;
    vol.subtype = (v.guestType ?? 'unknown') as GuestType;
    if (notes) vol.notes = notes;
    if (log !== undefined) vol.log = log;
  }
  vol.mtime = mtime;
  return vol;
}

/** sidecars of some archive: under a log's base name they say nothing about another archive */
const ARCHIVE_SIDECARS = [NOTES_SUFFIX, PROTECTED_SUFFIX, INDEX_SUFFIX, MANIFEST_SUFFIX];

export type AttrName = 'notes' | 'protected';

async function requireArchive(ctx: StoreContext, volname: string): Promise<{ v: VolumeInfo; key: string }> {
  const v = parseVolname(volname);
  const key = keyOf(ctx, v);
  if (!(await exists(ctx, key))) throw notFound(ctx, volname, key);
  return { v, key };
}

/** Dir-storage semantics: notes → full text ('' if none), protected → boolean; null for non-backups. */
export async function getAttribute(ctx: StoreContext, volname: string, attr: AttrName): Promise<string | boolean | null> {
  const { v, key } = await requireArchive(ctx, volname);
  if (v.content !== 'backup') return null;
  if (attr === 'notes') return (await readNotes(ctx, key, { whole: true })) ?? '';
  return exists(ctx, key + PROTECTED_SUFFIX);
}

export async function setAttribute(ctx: StoreContext, volname: string, attr: AttrName, value: string | boolean): Promise<string | boolean> {
  const v = parseVolname(volname);
  if (v.content !== 'backup') {
    throw new PveS3Error('InvalidArgument', `cannot set ${attr} on '${volname}': only backups can have notes or protection`, { exitCode: EXIT.usage });
  }
  if (attr === 'notes') checkNotes(volname, typeof value === 'string' ? value : '');
  const { key } = await requireArchive(ctx, volname);
  if (attr === 'notes') {
    const text = typeof value === 'string' ? value : '';
    if (text === '') await deleteQuiet(ctx, key + NOTES_SUFFIX);
    else await putSmall(ctx, key + NOTES_SUFFIX, text);
    ctx.logger.info('notes updated', { volname, bytes: Buffer.byteLength(text) });
    return text;
  }
  const on = value === true;
  if (on) await putSmall(ctx, key + PROTECTED_SUFFIX, '', 'application/octet-stream');
  else await deleteQuiet(ctx, key + PROTECTED_SUFFIX);
  ctx.logger.info(on ? 'volume protected' : 'volume unprotected', { volname });
  return on;
}

/** Every key that belongs to a volume: the object, its manifest and, for backups, all sidecars. */
export function volumeKeys(ctx: StoreContext, v: VolumeInfo): string[] {
  const key = keyOf(ctx, v);
  const keys = [key, key + MANIFEST_SUFFIX];
  if (v.content === 'backup') {
    keys.push(key + NOTES_SUFFIX, key + PROTECTED_SUFFIX, key + INDEX_SUFFIX);
    const log = sidecarNames(v.name).log;
    if (log) {
      const logKey = keyOfName(ctx.settings.prefix, 'backup', log);
      // a log is shared by name with nothing else, but another archive of the same base name
      // (same guest and second, other format) would share it: keep it then (see deleteVolumes)
      keys.push(logKey, logKey + MANIFEST_SUFFIX);
    }
  }
  return keys;
}

export interface DeleteOutcome {
  deleted: string[];
  missing: string[];
  /** kept: the archive is under Object Lock retention or a legal hold (object-lock.ts) */
  locked: LockedVolume[];
}

export interface LockedVolume {
  volname: string;
  /** ISO date the retention ends; absent for a legal hold without retention */
  until?: string;
  /** "locked until DATE (MODE)": said to the user, the volume stays */
  reason: string;
}

/**
 * Deletes volumes with all their sidecars in batches. All or nothing for protection: if any named
 * backup is protected, nothing is deleted (PVE's free_image refuses protected backups).
 */
export async function deleteVolumes(ctx: StoreContext, volnames: string[], o: { allowProtected?: boolean } = {}): Promise<DeleteOutcome> {
  const vols = volnames.map((n) => parseVolname(n)); // refuse bad names before any request
  const now = nowOf(ctx);
  const heads = await mapLimit(vols, 8, async (v) => {
    const key = keyOf(ctx, v);
    // by name, not from a listing page (see statVolume): the marker decides what may be deleted;
    // the archive's HEAD carries its Object Lock retention
    const [info, isProtected] = await Promise.all([headOrNull(ctx, key), v.content === 'backup' ? exists(ctx, key + PROTECTED_SUFFIX) : false]);
    return { v, key, present: info !== null, protected: isProtected, hold: info ? heldBy(info, now) : null };
  });
  if (!o.allowProtected) {
    const prot = heads.filter((s) => s.protected && s.present);
    if (prot.length > 0) {
      throw new PveS3Error(
        'VolumeProtected',
        `refusing to delete protected backup${prot.length > 1 ? 's' : ''} ${prot.map((s) => `'${s.v.volname}'`).join(', ')}: remove the protection first`,
        { exitCode: EXIT.usage },
      );
    }
  }
  // A DELETE of a retained object succeeds in its (always versioned) bucket but only hides it:
  // the volume is kept whole, sidecars included, and said to be locked (object-lock.ts)
  const locked: LockedVolume[] = [];
  for (const h of heads) {
    if (!h.hold) continue;
    const reason = describeHold(h.hold);
    locked.push({ volname: h.v.volname, ...(h.hold.until ? { until: h.hold.until.toISOString() } : {}), reason });
    ctx.logger.warn(`keeping '${volid(ctx, h.v.volname)}': ${reason}`);
  }
  const state = heads.filter((h) => !h.hold);
  const keys: string[] = [];
  const deleted: string[] = [];
  const missing: string[] = [];
  // Logs are named after the archive's base name; an archive of another format for the same
  // guest and second keeps the log alive.
  const survivors = new Set<string>();
  for (const s of state) {
    if (!s.present) {
      missing.push(s.v.volname);
      // still clear orphaned sidecars of a missing archive
    } else {
      deleted.push(s.v.volname);
    }
    for (const k of volumeKeys(ctx, s.v)) keys.push(k);
  }
  const logKeys = keys.filter((k) => k.endsWith(LOG_SUFFIX));
  if (logKeys.length > 0) {
    const removing = new Set(state.map((s) => s.key));
    for (const lk of logKeys) {
      const base = lk.slice(0, -LOG_SUFFIX.length) + '.';
      for await (const x of ctx.client.listAll({ prefix: base })) {
        const rest = x.key.slice(base.length);
        if (removing.has(x.key) || ARCHIVE_SIDECARS.some((sfx) => rest.endsWith(sfx)) || '.' + rest === LOG_SUFFIX) continue;
        survivors.add(lk);
      }
    }
  }
  const unManifest = (k: string) => (k.endsWith(MANIFEST_SUFFIX) ? k.slice(0, -MANIFEST_SUFFIX.length) : k);
  const toDelete = [...new Set(keys)].filter((k) => !survivors.has(k) && !survivors.has(unManifest(k)));
  if (toDelete.length === 0) return { deleted, missing, locked };
  // The archives and their manifests go last, in a request of their own: a delete that stops
  // half-way (a gateway frozen or killed under it, the deadline) leaves each volume listed,
  // still verified, and the next free or prune of it finishes the work. Archives first would
  // leave sidecars nothing lists; manifests first an unverified archive, which prune keeps.
  const last = new Set(state.flatMap((s) => [s.key, s.key + MANIFEST_SUFFIX]));
  const res = await ctx.client.deleteObjects(toDelete.filter((k) => !last.has(k)));
  if (res.errors.every((e) => e.code === 'NoSuchKey')) {
    const more = await ctx.client.deleteObjects(toDelete.filter((k) => last.has(k)));
    res.deleted.push(...more.deleted);
    res.errors.push(...more.errors);
  }
  const failed = res.errors.filter((e) => e.code !== 'NoSuchKey');
  if (failed.length > 0) {
    const f = failed[0]!;
    throw new PveS3Error(f.code, `could not delete '${f.key}' (${f.code}: ${f.message})${failed.length > 1 ? ` and ${failed.length - 1} more` : ''}; retry the delete`, {
      key: f.key,
    });
  }
  if (ctx.settings.cacheDir !== undefined) {
    // A cached copy outliving its record would look like a new local file, and sync-local would
    // bring the deleted volume back; so an exact copy goes with its record. A local file that
    // does not match (pending, or changed locally) is left alone.
    for (const s of state) {
      if (await isSyncedCopy(ctx.settings.cacheDir, s.v.content, s.v.name)) {
        await rm(localPath(ctx.settings.cacheDir, s.v.content, s.v.name), { force: true });
      }
      await removeRecord(ctx.settings.cacheDir, s.v.content, s.v.name);
    }
  }
  if (deleted.length > 0) ctx.logger.info('deleted volumes', { volumes: deleted, objects: toDelete.length });
  return { deleted, missing, locked };
}
