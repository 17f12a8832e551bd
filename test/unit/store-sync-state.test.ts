// What the background sync leaves for an admin (issue 11 §5): one log line per outcome (none for
// a file still being written), the last outcome per pending file in .pve-s3/sync-state.json,
// entries of files no longer pending dropped, and the pending list maintenance status shows.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatAge } from '../../host/src/cli/output.js';
import { RECENTLY_MODIFIED, pendingWithSyncState, recordSyncRun, type SyncState } from '../../host/src/store/sync-state.js';
import type { StoreContext, StoreSettings } from '../../host/src/store/types.js';
import type { Logger } from '../../host/src/util/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const NOW = new Date('2026-03-01T12:00:00Z');

function setup() {
  const cacheDir = mkdtempSync(join(tmpdir(), 'pve-s3-sync-state-'));
  dirs.push(cacheDir);
  mkdirSync(join(cacheDir, 'template/iso'), { recursive: true });
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  const logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger;
  const ctx = { client: undefined as never, settings: { cacheDir } as StoreSettings, logger, now: () => NOW } as StoreContext;
  const file = (name: string, ageSeconds: number, bytes = 3) => {
    const p = join(cacheDir, 'template/iso', name);
    writeFileSync(p, 'x'.repeat(bytes));
    const t = NOW.getTime() / 1000 - ageSeconds;
    utimesSync(p, t, t);
    return p;
  };
  const state = () => JSON.parse(readFileSync(join(cacheDir, '.pve-s3/sync-state.json'), 'utf8')) as SyncState;
  return { cacheDir, ctx, lines, file, state };
}

describe('sync-state', () => {
  it('records and logs each outcome; a file still being written is recorded but not logged', async () => {
    const { cacheDir, ctx, lines, file, state } = setup();
    file('failed.iso', 1200);
    file('young.iso', 5);
    await recordSyncRun(ctx, cacheDir, {
      uploaded: ['iso/done.iso'],
      skipped: [{ volname: 'iso/young.iso', reason: RECENTLY_MODIFIED }],
      errors: [{ volname: 'iso/failed.iso', message: 'cannot reach http://127.0.0.1:1: connection refused' }],
    });
    const at = NOW.getTime() / 1000;
    expect(state()).toEqual({
      last_run: at,
      files: {
        'iso/done.iso': { at, result: 'uploaded' },
        'iso/young.iso': { at, result: 'skipped', reason: RECENTLY_MODIFIED },
        'iso/failed.iso': { at, result: 'error', reason: 'cannot reach http://127.0.0.1:1: connection refused' },
      },
    });
    expect(lines).toEqual([
      { level: 'info', msg: 'sync-local uploaded', fields: { volname: 'iso/done.iso' } },
      { level: 'error', msg: 'sync-local failed', fields: { volname: 'iso/failed.iso', error: 'cannot reach http://127.0.0.1:1: connection refused' } },
    ]);
    expect(statSync(join(cacheDir, '.pve-s3/sync-state.json')).mode & 0o777).toBe(0o600);
  });

  it('keeps the last word on files still pending and drops the others', async () => {
    const { cacheDir, ctx, file, state } = setup();
    const failed = file('failed.iso', 1200);
    file('waiting.iso', 1200);
    await recordSyncRun(ctx, cacheDir, {
      uploaded: [],
      skipped: [],
      errors: [
        { volname: 'iso/failed.iso', message: 'boom' },
        { volname: 'iso/waiting.iso', message: 'boom too' },
      ],
    });
    rmSync(failed); // uploaded by the hook meanwhile
    await recordSyncRun(ctx, cacheDir, { uploaded: [], skipped: [], errors: [] });
    expect(Object.keys(state().files)).toEqual(['iso/waiting.iso']);
    expect(state().files['iso/waiting.iso']!.reason).toBe('boom too');
  });

  it('lists pending files oldest first with size, age and the last sync', async () => {
    const { cacheDir, ctx, file } = setup();
    file('new.iso', 30, 10);
    file('old.iso', 3600 + 120, 20);
    await recordSyncRun(ctx, cacheDir, { uploaded: [], skipped: [], errors: [{ volname: 'iso/old.iso', message: 'refused' }] });
    const r = await pendingWithSyncState(ctx);
    expect(r.last_run).toBe(NOW.getTime() / 1000);
    expect(r.pending).toEqual([
      { volname: 'iso/old.iso', size: 20, age: 3720, last_sync: { at: NOW.getTime() / 1000, result: 'error', reason: 'refused' } },
      { volname: 'iso/new.iso', size: 10, age: 30, last_sync: null },
    ]);
  });

  it('without a state file: no run yet', async () => {
    const { ctx } = setup();
    expect(await pendingWithSyncState(ctx)).toEqual({ last_run: null, pending: [] });
  });
});

describe('formatAge', () => {
  it.each([
    [0, '0 s'],
    [59, '59 s'],
    [60, '1 min'],
    [3599, '59 min'],
    [3600, '1 h'],
    [3720, '1 h 2 min'],
    [86400, '1 d'],
    [90000, '1 d 1 h'],
  ])('%i s reads %s', (s, text) => {
    expect(formatAge(s)).toBe(text);
  });
});
