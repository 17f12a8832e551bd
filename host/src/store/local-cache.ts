/**
 * The storage's local cache dir (PVE `path`), laid out like a PVE dir storage (dump/,
 * template/iso/, template/cache/, snippets/). It holds two kinds of files that look alike:
 * copies of bucket objects (downloaded, or already uploaded) and files PVE wrote that are not in
 * the bucket yet. A cache record (docs/PROTOCOL.md §6) tells them apart, so that a copy whose
 * object was deleted elsewhere is never mistaken for a new file and uploaded again.
 */
import { readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CONTENT_DIR } from '../pve/content.js';
import { NAME_RULES, compile } from '../pve/name-rules.js';
import { NOTES_SUFFIX, PROTECTED_SUFFIX, classifyKey, keyOfName, parseVolumeFile } from '../pve/volname.js';
import { RECORDS_DIR, STATE_DIR, stateDir } from './state-dir.js';
import { volid, type Content, type GuestType, type StoreContext, type Volume } from './types.js';

export { STATE_DIR };

/**
 * A pending file unchanged for this long is taken as finished (cp, scp and browsers write in
 * place) and uploaded by sync-local; the plugin starts its background sync only for such files
 * (it reads this from the generated rules table).
 */
export const SYNC_QUIET_SECONDS = 60;

export function localPath(cacheDir: string, content: Content, name: string): string {
  parseVolumeFile(content, name); // never join an unchecked name onto a path
  return join(cacheDir, CONTENT_DIR[content], name);
}

/** true when `p` is the cache location of that volume (records only make sense there). */
export function isCachePath(cacheDir: string | undefined, content: Content, name: string, p: string): boolean {
  return cacheDir !== undefined && resolve(p) === resolve(localPath(cacheDir, content, name));
}

function recordPath(cacheDir: string, content: Content, name: string): string {
  return join(cacheDir, STATE_DIR, RECORDS_DIR, content, name + '.json');
}

const recordDir = (cacheDir: string, content: Content): string => stateDir(cacheDir, RECORDS_DIR, content);

export interface CacheRecord {
  volname: string;
  size: number;
  /** seconds */
  mtime: number;
  etag: string;
}

/**
 * Records that the local file is a copy of the bucket object. With `mtime`, the file's mtime is
 * first set to it (the object's LastModified), which is what lets a later download skip the
 * transfer when nothing changed.
 */
export async function writeRecord(cacheDir: string, content: Content, name: string, etag: string, mtime?: number): Promise<CacheRecord> {
  const file = localPath(cacheDir, content, name);
  if (mtime !== undefined) await utimes(file, mtime, mtime);
  const st = await stat(file);
  const rec: CacheRecord = { volname: `${content}/${name}`, size: st.size, mtime: Math.floor(st.mtimeMs / 1000), etag };
  const p = recordPath(cacheDir, content, name);
  recordDir(cacheDir, content);
  const tmp = `${p}.tmp.${process.pid}`;
  await writeFile(tmp, JSON.stringify(rec));
  await rename(tmp, p);
  return rec;
}

export async function readRecord(cacheDir: string, content: Content, name: string): Promise<CacheRecord | null> {
  try {
    return JSON.parse(await readFile(recordPath(cacheDir, content, name), 'utf8')) as CacheRecord;
  } catch {
    return null;
  }
}

export async function removeRecord(cacheDir: string, content: Content, name: string): Promise<void> {
  await rm(recordPath(cacheDir, content, name), { force: true });
}

/** true when the file at its current size and mtime is a copy of a bucket object. */
export async function isSyncedCopy(cacheDir: string, content: Content, name: string): Promise<boolean> {
  const rec = await readRecord(cacheDir, content, name);
  if (!rec) return false;
  try {
    const st = await stat(localPath(cacheDir, content, name));
    return rec.size === st.size && rec.mtime === Math.floor(st.mtimeMs / 1000);
  } catch {
    return false;
  }
}

const TEMPORARY = NAME_RULES.temporary.map(compile);

/** Names PVE and our own downloads use while a file is still being written (pve/name-rules.ts). */
export function isTemporaryName(name: string): boolean {
  return TEMPORARY.some((re) => re.test(name));
}

export interface LocalFile {
  content: Content;
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

/** Volume files (not sidecars, not temporaries) in the cache dir that are not synced copies. */
export async function localOnlyFiles(cacheDir: string, contents: readonly Content[]): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  for (const content of contents) {
    const dir = join(cacheDir, CONTENT_DIR[content]);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (isTemporaryName(name)) continue;
      const c = classifyKey('', CONTENT_DIR[content] + name);
      if (c.kind !== 'volume') continue;
      const path = join(dir, name);
      let st;
      try {
        st = await stat(path);
      } catch {
        continue;
      }
      if (!st.isFile()) continue;
      if (await isSyncedCopy(cacheDir, content, name)) continue;
      out.push({ content, name, path, size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  return out;
}

async function readLocalText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return null;
  }
}

async function existsLocal(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Local-only files as volumes, with their local notes/protected sidecars (PVE's dir format). */
export async function listPending(ctx: StoreContext, contents: readonly Content[]): Promise<Volume[]> {
  const cacheDir = ctx.settings.cacheDir;
  if (cacheDir === undefined) return [];
  const out: Volume[] = [];
  for (const f of await localOnlyFiles(cacheDir, contents)) {
    const v = parseVolumeFile(f.content, f.name);
    const vol: Volume = {
      volid: volid(ctx, v.volname),
      volname: v.volname,
      content: f.content,
      name: f.name,
      key: keyOfName(ctx.settings.prefix, f.content, f.name),
      size: f.size,
      ctime: v.ctime ?? Math.floor(f.mtimeMs / 1000),
      format: v.listFormat,
      protected: false,
      manifest: false,
      pending: true,
    };
    if (f.content === 'backup') {
      if (v.vmid !== undefined) vol.vmid = v.vmid;
      vol.subtype = (v.guestType ?? 'unknown') as GuestType;
      vol.protected = await existsLocal(f.path + PROTECTED_SUFFIX);
      const notes = await readLocalText(f.path + NOTES_SUFFIX);
      if (notes !== null && notes !== '') vol.notes = notes.split(/\r?\n/)[0]!;
    }
    out.push(vol);
  }
  return out;
}
