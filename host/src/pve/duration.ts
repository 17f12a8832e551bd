/**
 * Ages for `--older-than`: `90d`, `12w`, `6mo` (or `6m`), `1y`, `36h`. `m` is months, not minutes
 * (no age here is counted in minutes), and `mo` says so unambiguously. Months and years are calendar
 * months/years counted back from "now" in local time (6m before 31 August is 28/29 February, the
 * day clamped to the month's end), which is what an administrator means by "older than 6 months";
 * h/d/w are fixed lengths.
 */
import { ConfigError } from '../util/errors.js';

export type DurationUnit = 'h' | 'd' | 'w' | 'm' | 'y';

export interface Duration {
  count: number;
  unit: DurationUnit;
  text: string;
}

const RE = /^\s*(\d{1,6})\s*(h|d|w|mo|m|y)\s*$/i;
const HOUR = 3_600_000;
const FIXED: Partial<Record<DurationUnit, number>> = { h: HOUR, d: 24 * HOUR, w: 7 * 24 * HOUR };

const ALLOWED =
  'a positive number followed by h (hours), d (days), w (weeks), mo or m (months, never minutes) or y (years), e.g. 36h, 90d, 12w, 6mo, 1y';

export function parseDuration(text: string, key = 'older-than'): Duration {
  const m = RE.exec(text ?? '');
  if (!m) throw new ConfigError(key, text, `must be ${ALLOWED}`);
  const count = Number(m[1]);
  if (count < 1) throw new ConfigError(key, text, `must be ${ALLOWED}`);
  const unit = m[2]!.toLowerCase();
  return { count, unit: (unit === 'mo' ? 'm' : unit) as DurationUnit, text: text.trim() };
}

/** The instant `d` before `now`: anything strictly older than it is "older than d". */
export function durationCutoff(d: Duration | string, now: Date = new Date()): Date {
  const dur = typeof d === 'string' ? parseDuration(d) : d;
  const fixed = FIXED[dur.unit];
  if (fixed !== undefined) return new Date(now.getTime() - dur.count * fixed);
  const t = new Date(now.getTime());
  const months = dur.unit === 'y' ? dur.count * 12 : dur.count;
  const day = t.getDate();
  t.setDate(1);
  t.setMonth(t.getMonth() - months);
  // clamp to the last day of the target month instead of overflowing into the next one
  const last = new Date(t.getFullYear(), t.getMonth() + 1, 0).getDate();
  t.setDate(Math.min(day, last));
  return t;
}

/** Approximate length in milliseconds (30-day months, 365-day years), for display and sorting. */
export function durationMs(d: Duration | string): number {
  const dur = typeof d === 'string' ? parseDuration(d) : d;
  return dur.count * (FIXED[dur.unit] ?? (dur.unit === 'm' ? 30 * 24 * HOUR : 365 * 24 * HOUR));
}
