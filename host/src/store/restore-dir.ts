/**
 * The working directory of one restore through the Backup Provider (a VM, or a container: then
 * only restore.json and the downloaded archive)
 * (`<path>/.pve-s3/restore/<archive>.<random>`, root-only) and what lives in it:
 *
 *   restore.json          the archive (key, ETag, size), indexed or not, the devices, the owner
 *                         (the PVE worker whose restore this is)
 *   index.bin             the frame index, verified when the restore began
 *   <dev>.raw             non-indexed: the sparse image of the device
 *   <dev>.sock            indexed: the NBD server of the device
 *   <dev>/<dev>.raw       indexed: that export mounted by nbdfuse (the path qemu-img reads)
 *   <dev>.serve.json      indexed: the server's pids, state and, when it failed, why
 *   <dev>.fuse.pid        nbdfuse's pid, written by nbdfuse when it is ready
 *   <dev>.log             the server's and nbdfuse's stderr
 */
import { lstat, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { EXIT, PveS3Error } from '../util/errors.js';
import { STATE_DIR } from './state-dir.js';
import type { StoreContext } from './types.js';

export interface RestoreState {
  volname: string;
  key: string;
  etag: string;
  size: number;
  indexed: boolean;
  /** pid of the process that owns the restore: when it is gone, the restore is abandoned */
  owner: number;
  created: number;
  devices: Array<{ name: string; size: number }>;
}

export interface ServeState {
  pid: number;
  fusePid?: number;
  state: 'starting' | 'serving' | 'stopped' | 'failed';
  error?: { code: string; message: string };
  stats?: Record<string, number>;
}

export const DEVICE_RE = /^[A-Za-z0-9_.:-]{1,47}$/;

export function restoreRoot(ctx: StoreContext): string {
  if (ctx.settings.cacheDir === undefined) {
    throw new PveS3Error('ConfigInvalid', `storage '${ctx.settings.storageId}' has no path: a restore needs a local directory for its working files`, { exitCode: EXIT.usage });
  }
  return join(ctx.settings.cacheDir, STATE_DIR, 'restore');
}

/** `dir` as the plugin hands it back: a restore directory of this storage, nothing else */
export async function checkRestoreDir(ctx: StoreContext, dir: string): Promise<string> {
  const root = restoreRoot(ctx);
  const d = resolve(dir);
  const bad = (why: string): PveS3Error => new PveS3Error('InvalidArgument', `invalid restore dir '${dir}': ${why}`, { exitCode: EXIT.usage });
  if (dirname(d) !== root || !/^[A-Za-z0-9._-]+$/.test(basename(d))) throw bad(`must be a directory directly under '${root}'`);
  const st = await lstat(d).catch(() => null);
  if (!st) throw bad('it does not exist (the restore was cleaned up already?)');
  if (!st.isDirectory()) throw bad('not a directory');
  return d;
}

export function checkDevice(device: string): string {
  if (!DEVICE_RE.test(device)) throw new PveS3Error('InvalidArgument', `invalid device '${device}': must be a device name like drive-scsi0`, { exitCode: EXIT.usage });
  return device;
}

export async function readRestoreState(dir: string): Promise<RestoreState> {
  try {
    return JSON.parse(await readFile(join(dir, 'restore.json'), 'utf8')) as RestoreState;
  } catch (e) {
    throw new PveS3Error('InvalidArgument', `'${dir}' is not a restore directory (no readable restore.json: ${(e as Error).message})`, { exitCode: EXIT.usage });
  }
}


export async function readServeState(dir: string, device: string): Promise<ServeState | null> {
  try {
    return JSON.parse(await readFile(servePath(dir, device), 'utf8')) as ServeState;
  } catch {
    return null;
  }
}

export const servePath = (dir: string, device: string): string => join(dir, `${device}.serve.json`);
export const socketPath = (dir: string, device: string): string => join(dir, `${device}.sock`);
export const mountDir = (dir: string, device: string): string => join(dir, device);
export const mountedFile = (dir: string, device: string): string => join(dir, device, `${device}.raw`);
export const fusePidPath = (dir: string, device: string): string => join(dir, `${device}.fuse.pid`);
export const logPath = (dir: string, device: string): string => join(dir, `${device}.log`);

/** mount points of this mount namespace (/proc/self/mountinfo, octal escapes decoded) */
export function mountPoints(): string[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export function isMounted(path: string): boolean {
  return mountPoints().includes(resolve(path));
}
