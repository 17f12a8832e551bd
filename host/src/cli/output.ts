/**
 * Human output (tables, sizes, dates) on stdout, and the JSON form of the same data. Everything
 * human goes through printableLines (util/printable.ts): a value from the bucket cannot drive the
 * terminal. A value that may hold a newline of its own (an S3 key, a server's message) is also
 * wrapped in printable() where it is put into a line, so it cannot forge a line either.
 */
import { formatBackupTime } from '../pve/backup-time.js';
import { printable, printableLines } from '../util/printable.js';
export { formatBytes } from '../util/size.js';

export { printable };

export function writeOut(text: string): void {
  const t = printableLines(text);
  process.stdout.write(t.endsWith('\n') ? t : t + '\n');
}

export function writeJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, null, 2) + '\n');
}

/** Progress, warnings and step messages: stderr, so stdout stays data only. */
export function note(text: string): void {
  process.stderr.write(printableLines(text) + '\n');
}

/** Local time, as PVE shows backup times (the archive name holds local time too). */
export function formatTime(epochSeconds: number): string {
  return formatBackupTime(new Date(epochSeconds * 1000)).replace(/^(\d+)_(\d+)_(\d+)-(\d+)_(\d+)_(\d+)$/, '$1-$2-$3 $4:$5:$6');
}

/** An age in the two largest units: "40 s", "47 min", "3 h 5 min", "2 d 4 h". */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h} h${m % 60 ? ` ${m % 60} min` : ''}`;
  const d = Math.floor(h / 24);
  return `${d} d${h % 24 ? ` ${h % 24} h` : ''}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / (1024 * 1024)).toFixed(1)} MiB/s`;
}

export interface Column<T> {
  title: string;
  get(row: T): string;
  right?: boolean;
}

/** Plain aligned columns (no box drawing: the output is also read by grep and awk). */
export function table<T>(rows: readonly T[], cols: readonly Column<T>[]): string {
  const cells = rows.map((r) => cols.map((c) => printable(c.get(r).replace(/[\r\n\t]+/g, ' '))));
  const widths = cols.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (cols[i]!.right ? v.padStart(widths[i]!) : i === vals.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cols.map((c) => c.title)), ...cells.map(line)].join('\n') + '\n';
}

const CHECK_NAMES: Record<string, string> = { crc64nvme: 'CRC-64/NVME', sha256: 'SHA-256', md5: 'MD5', size: 'size' };

/** "CRC-64/NVME and SHA-256": the digests a download or check compared (transfer Check names). */
export function describeChecks(checks: readonly string[]): string {
  return checks.map((c) => CHECK_NAMES[c] ?? c).join(' and ');
}
