/**
 * Backup times as PVE writes them into archive names: `YYYY_MM_DD-HH_MM_SS` in the node's local
 * time zone (vzdump uses localtime; archive_info turns it back with timelocal). Retention works on
 * this time, never on S3's LastModified (DESIGN.md §3), so it must round-trip exactly.
 */

const TIME_RE = /^(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2})$/;

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `2023_12_25-14_30_00` for a Date, in local time (TZ of this process, as vzdump does). */
export function formatBackupTime(d: Date): string {
  return (
    `${pad(d.getFullYear(), 4)}_${pad(d.getMonth() + 1)}_${pad(d.getDate())}` +
    `-${pad(d.getHours())}_${pad(d.getMinutes())}_${pad(d.getSeconds())}`
  );
}

/**
 * Epoch seconds of a `YYYY_MM_DD-HH_MM_SS` string read as local time, or null when it is not a
 * real calendar time (month 13, Feb 30, hour 24: Perl's timelocal refuses those too).
 */
export function parseBackupTime(s: string): number | null {
  const m = TIME_RE.exec(s);
  if (!m) return null;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return null;
  const dt = new Date(y, mo - 1, d, h, mi, se);
  // JS rolls Feb 30 over into March; a date that does not come back as written is not real
  if (dt.getFullYear() !== y || dt.getMonth() !== mo - 1 || dt.getDate() !== d) return null;
  return Math.floor(dt.getTime() / 1000);
}

/** ISO-8601 week number and week-based year (strftime %V / %G) of a local date. */
export function isoWeek(d: Date): { week: number; year: number } {
  // work on the calendar date only, in UTC, so DST cannot shift a day
  const t = new Date(Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()));
  const dow = t.getUTCDay() || 7; // Monday=1 … Sunday=7
  t.setUTCDate(t.getUTCDate() + 4 - dow); // the Thursday of this week decides the year
  const year = t.getUTCFullYear();
  const jan1 = Date.UTC(year, 0, 1);
  const week = Math.floor((t.getTime() - jan1) / 86_400_000 / 7) + 1;
  return { week, year };
}
