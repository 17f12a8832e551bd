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
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const VERSION = 1;

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

interface JournalFile extends JournalIdentity {
  version: number;
  uploadId: string;
  parts: Record<string, JournalPart>;
}

export class UploadJournal {
  private state: JournalFile | null = null;
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
      const s = JSON.parse(await readFile(j.file, 'utf8')) as JournalFile;
      const same =
        s.version === VERSION &&
        s.bucket === id.bucket &&
        s.key === id.key &&
        s.path === id.path &&
        s.size === id.size &&
        s.mtimeMs === id.mtimeMs &&
        s.partSize === id.partSize &&
        typeof s.uploadId === 'string' &&
        typeof s.parts === 'object' &&
        s.parts !== null;
      if (same) j.state = s;
      // a journal for another version of the file is stale: its upload is maintenance's to clean
      else await unlink(j.file).catch(() => undefined);
    } catch {
      // none, or unreadable: start afresh
    }
    return j;
  }

  previous(): { uploadId: string; parts: Map<number, JournalPart> } | null {
    if (!this.state) return null;
    return { uploadId: this.state.uploadId, parts: new Map(Object.entries(this.state.parts).map(([n, p]) => [Number(n), p])) };
  }

  start(uploadId: string, kept: Map<number, JournalPart> = new Map()): Promise<void> {
    this.state = { version: VERSION, ...this.id, uploadId, parts: Object.fromEntries([...kept].map(([n, p]) => [String(n), p])) };
    return this.save();
  }

  record(n: number, p: JournalPart): Promise<void> {
    if (!this.state) return Promise.resolve();
    this.state.parts[String(n)] = p;
    return this.save();
  }

  /** After Complete or Abort: nothing left to resume. */
  async remove(): Promise<void> {
    this.state = null;
    await this.writing;
    await unlink(this.file).catch(() => undefined);
  }

  /** Writes are serialised and atomic (temp + rename): a crash mid-write keeps the last good one. */
  private save(): Promise<void> {
    const snapshot = JSON.stringify(this.state);
    this.writing = this.writing.then(async () => {
      if (!this.state) return;
      const tmp = `${this.file}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, snapshot, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    return this.writing;
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
        const j = JSON.parse(await readFile(file, 'utf8')) as Partial<JournalFile>;
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
