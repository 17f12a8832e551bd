import { describe, expect, it } from 'vitest';
import { durationCutoff, durationMs, parseDuration } from '../../host/src/pve/duration.js';
import { formatBackupTime, isoWeek, parseBackupTime } from '../../host/src/pve/backup-time.js';
import { ConfigError } from '../../host/src/util/errors.js';

process.env.TZ = 'UTC';

describe('durations for --older-than', () => {
  const now = new Date(Date.UTC(2024, 7, 31, 12, 0, 0)); // 31 Aug 2024

  it('parses the seed forms and hours', () => {
    expect(parseDuration('90d')).toEqual({ count: 90, unit: 'd', text: '90d' });
    expect(parseDuration('12w').unit).toBe('w');
    expect(parseDuration('6M').unit).toBe('m');
    expect(parseDuration(' 1y ').count).toBe(1);
    expect(parseDuration('36h').unit).toBe('h');
  });

  it('computes cutoffs: fixed lengths for h/d/w, calendar months and years for m/y', () => {
    expect(durationCutoff('36h', now).toISOString()).toBe('2024-08-30T00:00:00.000Z');
    expect(durationCutoff('90d', now).toISOString()).toBe('2024-06-02T12:00:00.000Z');
    expect(durationCutoff('2w', now).toISOString()).toBe('2024-08-17T12:00:00.000Z');
    // 6 months before 31 August: 29 February (leap year), not 2 March
    expect(durationCutoff('6m', now).toISOString()).toBe('2024-02-29T12:00:00.000Z');
    // `mo` says months unambiguously; `m` stays months (no age here is in minutes)
    expect(durationCutoff('6mo', now).toISOString()).toBe('2024-02-29T12:00:00.000Z');
    expect(parseDuration('6MO')).toMatchObject({ count: 6, unit: 'm' });
    expect(durationCutoff('1y', now).toISOString()).toBe('2023-08-31T12:00:00.000Z');
    expect(durationCutoff('1y', new Date(Date.UTC(2024, 1, 29))).toISOString()).toBe('2023-02-28T00:00:00.000Z');
    expect(durationMs('1d')).toBe(86_400_000);
  });

  it.each(['', '90', 'd', '0d', '-1d', '1.5d', '90 days', '1q', '9999999d', '6min', '6mon'])('refuses %j naming the key', (v) => {
    let err: unknown;
    try {
      parseDuration(v);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`invalid older-than '${v}'`);
    expect((err as Error).message).toContain('mo or m (months, never minutes)');
  });
});

describe('backup times', () => {
  it('formats and parses YYYY_MM_DD-HH_MM_SS in local time', () => {
    const d = new Date(Date.UTC(2023, 11, 25, 14, 30, 5));
    expect(formatBackupTime(d)).toBe('2023_12_25-14_30_05');
    expect(parseBackupTime('2023_12_25-14_30_05')).toBe(d.getTime() / 1000);
    process.env.TZ = 'Asia/Tokyo';
    try {
      expect(formatBackupTime(d)).toBe('2023_12_25-23_30_05');
      expect(parseBackupTime('2023_12_25-23_30_05')).toBe(d.getTime() / 1000);
    } finally {
      process.env.TZ = 'UTC';
    }
  });

  it('refuses times that are not on the calendar', () => {
    for (const s of ['2023_02_30-00_00_00', '2023_13_01-00_00_00', '2023_01_01-24_00_00', '2023_01_01-00_60_00', '2023-01-01 00:00:00']) {
      expect(parseBackupTime(s)).toBeNull();
    }
    expect(parseBackupTime('2024_02_29-00_00_00')).not.toBeNull();
  });

  it('ISO weeks match strftime %V/%G at year boundaries', () => {
    const w = (y: number, m: number, d: number) => isoWeek(new Date(y, m - 1, d));
    expect(w(2020, 12, 31)).toEqual({ week: 53, year: 2020 });
    expect(w(2021, 1, 3)).toEqual({ week: 53, year: 2020 });
    expect(w(2021, 1, 4)).toEqual({ week: 1, year: 2021 });
    expect(w(2019, 12, 30)).toEqual({ week: 1, year: 2020 });
    expect(w(2024, 12, 30)).toEqual({ week: 1, year: 2025 });
    expect(w(2027, 1, 1)).toEqual({ week: 53, year: 2026 });
  });
});
