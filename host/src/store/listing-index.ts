/**
 * The listing index shared through the bucket (issue 13): what a node's listing caches hold (the
 * trust verdicts of trust.json and the notes of notes-cache.json), as one object
 * `<prefix>.pve-s3-index/listing.json`, so that the first listing on a node (a new node, after a
 * reinstall, after the local caches were lost) reads one object instead of one manifest and one
 * `.notes` per backup: 5,000 backups were 10,000 GETs, past pveproxy's 30 s.
 *
 * It is a cache, never trusted over the listing: every entry is used only under the rule that
 * governs the local caches — a verdict while the listed object's ETag and size, its manifest's
 * ETag and LastModified and the key ids of the keyring are the ones it was judged with, notes
 * while the listed `.notes` shows the ETag they were read with. What the listing shows and the
 * index does not (a new backup, an edited note, an entry written by a node that had not seen the
 * change yet) is fetched as without an index. So it cannot hide or invent a backup: what is
 * listed is what ListObjects says; and nodes writing it at the same time lose nothing but the
 * entries one of them had and the other did not, which the next reader fetches.
 *
 * Signed like a manifest (transfer/manifest.ts signedText) with a key derived from the storage's
 * manifest key for this use alone, so that whoever may write to the bucket but holds no key
 * cannot make a listing show a forged backup as verified (or anything else): an index whose mac
 * does not check against this node's keyring is ignored. A storage without a keyring neither
 * reads nor writes one.
 *
 * Written by a listing of all backups once this node has fetched at least INDEX_WRITE_MIN entries
 * since it last wrote it (a cold node, or backups, notes or manifests changed since; the count
 * is kept in `<path>/.pve-s3/index-cache.json`): one PUT of its caches as they are after that
 * listing, so backups are shared in batches, not one PUT per backup, and a few a day still reach
 * the index within days.
 */
import type { ManifestKeyring } from '../config/manifest-key.js';
import { signedText, splitMac, type ManifestSigner } from '../transfer/manifest.js';
import { hmacSha256 } from '../wasm/digests.js';
import { readFileSync } from 'node:fs';
import { saveCacheFile } from './cache-file.js';
import { listingCachePath } from './notes-cache.js';
import { putSmall, readCapped } from './objects.js';
import type { StoreContext } from './types.js';

/** Under the storage's prefix; outside every content folder, so no listing of volumes shows it. */
export const LISTING_INDEX_KEY = '.pve-s3-index/listing.json';
const FORMAT = 'pve-s3-listing-index-1';
/** A listing missing at least this many entries of one kind in its local caches reads the index. */
export const INDEX_READ_MIN = 32;
/** A node that fetched at least this many entries since it last wrote the index writes it. */
export const INDEX_WRITE_MIN = 32;
/** A larger index is neither read nor written (5,000 backups with one-line notes: ~2 MB). */
export const INDEX_MAX_BYTES = 64 * 1024 * 1024;
/** What the derived key signs, so that no manifest verifies as an index nor an index as a manifest. */
const PURPOSE = new TextEncoder().encode('pve-s3 listing index 1');

export interface IndexEntries {
  /** archive key → trust.json's entry */
  trust: Record<string, unknown>;
  /** `.notes` key → the notes cache's entry */
  notes: Record<string, unknown>;
}

function derived(keyId: string, key: Uint8Array): ManifestSigner {
  return { keyId, key: hmacSha256(key, PURPOSE) };
}

/** The index's key in the bucket of this storage. */
export function indexKey(ctx: StoreContext): string {
  return ctx.settings.prefix + LISTING_INDEX_KEY;
}

/**
 * Reads the index once per listing, on the first call (null: none, too large, not of this format
 * or prefix, or not signed with a key of `ring`). It never fails a listing: an index that cannot
 * be read is one that is not there.
 */
export function indexReader(ctx: StoreContext, ring: ManifestKeyring | null): () => Promise<IndexEntries | null> {
  let p: Promise<IndexEntries | null> | undefined;
  return () => (p ??= ring === null ? Promise.resolve(null) : readIndex(ctx, ring));
}

