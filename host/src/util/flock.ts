/**
 * flock(2) for Node, which has none. flock(1) (util-linux, Essential on Debian, so on every PVE
 * node) takes the lock for a shell that keeps it while it reads our end of a pipe. The pipe
 * closes when we release, and also when this process dies in any way (kill -9 included), so a
 * lock never outlives its holder: there is no stale lock to detect or break.
 * Perl's flock on the same file excludes it too.
 *
 * `remove`: the lock file goes when its holder lets go (also after a kill -9 of the holder: the
 * shell notices the closed pipe and still holds the lock), so a directory of per-volume locks
 * does not keep one file per volume ever locked. Unlinking a flock file is safe only with the
 * check every taker makes here: a waiter that opened the file before its holder unlinked it
 * gets the lock on an inode no longer at the path, while a third process locks a new file there.
 * So, after locking, the taker compares the path with the locked inode and starts over when they
 * differ, and a file is only unlinked by its holder (who, by that check, holds what the path
 * names).
 */
import { spawn } from 'node:child_process';
import { unlink } from 'node:fs/promises';
import { EXIT, PveS3Error } from './errors.js';

export interface FileLock {
  /** the lock file */
  readonly path: string;
  /** drops the lock; resolves once it is dropped (and the file removed, with `remove`), so the
   *  next taker can have it at once */
  release(): Promise<void>;
}

/** flock(1)'s exit status when the lock stays taken (EX_TEMPFAIL, set with --conflict-exit-code) */
const BUSY = 75;

/**
 * $1 the file, $2 seconds to wait (0: only if free now), $3 1 to remove the file on release.
 * Signals for the process group (a Ctrl-C) are ignored: the lock lasts as long as our pipe, so it
 * is kept while we clean up and dropped when we are gone. Every backup takes such a lock, so the
 * script starts no program it can do without: date(1) only to wait, the shell's own read for the
 * pipe, and rm(1) only when the holder died (a release unlinks the file itself first).
 */
const TAKE = `trap '' HUP INT TERM
f=$1; w=$2
[ "$w" -gt 0 ] && end=$(( $(date +%s) + w ))
while :; do
  exec 9>>"$f" || exit 1
  if [ "$w" -gt 0 ]; then
    left=$(( end - $(date +%s) )); [ "$left" -gt 0 ] || left=1
    flock --exclusive --conflict-exit-code ${BUSY} --wait "$left" 9 || exit $?
  else
    flock --exclusive --conflict-exit-code ${BUSY} --nonblock 9 || exit $?
  fi
  [ /proc/$$/fd/9 -ef "$f" ] && break
  exec 9>&-
done
echo locked
while read -r _; do :; done
if [ "$3" = 1 ] && [ /proc/$$/fd/9 -ef "$f" ]; then rm -f -- "$f"; fi
`;

/**
 * Takes an exclusive lock on `path` (created if missing). `waitSeconds` 0: only if free now.
 * Resolves null when it stays taken for that long; `signal` gives up waiting (rejects Aborted).
 * `remove`: the file is removed when the lock is dropped (see above).
 */
export function flockFile(path: string, o: { waitSeconds: number; signal?: AbortSignal; remove?: boolean }): Promise<FileLock | null> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(aborted(path));
      return;
    }
    // the child gets no environment of ours (secrets live there) beyond PATH to find the tools
    const child = spawn('sh', ['-c', TAKE, 'pve-s3-flock', path, String(Math.max(0, Math.ceil(o.waitSeconds))), o.remove === true ? '1' : '0'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    let settled = false;
    let out = '';
    let err = '';
    const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(aborted(path));
    };
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (): void => {
      settled = true;
      o.signal?.removeEventListener('abort', onAbort);
    };
    child.stdin.on('error', () => undefined);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (settled || !out.includes('locked\n')) return;
      done();
      resolve({
        path,
        release: async () => {
          // the holder unlinks the file it holds: the shell then finds another file (or none) at
          // the path and leaves it; it removes the file itself only when we died holding it
          if (o.remove === true) await unlink(path).catch(() => undefined);
          child.stdin.end();
          await closed;
        },
      });
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (e) => {
      if (settled) return;
      done();
      reject(new PveS3Error('LockFailed', `cannot lock '${path}': sh could not be started (${e.message})`, { exitCode: EXIT.failure }));
    });
    void closed.then((code) => {
      if (settled) return;
      done();
      if (code === BUSY) resolve(null);
      const why = err.trim().split('\n')[0] || `exited with status ${code}`;
      // 127: the shell found no flock(1)
      reject(new PveS3Error('LockFailed', `cannot lock '${path}': ${why}${code === 127 ? ' (flock(1) comes with util-linux)' : ''}`, { exitCode: EXIT.failure }));
    });
  });
}

function aborted(path: string): PveS3Error {
  return new PveS3Error('Aborted', `gave up waiting for the lock '${path}'`, { exitCode: EXIT.failure });
}
