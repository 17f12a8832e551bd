/**
 * pve-s3-backup --from-command: a command whose stdout is the archive. Its stdout is a FIFO made
 * for the run, not a pipe node creates, because node hands a child's pipe to us only as a
 * Readable, whose every read is a fresh buffer (transfer/byte-source.ts); a FIFO descriptor is
 * read straight into the part buffers. The FIFO's directory is gone before the command starts:
 * only the two open ends remain, so nothing is left behind whatever happens to either process.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childEnv } from '../config/child-env.js';
import { fdSource, withEndCheck, type ByteSource } from '../transfer/byte-source.js';
import { EXIT, PveS3Error } from '../util/errors.js';

export interface Producer {
  command: string;
  child: ChildProcess;
  /** settles with the exit status, a signal name, or why it could not start */
  done: Promise<number | string>;
  /** its stdout, ending in SourceFailed unless it exits 0, so the engine aborts the upload */
  output: ByteSource;
  /** Stops it if still running (the upload failed: it would block on a full FIFO forever). */
  stop(): void;
}

export function startProducer(command: string): Producer {
  const dir = mkdtempSync(join(tmpdir(), 'pve-s3-backup-'));
  let rfd = -1;
  let wfd = -1;
  let child: ChildProcess;
  try {
    const fifo = join(dir, 'stdout');
    try {
      execFileSync('mkfifo', ['-m', '600', fifo], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new PveS3Error('SourceFailed', `cannot run '${command}': making its output FIFO in ${dir} failed (${(e as Error).message.split('\n')[0]})`, { exitCode: EXIT.failure });
    }
    // the read end first and without waiting, so opening the write end does not block
    rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    wfd = openSync(fifo, constants.O_WRONLY);
    // stderr stays the terminal's (or the task log's): vzdump's own messages are the useful ones;
    // the environment is ours without its secrets (vzdump passes it on to hookscripts)
    child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', wfd, 'inherit'], env: childEnv() });
  } catch (e) {
    if (rfd >= 0) closeSync(rfd);
    throw e;
  } finally {
    // the child has its own copy: the FIFO ends when the command (and whatever it started) exits
    if (wfd >= 0) closeSync(wfd);
    rmSync(dir, { recursive: true, force: true });
  }
  const done = new Promise<number | string>((res) => {
    child.once('error', (e) => res(`could not be started (${e.message})`));
    child.once('close', (code, signal) => res(code ?? signal ?? 'unknown'));
  });
  const prod: Producer = {
    command,
    child,
    done,
    output: fdSource(rfd),
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
  prod.output = withEndCheck(prod.output, async () => {
    const status = await done;
    if (status !== 0) throw producerFailed(prod, status);
  });
  return prod;
}

function producerFailed(prod: Producer, status: number | string): PveS3Error {
  const how = typeof status === 'number' ? `exited with status ${status}` : /^SIG/.test(status) ? `was killed by ${status}` : status;
  return new PveS3Error('SourceFailed', `'${prod.command}' ${how}: its output is incomplete, so the upload was cancelled and nothing was stored; see its messages above`, {
    exitCode: EXIT.failure,
  });
}
