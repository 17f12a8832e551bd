/**
 * A container restore through the Backup Provider (Base.pm restore_container_init, mechanism
 * `tar`; pve-container's restore_external_archive wants a regular file it lists with `tar -tvf`
 * and then extracts). The archive is downloaded — parallel ranges, each verified against the
 * manifest — into a fresh restore directory (restore-dir.ts) inside PVE's restore worker, not in
 * an API call; `restore-container-cleanup` (restore_container_cleanup, also after a failure)
 * removes it, and a restore whose worker died is swept by the next one.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';
import { formatBytes } from '../util/size.js';
import { writeJsonAtomic } from '../util/json-file.js';
import { restoreRoot, type RestoreState } from './restore-dir.js';
import { openArchive } from './restore-archive.js';
import { progressLines } from './restore-stream.js';
import { sweepAbandoned } from './restore-vm.js';
import { stateDir } from './state-dir.js';
import { getVolume } from './transfer.js';
import type { StoreContext } from './types.js';

export interface RestoreContainerInit {
  dir: string;
  /** the archive, a regular file named so that pve-container's tar_compression_option knows it */
  path: string;
}

export async function restoreContainerInit(ctx: StoreContext, volname: string, o: { owner: number; onLine?(l: string): void }): Promise<RestoreContainerInit> {
  const root = restoreRoot(ctx);
  await sweepAbandoned(ctx).catch((e: Error) => o.onLine?.(`warning: cleaning up abandoned restores failed: ${e.message}`));
  const a = await openArchive(ctx, volname, { purpose: 'restore' });
  if (a.v.format !== 'tar' || (a.v.guestType !== undefined && a.v.guestType !== 'lxc' && a.v.guestType !== 'openvz')) {
    throw new PveS3Error('InvalidArgument', `'${a.v.name}' is not a container backup (vzdump-lxc-….tar[.zst|.gz|.lzo|.bz2])`, { exitCode: EXIT.usage });
  }
  stateDir(ctx.settings.cacheDir!, 'restore');
  const dir = await mkdtemp(join(root, `${a.v.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200)}.`));
  const st: RestoreState = { volname: a.v.volname, key: a.key, etag: a.etag, size: a.size, indexed: false, owner: o.owner, created: Math.floor(Date.now() / 1000), devices: [] };
  try {
    // the owner first: a sweep by another restore must see whose this is
    await writeJsonAtomic(join(dir, 'restore.json'), st);
    const path = join(dir, tarName(a.v.name));
    o.onLine?.(`downloading '${a.v.name}' (${formatBytes(a.size)}) to ${path}`);
    const progress = progressLines(a, o.onLine);
    const started = Date.now();
    const r = await getVolume(ctx, a.v.volname, path, { noClobber: true, onProgress: (p) => progress(p.bytes) });
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    const how = r.checks.length ? `verified (${r.checks.join(', ')})` : 'not verified';
    o.onLine?.(`downloaded '${a.v.name}': ${formatBytes(r.size)} in ${Math.round(secs)} s (${formatBytes(r.size / secs)}/s), ${how}`);
    if (!r.verified) o.onLine?.(`warning: '${a.v.name}' has no valid manifest: only its size${r.checks.includes('md5') ? ' and MD5' : ''} could be checked`);
    return { dir, path };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** pve-container reads the compression from `.tar.<ext>` only: an old `.tgz` becomes `.tar.gz` */
function tarName(name: string): string {
  return name.replace(/\.tgz$/, '.tar.gz');
}
