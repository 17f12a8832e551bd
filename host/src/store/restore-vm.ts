/**
 * A VM restore through the Backup Provider (Base.pm restore_vm_init / restore_vm_cleanup;
 * qemu-server's restore_external_archive calls them around the devices, cleanup also after a
 * failure). Init opens the archive in a fresh working directory: an indexed archive needs only
 * its verified frame index there, any other is read once into sparse images
 * (restore-stream.ts). Cleanup stops every server, unmounts every device and removes the
 * directory; restores abandoned by a worker that died are swept the same way at the next init.
 */
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';
import { pidAlive } from '../util/process.js';
import { guestConfigs, type GuestConfigs } from './archive-config.js';
import { openArchive, readFrameIndex } from './restore-archive.js';
import { writeJsonAtomic } from '../util/json-file.js';
import { checkRestoreDir, mountPoints, readRestoreState, restoreRoot, type RestoreState } from './restore-dir.js';
import { restoreToImages } from './restore-stream.js';
import { stopVolume } from './restore-volume.js';
import type { StoreContext } from './types.js';

export interface RestoreVmInit {
  dir: string;
  indexed: boolean;
  devices: Array<{ name: string; size: number }>;
  configs: GuestConfigs;
}

export async function restoreVmInit(ctx: StoreContext, volname: string, o: { owner: number; onLine?(l: string): void }): Promise<RestoreVmInit> {
  const root = restoreRoot(ctx);
  await sweepAbandoned(ctx).catch((e: Error) => o.onLine?.(`warning: cleaning up abandoned restores failed: ${e.message}`));
  const a = await openArchive(ctx, volname, { purpose: 'restore' });
  if (a.v.format !== 'vma' || (a.v.guestType !== undefined && a.v.guestType !== 'qemu')) {
    throw new PveS3Error('InvalidArgument', `'${a.v.name}' is not a VM backup (vzdump-qemu-….vma[.zst|.gz|.lzo|.bz2])`, { exitCode: EXIT.usage });
  }
  await mkdir(root, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(root, `${a.v.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 200)}.`));
  const st: RestoreState = { volname: a.v.volname, key: a.key, etag: a.etag, size: a.size, indexed: false, owner: o.owner, created: Math.floor(Date.now() / 1000), devices: [] };
  try {
    // the owner first: a sweep by another restore must see whose this is while it is read
    await writeJsonAtomic(join(dir, 'restore.json'), st);
    const ix = await readFrameIndex(ctx, a);
    let devices: Array<{ name: string; size: number }>;
    let configs: GuestConfigs;
    if (ix) {
      await writeFile(join(dir, 'index.bin'), ix.raw, { mode: 0o600 });
      devices = ix.index.devices.map((d) => ({ name: d.name, size: d.size }));
      configs = (await guestConfigs(ctx, a)).configs;
      o.onLine?.(`backup '${a.v.name}' has a frame index: each device is read from the bucket as qemu-img asks for it, nothing is staged`);
    } else {
      o.onLine?.(`backup '${a.v.name}' has no frame index: reading it once into temporary images under '${dir}' (as large as the data its disks hold)`);
      const r = await restoreToImages(ctx, a, dir, o);
      devices = r.header.devices.map((d) => ({ name: d.name, size: d.size }));
      const conf = r.header.configs.find((c) => c.name === 'qemu-server.conf');
      if (!conf) throw new PveS3Error('VmaInvalid', `'${a.v.name}' holds no qemu-server.conf: not a vzdump archive of a VM`, { exitCode: EXIT.integrity });
      configs = { config: conf.data, firewall: r.header.configs.find((c) => c.name === 'qemu-server.fw')?.data ?? null };
    }
    st.indexed = ix !== null;
    st.devices = devices;
    await writeJsonAtomic(join(dir, 'restore.json'), st);
    return { dir, indexed: ix !== null, devices, configs };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}

/** Stops and unmounts every device of the restore, then removes its directory. */
export async function restoreVmCleanup(ctx: StoreContext, dirArg: string): Promise<{ removed: boolean }> {
  const dir = await checkRestoreDir(ctx, dirArg);
  const st = await readRestoreState(dir).catch(() => null);
  const problems: string[] = [];
  for (const d of st?.devices ?? []) {
    try {
      await stopVolume(ctx, dir, d.name);
    } catch (e) {
      // a server's failure was reported when its device was cleaned up; only what is left matters here
      if ((e as PveS3Error).code === 'RestoreFailed') problems.push((e as Error).message);
    }
  }
  const stillMounted = mountPoints().filter((m) => m.startsWith(dir + '/'));
  if (stillMounted.length) {
    problems.push(`still mounted: ${stillMounted.join(', ')}`);
    throw new PveS3Error('RestoreFailed', `cannot clean up restore directory '${dir}': ${problems.join('; ')}`);
  }
  await rm(dir, { recursive: true, force: true });
  if (problems.length) throw new PveS3Error('RestoreFailed', `cleaned up '${dir}', but: ${problems.join('; ')}`);
  return { removed: true };
}

/** restores whose owner is gone (a worker killed without its cleanup) */
export async function sweepAbandoned(ctx: StoreContext): Promise<void> {
  const root = restoreRoot(ctx);
  const names = await readdir(root).catch(() => [] as string[]);
  for (const n of names) {
    const dir = join(root, n);
    const st = await readRestoreState(dir).catch(() => null);
    // without its state file it is an init that died right after creating it (the state is its
    // first write), or one just being created: give that a minute
    if (st ? pidAlive(st.owner) : !(await olderThan(dir, 60_000))) continue;
    await restoreVmCleanup(ctx, dir).catch(() => undefined);
  }
}

async function olderThan(dir: string, ms: number): Promise<boolean> {
  const s = await stat(dir).catch(() => null);
  return !!s && Date.now() - s.mtimeMs > ms;
}
