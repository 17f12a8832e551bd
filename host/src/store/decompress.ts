/**
 * A decompressor program (pve/decompressor.ts) as a pipe stage: bytes written to `input` come
 * out of `output` decompressed. `done` settles when it exits: a failure names the program and
 * what it said, so a damaged archive reads "zstd -d: … Corrupted block detected".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { EXIT, PveS3Error } from '../util/errors.js';

export interface Decompressor {
  input: Writable;
  output: Readable;
  /** resolves when the program exited with 0 */
  done: Promise<void>;
  /** stops it (its output is not wanted any more); done then resolves */
  stop(): void;
}

export function startDecompressor(p: { argv: string[]; pkg: string }, what: string): Decompressor {
  const [cmd, ...args] = p.argv;
  const proc: ChildProcess = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let stopped = false;
  proc.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 4096) stderr += d.toString('utf8');
  });
  // a program that stops reading (it failed, or we stopped it) must not fail the writer with EPIPE
  proc.stdin!.on('error', () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    proc.once('error', (e: NodeJS.ErrnoException) => {
      reject(
        e.code === 'ENOENT'
          ? new PveS3Error('NotSupported', `'${cmd}' is needed to read ${what} and is not installed: apt install ${p.pkg}`)
          : new PveS3Error('InternalError', `cannot start '${cmd}' for ${what}: ${e.message}`),
      );
    });
    proc.once('close', (code, signal) => {
      if (code === 0 || stopped) return resolve();
      const said = stderr.trim().split('\n').pop() ?? '';
      reject(
        new PveS3Error('IntegrityError', `${p.argv.join(' ')} failed on ${what} (${signal ?? `exit code ${code}`})${said ? `: ${said}` : ''}`, {
          exitCode: EXIT.integrity,
        }),
      );
    });
  });
  done.catch(() => undefined);
  return {
    input: proc.stdin!,
    output: proc.stdout!,
    done,
    stop() {
      stopped = true;
      proc.stdin!.destroy();
      proc.stdout!.destroy();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    },
  };
}
