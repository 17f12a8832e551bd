/**
 * The Backup Provider's host operations (docs/BACKUP-PROVIDER.md §3). Long operations write
 * progress lines to stderr as they go; the plugin copies them to the task log.
 */
import { writeSync } from 'node:fs';
import type { StoreContext } from '../store/types.js';
import { PveS3Error } from '../util/errors.js';
import { badArg, int, oneOf, str, strList } from './args.js';
import type { Op } from './ops.js';

function b64(a: Record<string, unknown>, name: string, optional: true): Buffer | undefined;
function b64(a: Record<string, unknown>, name: string): Buffer;
function b64(a: Record<string, unknown>, name: string, optional = false): Buffer | undefined {
  const s = str(a, name, true);
  if (s === undefined) {
    if (optional) return undefined;
    throw badArg(name, '', 'required: base64 text');
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw badArg(name, s.slice(0, 20), 'must be base64');
  return Buffer.from(s, 'base64');
}

function stderrLine(line: string): void {
  try {
    writeSync(2, line.replace(/[\r\n]+/g, ' ') + '\n');
  } catch {
    // a closed stderr must not fail the backup
  }
}

export const PROVIDER_OPS: Record<string, Op> = {
  async 'backup-init'(ctx, args) {
    const { archiveName, parseVolname } = await import('../pve/volname.js');
    const vmid = int(args, 'vmid', { min: 100 });
    const type = oneOf(args, 'type', ['qemu', 'lxc'] as const);
    const time = int(args, 'time', { min: 0 });
    if (vmid === undefined || type === undefined || time === undefined) throw badArg('vmid/type/time', '', 'required');
    const name = archiveName({ vmid, guestType: type, format: type === 'qemu' ? 'vma' : 'tar', compression: 'zst', time: new Date(time * 1000) });
    const volname = `backup/${name}`;
    const { freeArchiveKey, newRunId } = await import('../store/provider-archive.js');
    await freeArchiveKey(ctx, parseVolname(volname));
    return { result: { archive: name, volname, run: newRunId() }, message: `archive name ${name}` };
  },

  async 'backup-vm'(ctx, args) {
    const volname = str(args, 'volname');
    const time = int(args, 'time', { min: 0 });
    if (time === undefined) throw badArg('time', '', 'required: the backup time, seconds since the epoch');
    const devs = args.devices;
    if (!Array.isArray(devs) || devs.length === 0) throw badArg('devices', '', 'required: a non-empty list of { name, size, nbd_path }');
    const devices = devs.map((d: unknown, i: number) => {
      const o = d as Record<string, unknown>;
      if (typeof o !== 'object' || o === null) throw badArg(`devices[${i}]`, String(d), 'must be { name, size, nbd_path }');
      const name = str(o, 'name');
      if (!/^[A-Za-z0-9_.:-]{1,47}$/.test(name)) throw badArg(`devices[${i}].name`, name, 'must be a device name like drive-scsi0');
      const size = int(o, 'size', { min: 1 });
      if (size === undefined) throw badArg(`devices[${i}].size`, '', 'required: bytes');
      const nbdPath = str(o, 'nbd_path');
      if (!nbdPath.startsWith('/')) throw badArg(`devices[${i}].nbd_path`, nbdPath, 'must be an absolute path to a unix socket');
      const mode = str(o, 'bitmap_mode', true);
      if (mode !== undefined && mode !== 'none') throw badArg(`devices[${i}].bitmap_mode`, mode, "must be 'none' (no incremental backups yet)");
      return { name, size, nbdPath };
    });
    const bwlimitKiB = int(args, 'bwlimit_kib', { min: 0 });
    const { runIdOf } = await import('../store/provider-archive.js');
    const run = runIdOf(str(args, 'run', true));
    const { backupVm } = await import('../store/provider-vm.js');
    const { recordRun } = await import('../store/provider-run.js');
    const record = await recordRun(ctx, volname, run);
    try {
      const r = await backupVm(ctx, {
        volname,
        time,
        config: b64(args, 'config_b64'),
        firewall: b64(args, 'firewall_b64', true),
        devices,
        ...(bwlimitKiB ? { bwlimitKiB } : {}),
        ...(run !== undefined ? { run } : {}),
        uploads: record.client,
        onLine: stderrLine,
      });
      const { volumeJson } = await import('./ops.js');
      return {
        result: { volume: volumeJson(r.volume), size: r.size, frames: r.frames, read_bytes: r.readBytes, zero_bytes: r.zeroBytes, stored_blocks: r.storedBlocks },
        message: `stored ${volname} (${r.size} bytes, verified)`,
      };
    } finally {
      await record.done();
    }
  },

  async 'backup-container-prepare'(ctx, args) {
    const volname = str(args, 'volname');
    const uid = int(args, 'user_id', { min: 0, max: 0xfffffffe });
    if (uid === undefined) throw badArg('user_id', '', "required: Base.pm $info->{'backup-user-id'}");
    // the vzdump worker whose backup this is: its death abandons the work directory
    const owner = int(args, 'owner_pid', { min: 2 }) ?? process.ppid;
    const { prepareCtWorkDir } = await import('../store/ct-backup-dir.js');
    const dir = await prepareCtWorkDir(ctx, volname, { uid, owner, onLine: stderrLine });
    return { result: { dir }, message: `work directory ${dir} ready for uid ${uid}` };
  },

  async 'backup-container'(ctx, args) {
    const volname = str(args, 'volname');
    const directory = str(args, 'directory');
    if (!directory.startsWith('/')) throw badArg('directory', directory, 'must be an absolute path (the snapshot directory)');
    const sources = strList(args, 'sources') ?? [];
    if (sources.length === 0) throw badArg('sources', '', "required: Base.pm $info->{sources}, e.g. ['.']");
    for (const s of sources) {
      if (!/^\.(\/|$)/.test(s) || s.split('/').includes('..')) throw badArg('sources', s, "each must be '.' or a path below it starting with './', without '..'");
    }
    const exclude = strList(args, 'exclude') ?? [];
    const tarFlags = strList(args, 'tar_flags') ?? [];
    if (tarFlags.length === 0) throw badArg('tar_flags', '', 'required: PVE::Storage::Plugin::COMMON_TAR_FLAGS');
    for (const f of tarFlags) if (!/^-[^\s]+$/.test(f)) throw badArg('tar_flags', f, 'each must be one tar option');
    const userId = int(args, 'user_id', { min: 0, max: 0xfffffffe });
    if (userId === undefined) throw badArg('user_id', '', "required: Base.pm $info->{'backup-user-id'}");
    const bwlimitKiB = int(args, 'bwlimit_kib', { min: 0 });
    const { runIdOf } = await import('../store/provider-archive.js');
    const run = runIdOf(str(args, 'run', true));
    const { backupContainer } = await import('../store/provider-ct.js');
    const r = await backupContainer(ctx, {
      volname,
      directory,
      sources,
      exclude,
      tarFlags,
      userId,
      config: b64(args, 'config_b64'),
      firewall: b64(args, 'firewall_b64', true),
      ...(bwlimitKiB ? { bwlimitBytes: bwlimitKiB * 1024 } : {}),
      ...(run !== undefined ? { run } : {}),
      onLine: stderrLine,
    });
    const { volumeJson } = await import('./ops.js');
    return {
      result: { volume: volumeJson(r.volume), size: r.size, tar_bytes: r.tarBytes },
      message: `stored ${volname} (${r.size} bytes, verified)`,
    };
  },

  async 'backup-container-end'(ctx, args) {
    const volname = str(args, 'volname');
    const { removeCtWorkDir } = await import('../store/ct-backup-dir.js');
    await removeCtWorkDir(ctx, volname);
    // backup-container ran as the container's uid, without the manifest key: sign here, as root
    const { signStored } = await import('../store/adopt.js');
    await signStored(ctx, volname);
    const { statVolume } = await import('../store/volumes.js');
    const { assertUploadVerified } = await import('../store/local-files.js');
    const volume = await statVolume(ctx, volname);
    assertUploadVerified(volume);
    const { volumeJson } = await import('./ops.js');
    return { result: { volume: volumeJson(volume), size: volume.size }, message: `${volname}: stored and verified (${volume.size} bytes)` };
  },

  async 'backup-discard'(ctx, args) {
    const volname = str(args, 'volname');
    const { runIdOf } = await import('../store/provider-archive.js');
    const run = runIdOf(str(args, 'run', true));
    const { discardBackup } = await import('../store/provider-run.js');
    const r = await discardBackup(ctx, volname, run);
    const kept = r.kept ? `; kept '${r.kept}': ${r.keptWhy}` : '';
    const left = r.left
      ? `; left ${r.left} incomplete upload(s) of it this run did not make (another writer's still under way, or one left behind: the lifecycle rule or pve-s3-maintenance --action abort-uploads removes that)`
      : '';
    return {
      result: { removed: r.removed, aborted: r.aborted, left: r.left, ...(r.kept ? { kept: r.kept } : {}) },
      message: `discarded ${volname}: ${r.removed.length} objects removed, ${r.aborted} uploads aborted${left}${kept}`,
    };
  },

  async 'backup-log'(ctx, args) {
    const volname = str(args, 'volname');
    const src = str(args, 'src');
    if (!src.startsWith('/')) throw badArg('src', src, 'must be an absolute path');
    const { parseVolname, sidecarNames } = await import('../pve/volname.js');
    const { statVolume } = await import('../store/volumes.js');
    const v = parseVolname(volname);
    const log = sidecarNames(v.name).log;
    if (!log) throw badArg('volname', volname, 'a standard vzdump archive name (its log is named after it)');
    await statVolume(ctx, volname); // NoSuchKey: no log for an archive that is not there
    const { putBackupLog } = await import('../store/local-files.js');
    const r = await putBackupLog(ctx, src, log);
    return { result: { key: r.key, size: r.size }, message: `stored the task log of ${volname}` };
  },

  async 'archive-config'(ctx, args) {
    const volname = str(args, 'volname');
    const which = oneOf(args, 'which', ['guest', 'firewall'] as const) ?? 'guest';
    const { archiveConfig } = await import('../store/archive-config.js');
    const r = await archiveConfig(ctx, volname, which);
    return {
      result: { text_b64: r.text === null ? null : r.text.toString('base64'), source: r.source, bytes_read: r.bytesRead },
      message: r.text === null ? `${volname}: no ${which} configuration` : `${which} configuration of ${volname} from the ${r.source} (${r.bytesRead} bytes of the archive read)`,
    };
  },

  async 'restore-vm-init'(ctx, args) {
    const volname = str(args, 'volname');
    // the PVE worker that runs this restore: its death abandons the restore (see restore-dir.ts)
    const owner = int(args, 'owner_pid', { min: 2 }) ?? process.ppid;
    const { readableForPve } = await import('./archived.js');
    await readableForPve(ctx, volname);
    const { restoreVmInit } = await import('../store/restore-vm.js');
    const r = await restoreVmInit(ctx, volname, { owner, onLine: stderrLine });
    return {
      result: {
        dir: r.dir,
        indexed: r.indexed,
        devices: r.devices,
        config_b64: r.configs.config.toString('base64'),
        firewall_b64: r.configs.firewall === null ? null : r.configs.firewall.toString('base64'),
      },
      message: `${volname}: ${r.devices.length} devices ready to restore${r.indexed ? ' from the bucket' : ` from images in ${r.dir}`}`,
    };
  },

  async 'restore-volume-start'(ctx, args, io) {
    const dir = str(args, 'dir');
    const device = str(args, 'device');
    if (!io?.storage) throw new PveS3Error('InternalError', 'restore-volume-start needs the request');
    const { startVolume } = await import('../store/restore-volume.js');
    const r = await startVolume(ctx, dir, device, { storage: io.storage });
    return { result: { path: r.path }, message: `${device}: ${r.path}` };
  },

  async 'restore-volume-stop'(ctx, args) {
    const dir = str(args, 'dir');
    const device = str(args, 'device');
    const { stopVolume } = await import('../store/restore-volume.js');
    const r = await stopVolume(ctx, dir, device);
    return { result: { stats: r.stats ?? null }, message: `${device}: stopped` };
  },

  async 'restore-vm-cleanup'(ctx, args) {
    const dir = str(args, 'dir');
    const { restoreVmCleanup } = await import('../store/restore-vm.js');
    const r = await restoreVmCleanup(ctx, dir);
    return { result: { removed: r.removed }, message: `removed ${dir}` };
  },

  async 'restore-container-init'(ctx, args) {
    const volname = str(args, 'volname');
    const owner = int(args, 'owner_pid', { min: 2 }) ?? process.ppid;
    const { readableForPve } = await import('./archived.js');
    await readableForPve(ctx, volname);
    const { restoreContainerInit } = await import('../store/restore-ct.js');
    const r = await restoreContainerInit(ctx, volname, { owner, onLine: stderrLine });
    return { result: { dir: r.dir, path: r.path }, message: `${volname}: downloaded to ${r.path}` };
  },

  async 'restore-container-cleanup'(ctx, args) {
    const dir = str(args, 'dir');
    const { restoreVmCleanup } = await import('../store/restore-vm.js');
    const r = await restoreVmCleanup(ctx, dir);
    return { result: { removed: r.removed }, message: `removed ${dir}` };
  },

  /** internal: the detached server restore-volume-start runs (its stdout goes nowhere) */
  async 'restore-volume-serve'(ctx, args) {
    const dir = str(args, 'dir');
    const device = str(args, 'device');
    const fd = int(args, 'ready_fd', { min: 3 });
    if (fd === undefined) throw badArg('ready_fd', '', 'required: the descriptor to announce the mount on');
    const { serveVolume, announceReady } = await import('../store/restore-volume.js');
    const stats = await serveVolume(ctx, dir, device, (path) => announceReady(fd, path));
    return { result: { stats }, message: `${device}: served ${stats.bytesServed} bytes` };
  },
};

export type { StoreContext };
