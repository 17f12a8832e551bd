/**
 * Notes of a backup: the `.notes` sidecar, bounded. PVE never handles more than 64 KiB of notes:
 * pveproxy refuses any API request body over 64 KiB (pve-http-server, PVE::APIServer::AnyEvent
 * `$limit_max_post`), so notes set through PVE fit in it. Whoever writes to the bucket can plant a
 * sidecar of any size (the audit's 300 MiB one took the list to 1.27 GB, the protocol to 3.5 GB),
 * so notes are read no further than that limit, and written no longer than it.
 */
import { NOTES_SUFFIX } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { readCapped } from './objects.js';
import type { StoreContext } from './types.js';

export const NOTES_MAX_BYTES = 64 * 1024;
const LIMIT = `${NOTES_MAX_BYTES} bytes (64 KiB, the most PVE itself accepts)`;

export function notesTooLarge(where: string, size?: number): PveS3Error {
  const how = size !== undefined ? `are ${size} bytes` : 'are larger than that';
  return new PveS3Error('NotesTooLarge', `notes of ${where} ${how}: at most ${LIMIT}; shorten them`, { exitCode: EXIT.usage });
}

/** Before any upload: notes given for a volume must fit PVE's limit. */
export function checkNotes(volname: string, notes: string | undefined): void {
  if (notes === undefined) return;
  const size = Buffer.byteLength(notes, 'utf8');
  if (size > NOTES_MAX_BYTES) throw notesTooLarge(`'${volname}'`, size);
}

/**
 * The notes of the archive at `archiveKey`, null when it has none. `whole`: the full text or
 * NotesTooLarge. Otherwise (listings, stat) notes over the limit give their first line as far as
 * it lies within the limit: all PVE shows of notes in a list.
 */
export async function readNotes(ctx: StoreContext, archiveKey: string, o: { whole: boolean }): Promise<string | null> {
  return (await readNotesTagged(ctx, archiveKey, o))?.text ?? null;
}

/** readNotes with the ETag of the sidecar that was read (the listing's notes cache keys by it). */
export async function readNotesTagged(ctx: StoreContext, archiveKey: string, o: { whole: boolean }): Promise<{ text: string; etag: string } | null> {
  const key = archiveKey + NOTES_SUFFIX;
  const r = await readCapped(ctx, key, NOTES_MAX_BYTES);
  if (r === null) return null;
  if (r.complete) return { text: r.bytes.toString('utf8'), etag: r.etag };
  if (o.whole) {
    throw new PveS3Error('NotesTooLarge', `notes '${key}' are larger than ${LIMIT}: not read; shorten or delete them`, { exitCode: EXIT.usage, key });
  }
  ctx.logger.warn('notes larger than the limit: only their first line is shown', { key, limit: NOTES_MAX_BYTES });
  const text = r.bytes.toString('utf8');
  const nl = text.search(/\r?\n/);
  // without a newline in the window, the window's text (its last character may be cut: dropped)
  return { text: nl >= 0 ? text.slice(0, nl) : text.replace(/\uFFFD$/, ''), etag: r.etag };
}
