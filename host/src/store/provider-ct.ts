/**
 * A container backup as a PVE Backup Provider takes it (docs/BACKUP-PROVIDER.md §7, mechanism
 * `directory`): vzdump's tar of the snapshot directory, compressed by zstd, uploaded as it is made
 * through the transfer engine (bounded memory, no local file), with the guest texts in the
 * manifest for Show Configuration, then a HEAD that shows the object is what the manifest says.
 *
 * It runs as the container's root (Base.pm backup_container, through run_in_userns): it needs
 * nothing but the request (the secret comes with it), the snapshot directory, the work directory
 * `backup_container_prepare` made for it (ct-backup-dir.ts), and the programs tar, zstd and, with
 * a bandwidth limit, cstream. Whatever fails, nothing of the archive stays visible.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PCT_CONF_MEMBER, PCT_FW_MEMBER, ctTarArgs } from '../pve/ct-tar.js';
import { guestBackupBytes } from '../pve/guest-size.js';
import { MANIFEST_SUFFIX, parseVolname } from '../pve/volname.js';
import { EXIT, PveS3Error, asPveS3Error } from '../util/errors.js';
import { watchParent } from '../util/process.js';
import { formatBytes } from '../util/size.js';
import { openCtWorkDir } from './ct-backup-dir.js';
import { startCtTarStream } from './ct-tar-stream.js';
import { assertUploadVerified } from './local-files.js';
import { retentionFor } from './object-lock.js';
import { archiveUploadOptions, freeArchiveKey, removeFailedArchive } from './provider-archive.js';
import { recordRunAt } from './provider-run.js';
import { guestTexts } from './provider-vm.js';
import { statVolume } from './volumes.js';
import { transferClient, type StoreContext, type Volume } from './types.js';

export interface BackupContainerArgs {
  volname: string;
  /** Base.pm $info->{directory}: the container's file system (a snapshot, or a copy) */
  directory: string;
  /** Base.pm $info->{sources}: '.', './mp0', … relative to `directory` */
  sources: string[];
  /** vzdump's exclusion patterns (Base.pm $exclude_patterns) */
  exclude: string[];
  /** PVE::Storage::Plugin::COMMON_TAR_FLAGS of the running PVE */
  tarFlags: string[];
  /** Base.pm $info->{'backup-user-id'}: not 0 = an unprivileged container */
  userId: number;
  config: Buffer;
  firewall?: Buffer;
  /** Base.pm $info->{'bandwidth-limit'}, bytes/s of reads from the container */
  bwlimitBytes?: number;
  /** backup-init's id of this run, written into the archive's metadata (provider-archive.ts RUN_META) */
  run?: string;
  /** a progress line for the task log */
  onLine?(line: string): void;
}

export interface BackupContainerResult {
  volume: Volume;
  size: number;
  /** uncompressed tar bytes */
  tarBytes: number;
}

/** seconds between progress lines */
const PROGRESS_EVERY_MS = 10_000;

