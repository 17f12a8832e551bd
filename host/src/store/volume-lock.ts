/**
 * One writer per volume on this node. The vzdump hook, pve-s3-backup, sync-local and the
 * protocol's upload all take this lock around an upload (put-local.ts, transfer.ts), so two
 * processes never drive one multipart upload or resume one journal: the journal under
 * `<path>/.pve-s3/upload-journal/` is only ever opened by the lock's holder.
 *
 * Under the storage's `path`: `.pve-s3/upload-locks/<content>.<name>.lock` (not the plugin's
 * `locks/` one, which activate_volume holds while it downloads: a restore from a pending archive
 * must not wait for its upload). Without a path (a storage from S3_* variables alone) there is
 * no journal to protect, but two uploads of one object would still race: a node-local directory
 * of our own then, one file per bucket and key.
 *
 * A lock file exists only while its lock is held or waited for: its holder removes it as it lets
 * go (util/flock.ts `remove`, safe against a waiter on the old file), so the directory does not
 * gather one file per volume ever uploaded. A holder whose whole process group was killed at once
 * can leave one behind: `abort-stale-uploads` removes those (sweepLockFiles).
 *
 * The lock also tells whether an upload's writer is still there (writerGone): a multipart upload
 * that cannot be resumed is remembered with its writer's lock (abandoned-uploads.ts).
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CONTENT_DIR } from '../pve/content.js';
import type { VolumeInfo } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { flockFile, type FileLock } from '../util/flock.js';
import { STATE_DIR } from './state-dir.js';
import { volid, type StoreContext } from './types.js';

/** How long a writer that must not give up (the hook: vzdump waits for it) waits for another
 *  upload of the same volume to finish: the biggest archives take hours on slow links. */
export const WAIT_FOR_WRITER_SECONDS = 6 * 3600;

async function privateDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  const uid = process.getuid?.();
  // someone else's directory (or a symlink planted in a shared /run/lock) is never used
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new PveS3Error('LockFailed', `lock directory '${dir}' is not a directory private to this user (mode 0700): remove it or fix its owner and mode`, {
      exitCode: EXIT.failure,
    });
  }
  return dir;
}

const lockDir = (cacheDir: string): string => join(cacheDir, STATE_DIR, 'upload-locks');

/** The lock files this process holds now: another of its uploads holds them, not a writer gone. */
const heldHere = new Set<string>();

async function lockFile(ctx: StoreContext, v: VolumeInfo): Promise<string> {
  if (ctx.settings.cacheDir !== undefined) {
    const dir = await privateDir(lockDir(ctx.settings.cacheDir));
    return join(dir, `${v.content}.${v.name}.lock`);
  }
  const base = (await lstat('/run/lock').catch(() => null))?.isDirectory() ? '/run/lock' : tmpdir();
  const dir = await privateDir(join(base, `pve-s3-${process.getuid?.() ?? 0}`));
  const id = createHash('sha256').update(`${ctx.settings.bucket}\n${ctx.settings.prefix}${CONTENT_DIR[v.content]}${v.name}`).digest('hex');
  return join(dir, `${id}.lock`);
}

/**
 * Takes the volume's writer lock. `waitSeconds` 0: only if free now. When another process holds
 * it, `onWait` hears who (once) before the wait; a lock still taken after the wait is VolumeBusy.
 */
export async function lockVolumeWriter(
  ctx: StoreContext,
  v: VolumeInfo,
  o: { waitSeconds: number; who: string; onWait?(message: string): void },
): Promise<FileLock> {
  const file = await lockFile(ctx, v);
  const sig = ctx.signal ? { signal: ctx.signal } : {};
  let lock = await flockFile(file, { waitSeconds: 0, remove: true, ...sig });
  if (lock === null) {
    const holder = (await readFile(file, 'utf8').catch(() => '')).trim();
    const by = holder !== '' ? ` (${holder})` : '';
    if (o.waitSeconds > 0) {
      o.onWait?.(`'${volid(ctx, v.volname)}' is being uploaded by another process on this node${by}: waiting up to ${Math.round(o.waitSeconds / 60)} min for it to finish`);
      lock = await flockFile(file, { waitSeconds: o.waitSeconds, remove: true, ...sig });
    }
    if (lock === null) {
      throw new PveS3Error(
        'VolumeBusy',
        `'${volid(ctx, v.volname)}' is being uploaded by another process on this node${by}: not uploaded again now; it is retried once that upload is over`,
        { exitCode: EXIT.failure, retryable: true },
      );
    }
  }
  // who holds it, for the message a second writer prints; the lock is the flock, not this text
  await writeFile(file, `pid ${process.pid}, ${o.who}\n`).catch(() => undefined);
  heldHere.add(file);
  const taken = lock;
  return {
    path: file,
    release: async () => {
      heldHere.delete(file);
      await taken.release();
    },
  };
}

/**
 * Whether the writer that held the lock `file` (of the storage at `cacheDir`) is gone: nobody
 * holds it (no file: its holder removed it as it let go), or this process does, which took it
 * after that writer. A lock held by another process is a live writer, or a later one of the same
 * volume: either way not gone.
 */
export async function writerGone(cacheDir: string, file: string): Promise<boolean> {
  // only a lock file of this storage's: a gone writer's lock file is removed, and nothing else may be
  if (dirname(file) !== lockDir(cacheDir) || !basename(file).endsWith('.lock')) return false;
  if (heldHere.has(file)) return true;
  if ((await lstat(file).catch(() => null)) === null) return true;
  return removeIfFree(file);
}

/** Takes `file`'s lock if nobody holds it, and lets go at once, which removes the file. */
async function removeIfFree(file: string): Promise<boolean> {
  const probe = await flockFile(file, { waitSeconds: 0, remove: true }).catch(() => null);
  if (probe === null) return false;
  await probe.release();
  return true;
}

/** Removes the lock files nobody holds (left by a holder killed together with its flock(1)). */
export async function sweepLockFiles(cacheDir: string): Promise<number> {
  const dir = lockDir(cacheDir);
  const names = await readdir(dir).catch(() => [] as string[]);
  let removed = 0;
  for (const name of names) {
    const file = join(dir, name);
    if (name.endsWith('.lock') && !heldHere.has(file) && (await removeIfFree(file))) removed++;
  }
  return removed;
}
