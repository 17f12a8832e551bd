/**
 * A container's tar archive as a compressed stream: GNU tar with vzdump's command line
 * (pve/ct-tar.ts), `cstream -t` between tar and the compressor when the job has a bandwidth
 * limit — vzdump's own pipeline, so the limit holds for the reads from the container as
 * Base.pm asks — and the `zstd` program, whose output we read from a FIFO straight into the
 * upload's part buffers. tar writes to zstd through a pipe of the kernel's: the host touches only
 * the compressed bytes (measured in docs/BACKUP-PROVIDER.md §7: a third of the CPU of reading
 * tar's output into zstd frames in-process, and half the wall time).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { childEnv } from '../config/child-env.js';
import { fdSource, withEndCheck, type ByteSource } from '../transfer/byte-source.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { openFifo } from '../util/fifo.js';

export interface CtTarStreamOptions {
  tarArgs: string[];
  /** bytes/s of uncompressed tar output; none: unlimited */
  bwlimitBytes?: number;
  /** where the FIFO is made (a directory this uid may write) */
  fifoDir: string;
  /** every line the programs write to stderr (tar's warnings and its --totals line) */
  onLine(line: string): void;
}

export interface CtTarStream {
  /** zstd's output; ends in SourceFailed unless every program exits 0 */
  output: ByteSource;
  /** uncompressed bytes tar has written so far (0 when that cannot be read) */
  tarBytes(): number;
  /** SIGTERM to every program still running (the upload failed or was cancelled) */
  stop(): void;
  /** every program has exited */
  done: Promise<void>;
}

interface Stage {
  name: string;
  child: ChildProcess;
  status: Promise<number | string>;
  lastLine: string;
}

/** vzdump's zstd=0: half the CPUs, so the guests keep the rest */
export function zstdThreads(): number {
  return Math.max(1, Math.floor((availableParallelism() + 1) / 2));
}

export function startCtTarStream(o: CtTarStreamOptions): CtTarStream {
  const fifo = openFifo('cannot start the container archive', o.fifoDir);
  const stages: Stage[] = [];
  const env = childEnv();
  let totals: number | null = null;
  const start = (name: string, argv: string[], stdin: 'ignore' | Readable, stdout: 'pipe' | number): Stage => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdin, stdout, 'pipe'], env });
    const st: Stage = { name, child, lastLine: '', status: Promise.resolve(0) };
    st.status = new Promise((res) => {
      child.once('error', (e: NodeJS.ErrnoException) => res(e.code === 'ENOENT' ? `is not installed (apt install ${name})` : `could not be started (${e.message})`));
      child.once('close', (code, signal) => res(code ?? signal ?? 'unknown'));
    });
    lines(child.stderr!, (l) => {
      st.lastLine = l;
      const m = name === 'tar' ? /^Total bytes written: (\d+)/.exec(l) : null;
      if (m) totals = Number(m[1]);
      o.onLine(l);
    });
    stages.push(st);
    return st;
  };
  try {
    let prev = start('tar', ['tar', ...o.tarArgs], 'ignore', 'pipe');
    if (o.bwlimitBytes) prev = pipeOn(prev, start('cstream', ['cstream', '-t', String(o.bwlimitBytes)], prev.child.stdout!, 'pipe'));
    pipeOn(prev, start('zstd', ['zstd', '-q', '-c', `--threads=${zstdThreads()}`], prev.child.stdout!, fifo.write));
  } catch (e) {
    for (const s of stages) s.child.kill('SIGTERM');
    closeSync(fifo.read);
    throw e;
  } finally {
    // zstd has its own copy: the FIFO ends when zstd exits
    closeSync(fifo.write);
  }
  const tar = stages[0]!;
  const done = Promise.all(stages.map((s) => s.status)).then(() => undefined);
  let lastSeen = 0;
  const stream: CtTarStream = {
    output: withEndCheck(fdSource(fifo.read), async () => {
      const statuses = await Promise.all(stages.map((s) => s.status));
      // a program that died of SIGPIPE only saw the next one fail: name that one
      const i = statuses.findIndex((s) => s !== 0 && s !== 'SIGPIPE');
      const j = i >= 0 ? i : statuses.findIndex((s) => s !== 0);
      if (j >= 0) throw stageFailed(stages[j]!, statuses[j]!);
    }),
    tarBytes() {
      if (totals !== null) return totals;
      try {
        const m = /^wchar:\s*(\d+)/m.exec(readFileSync(`/proc/${tar.child.pid}/io`, 'utf8'));
        if (m) lastSeen = Number(m[1]);
      } catch {
        // exited, or not ours to read: the last value seen
      }
      return lastSeen;
    },
    stop() {
      for (const s of stages) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    },
    done,
  };
  return stream;
}

/** `next` reads what `prev` writes: our copy of the pipe between them goes, or `prev` would block
 *  on a full pipe forever instead of getting SIGPIPE when `next` dies */
function pipeOn(prev: Stage, next: Stage): Stage {
  prev.child.stdout?.destroy();
  return next;
}

function lines(r: Readable, onLine: (l: string) => void): void {
  let rest = '';
  r.setEncoding('utf8');
  r.on('data', (s: string) => {
    const parts = (rest + s).split('\n');
    rest = parts.pop()!;
    for (const p of parts) if (p.trim() !== '') onLine(p);
  });
  r.on('end', () => {
    if (rest.trim() !== '') onLine(rest);
  });
}

function stageFailed(s: Stage, status: number | string): PveS3Error {
  const how = typeof status === 'number' ? `exited with status ${status}` : /^SIG/.test(status) ? `was killed by ${status}` : status;
  const last = s.lastLine ? ` (${s.lastLine})` : '';
  return new PveS3Error('SourceFailed', `${s.name} ${how}${last}: the container archive is incomplete, so nothing was stored`, { exitCode: EXIT.failure });
}
