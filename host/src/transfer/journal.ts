/**
 * Resumable uploads: a small local journal per multipart upload from a file, so that an upload
 * whose process died (killed, OOM, reboot) continues where it stopped instead of sending
 * hundreds of GiB again. A failure the engine sees itself still aborts the upload and drops the
 * journal (nothing is ever left half-done on purpose); the journal only matters when nobody was
 * left to clean up.
 *
 * A journal entry is keyed by bucket, key and source path, and is only trusted while the file has
 * the same size and mtime and the plan the same part size; each part it lists must still be on
 * the server (ListParts) with the same ETag and size, and its SHA-256 goes into the manifest as if
 * it had been hashed now (the file is unchanged, so it would be the same).
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Version 2: a header line (identity and upload id), then one line per stored part, appended. A
 * part costs one short append whatever the part count; version 1 rewrote the whole journal for
 * every part (10,000 parts: 24 CPU-s and ~9 GB written; 3,200, a 100 GiB file in 32 MiB parts,
 * 3 CPU-s). A version 1 journal (one JSON object with every part) is still read.
 */
const VERSION = 2;

export interface JournalIdentity {
  bucket: string;
  key: string;
  path: string;
  size: number;
  mtimeMs: number;
  partSize: number;
}

export interface JournalPart {
  etag: string;
  sha256: string;
  /** CRC-64/NVME, 16 hex; absent in journals written before manifest version 2 (such a part is
   *  uploaded again) */
  crc64?: string;
  size: number;
}

interface JournalHeader extends JournalIdentity {
  version: number;
  uploadId: string;
  /** version 1 only: every part, in the one JSON object */
  parts?: Record<string, JournalPart>;
}

/** The header and parts of a journal's text; a torn last line (killed mid-append) is not a part. */
function parseJournal(text: string): { header: JournalHeader; parts: Map<number, JournalPart> } {
  const lines = text.split('\n');
  const header = JSON.parse(lines[0]!) as JournalHeader;
  const parts = new Map<number, JournalPart>();
  if (header.version === 1 && typeof header.parts === 'object' && header.parts !== null) {
    for (const [n, p] of Object.entries(header.parts)) parts.set(Number(n), p);
  }
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    try {
      const { n, ...p } = JSON.parse(line) as JournalPart & { n: number };
      if (Number.isInteger(n) && n > 0) parts.set(n, p);
    } catch {
      // the tail of a write the process did not live to finish
    }
  }
  return { header, parts };
}

const partLine = (n: number, p: JournalPart): string => `${JSON.stringify({ n, ...p })}\n`;

export class UploadJournal {
  private uploadId: string | null = null;
  private kept = new Map<number, JournalPart>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly id: JournalIdentity,
  ) {}

  /** The journal for this upload; `previous()` tells whether an earlier run left one. */
  static async open(dir: string, id: JournalIdentity): Promise<UploadJournal> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const name = createHash('sha256').update(JSON.stringify([id.bucket, id.key, id.path])).digest('hex').slice(0, 32);
    const j = new UploadJournal(join(dir, `${name}.json`), id);
    try {
      const { header: s, parts } = parseJournal(await readFile(j.file, 'utf8'));
      const same =
        (s.version === VERSION || s.version === 1) &&
        s.bucket === id.bucket &&
        s.key === id.key &&
        s.path === id.path &&
        s.size === id.size &&
        s.mtimeMs === id.mtimeMs &&
        s.partSize === id.partSize &&
        typeof s.uploadId === 'string';
      if (same) {
        j.uploadId = s.uploadId;
        j.kept = parts;
      }
      // a journal for another version of the file is stale: its upload is maintenance's to clean
      else await unlink(j.file).catch(() => undefined);
    } catch {
      // none, or unreadable: start afresh
    }
    return j;
  }

  previous(): { uploadId: string; parts: Map<number, JournalPart> } | null {
    if (this.uploadId === null) return null;
    return { uploadId: this.uploadId, parts: new Map(this.kept) };
  }

  /** A new journal (temp + rename: a crash keeps the old one or the new one whole). */
  start(uploadId: string, kept: Map<number, JournalPart> = new Map()): Promise<void> {
    this.uploadId = uploadId;
    const header: JournalHeader = { version: VERSION, ...this.id, uploadId };
    const text = JSON.stringify(header) + '\n' + [...kept].map(([n, p]) => partLine(n, p)).join('');
    return this.queue(async () => {
      const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, text, { mode: 0o600 });
      await rename(tmp, this.file);
    });
  }

  record(n: number, p: JournalPart): Promise<void> {
    if (this.uploadId === null) return Promise.resolve();
    const line = partLine(n, p);
    return this.queue(() => appendFile(this.file, line, { mode: 0o600 }));
  }

  /** After Complete or Abort: nothing left to resume. */
  async remove(): Promise<void> {
    this.uploadId = null;
    await this.writing.catch(() => undefined);
    await unlink(this.file).catch(() => undefined);
  }

  /** Writes are serialised, and none follows remove(); a failed one fails only its caller. */
  private queue(write: () => Promise<void>): Promise<void> {
    const next = this.writing.catch(() => undefined).then(async () => {
      if (this.uploadId === null) return;
      await write();
    });
    this.writing = next;
    return next;
  }
}

/** What a journal says about itself, for maintenance to decide whether it is left over. */
export interface JournalEntry {
  file: string;
  bucket?: string;
  key?: string;
  uploadId?: string;
  mtimeMs: number;
}

/**
 * The journals (and interrupted journal writes) in `dir`, for maintenance: a journal whose upload
 * is gone from the server (aborted as stale, or by hand) can never resume and is only litter.
 * `remove` says which to delete (dry runs delete none); returns the ones it chose.
 */
export async function sweepJournals(dir: string, remove: (j: JournalEntry) => boolean, o: { dryRun?: boolean } = {}): Promise<JournalEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const chosen: JournalEntry[] = [];
  for (const name of names.sort()) {
    if (!name.endsWith('.json') && !name.endsWith('.tmp')) continue;
    const file = join(dir, name);
    let entry: JournalEntry;
    try {
      const st = await stat(file);
      if (!st.isFile()) continue;
      entry = { file, mtimeMs: st.mtimeMs };
      if (name.endsWith('.json')) {
        const j = parseJournal(await readFile(file, 'utf8')).header as Partial<JournalHeader>;
        if (typeof j.bucket === 'string') entry.bucket = j.bucket;
        if (typeof j.key === 'string') entry.key = j.key;
        if (typeof j.uploadId === 'string') entry.uploadId = j.uploadId;
      }
    } catch {
      // vanished meanwhile, or unreadable: a journal nobody can use either way
      entry = { file, mtimeMs: 0 };
    }
    if (!remove(entry)) continue;
    chosen.push(entry);
    if (!o.dryRun) await unlink(file).catch(() => undefined);
  }
  return chosen;
}
