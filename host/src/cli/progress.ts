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

function eta(p: Progress): string {
  if (p.total === null || p.rate <= 0) return '--:--';
  const s = Math.max(0, Math.round((p.total - p.bytes) / p.rate));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function renderProgress(label: string, p: Progress, width = 24): string {
  const frac = p.total ? Math.min(1, p.bytes / p.total) : null;
  const bar = frac === null ? '' : `[${'#'.repeat(Math.round(frac * width)).padEnd(width, '.')}] ${(frac * 100).toFixed(0).padStart(3)}% `;
  const of = p.total !== null ? ` / ${formatBytes(p.total)}` : '';
  return `${printable(label)} ${bar}${formatBytes(p.bytes)}${of}  ${formatRate(p.rate)}  ETA ${eta(p)}`;
}

export function progressBar(label: string, forced: boolean, stream: NodeJS.WriteStream = process.stderr): Bar {
  if (!forced && !stream.isTTY) return NONE;
  let last = '';
  return {
    update(p) {
      const line = renderProgress(label, p);
      if (line === last) return;
      last = line;
      stream.write(stream.isTTY ? `\r\x1b[2K${line}` : `${line}\n`);
    },
    done() {
      if (last && stream.isTTY) stream.write('\n');
    },
  };
}