export async function backupContainer(ctx: StoreContext, a: BackupContainerArgs): Promise<BackupContainerResult> {
  const v = parseVolname(a.volname);
  if (v.content !== 'backup' || v.guestType !== 'lxc' || v.format !== 'tar' || v.compression !== 'zst') {
    throw new PveS3Error('InvalidArgument', `invalid volname '${a.volname}': a provider container backup is a vzdump-lxc-….tar.zst archive`, { exitCode: EXIT.usage });
  }
  // this runs as the container's uid, which must not (and cannot) read the storage's manifest
  // key: the manifest is written unsigned and backup-container-end, as root, signs it (signStored)
  delete ctx.settings.manifestKey;
  const dir = await openCtWorkDir(ctx, a.volname);
  const key = await freeArchiveKey(ctx, v);
  const record = await recordRunAt(join(dir, 'run'), a.volname, a.run, { keepUnfinished: true });
  const line = (l: string): void => a.onLine?.(l);
  // the configs are the tar's first members, read from files as vzdump's tar reads them
  const confDir = join(dir, 'conf');
  await rm(confDir, { recursive: true, force: true });
  await mkdir(join(confDir, 'etc', 'vzdump'), { recursive: true, mode: 0o755 });
  await writeFile(join(confDir, PCT_CONF_MEMBER), a.config, { mode: 0o644 });
  if (a.firewall !== undefined) await writeFile(join(confDir, PCT_FW_MEMBER), a.firewall, { mode: 0o644 });
  const { args, warnings } = ctTarArgs({
    tarFlags: a.tarFlags,
    configDir: confDir,
    firewall: a.firewall !== undefined,
    directory: a.directory,
    sources: a.sources,
    exclude: a.exclude,
    unprivileged: a.userId !== 0,
  });
  for (const w of warnings) line(`warning: ${w}`);
  if (a.bwlimitBytes) line(`reads from the container limited to ${formatBytes(a.bwlimitBytes)}/s`);

  // cancelled by the host's SIGTERM (ctx.signal), or when the PVE worker that started us is gone
  const ac = new AbortController();
  const onOuterAbort = (): void => ac.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const unwatch = watchParent(() => ac.abort(new PveS3Error('Aborted', 'the PVE worker running this backup is gone')));
  const tar = startCtTarStream({ tarArgs: args, fifoDir: dir, onLine: line, ...(a.bwlimitBytes ? { bwlimitBytes: a.bwlimitBytes } : {}) });
  const started = Date.now();
  let uploaded = 0;
  const progress = setInterval(() => {
    const t = tar.tarBytes();
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    line(`${v.name}: ${formatBytes(t)} read from the container, ${formatBytes(uploaded)} compressed and uploaded, ${formatBytes(t / secs)}/s`);
  }, PROGRESS_EVERY_MS);
  progress.unref();
  const expected = guestBackupBytes(a.config.toString('utf8'), 'lxc');
  // as for a VM (provider-vm.ts): only once its Complete went out may the archive exist
  let mayExist = false;
  try {
    const { uploadObject } = await import('../transfer/upload.js');
    const res = await uploadObject(record.client(transferClient(ctx)), key, { stream: tar.output, ...(expected !== undefined ? { expectedSize: expected } : {}) }, {
      // the job's limit is cstream's, on the reads: the storage's own applies to the upload
      ...(await archiveUploadOptions(ctx, v, { contentType: 'application/zstd', retention: retentionFor(ctx), unsigned: true, ...(a.run !== undefined ? { run: a.run } : {}) })),
      signal: ac.signal,
      onWriting: () => (mayExist = true),
      beforeWrite: async () => {
        await freeArchiveKey(ctx, v, { stored: true });
      },
      manifestExtra: async () => ({ guest: { type: 'lxc', ...guestTexts(a.config, a.firewall) } }),
      onProgress: (p) => {
        uploaded = p.bytes;
      },
    });
    await tar.done;
    const volume = await statVolume(ctx, a.volname);
    assertUploadVerified(volume);
    const tarBytes = tar.tarBytes();
    line(`stored ${v.name}: ${formatBytes(res.size)} for ${formatBytes(tarBytes)} of tar, in ${Math.round((Date.now() - started) / 1000)} s`);
    return { volume, size: res.size, tarBytes };
  } catch (e) {
    tar.stop();
    await tar.done;
    const err = asPveS3Error(e);
    const failed = ac.signal.aborted && err.code !== 'Aborted' ? new PveS3Error('Aborted', `backup cancelled: ${err.message}`) : err;
    // the engine aborted its multipart upload; an object completed before the failure goes too
    throw mayExist ? await removeFailedArchive(ctx, a.volname, [key, key + MANIFEST_SUFFIX], failed) : failed;
  } finally {
    unwatch();
    ctx.signal?.removeEventListener('abort', onOuterAbort);
    clearInterval(progress);
    tar.stop();
    await rm(confDir, { recursive: true, force: true }).catch(() => undefined);
    await record.done();
  }
}
