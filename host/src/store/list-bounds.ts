/**
 * Listing a large folder in ranges at once. A ListObjects page is one round trip of up to 1000
 * keys, and each page needs the previous one's continuation token: 5,000 backups (20,000 keys
 * with their sidecars) are 21 pages in a row, and on a busy gateway the wait for them was most of
 * a warm listing. The previous listing of the folder tells where its keys were: every
 * LIST_RANGE_STRIDE-th key is kept as a bound, and the next listing asks for the ranges between
 * bounds at once (start-after one bound, up to the next, client.listRange). The ranges cover the
 * whole key space whatever the bounds are, so keys added or removed since only change how many
 * pages a range takes, never what the listing shows: a bound need not exist any more. A range
 * that grew by more than the stride's headroom takes one more page; a folder without bounds (the
 * first listing, a small folder, an unreadable file) is listed page after page as before.
 *
 * The bounds live beside the notes cache (notes-cache.ts listingCachePath): written whole under a
 * temporary name and renamed; an unreadable, foreign or malformed file is ignored.
 */
import { readFileSync, statSync } from 'node:fs';
import { compareKeys } from '../s3/key-order.js';
import type { ObjectSummary } from '../s3/types.js';
import { saveCacheFile } from './cache-file.js';
import { mapLimit } from './concurrency.js';
import { listingCachePath, listingOrigin } from './notes-cache.js';
import type { StoreContext } from './types.js';

const FORMAT = 'pve-s3-list-bounds-1';
/** Keys per range: a page holds 1000, so a range may grow by 100 keys and still take one page. */
export const LIST_RANGE_STRIDE = 900;
/** Ranges listed at once. */
export const LIST_RANGES_PARALLEL = 8;
/** A larger file is not read: 1 MiB holds the bounds of millions of keys. */
const MAX_FILE_BYTES = 1024 * 1024;

interface BoundsFile {
  format: string;
  origin: string;
  /** per listed key prefix, the bounds in key order */
  folders: Record<string, string[]>;
}

export class ListBounds {
  private readonly folders = new Map<string, string[]>();
  private changed = false;

  private constructor(
    private readonly file: string | null,
    private readonly origin: string,
  ) {}

  /** The bounds of this storage's previous listings; none when there is no usable file. */
  static load(ctx: StoreContext): ListBounds {
    let file: string | null = null;
    try {
      file = listingCachePath(ctx, 'bounds');
    } catch (e) {
      ctx.logger.debug('no place for listing bounds: folders are listed page after page', { error: (e as Error).message });
    }
    const b = new ListBounds(file, listingOrigin(ctx));
    if (file === null) return b;
    let doc: Partial<BoundsFile>;
    try {
      if (statSync(file).size > MAX_FILE_BYTES) return b;
      doc = JSON.parse(readFileSync(file, 'utf8')) as Partial<BoundsFile>;
    } catch {
      return b; // missing or unreadable: the next listing writes it
    }
    if (doc === null || typeof doc !== 'object' || doc.format !== FORMAT || doc.origin !== b.origin || typeof doc.folders !== 'object' || doc.folders === null) return b;
    for (const [prefix, cuts] of Object.entries(doc.folders)) {
      if (Array.isArray(cuts) && cuts.every((k, i) => typeof k === 'string' && k.startsWith(prefix) && (i === 0 || compareKeys(cuts[i - 1] as string, k) < 0))) {
        b.folders.set(prefix, cuts as string[]);
      }
    }
    return b;
  }

  of(prefix: string): readonly string[] {
    return this.folders.get(prefix) ?? [];
  }

  /** Keeps every LIST_RANGE_STRIDE-th key of a complete listing of `prefix` (in key order). */
  set(prefix: string, objects: readonly ObjectSummary[]): void {
    const cuts: string[] = [];
    for (let i = LIST_RANGE_STRIDE - 1; i < objects.length - 1; i += LIST_RANGE_STRIDE) cuts.push(objects[i]!.key);
    const old = this.folders.get(prefix) ?? [];
    if (old.length === cuts.length && old.every((k, i) => k === cuts[i])) return;
    if (cuts.length === 0) this.folders.delete(prefix);
    else this.folders.set(prefix, cuts);
    this.changed = true;
  }

  save(ctx: StoreContext): void {
    if (!this.changed || this.file === null) return;
    const doc: BoundsFile = { format: FORMAT, origin: this.origin, folders: Object.fromEntries(this.folders) };
    if (saveCacheFile(ctx, this.file, doc, 'listing bounds')) this.changed = false;
  }
}

/** Every object under `prefix`, in key order: in ranges at once when `bounds` has some for it. */
export async function listPrefix(ctx: StoreContext, prefix: string, bounds: ListBounds | undefined): Promise<ObjectSummary[]> {
  const cuts = bounds?.of(prefix) ?? [];
  let objects: ObjectSummary[];
  if (cuts.length === 0) {
    objects = [];
    for await (const o of ctx.client.listAll({ prefix })) objects.push(o);
  } else {
    const ranges = Array.from({ length: cuts.length + 1 }, (_, i) => ({ after: cuts[i - 1], through: cuts[i] }));
    const parts = await mapLimit(ranges, LIST_RANGES_PARALLEL, (r) => ctx.client.listRange({ prefix, ...r }));
    objects = parts.flat();
  }
  bounds?.set(prefix, objects);
  return objects;
}
