/**
 * sync-local: gets files PVE wrote into the cache dir (a GUI ISO upload, a vzdump archive the
 * hook did not take) into the bucket. Only files that have been quiet for a while (cp/scp are not
 * atomic), that are valid volumes, and that are not already copies of bucket objects.
 */
import { open, readFile, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTENT_TYPES } from '../pve/content.js';
import { parseVolumeFile } from '../pve/volname.js';
import { STATE_DIR, localOnlyFiles, writeRecord } from './local-cache.js';
import { listFolder } from './list.js';
import { readLocalSidecars } from './local-files.js';
import { putVolume } from './transfer.js';
import { nowOf, type Content, type StoreContext } from './types.js';
import { bareETag } from '../s3/xml.js';
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
  await mkdir(join(cacheDir, STATE_DIR), { recursive: true });
  const release = await takeLock(join(cacheDir, STATE_DIR, 'sync.lock'));
  if (!release) {
    for (const f of files) out.skipped.push({ volname: `${f.content}/${f.name}`, reason: 'locked' });
    return out;
  }
  try {
    const quietMs = (o.quietSeconds ?? 60) * 1000;
    const now = nowOf(ctx).getTime();
    const inBucket = new Map<Content, Set<string>>();
    for (const c of contents) inBucket.set(c, new Set((await listFolder(ctx, c)).keys()));
    for (const f of files) {
      const volname = `${f.content}/${f.name}`;
      if (now - f.mtimeMs < quietMs) {
        out.skipped.push({ volname, reason: 'recently modified' });
        continue;
      }
      if (inBucket.get(f.content)!.has(f.name)) {
        // the name exists in the bucket (another node or tool put it there): never overwrite it,
        // and never adopt the local file as its copy either, since equal sizes prove nothing
        out.skipped.push({ volname, reason: 'already in bucket' });
        continue;
      }
      if (o.dryRun) {
        out.skipped.push({ volname, reason: 'dry run' });
        continue;
      }
      try {
        const v = parseVolumeFile(f.content, f.name);
        const side = f.content === 'backup' ? await readLocalSidecars(f.path) : { protected: false };
        const vol = await putVolume(ctx, v.volname, {
          src: { path: f.path },
          ...side,
          removeSource: o.keepLocal === false,
        });
        if (o.keepLocal !== false && vol.etag) await writeRecord(cacheDir, f.content, f.name, bareETag(vol.etag));
        out.uploaded.push(volname);
      } catch (e) {
        out.errors.push({ volname, message: (e as Error).message });
      }
    }
  } finally {
    await release();
  }
  if (out.uploaded.length > 0) ctx.logger.info('synced local files', { uploaded: out.uploaded });
  return out;
}
