/**
 * Downloads land in a temporary file next to the destination and are renamed into place only
 * once complete, verified and fsynced: the final name never holds a partial or unverified file,
 * and the rename stays on one filesystem (atomic).
 */
import { randomBytes } from 'node:crypto';
import { link, open, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';

export const TEMP_MARK = '.pve-s3-tmp-';

export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}${TEMP_MARK}${randomBytes(6).toString('hex')}`);
}

export interface TempFile {
  path: string;
  fh: FileHandle;
}

export function destinationExists(dest: string): PveS3Error {
  return new PveS3Error('DestinationExists', `destination '${dest}' already exists: refusing to overwrite it (use force to replace it)`, {
    exitCode: EXIT.usage,
  });
}

/** Fails early (before any request) when the destination exists and may not be replaced. */
export async function checkDestination(dest: string, force: boolean): Promise<void> {
  const st = await stat(dest).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new PveS3Error('InvalidDestination', `cannot use destination '${dest}': ${e.code ?? e.message}`, { cause: e });
  });
  if (!st) return;
  if (st.isDirectory()) throw new PveS3Error('InvalidDestination', `destination '${dest}' is a directory; give a file name`, { exitCode: EXIT.usage });
  if (!force) throw destinationExists(dest);
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
      throw new PveS3Error('NoSpace', `not enough free space in '${dirname(dest)}' for '${basename(dest)}': need ${size} bytes, ${fs.bavail * fs.bsize} available`);
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
 * fsync, then move into place. Without force the move must not replace a file that appeared
 * meanwhile: link() fails on an existing name, atomically; where hard links are not supported
 * we fall back to a check followed by rename.
 */
export async function commitTemp(t: TempFile, dest: string, force: boolean, mode = 0o644): Promise<void> {
  await t.fh.chmod(mode & ~process.umask());
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
      await checkDestination(dest, false);
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
