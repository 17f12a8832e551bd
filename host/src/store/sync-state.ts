/**
 * What the background sync did, kept where an admin (and the Perl plugin's status warning) can
 * find it: `<cache>/.pve-s3/sync-state.json` holds the last run's time and, per pending local
 * file, the last outcome (uploaded, skipped with the reason, or the error). The sync runs
 * detached with its output going nowhere, so this file and the storage log are the only traces.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_TYPES } from '../pve/content.js';
import { localOnlyFiles } from './local-cache.js';
import { STATE_DIR, stateDir } from './state-dir.js';
import { nowOf, type StoreContext } from './types.js';

export const SYNC_STATE_FILE = 'sync-state.json';

/** sync-local's reason for a file written less than quiet_seconds ago */
export const RECENTLY_MODIFIED = 'recently modified';

export type SyncResult = 'uploaded' | 'skipped' | 'error';

export interface SyncFileState {
  /** seconds since the epoch */
  at: number;
  result: SyncResult;
  /** why it was skipped, or the error message */
  reason?: string;
}

export interface SyncState {
  /** seconds since the epoch of the last run that got to its files */
  last_run: number;
  files: Record<string, SyncFileState>;
}

export interface SyncOutcomeLike {
  uploaded: string[];
  skipped: { volname: string; reason: string }[];
  errors: { volname: string; message: string }[];
}

function statePath(cacheDir: string): string {
  return join(cacheDir, STATE_DIR, SYNC_STATE_FILE);
}

export async function readSyncState(cacheDir: string): Promise<SyncState | null> {
  try {
    const s = JSON.parse(await readFile(statePath(cacheDir), 'utf8')) as SyncState;
    return typeof s === 'object' && s !== null && typeof s.files === 'object' ? s : null;
  } catch {
    return null;
  }
}

/**
 * Logs each outcome of one sync run to the storage log and records it. Entries of files that are
 * neither in this run nor pending any more are dropped, so the file never grows.
 */
export async function recordSyncRun(ctx: StoreContext, cacheDir: string, out: SyncOutcomeLike): Promise<void> {
  const at = Math.floor(nowOf(ctx).getTime() / 1000);
  const prev = (await readSyncState(cacheDir))?.files ?? {};
  const files: Record<string, SyncFileState> = {};
  for (const f of await localOnlyFiles(cacheDir, CONTENT_TYPES)) {
    const volname = `${f.content}/${f.name}`;
    if (prev[volname]) files[volname] = prev[volname];
  }
  for (const volname of out.uploaded) {
    files[volname] = { at, result: 'uploaded' };
    ctx.logger.info('sync-local uploaded', { volname });
  }
  for (const s of out.skipped) {
    files[s.volname] = { at, result: 'skipped', reason: s.reason };
    // a file still being written is skipped every minute until it is quiet: not worth a line
    if (s.reason !== RECENTLY_MODIFIED) ctx.logger.info('sync-local skipped', { volname: s.volname, reason: s.reason });
  }
  for (const e of out.errors) {
    files[e.volname] = { at, result: 'error', reason: e.message };
    ctx.logger.error('sync-local failed', { volname: e.volname, error: e.message });
  }
  const state: SyncState = { last_run: at, files };
  const p = statePath(cacheDir);
  stateDir(cacheDir);
  const tmp = `${p}.tmp.${process.pid}`;
  await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
  await rename(tmp, p);
}

export interface PendingFile {
  volname: string;
  size: number;
  /** seconds since the file was last written */
  age: number;
  last_sync: SyncFileState | null;
}

/** Pending local files (oldest first) with the last sync's word on each: maintenance status. */
export async function pendingWithSyncState(ctx: StoreContext): Promise<{ last_run: number | null; pending: PendingFile[] }> {
  const cacheDir = ctx.settings.cacheDir;
  if (cacheDir === undefined) return { last_run: null, pending: [] };
  const state = await readSyncState(cacheDir);
  const now = nowOf(ctx).getTime();
  const pending = (await localOnlyFiles(cacheDir, CONTENT_TYPES))
    .map((f) => {
      const volname = `${f.content}/${f.name}`;
      return { volname, size: f.size, age: Math.max(0, Math.floor((now - f.mtimeMs) / 1000)), last_sync: state?.files[volname] ?? null };
    })
    .sort((a, b) => b.age - a.age || a.volname.localeCompare(b.volname));
  return { last_run: state?.last_run ?? null, pending };
}
