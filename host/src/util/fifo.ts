/**
 * A FIFO whose read end we keep and whose write end a child process gets as its stdout. Node
 * hands a child's pipe to us only as a Readable, whose every read is a fresh buffer; a FIFO
 * descriptor is read straight into the upload's part buffers (transfer/byte-source.ts). The
 * FIFO's name is gone before this returns: only the two open ends remain, so nothing is left
 * behind whatever happens to either process.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT, PveS3Error } from './errors.js';

export interface FifoEnds {
  /** ours, non-blocking */
  read: number;
  /** the child's: close it once the child has it */
  write: number;
}

/** `purpose` names the use in an error message; the FIFO is made in a new directory under `parent` */
export function openFifo(purpose: string, parent = tmpdir()): FifoEnds {
  const dir = mkdtempSync(join(parent, 'pve-s3-fifo-'));
  let read = -1;
  try {
    const fifo = join(dir, 'fifo');
    try {
      execFileSync('mkfifo', ['-m', '600', fifo], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new PveS3Error('SourceFailed', `${purpose}: making its output FIFO in ${dir} failed (${(e as Error).message.split('\n')[0]})`, { exitCode: EXIT.failure });
    }
    // the read end first and without waiting, so opening the write end does not block
    read = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    return { read, write: openSync(fifo, constants.O_WRONLY) };
  } catch (e) {
    if (read >= 0) closeSync(read);
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
