/**
 * A listing's pages must move forward. S3 returns keys (and common prefixes) in strictly
 * increasing order across all pages of one listing, and a truncated page says where to go on;
 * a server whose pages do not advance - the same keys again under a fresh continuation token,
 * tokens that cycle - would keep every lister paging, and holding what it read, until memory or a
 * timeout ends it (the commands have none). The first page that goes back ends the listing.
 */
import { S3Error } from './errors.js';
import { compareKeys } from './key-order.js';

/** truncated pages in a row that bring nothing new: a server may send a few, never this many */
export const EMPTY_PAGES_MAX = 100;

export class ListAdvance {
  private lastKey: string | undefined;
  private lastPrefix: string | undefined;
  private empty = 0;

  /** `after`: a listing from start-after, whose keys all sort after it */
  constructor(
    private readonly endpoint: string,
    after?: string,
  ) {
    this.lastKey = after;
  }

  /** Throws InvalidResponse when the page does not go past everything listed before it. */
  page(p: { objects: readonly { key: string }[]; prefixes: readonly string[]; isTruncated: boolean }): void {
    for (const o of p.objects) this.lastKey = this.step(this.lastKey, o.key, 'key');
    for (const x of p.prefixes) this.lastPrefix = this.step(this.lastPrefix, x, 'prefix');
    if (!p.isTruncated) return;
    this.empty = p.objects.length + p.prefixes.length === 0 ? this.empty + 1 : 0;
    if (this.empty >= EMPTY_PAGES_MAX) {
      throw new S3Error('InvalidResponse', `${this.endpoint} returned ${EMPTY_PAGES_MAX} truncated listing pages in a row without a key: listing stopped`, { retryable: false });
    }
  }

  private step(last: string | undefined, next: string, what: string): string {
    if (last !== undefined && compareKeys(next, last) <= 0) {
      throw new S3Error('InvalidResponse', `${this.endpoint} returned a listing page that does not advance (${what} '${next}' after '${last}'): listing stopped`, {
        retryable: false,
      });
    }
    return next;
  }
}