async function readIndex(ctx: StoreContext, ring: ManifestKeyring): Promise<IndexEntries | null> {
  const key = indexKey(ctx);
  try {
    const r = await readCapped(ctx, key, INDEX_MAX_BYTES);
    if (r === null) return null;
    if (!r.complete) {
      ctx.logger.warn('listing index larger than its bound: not read', { key, maxBytes: INDEX_MAX_BYTES });
      return null;
    }
    const keys = new Map([...ring.keys].map(([id, k]) => [id, derived(id, k).key]));
    const { body, mac } = splitMac(r.bytes.toString('utf8'), keys);
    if (mac?.status !== 'valid') {
      ctx.logger.warn('listing index not signed with a key of this storage: ignored', { key, mac: mac?.status ?? 'none' });
      return null;
    }
    const doc = JSON.parse(body) as { format?: unknown; prefix?: unknown; trust?: unknown; notes?: unknown };
    const isMap = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
    if (doc.format !== FORMAT || doc.prefix !== ctx.settings.prefix || !isMap(doc.trust) || !isMap(doc.notes)) {
      ctx.logger.warn('listing index of another format or prefix: ignored', { key });
      return null;
    }
    ctx.logger.debug('listing index read', { key, trust: Object.keys(doc.trust).length, notes: Object.keys(doc.notes).length });
    return { trust: doc.trust, notes: doc.notes };
  } catch (e) {
    ctx.logger.warn('listing index unreadable: ignored', { key, error: (e as Error).message });
    return null;
  }
}

/** Writes the index (one PUT, signed with the keyring's current key); a failure only warns (false). */
export async function writeIndex(ctx: StoreContext, ring: ManifestKeyring | null, entries: IndexEntries): Promise<boolean> {
  if (ring === null) return false;
  const key = indexKey(ctx);
  const body = JSON.stringify({ format: FORMAT, prefix: ctx.settings.prefix, written: Date.now(), trust: entries.trust, notes: entries.notes });
  const text = signedText(body, derived(ring.current.keyId, ring.current.key));
  if (Buffer.byteLength(text) > INDEX_MAX_BYTES) {
    ctx.logger.warn('listing index would be larger than its bound: not written', { key, maxBytes: INDEX_MAX_BYTES });
    return false;
  }
  try {
    await putSmall(ctx, key, text, 'application/json');
    ctx.logger.debug('listing index written', { key, trust: Object.keys(entries.trust).length, notes: Object.keys(entries.notes).length });
    return true;
  } catch (e) {
    ctx.logger.warn('cannot write the listing index', { key, error: (e as Error).message });
    return false;
  }
}

/**
 * After a listing of all backups that fetched `fetched` entries: adds them to what this node has
 * fetched since it last wrote the index, and writes the index from `entries` once that reaches
 * INDEX_WRITE_MIN. Without a place for the count, only a listing that fetched that many writes.
 */
export async function shareListing(ctx: StoreContext, ring: ManifestKeyring | null, fetched: number, entries: IndexEntries): Promise<void> {
  if (ring === null) return;
  let file: string | null = null;
  try {
    file = listingCachePath(ctx, 'index');
  } catch {
    file = null;
  }
  let before = 0;
  if (file !== null) {
    try {
      const doc = JSON.parse(readFileSync(file, 'utf8')) as { unshared?: unknown };
      if (Number.isSafeInteger(doc.unshared) && (doc.unshared as number) > 0) before = doc.unshared as number;
    } catch {
      // none yet, or unreadable: counted from here (rewritten below)
    }
  }
  let unshared = before + fetched;
  if (unshared >= INDEX_WRITE_MIN && (await writeIndex(ctx, ring, entries))) unshared = 0;
  if (file !== null && unshared !== before) saveCacheFile(ctx, file, { unshared }, 'listing index count');
}
