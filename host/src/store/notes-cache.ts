/**
 * Notes of listed backups, kept between listings so that a listing costs its ListObjects pages
 * plus one GET per `.notes` sidecar that changed, not one GET per backup (at a few thousand
 * backups those GETs took a listing past pveproxy's 30 s).
 *
 * An entry is the sidecar's key, the ETag of the bytes that were read (from that GET's answer, not
 * from the listing: a sidecar rewritten between the listing and the GET is stored under the ETag
 * of what was read) and the notes as a listing shows them. It is used only while the listing shows
 * the same ETag for that key, so it is never stale: an edited sidecar has a new ETag and is read
 * again, a deleted one is not in the listing and its entry is dropped. The file is written whole
 * under a temporary name and renamed (concurrent listings: the last complete file wins, and any
 * complete file is correct because every entry is checked against the listing), and an
 * unreadable or oversized file is ignored and rebuilt.
 *
 * Where: `<path>/.pve-s3/notes-cache.json` for a storage with a local path; for the commands run
 * from S3_* alone, `$XDG_CACHE_HOME/pve-s3/` (default `~/.cache/pve-s3/`, mode 0700), one file
 * per endpoint, bucket and prefix. docs/CONFIG.md and docs/PROTOCOL.md §6 say so.
 */
import { chmodSync, lstatSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { NOTES_SUFFIX } from '../pve/volname.js';
import type { ObjectSummary } from '../s3/types.js';
import { bareETag } from '../s3/xml.js';
import { checkpoints, saveCacheFile } from './cache-file.js';
import { LIST_FETCH_PARALLEL, mapLimit } from './concurrency.js';
import { INDEX_READ_MIN, type IndexEntries } from './listing-index.js';
import { NOTES_MAX_BYTES, readNotesTagged } from './notes.js';
import { stateDir } from './state-dir.js';
import type { StoreContext, Volume } from './types.js';

export const NOTES_CACHE_FILE = 'notes-cache.json';
const FORMAT = 'pve-s3-notes-cache-1';
/** Notes text kept at most (UTF-16 units, about bytes): 5,000 backups of 3 KiB notes. Sidecars
 *  beyond it are read on every listing, as without a cache. */
export const NOTES_CACHE_MAX_CHARS = 16 * 1024 * 1024;
/** A larger file is not read (its JSON escapes can at most double the text, plus keys). */
const MAX_FILE_BYTES = 3 * NOTES_CACHE_MAX_CHARS;

interface Entry {
  /** the sidecar's ETag, bare (no quotes) */
  e: string;
  /** the notes as readNotes({ whole: false }) gives them */
  n: string;
}

interface CacheFile {
  format: string;
  /** endpoint, bucket and prefix the entries belong to */
  origin: string;
  entries: Record<string, Entry>;
}

/** Where the cache of this storage lives; null when there is no usable place (no HOME). */
export function notesCachePath(ctx: StoreContext): string | null {
  return listingCachePath(ctx, 'notes');
}

/**
 * A listing's cache file of this storage: `<path>/.pve-s3/<kind>-cache.json`, or for the
 * commands run from S3_* alone `$XDG_CACHE_HOME/pve-s3/<kind>-<tag>.json` (per endpoint, bucket
 * and prefix); null when there is no usable place (no HOME, a directory that is not ours).
 */
export function listingCachePath(ctx: StoreContext, kind: 'notes' | 'bounds' | 'trust' | 'index'): string | null {
  if (ctx.settings.cacheDir !== undefined) return join(stateDir(ctx.settings.cacheDir), `${kind}-cache.json`);
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg !== undefined && isAbsolute(xdg) ? xdg : join(homedir(), '.cache');
  if (!isAbsolute(base)) return null;
  const dir = join(base, 'pve-s3');
  mkdirSync(base, { recursive: true, mode: 0o700 });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const st = lstatSync(dir);
  // the notes of backups are nobody else's business: only a directory of our own, closed to others
  if (!st.isDirectory() || (process.getuid !== undefined && st.uid !== process.getuid())) return null;
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return join(dir, `${kind}-${fileTag(listingOrigin(ctx))}.json`);
}

/** The endpoint, bucket and prefix a listing cache belongs to. */
export function listingOrigin(ctx: StoreContext): string {
  return `${ctx.client.endpoint ?? ''}\n${ctx.settings.bucket}\n${ctx.settings.prefix}`;
}

/** A short, stable, file-name-safe tag of the origin (FNV-1a 64: no crypto module to load). */
function fileTag(s: string): string {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

export class NotesCache {
  private readonly entries = new Map<string, Entry>();
  private changed = false;
  private chars = 0;

  private constructor(
    private readonly file: string,
    private readonly origin: string,
  ) {}

  /** The cache at `file`; an unreadable, foreign or oversized file counts as empty (and is rewritten). */
  static load(ctx: StoreContext, file: string): NotesCache {
    const c = new NotesCache(file, listingOrigin(ctx));
    let text: string;
    try {
      if (statSync(file).size > MAX_FILE_BYTES) {
        ctx.logger.warn('notes cache larger than its bound: ignored and rebuilt', { file, maxBytes: MAX_FILE_BYTES });
        c.changed = true;
        return c;
      }
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') ctx.logger.warn('notes cache unreadable: rebuilt', { file, error: (e as Error).message });
      c.changed = true;
      return c;
    }
    let doc: Partial<CacheFile> | null = null;
    try {
      doc = JSON.parse(text) as Partial<CacheFile>;
    } catch {
      doc = null;
    }
    if (doc === null || typeof doc !== 'object' || doc.format !== FORMAT || typeof doc.entries !== 'object' || doc.entries === null) {
      ctx.logger.warn('notes cache is not a cache file of this version: ignored and rebuilt', { file });
      c.changed = true;
      return c;
    }
    if (doc.origin !== c.origin) {
      // the storage now points elsewhere: nothing in it can be trusted
      c.changed = true;
      return c;
    }
    for (const [k, v] of Object.entries(doc.entries)) {
      if (!isEntry(v)) {
        c.changed = true;
        continue;
      }
      c.add(k, v.e, v.n);
    }
    return c;
  }

  /** The cached notes of `key` if they were read from the object with this ETag. */
  get(key: string, etag: string): string | undefined {
    const x = this.entries.get(key);
    return x !== undefined && x.e === bareETag(etag) ? x.n : undefined;
  }

  put(key: string, etag: string, notes: string): void {
    const e = bareETag(etag);
    const old = this.entries.get(key);
    if (old !== undefined && old.e === e && old.n === notes) return;
    if (old !== undefined) this.remove(key);
    this.changed = true;
    this.add(key, e, notes);
  }

  /** Drops the entries of sidecars the listing no longer shows. */
  keepOnly(present: ReadonlySet<string>): void {
    for (const k of [...this.entries.keys()]) {
      if (!present.has(k)) {
        this.remove(k);
        this.changed = true;
      }
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entries as the file holds them (what the shared listing index is made of). */
  toRecord(): Record<string, Entry> {
    return Object.fromEntries(this.entries);
  }

  /** Writes the file when anything changed: whole, under a temporary name, then renamed. */
  save(ctx: StoreContext): void {
    if (!this.changed) return;
    const doc: CacheFile = { format: FORMAT, origin: this.origin, entries: this.toRecord() };
    if (saveCacheFile(ctx, this.file, doc, 'notes cache')) this.changed = false;
  }

  private add(key: string, e: string, n: string): void {
    if (this.chars + n.length + key.length > NOTES_CACHE_MAX_CHARS) return;
    this.entries.set(key, { e, n });
    this.chars += n.length + key.length;
  }

  private remove(key: string): void {
    const x = this.entries.get(key);
    if (x === undefined) return;
    this.entries.delete(key);
    this.chars -= x.n.length + key.length;
  }
}

/** An entry as the cache file or the shared listing index holds it: whole and within bounds. */
function isEntry(v: unknown): v is Entry {
  if (typeof v !== 'object' || v === null) return false;
  const { e, n } = v as Partial<Entry>;
  return typeof e === 'string' && typeof n === 'string' && n.length <= NOTES_MAX_BYTES;
}

/** An entry of the shared listing index for the sidecar listed as `side`, if it holds. */
function fromIndex(x: unknown, side: ObjectSummary): string | undefined {
  return isEntry(x) && x.e === bareETag(side.etag) ? x.n : undefined;
}

/**
 * Sets `notes` of the listed backups that have a `.notes` sidecar in `folder` (the backup folder's
 * listing, keyed by file name): from the cache when the listing shows the ETag it was read with,
 * else, when many are missing, from the listing index shared through the bucket (`shared`,
 * listing-index.ts) under the same rule, else by a GET (at most LIST_FETCH_PARALLEL at once;
 * written as they come, checkpoints). `full`: the whole text, else the first line as PVE lists
 * notes. Returns how many sidecars it read and the cache's entries after it (null: no cache).
 */
export async function fillListedNotes(
  ctx: StoreContext,
  vols: Volume[],
  folder: ReadonlyMap<string, ObjectSummary>,
  full: boolean,
  shared?: () => Promise<IndexEntries | null>,
): Promise<{ fetched: number; entries: Record<string, unknown> | null }> {
  let file: string | null = null;
  try {
    file = notesCachePath(ctx);
  } catch (e) {
    ctx.logger.warn('no place for the notes cache: notes are read from the bucket', { error: (e as Error).message });
  }
  const cache = file !== null ? NotesCache.load(ctx, file) : null;
  let missing: Array<{ vol: Volume; key: string; side: ObjectSummary }> = [];
  let hits = 0;
  for (const vol of vols) {
    const side = folder.get(vol.name + NOTES_SUFFIX);
    if (side === undefined) continue;
    const text = cache?.get(side.key, side.etag);
    if (text === undefined) missing.push({ vol, key: side.key, side });
    else {
      hits++;
      show(vol, text, full);
    }
  }
  if (shared !== undefined && missing.length >= INDEX_READ_MIN) {
    const index = await shared();
    if (index !== null) {
      missing = missing.filter(({ vol, key, side }) => {
        const text = fromIndex(index.notes[key], side);
        if (text === undefined) return true;
        cache?.put(key, side.etag, text);
        show(vol, text, full);
        return false;
      });
    }
  }
  const stop = cache !== null ? checkpoints(() => cache.save(ctx)) : () => {};
  try {
    await mapLimit(missing, LIST_FETCH_PARALLEL, async ({ vol, key }) => {
      const r = await readNotesTagged(ctx, vol.key, { whole: false });
      if (r === null) return; // deleted since the listing
      cache?.put(key, r.etag, r.text);
      show(vol, r.text, full);
    });
  } catch (e) {
    cache?.save(ctx);
    throw e;
  } finally {
    stop();
  }
  if (cache !== null) {
    const present = new Set<string>();
    for (const [name, o] of folder) if (name.endsWith(NOTES_SUFFIX)) present.add(o.key);
    cache.keepOnly(present);
    cache.save(ctx);
  }
  ctx.logger.debug('listed notes', { cached: hits, read: missing.length, file });
  return { fetched: missing.length, entries: cache?.toRecord() ?? null };
}

function show(vol: Volume, text: string, full: boolean): void {
  if (text === '') return;
  if (full) vol.notes = text;
  else {
    const nl = text.search(/\r?\n/);
    vol.notes = nl < 0 ? text : text.slice(0, nl);
  }
}
