/**
 * sync-local: gets files PVE wrote into the cache dir (a GUI ISO upload, a vzdump archive the
 * hook did not take) into the bucket. Only files that have been quiet for a while (cp/scp are not
 * atomic), that are valid volumes, and that are not already copies of bucket objects.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_TYPES } from '../pve/content.js';
import { parseVolumeFile } from '../pve/volname.js';
import { SYNC_QUIET_SECONDS, localOnlyFiles } from './local-cache.js';
import { assertOwnPath } from './path-shared.js';
import { stateDir } from './state-dir.js';
import { putLocalVolume } from './put-local.js';
import { isReplaceRefusal } from './replace.js';
import { RECENTLY_MODIFIED, recordSyncRun } from './sync-state.js';
import { nowOf, type Content, type StoreContext } from './types.js';
import { pidAlive } from '../util/process.js';

export interface SyncOutcome {
  uploaded: string[];
  skipped: { volname: string; reason: string }[];
  errors: { volname: string; message: string }[];
  dryRun: boolean;
}

/**
 * One sync per storage and node. Node has no flock(2), so the lock is an O_EXCL file holding our
 * pid; one left by a dead process is taken over.
 */
async function takeLock(path: string): Promise<(() => Promise<void>) | null> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (pidAlive(pid)) return null;
      await rm(path, { force: true });
    }
  }
  return null;
}

export async function syncLocal(
  ctx: StoreContext,
  o: { quietSeconds?: number; dryRun?: boolean; keepLocal?: boolean; contents?: Content[] } = {},
): Promise<SyncOutcome> {
  const out: SyncOutcome = { uploaded: [], skipped: [], errors: [], dryRun: o.dryRun === true };
  const cacheDir = ctx.settings.cacheDir;
  if (cacheDir === undefined) return out;
  const contents = o.contents ?? [...CONTENT_TYPES];
  const files = await localOnlyFiles(cacheDir, contents);
  const release = await takeLock(join(stateDir(cacheDir), 'sync.lock'));
  if (!release) {
    for (const f of files) out.skipped.push({ volname: `${f.content}/${f.name}`, reason: 'locked' });
    return out;
  }
  try {
    await assertOwnPath(ctx);
    const quietMs = (o.quietSeconds ?? SYNC_QUIET_SECONDS) * 1000;
    const now = nowOf(ctx).getTime();
    for (const f of files) {
      const volname = `${f.content}/${f.name}`;
      if (now - f.mtimeMs < quietMs) {
        out.skipped.push({ volname, reason: RECENTLY_MODIFIED });
        continue;
      }
      if (o.dryRun) {
        out.skipped.push({ volname, reason: 'dry run' });
        continue;
      }
      try {
        const v = parseVolumeFile(f.content, f.name);
        // a name the bucket holds with other bytes (another node or tool put it there) is never
        // overwritten; the same bytes make the local file its copy
        const r = await putLocalVolume(ctx, v.volname, f.path, {
          replace: false,
          removeSource: o.keepLocal === false,
          waitSeconds: 0,
          who: 'sync-local',
        });
        if (r.result === 'identical') out.skipped.push({ volname, reason: 'already in bucket, identical' });
        else out.uploaded.push(volname);
      } catch (e) {
        if (isReplaceRefusal(e)) out.skipped.push({ volname, reason: 'already in bucket' });
        else if ((e as { code?: unknown }).code === 'VolumeBusy') out.skipped.push({ volname, reason: 'being uploaded by another process' });
        else out.errors.push({ volname, message: (e as Error).message });
      }
    }
  } catch (e) {
    // the run as a whole failed (the bucket is away): that is every undecided file's outcome
    const decided = new Set([...out.uploaded, ...out.skipped.map((x) => x.volname), ...out.errors.map((x) => x.volname)]);
    for (const f of files) {
      const volname = `${f.content}/${f.name}`;
      if (!decided.has(volname)) out.errors.push({ volname, message: (e as Error).message });
    }
    if (!out.dryRun) await recordSyncRun(ctx, cacheDir, out);
    throw e;
  } finally {
    await release();
  }
  if (!out.dryRun) await recordSyncRun(ctx, cacheDir, out);
  return out;
}
