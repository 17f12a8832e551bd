/**
 * A progress line on stderr: bar, bytes, rate and ETA. Drawn only on a terminal (or with
 * --progress), since a log file or a pipe would collect hundreds of carriage-return lines.
 */
import type { Progress } from '../transfer/progress.js';
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
