/**
 * flock(2) for Node, which has none. flock(1) (util-linux, Essential on Debian, so on every PVE
 * node) takes the lock on the file and keeps it while the `cat` it starts reads our end of a
 * pipe. The pipe closes when we release, and also when this process dies in any way (kill -9
 * included), so a lock never outlives its holder: there is no stale lock to detect or break.
 * Perl's flock on the same file excludes it too.
 */
import { spawn } from 'node:child_process';
import { EXIT, PveS3Error } from './errors.js';

export interface FileLock {
  /** drops the lock; resolves once flock(1) has exited, so the next taker can have it at once */
  release(): Promise<void>;
}

/** flock(1)'s exit status when the lock stays taken (EX_TEMPFAIL, set with --conflict-exit-code) */
const BUSY = 75;

/**
 * Takes an exclusive lock on `path` (created if missing). `waitSeconds` 0: only if free now.
 * Resolves null when it stays taken for that long; `signal` gives up waiting (rejects Aborted).
 */
export function flockFile(path: string, o: { waitSeconds: number; signal?: AbortSignal }): Promise<FileLock | null> {
  const wait = o.waitSeconds > 0 ? ['--wait', String(o.waitSeconds)] : ['--nonblock'];
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) {
      reject(aborted(path));
      return;
    }
    // the child gets no environment of ours (secrets live there) beyond PATH to find sh and cat
    const child = spawn('flock', ['--exclusive', '--conflict-exit-code', String(BUSY), ...wait, path, '-c', 'echo locked && exec cat >/dev/null'], {
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
        release: async () => {
          child.stdin.end();
          await closed;
        },
      });
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', (e) => {
      if (settled) return;
      done();
      reject(new PveS3Error('LockFailed', `cannot lock '${path}': flock(1) could not be started (${e.message}); it comes with util-linux`, { exitCode: EXIT.failure }));
    });
    void closed.then((code) => {
      if (settled) return;
      done();
      if (code === BUSY) resolve(null);
      else reject(new PveS3Error('LockFailed', `cannot lock '${path}': ${err.trim().split('\n')[0] || `flock exited with status ${code}`}`, { exitCode: EXIT.failure }));
    });
  });
}

function aborted(path: string): PveS3Error {
  return new PveS3Error('Aborted', `gave up waiting for the lock '${path}'`, { exitCode: EXIT.failure });
}
