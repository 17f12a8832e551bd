/**
 * The trust verdicts of a listing (trust.ts judges one object): kept per node in trust.json, read
 * from the bucket's listing index when many are missing, and fetched for the rest. Apart from
 * trust.ts so that a restore, which judges one object, does not load the listing caches.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectSummary } from '../s3/types.js';
import { checkpoints, saveCacheFile } from './cache-file.js';
import { INDEX_READ_MIN, type IndexEntries } from './listing-index.js';
import { LIST_FETCH_PARALLEL, mapLimit } from './concurrency.js';
import { listingCachePath } from './notes-cache.js';
import { stateDir } from './state-dir.js';
import { applyVerdict, keyringOf, readTrusted } from './trust.js';
import type { StoreContext, Trust, Volume } from './types.js';

/** One cached verdict: valid while the object, its manifest and the keyring are unchanged. */
interface CacheEntry {
  /** object ETag, size */
  e: string;
  s: number;
  /** manifest ETag and LastModified (ms) */
  me: string;
  mt: number;
  /** key ids of the keyring that judged */
  k: string;
  t: Trust;
  n?: string;
}

const CACHE_FILE = 'trust.json';

/**
 * Where this node keeps the verdicts: `<path>/.pve-s3/trust.json`, or for the commands run from
 * S3_* alone the listing caches' place, `$XDG_CACHE_HOME/pve-s3/trust-<tag>.json` (per endpoint,
 * bucket and prefix; a directory of the user's own, 0700) — without it every listing read every
 * manifest again: one GET per backup. Undefined: no usable place.
 */
function cacheFile(ctx: StoreContext): string | undefined {
  try {
    if (ctx.settings.cacheDir !== undefined) return join(stateDir(ctx.settings.cacheDir), CACHE_FILE);
    return listingCachePath(ctx, 'trust') ?? undefined;
  } catch {
    return undefined;
  }
}

async function readCache(file: string): Promise<Record<string, CacheEntry>> {
  try {
    // decoded at once: readFile's own 'utf8' decodes chunk by chunk, several times slower for the
    // megabyte of verdicts of thousands of backups
    const v = JSON.parse((await readFile(file)).toString('utf8')) as { v?: number; entries?: Record<string, CacheEntry> };
    return v.v === 1 && v.entries && typeof v.entries === 'object' ? v.entries : {};
  } catch {
    return {};
  }
}

/** Whether a cached verdict (trust.json's or the shared index's) still holds for this listing. */
function holds(c: unknown, vol: Volume, manifest: ObjectSummary, ringId: string): c is CacheEntry {
  if (typeof c !== 'object' || c === null) return false;
  const x = c as Partial<CacheEntry>;
  return (
    x.e === vol.etag &&
    x.s === vol.size &&
    x.me === manifest.etag &&
    x.mt === manifest.lastModified.getTime() &&
    x.k === ringId &&
    (x.t === 'verified' || x.t === 'unverified' || x.t === 'incomplete') &&
    (x.n === undefined || typeof x.n === 'string')
  );
}

/**
 * Judges the volumes of a listing. The listing says whether a manifest exists; its content is
 * read only for volumes whose verdict is not cached on this node (`<path>/.pve-s3/trust.json`,
 * keyed by the object's and the manifest's ETag and the keyring), nor, when many are missing, in
 * the listing index shared through the bucket (`shared`, listing-index.ts; what it gives is kept
 * here too), so a listing costs one GET per new or changed object, not per object. Returns how
 * many manifests it read and the verdicts as cached after it (what the shared index is made of;
 * null: this node has no place to cache them).
 */
export async function assessListed(
  ctx: StoreContext,
  items: ReadonlyArray<{ vol: Volume; manifest: ObjectSummary | undefined }>,
  /** the key prefixes this listing covered in full: cached verdicts of objects gone from them are dropped */
  covered: readonly string[],
  shared?: () => Promise<IndexEntries | null>,
): Promise<{ fetched: number; entries: Record<string, unknown> | null }> {
  const ring = await keyringOf(ctx);
  const ringId = ring ? ring.ids.join(',') : '';
  const file = cacheFile(ctx);
  const cache = file !== undefined ? await readCache(file) : {};
  let changed = false;
  let todo: Array<{ vol: Volume; manifest: ObjectSummary }> = [];
  const use = (vol: Volume, c: CacheEntry) => applyVerdict(vol, c.n !== undefined ? { trust: c.t, note: c.n } : { trust: c.t });
  for (const { vol, manifest } of items) {
    if (manifest === undefined) {
      applyVerdict(vol, { trust: 'incomplete', note: 'no manifest' });
      continue;
    }
    const c = cache[vol.key];
    if (holds(c, vol, manifest, ringId)) use(vol, c);
    else todo.push({ vol, manifest });
  }
  if (shared !== undefined && todo.length >= INDEX_READ_MIN) {
    const index = await shared();
    if (index !== null) {
      todo = todo.filter(({ vol, manifest }) => {
        const c = index.trust[vol.key];
        if (!holds(c, vol, manifest, ringId)) return true;
        use(vol, c);
        cache[vol.key] = c;
        changed = true;
        return false;
      });
    }
  }
  const listed = new Set(items.map((i) => i.vol.key));
  for (const k of Object.keys(cache)) {
    if (!listed.has(k) && covered.some((p) => k.startsWith(p))) {
      delete cache[k];
      changed = true;
    }
  }
  // what was fetched is written as it comes (checkpoints), so a listing killed part way leaves it
  const save = () => {
    if (file === undefined || !changed) return;
    if (saveCacheFile(ctx, file, { v: 1, entries: cache }, 'trust cache')) changed = false;
  };
  const stop = checkpoints(save);
  try {
    await mapLimit(todo, LIST_FETCH_PARALLEL, async ({ vol, manifest }) => {
      const { verdict } = await readTrusted(ctx, { key: vol.key, size: vol.size, etag: vol.etag ?? '' });
      applyVerdict(vol, verdict);
      cache[vol.key] = { e: vol.etag ?? '', s: vol.size, me: manifest.etag, mt: manifest.lastModified.getTime(), k: ringId, t: verdict.trust, ...(verdict.note !== undefined ? { n: verdict.note } : {}) };
      changed = true;
    });
  } finally {
    stop();
    save();
  }
  return { fetched: todo.length, entries: file !== undefined ? cache : null };
}
