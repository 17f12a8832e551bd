import { afterEach, describe, expect, it } from 'vitest';
import {
  formatPruneBackups,
  markBackupGroup,
  markPrune,
  parsePruneBackups,
  type PruneItem,
  type PruneKeep,
  type PruneMark,
} from '../../host/src/pve/prune.js';
import { ConfigError } from '../../host/src/util/errors.js';

process.env.TZ = 'UTC';
afterEach(() => {
  process.env.TZ = 'UTC';
});

const q = (time: string, vmid = 100, ext = 'vma.zst') => ({ name: `vzdump-qemu-${vmid}-${time}.${ext}` });
const lxc = (time: string, vmid = 100) => ({ name: `vzdump-lxc-${vmid}-${time}.tar.zst` });

/** marks in the order the backups were given */
function marks(list: Array<{ name: string; protected?: boolean; unverified?: boolean }>, keep: PruneKeep): PruneMark[] {
  const res = markPrune(list, keep);
  return list.map((b) => res.find((r) => r.backup === b)!.mark);
}

describe('parsePruneBackups (PVE prune-backups property string)', () => {
  it('parses the keep options', () => {
    expect(parsePruneBackups('keep-last=3,keep-daily=7,keep-weekly=4,keep-monthly=6,keep-yearly=1,keep-hourly=2')).toEqual({
      'keep-last': 3,
      'keep-daily': 7,
      'keep-weekly': 4,
      'keep-monthly': 6,
      'keep-yearly': 1,
      'keep-hourly': 2,
    });
    expect(parsePruneBackups(' keep-last=3 , keep-daily=7 ')).toEqual({ 'keep-last': 3, 'keep-daily': 7 });
  });

  it('normalises "no positive value" to keep-all, as PVE does', () => {
    expect(parsePruneBackups('keep-all=1')).toEqual({ 'keep-all': true });
    expect(parsePruneBackups('')).toEqual({ 'keep-all': true });
    expect(parsePruneBackups('keep-last=0,keep-daily=0')).toEqual({ 'keep-all': true });
    expect(parsePruneBackups('keep-all=0')).toEqual({ 'keep-all': true });
    expect(parsePruneBackups('keep-all=0,keep-last=2')).toEqual({ 'keep-last': 2 });
  });

  it.each([
    ['keep-all=1,keep-last=2', 'keep-all cannot be set together with other options'],
    ['keep-forever=1', "unknown option 'keep-forever'"],
    ['keep-last=-1', 'keep-last must be an integer ≥ 0'],
    ['keep-last=two', 'keep-last must be an integer ≥ 0'],
    ['keep-last=3,keep-last=4', "duplicate key 'keep-last'"],
    ['keep-last', "'keep-last' has no value"],
    ['keep-all=maybe', 'keep-all must be 0 or 1'],
  ])('refuses %j', (value, why) => {
    let err: unknown;
    try {
      parsePruneBackups(value);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain(`invalid prune-backups '${value}'`);
    expect((err as Error).message).toContain(why);
  });

  it('formats back to the canonical string', () => {
    expect(formatPruneBackups(parsePruneBackups('keep-daily=7,keep-last=3'))).toBe('keep-last=3,keep-daily=7');
    expect(formatPruneBackups({ 'keep-all': true })).toBe('keep-all=1');
  });
});

describe('markPrune: PVE prune_mark_backup_group semantics', () => {
  it('keep-last keeps the N newest, whatever the input order', () => {
    const list = [
      q('2024_01_03-10_00_00'),
      q('2024_01_05-10_00_00'),
      q('2024_01_01-10_00_00'),
      q('2024_01_04-10_00_00'),
      q('2024_01_02-10_00_00'),
    ];
    expect(marks(list, { 'keep-last': 3 })).toEqual(['keep', 'keep', 'remove', 'keep', 'remove']);
  });

  it('keep-daily keeps the newest backup of each of the N newest days', () => {
    const list = [
      q('2024_01_10-10_00_00'),
      q('2024_01_10-08_00_00'),
      q('2024_01_09-23_00_00'),
      q('2024_01_09-01_00_00'),
      q('2024_01_08-12_00_00'),
    ];
    expect(marks(list, { 'keep-daily': 2 })).toEqual(['keep', 'remove', 'keep', 'remove', 'remove']);
  });

  it('a longer period skips periods a shorter option already covered (keep-last then keep-daily)', () => {
    const list = [
      q('2024_01_10-10_00_00'),
      q('2024_01_10-08_00_00'),
      q('2024_01_09-23_00_00'),
      q('2024_01_09-01_00_00'),
      q('2024_01_08-12_00_00'),
    ];
    // keep-last takes 10th 10:00; the 10th is then covered, so daily looks at the 9th and 8th
    expect(marks(list, { 'keep-last': 1, 'keep-daily': 2 })).toEqual(['keep', 'remove', 'keep', 'remove', 'keep']);
  });

  it('keep-hourly works per local hour', () => {
    const list = [q('2024_01_10-10_59_00'), q('2024_01_10-10_01_00'), q('2024_01_10-09_30_00'), q('2024_01_10-08_30_00')];
    expect(marks(list, { 'keep-hourly': 2 })).toEqual(['keep', 'remove', 'keep', 'remove']);
  });

  it('keep-weekly uses ISO weeks and ISO week-years across the new year', () => {
    const list = [
      q('2021_01_04-12_00_00'), // Monday: ISO week 1 of 2021
      q('2021_01_03-12_00_00'), // Sunday: ISO week 53 of 2020
      q('2020_12_31-12_00_00'), // Thursday: ISO week 53 of 2020 as well
      q('2020_01_01-12_00_00'), // Wednesday: ISO week 1 of 2020
      q('2019_12_30-12_00_00'), // Monday: ISO week 1 of 2020 too
    ];
    expect(marks(list, { 'keep-weekly': 10 })).toEqual(['keep', 'keep', 'remove', 'keep', 'remove']);
  });

  it('keep-monthly and keep-yearly', () => {
    const monthly = [q('2024_03_01-00_00_00'), q('2024_02_29-23_59_59'), q('2024_02_01-00_00_00'), q('2024_01_31-12_00_00'), q('2024_01_15-12_00_00')];
    expect(marks(monthly, { 'keep-monthly': 2 })).toEqual(['keep', 'keep', 'remove', 'remove', 'remove']);
    const yearly = [q('2023_12_31-23_00_00'), q('2023_01_01-01_00_00'), q('2022_06_01-00_00_00'), q('2021_06_01-00_00_00')];
    expect(marks(yearly, { 'keep-yearly': 2 })).toEqual(['keep', 'remove', 'keep', 'remove']);
  });

  it('protected backups are marked protected and do not count toward any keep option', () => {
    const list = [
      { ...q('2024_01_05-10_00_00'), protected: true },
      q('2024_01_04-10_00_00'),
      q('2024_01_03-10_00_00'),
      q('2024_01_02-10_00_00'),
    ];
    expect(marks(list, { 'keep-last': 2 })).toEqual(['protected', 'keep', 'keep', 'remove']);
    // an old protected backup survives every policy
    const old = [q('2024_01_05-10_00_00'), { ...q('2020_01_01-10_00_00'), protected: true }];
    expect(marks(old, { 'keep-last': 1 })).toEqual(['keep', 'protected']);
  });

  it('names outside the vzdump pattern are "renamed" and never removed', () => {
    const list = [q('2024_01_05-10_00_00'), { name: 'vzdump-qemu-100-before-upgrade.vma.zst' }, { name: 'manual.tar' }, q('2024_01_04-10_00_00')];
    expect(marks(list, { 'keep-last': 1 })).toEqual(['keep', 'renamed', 'renamed', 'remove']);
  });

  it('groups by guest type and vmid', () => {
    const list = [
      q('2024_01_05-10_00_00', 100),
      q('2024_01_04-10_00_00', 100),
      lxc('2024_01_03-10_00_00', 100),
      lxc('2024_01_02-10_00_00', 100),
      q('2024_01_01-10_00_00', 101),
      q('2023_01_01-10_00_00', 101),
    ];
    expect(marks(list, { 'keep-last': 1 })).toEqual(['keep', 'remove', 'keep', 'remove', 'keep', 'remove']);
    const res = markPrune(list, { 'keep-last': 1 });
    expect(res.map((r) => `${r.type}/${r.vmid}`)).toEqual(['qemu/100', 'qemu/100', 'lxc/100', 'lxc/100', 'qemu/101', 'qemu/101']);
  });

  it('filters by type and vmid like pvesm prune-backups --type/--vmid', () => {
    const list = [q('2024_01_05-10_00_00', 100), lxc('2024_01_03-10_00_00', 100), q('2024_01_01-10_00_00', 101)];
    expect(markPrune(list, { 'keep-last': 1 }, { type: 'lxc' }).map((r) => r.name)).toEqual([list[1]!.name]);
    expect(markPrune(list, { 'keep-last': 1 }, { vmid: 101 }).map((r) => r.name)).toEqual([list[2]!.name]);
  });

  it('unverified backups are kept, outside their group: the verified ones are marked exactly as without them (issue 10 §5)', () => {
    const verified = [q('2024_01_03-10_00_00'), q('2024_01_02-10_00_00'), q('2024_01_01-10_00_00')];
    const planted = { ...q('2024_01_04-10_00_00'), unverified: true };
    const planted2 = { ...q('2024_01_02-12_00_00'), unverified: true };
    for (const keep of [{ 'keep-last': 1 }, { 'keep-daily': 2 }, { 'keep-last': 1, 'keep-daily': 1 }] as PruneKeep[]) {
      const alone = marks(verified, keep);
      expect(marks([planted, ...verified, planted2], keep)).toEqual(['unverified', ...alone, 'unverified']);
    }
    expect(marks([planted], { 'keep-last': 1 })).toEqual(['unverified']);
    // protection and a non-standard name say more than "unverified"
    expect(marks([{ ...planted, protected: true }, { name: 'x.vma', unverified: true }], { 'keep-last': 1 })).toEqual(['protected', 'renamed']);
  });

  it('keep-all (or nothing positive) keeps everything but preserves protected/renamed marks', () => {
    const list = [q('2024_01_05-10_00_00'), { ...q('2024_01_04-10_00_00'), protected: true }, { name: 'x.vma' }];
    expect(marks(list, { 'keep-all': true })).toEqual(['keep', 'protected', 'renamed']);
    expect(marks(list, { 'keep-last': 0, 'keep-daily': 0 })).toEqual(['keep', 'protected', 'renamed']);
  });

  it('mixed policy: last, daily, weekly, monthly, yearly each take what the previous left', () => {
    const list = [
      q('2024_03_10-12_00_00'), // last
      q('2024_03_10-06_00_00'), // same day as the kept one: covered → remove
      q('2024_03_09-12_00_00'), // daily (1)
      q('2024_03_08-12_00_00'), // ISO week 10, already covered by the kept 9th/10th → remove
      q('2024_03_01-12_00_00'), // weekly: ISO week 9
      q('2024_02_15-12_00_00'), // monthly: February
      q('2024_02_01-12_00_00'), // February covered → remove
      q('2023_07_01-12_00_00'), // yearly: 2023
      q('2022_07_01-12_00_00'), // beyond yearly=1 → remove
    ];
    expect(marks(list, { 'keep-last': 1, 'keep-daily': 1, 'keep-weekly': 1, 'keep-monthly': 1, 'keep-yearly': 1 })).toEqual([
      'keep',
      'remove',
      'keep',
      'remove',
      'keep',
      'keep',
      'remove',
      'keep',
      'remove',
    ]);
  });

  it('computes periods in local time (TZ of the node), like Perl localtime', () => {
    const group = (): PruneItem[] => [
      { ctime: Date.UTC(2024, 0, 10, 3, 0, 0) / 1000 }, // 10 Jan 03:00 UTC = 9 Jan 22:00 in New York
      { ctime: Date.UTC(2024, 0, 9, 23, 0, 0) / 1000 }, // 9 Jan 23:00 UTC = 9 Jan 18:00 in New York
    ];
    const utc = group();
    markBackupGroup(utc, { 'keep-daily': 5 });
    expect(utc.map((e) => e.mark)).toEqual(['keep', 'keep']);
    process.env.TZ = 'America/New_York';
    const ny = group();
    markBackupGroup(ny, { 'keep-daily': 5 });
    expect(ny.map((e) => e.mark)).toEqual(['keep', 'remove']);
  });

  it('markBackupGroup keeps preset marks and marks every other entry', () => {
    const g: Array<{ ctime: number; mark?: PruneMark }> = [{ ctime: 300 }, { ctime: 200, mark: 'protected' }, { ctime: 100 }, { ctime: 100 }];
    markBackupGroup(g, { 'keep-last': 2 });
    // two entries with the same ctime share keep-last's id: the second one is removed
    expect(g.map((e) => e.mark)).toEqual(['keep', 'protected', 'keep', 'remove']);
  });
});
