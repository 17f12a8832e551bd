/**
 * pve-s3-backup --from-command: a command whose stdout is the archive, written into a FIFO made
 * for the run (util/fifo.ts says why).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { childEnv } from '../config/child-env.js';
import { fdSource, withEndCheck, type ByteSource } from '../transfer/byte-source.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { openFifo } from '../util/fifo.js';

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
  const fifo = openFifo(`cannot run '${command}'`);
  let child: ChildProcess;
  try {
    // stderr stays the terminal's (or the task log's): vzdump's own messages are the useful ones;
    // the environment is ours without its secrets (vzdump passes it on to hookscripts)
    child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', fifo.write, 'inherit'], env: childEnv() });
  } catch (e) {
    closeSync(fifo.read);
    throw e;
  } finally {
    // the child has its own copy: the FIFO ends when the command (and whatever it started) exits
    closeSync(fifo.write);
  }
  const done = new Promise<number | string>((res) => {
    child.once('error', (e) => res(`could not be started (${e.message})`));
    child.once('close', (code, signal) => res(code ?? signal ?? 'unknown'));
  });
  const prod: Producer = {
    command,
    child,
    done,
    output: fdSource(fifo.read),
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
