/**
 * A progress line on stderr: bar, bytes, rate and ETA. Drawn only on a terminal (or with
 * --progress), since a log file or a pipe would collect hundreds of carriage-return lines.
 */
import { ProgressTracker, type Progress } from '../transfer/progress.js';
import { formatBytes, formatRate, printable } from './output.js';

export interface Bar {
  update(p: Progress): void;
  done(): void;
}

const NONE: Bar = { update() {}, done() {} };

function eta(p: Progress, total: number | null): string {
  if (total === null || p.rate <= 0) return '--:--';
  const s = Math.max(0, Math.round((total - p.bytes) / p.rate));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * `expected`: a stream's expected size (--size, or its guest's disks), for a stream whose length
 * is not known: the bar and ETA are against it, marked '~' as estimates, while the stream is
 * shorter (a 30-minute stream upload otherwise shows bytes and rate only); beyond it, bytes only.
 */
export function renderProgress(label: string, p: Progress, width = 24, expected?: number): string {
  const estimated = p.total === null && expected !== undefined && expected > 0 && p.bytes < expected;
  const total = estimated ? expected : p.total;
  const frac = total ? Math.min(1, p.bytes / total) : null;
  const mark = estimated ? '~' : '';
  const bar = frac === null ? '' : `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${mark}${(frac * 100).toFixed(0).padStart(3)}% `;
  const of = total !== null ? ` / ${mark}${formatBytes(total)}` : '';
  const left = eta(p, total);
  return `${printable(label)} ${bar}${formatBytes(p.bytes)}${of}  ${formatRate(p.rate)}  ETA ${left === '--:--' ? left : mark + left}`;
}

export function progressBar(label: string, forced: boolean, stream: NodeJS.WriteStream = process.stderr, expected?: number): Bar {
  if (!forced && !stream.isTTY) return NONE;
  let last = '';
  return {
    update(p) {
      const line = renderProgress(label, p, 24, expected);
      if (line === last) return;
      last = line;
      stream.write(stream.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
    },
    done() {
      if (last && stream.isTTY) stream.write('\n');
    },
  };
}

/**
 * Progress of several volumes read at once (check-integrity --parallel). Each volume's own
 * redrawn line, as progressBar draws it, would overwrite the others' on a terminal; there the
 * board prints one line per volume as it finishes, above one live line of the whole run:
 * volumes done of all, bytes of all, the combined rate and the ETA. Without a terminal (with
 * --progress) each volume's lines are printed as they come, each starting with the volume's name,
 * and its finish line after them. Without either, only the finish lines.
 */
export interface Board {
  /** what the run reads: volumes and their bytes (for the live line's bar and ETA) */
  plan(volumes: number, bytes: number): void;
  update(id: string, label: string, p: Progress): void;
  /** `id` is done: its `size` bytes count as read, whether or not they were; `line` says how */
  finish(id: string, size: number, line?: string): void;
  done(): void;
}

export function progressBoard(forced: boolean, stream: NodeJS.WriteStream = process.stderr, now?: () => number): Board {
  const tty = stream.isTTY === true;
  const lines = forced && !tty;
  const seen = new Map<string, number>();
  const lastLine = new Map<string, string>();
  let live = '';
  const liveLine = (p: Progress): string => renderProgress(`${p.parts}/${p.partsTotal ?? '?'} volumes`, p);
  // bytes read move the rate; a finished volume's unread rest (archived, failed early) counts as
  // done without moving it (resume), so the ETA is what is left over the rate of what moves
  const all = new ProgressTracker((p) => {
    if (!tty) return;
    const line = liveLine(p);
    if (line === live) return;
    live = line;
    stream.write(`\r\x1b[2K${line}`);
  }, null, null, now ? { now } : {});
  return {
    plan(volumes, bytes) {
      all.total = bytes;
      all.partsTotal = volumes;
      if (volumes > 0) all.finish();
    },
    update(id, label, p) {
      all.add(p.bytes - (seen.get(id) ?? 0));
      seen.set(id, p.bytes);
      if (!lines) return;
      const line = renderProgress(label, p);
      if (line === lastLine.get(id)) return;
      lastLine.set(id, line);
      stream.write(`${line}\n`);
    },
    finish(id, size, line) {
      if (line !== undefined) {
        // on a terminal the finish line takes the live line's place, which is drawn again below it
        stream.write(live ? `\r\x1b[2K${line}\n` : `${line}\n`);
        live = '';
      }
      all.resume(Math.max(0, size - (seen.get(id) ?? 0)), 1);
      seen.delete(id);
      lastLine.delete(id);
    },
    done() {
      if (!live) return;
      stream.write(`\r\x1b[2K${liveLine(all.snapshot())}\n`);
      live = '';
    },
  };
}
