/**
 * Downloads land in a temporary file next to the destination and are renamed into place only
 * once complete, verified and fsynced: the final name never holds a partial or unverified file,
 * and the rename stays on one filesystem (atomic).
 */
import { randomBytes } from 'node:crypto';
import { writeSync } from 'node:fs';
import { link, lstat, open, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';
import { formatBytes } from '../util/size.js';

export const TEMP_MARK = '.pve-s3-tmp-';

export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}${TEMP_MARK}${randomBytes(6).toString('hex')}`);
}

export interface TempFile {
  path: string;
  fh: FileHandle;
}

export function destinationExists(dest: string, what = 'already exists'): PveS3Error {
  return new PveS3Error('DestinationExists', `destination '${dest}' ${what}: refusing to overwrite it (use force to replace it)`, {
    exitCode: EXIT.usage,
  });
}

/** Fails early (before any request) when the directory a restore would write into is not there. */
export async function checkDestinationDir(dest: string): Promise<void> {
  const dir = dirname(dest);
  if ((await stat(dir).catch(() => null))?.isDirectory()) return;
  throw new PveS3Error('InvalidArgument', `destination '${dest}': directory '${dir}' does not exist: create it first (mkdir -p), or name another`, { exitCode: EXIT.usage });
}

/**
 * Fails early (before any request) when the destination exists and may not be replaced. The name
 * itself is looked at, never what a symlink there points to: a link is something that exists
 * (with force it is replaced, its target never written). This is only the early answer: the
 * one that counts is given atomically by commitTemp.
 */
export async function checkDestination(dest: string, force: boolean): Promise<void> {
  const st = await lstat(dest).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new PveS3Error('InvalidDestination', `cannot use destination '${dest}': ${e.code ?? e.message}`, { cause: e });
  });
  if (!st) return;
  if (st.isDirectory()) throw new PveS3Error('InvalidDestination', `destination '${dest}' is a directory; give a file name`, { exitCode: EXIT.usage });
  if (!force) throw destinationExists(dest, st.isSymbolicLink() ? 'is a symbolic link' : 'already exists');
}

export async function createTemp(dest: string, size: number): Promise<TempFile> {
  const path = tempPathFor(dest);
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx+', 0o600);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PveS3Error('InvalidDestination', `cannot create a temporary file in '${dirname(dest)}': ${code ?? String(e)}`, { cause: e });
  }
  try {
    // a disk too small fails now, not after most of the transfer (ENOSPC would still be caught)
    const fs = await statfs(dirname(dest)).catch(() => null);
    if (fs && fs.bavail * fs.bsize < size) {
      const free = fs.bavail * fs.bsize;
      throw new PveS3Error('NoSpace', `not enough free space in '${dirname(dest)}' for '${basename(dest)}': it needs ${formatBytes(size)} (${size} bytes), ${formatBytes(free)} (${free} bytes) are free`);
    }
    if (size > 0) await fh.truncate(size);
  } catch (e) {
    await discardTemp({ path, fh });
    if (e instanceof PveS3Error) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new PveS3Error('InvalidDestination', `cannot allocate ${size} bytes for '${dest}': ${code ?? String(e)}`, { cause: e });
  }
  return { path, fh };
}

/**
 * Flushes what a download has written while the download goes on (fdatasync on the thread pool,
 * one at a time; a kick while one runs asks for one more after it), so that the fsync before the
 * rename finds little left. Without it the whole file, written at memory speed and far below the
 * kernel's dirty thresholds, only starts going to disk at that fsync: about a second per GiB
 * here, spent after the last byte arrived instead of beside the transfer.
 */
export class FlushBehind {
  private running: Promise<void> | null = null;
  private again = false;
  private error: Error | null = null;

  constructor(private readonly t: TempFile) {}

  kick(): void {
    if (this.error) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop();
  }

  /** Waits for the flush in progress; rejects with the first failure of any flush. */
  async done(): Promise<void> {
    await this.running;
    if (this.error) throw writeFailed(this.t.path, this.error);
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.t.fh.datasync();
      } while (this.again);
    } catch (e) {
      this.error = e as Error;
    } finally {
      this.running = null;
    }
  }
}

/**
 * Mode and times are set on the open temp file, fsync, then it is moved into place. Nothing is
 * done to the destination by its name afterwards (a chmod or utimes by name would follow a
 * symlink swapped in meanwhile). rename() replaces whatever is at the name, a symlink included,
 * without following it: that is force. Without force the move must not replace anything that
 * appeared since the early check: link() refuses an existing name (a symlink too), atomically,
 * like renameat2's RENAME_NOREPLACE. Where hard links are not supported (vfat, some FUSE), the
 * name is first reserved with O_CREAT|O_EXCL (never follows a symlink) and the file renamed over
 * that reservation: only someone allowed to delete our reservation could still slip in there.
 */
export async function commitTemp(t: TempFile, dest: string, force: boolean, o: { mode?: number; mtime?: number } = {}): Promise<void> {
  await t.fh.chmod((o.mode ?? 0o644) & ~process.umask());
  if (o.mtime !== undefined) await t.fh.utimes(o.mtime, o.mtime);
  await t.fh.sync();
  await t.fh.close();
  if (force) {
    await rename(t.path, dest);
  } else {
    try {
      await link(t.path, dest);
      await unlink(t.path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw destinationExists(dest);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV' && code !== 'EMLINK') throw e;
      const reserved = await open(dest, 'wx', 0o600).catch((e2: NodeJS.ErrnoException) => {
        if (e2.code === 'EEXIST') throw destinationExists(dest);
        throw e2;
      });
      await reserved.close();
      await rename(t.path, dest);
    }
  }
  await syncDir(dirname(dest));
}

/** Best effort: the temp file must not outlive a failed or cancelled download. */
export async function discardTemp(t: TempFile): Promise<void> {
  await t.fh.close().catch(() => undefined);
  await unlink(t.path).catch(() => undefined);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => null);
  if (!fh) return;
  await fh.sync().catch(() => undefined);
  await fh.close();
}

/** Writes all of `chunk` at `position` of the temp file `path` open as `fd` (a regular file takes
 *  it in one call as a rule); a failure is WriteFailed naming the file. */
export function writeAt(fd: number, chunk: Uint8Array, position: number, path: string): void {
  try {
    for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done, position + done);
  } catch (e) {
    throw writeFailed(path, e as Error);
  }
}

export function writeFailed(path: string, e: Error): PveS3Error {
  return new PveS3Error('WriteFailed', `cannot write to '${path}': ${e.message}`, { cause: e });
}
