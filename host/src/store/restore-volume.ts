/**
 * One device of a VM restore handed to qemu-img (Base.pm restore_vm_volume_init / _cleanup).
 *
 * Indexed archive: `startVolume` starts a detached host process (the request, secret included,
 * over its stdin pipe) that serves the device as an NBD export on `<dir>/<dev>.sock` from the
 * archive's frames and mounts it with nbdfuse as the file `<dir>/<dev>/<dev>.raw` — a file,
 * because qemu-server's restore_external_archive runs PVE::Storage::file_size_info on the path,
 * which stats it. The server stops when told (`stopVolume`), when the mount goes away, or when
 * the restore's owner (the PVE worker) is gone; it unmounts before it exits.
 *
 * Non-indexed archive: the image restore_vm_init wrote; stopping removes it (its space is free
 * again before the next device).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { NbdServer, type NbdExport } from '../nbd/server.js';
import { parseVolname } from '../pve/volname.js';
import { EXIT, PveS3Error, asPveS3Error } from '../util/errors.js';
import { pidAlive } from '../util/process.js';
import { decodeIndex } from '../vma/frame-index.js';
import { FrameDevice } from './restore-device.js';
import {
  checkDevice, checkRestoreDir, fusePidPath, isMounted, logPath, mountDir, mountedFile, readRestoreState, readServeState, servePath,
  socketPath, type RestoreState, type ServeState,
} from './restore-dir.js';
import { imagePath } from './restore-stream.js';
import type { StoreContext } from './types.js';
import { onAbort } from '../util/on-abort.js';
import { writeJsonAtomic } from '../util/json-file.js';

/** how a host process is started again: this one's node, flags and script */
export function selfCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]!];
}

const READY_TIMEOUT_MS = 60_000;
const OWNER_POLL_MS = 2_000;

async function deviceOf(dir: string, device: string): Promise<{ st: RestoreState; dev: { name: string; size: number } }> {
  const st = await readRestoreState(dir);
  const dev = st.devices.find((d) => d.name === checkDevice(device));
  if (!dev) throw new PveS3Error('InvalidArgument', `backup '${st.volname}' has no device '${device}' (it has ${st.devices.map((d) => d.name).join(', ')})`, { exitCode: EXIT.usage });
  return { st, dev };
}

export interface StartVolumeOptions {
  /** the storage section of the request (secret included): the server gets it over its stdin */
  storage: Record<string, unknown>;
  /** argv that starts a host process (default: this process's own) */
  hostCommand?: string[];
}

export async function startVolume(ctx: StoreContext, dirArg: string, device: string, o: StartVolumeOptions): Promise<{ path: string }> {
  const dir = await checkRestoreDir(ctx, dirArg);
  const { st } = await deviceOf(dir, device);
  if (!st.indexed) {
    const path = imagePath(dir, device);
    if (!(await stat(path).catch(() => null))?.isFile()) throw new PveS3Error('InvalidArgument', `the image of '${device}' is gone from '${dir}' (restored and cleaned up already?)`, { exitCode: EXIT.usage });
    return { path };
  }
  const live = await readServeState(dir, device);
  if (live && pidAlive(live.pid) && isMounted(mountDir(dir, device))) return { path: mountedFile(dir, device) };
  await stopVolume(ctx, dir, device).catch(() => undefined);

  const [cmd, ...args] = o.hostCommand ?? selfCommand();
  const log = openSync(logPath(dir, device), 'a', 0o600);
  let child: ChildProcess;
  try {
    // its own session: PVE's run_command must not wait for it, nor signal it with the worker's group
    child = spawn(cmd!, args, { detached: true, stdio: ['pipe', 'ignore', log, 'pipe'], env: process.env });
  } finally {
    closeSync(log);
  }
  const ready = new Promise<string>((resolve, reject) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      if (text.includes('\n')) resolve(text.split('\n')[0]!);
    });
    pipe.on('error', () => undefined);
    child.once('error', reject);
    child.once('exit', (code, sig) => reject(new Error(`the restore server exited (${sig ?? `exit code ${code}`}) before it was ready`)));
  });
  const request = { v: 1, op: 'restore-volume-serve', storage: o.storage, args: { dir, device, ready_fd: 3 } };
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(JSON.stringify(request));
  let line: string;
  try {
    line = await Promise.race([
      ready,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the restore server was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS).unref()),
    ]);
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await stopVolume(ctx, dir, device).catch(() => undefined);
    const s = await readServeState(dir, device);
    const why = s?.error?.message ?? (await logTail(dir, device)) ?? (e as Error).message;
    throw new PveS3Error(s?.error?.code ?? 'RestoreFailed', `cannot serve '${device}' of backup '${st.volname}': ${why}`);
  }
  (child.stdio[3] as NodeJS.ReadableStream & { destroy(): void }).destroy();
  child.unref();
  const r = JSON.parse(line) as { path: string };
  return { path: r.path };
}

async function logTail(dir: string, device: string): Promise<string | null> {
  const t = await readFile(logPath(dir, device), 'utf8').catch(() => '');
  const last = t.trim().split('\n').pop();
  return last ? last : null;
}

function fusermount(path: string, lazy: boolean): boolean {
  const r = spawnSync('fusermount3', ['-u', ...(lazy ? ['-z'] : []), '-q', path], { stdio: 'ignore' });
  return r.status === 0;
}

/** unmounts, politely first; true when nothing is mounted there any more */
export async function unmount(path: string): Promise<boolean> {
  for (let i = 0; i < 10 && isMounted(path); i++) {
    if (fusermount(path, false)) break;
    await sleep(200);
  }
  if (isMounted(path)) fusermount(path, true);
  return !isMounted(path);
}

async function stopPid(pid: number | undefined, graceMs: number): Promise<void> {
  if (!pid || pid <= 1 || pid === process.pid || !pidAlive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let t = 0; t < graceMs && pidAlive(pid); t += 100) await sleep(100);
  if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  for (let t = 0; t < 2000 && pidAlive(pid); t += 50) await sleep(50);
}

/**
 * Stops serving a device: the server unmounts and exits (SIGTERM), then whatever is left is
 * taken down here. Throws the server's failure (a damaged frame, the bucket gone) once nothing
 * is left running or mounted, so the restore reports why qemu-img saw an I/O error.
 */
export async function stopVolume(ctx: StoreContext, dirArg: string, device: string): Promise<{ stats?: Record<string, number> }> {
  const dir = await checkRestoreDir(ctx, dirArg);
  const { st } = await deviceOf(dir, device);
  if (!st.indexed) {
    await rm(imagePath(dir, device), { force: true });
    return {};
  }
  const s = await readServeState(dir, device);
  await stopPid(s?.pid, 15_000);
  const mnt = mountDir(dir, device);
  const unmounted = await unmount(mnt);
  const fusePid = s?.fusePid ?? Number((await readFile(fusePidPath(dir, device), 'utf8').catch(() => '')).trim());
  await stopPid(fusePid || undefined, 5_000);
  if (!unmounted && !(await unmount(mnt))) {
    throw new PveS3Error('RestoreFailed', `cannot unmount '${mnt}' (still in use?): unmount it with 'fusermount3 -u -z ${mnt}'`);
  }
  await rmdir(mnt).catch(() => undefined);
  await rm(socketPath(dir, device), { force: true });
  await rm(fusePidPath(dir, device), { force: true });
  const end = await readServeState(dir, device);
  if (end?.error) throw new PveS3Error(end.error.code, end.error.message, { exitCode: EXIT.failure });
  return end?.stats ? { stats: end.stats } : {};
}

/**
 * The detached server of one device (op `restore-volume-serve`): serves until stopped, the mount
 * disappears or the owner dies; `ready(path)` is called once the mount is there.
 */
export async function serveVolume(ctx: StoreContext, dirArg: string, device: string, ready: (path: string) => void): Promise<Record<string, number>> {
  const dir = await checkRestoreDir(ctx, dirArg);
  const { st, dev } = await deviceOf(dir, device);
  if (!st.indexed) throw new PveS3Error('InvalidArgument', `backup '${st.volname}' has no frame index: its devices are images, nothing to serve`, { exitCode: EXIT.usage });
  const index = decodeIndex(await readFile(join(dir, 'index.bin')));
  const vdev = index.devices.find((d) => d.name === dev.name)!;
  const state: ServeState = { pid: process.pid, state: 'starting' };
  const save = (): Promise<void> => writeJsonAtomic(servePath(dir, device), state);
  await save();
  const v = parseVolname(st.volname);
  const exp = new FrameDevice(ctx, { key: st.key, v }, index, vdev);
  let failure: PveS3Error | null = null;
  let stopping = false;
  const onError = (e: Error): void => {
    // reads cut short by our own stop are no failure of the restore
    if (failure || stopping) return;
    const err = asPveS3Error(e);
    failure = new PveS3Error(err.code, `restore of '${device}' from backup '${st.volname}' failed: ${err.message}`, { exitCode: err.exitCode });
    process.stderr.write(`${failure.message}\n`);
    state.error = { code: failure.code, message: failure.message };
    void save();
  };
  // a unix socket's path is limited to 107 bytes and the storage's path can be long: the
  // server and nbdfuse name it relative to the restore directory
  process.chdir(dir);
  const sock = basename(socketPath(dir, device));
  const server = await NbdServer.listen(sock, failFastOnStall(exp), { onError });
  const mnt = mountDir(dir, device);
  let fuse: ChildProcess | null = null;
  let fuseExited: Promise<void> = Promise.resolve();
  let fuseSaid = '';
  try {
    await mkdir(mnt, { mode: 0o700 });
    await rm(fusePidPath(dir, device), { force: true });
    fuse = spawn('nbdfuse', ['-r', '-P', fusePidPath(dir, device), mountedFile(dir, device), '--unix', sock], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const f = fuse;
    f.stderr!.on('data', (b: Buffer) => {
      fuseSaid = b.toString('utf8').trim().split('\n').pop() ?? fuseSaid;
      process.stderr.write(b);
    });
    fuseExited = new Promise<void>((r) => f.once('close', () => r()));
    const spawnFailed = new Promise<never>((_, reject) =>
      f.once('error', (e: NodeJS.ErrnoException) =>
        reject(e.code === 'ENOENT' ? new PveS3Error('NotSupported', 'nbdfuse is needed to restore from an indexed backup and is not installed: apt install libnbd-bin') : e),
      ),
    );
    spawnFailed.catch(() => undefined);
    await Promise.race([waitForPidFile(fusePidPath(dir, device), f, () => fuseSaid), spawnFailed]);
    state.fusePid = fuse.pid;
    state.state = 'serving';
    await save();
    ready(mountedFile(dir, device));

    // serve until told to stop, the mount goes away, or the restore's owner is gone
    await new Promise<void>((resolve) => {
      // whichever comes first ends all three waits, so the stop is said once and nothing polls
      // on while the mount is taken down
      const done = (): void => {
        clearInterval(poll);
        stopWaiting();
        resolve();
      };
      const poll = setInterval(() => {
        if (pidAlive(st.owner)) return;
        process.stderr.write(`the restore's owner (pid ${st.owner}) is gone: stopping\n`);
        done();
      }, OWNER_POLL_MS);
      const stopWaiting = onAbort(ctx.signal, done);
      if (ctx.signal?.aborted) done();
      void fuseExited.then(done);
    });
  } catch (e) {
    onError(e as Error);
    throw failure ?? e;
  } finally {
    stopping = true;
    if (fuse && fuse.exitCode === null && fuse.signalCode === null) {
      await unmount(mnt);
      await Promise.race([fuseExited, sleep(5000)]);
      if (fuse.exitCode === null && fuse.signalCode === null) fuse.kill('SIGKILL');
    } else if (isMounted(mnt)) {
      await unmount(mnt);
    }
    await rmdir(mnt).catch(() => undefined);
    await server.close();
    await exp.close();
    state.state = failure ? 'failed' : 'stopped';
    state.stats = { ...exp.stats };
    await save();
  }
  return { ...exp.stats };
}

/**
 * Once a read met a gateway silent for stall_timeout, every later read fails at once with that
 * error: the restore has failed, and qemu-img and the kernel's readahead read a failed range again
 * several times, each read otherwise waiting out another last try of the silent gateway.
 */
function failFastOnStall(exp: FrameDevice): NbdExport {
  let stalled: PveS3Error | null = null;
  return {
    name: exp.name,
    size: exp.size,
    read: async (offset, length) => {
      if (stalled) throw stalled;
      try {
        return await exp.read(offset, length);
      } catch (e) {
        const err = asPveS3Error(e);
        if (err.code === 'Stalled') stalled ??= err;
        throw e;
      }
    },
    blockStatus: (offset, length) => exp.blockStatus(offset, length),
  };
}

async function waitForPidFile(path: string, proc: ChildProcess, said: () => string): Promise<void> {
  for (let t = 0; t < READY_TIMEOUT_MS; t += 50) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new PveS3Error('RestoreFailed', `nbdfuse exited (${proc.signalCode ?? `exit code ${proc.exitCode}`}) before the mount was ready${said() ? `: ${said()}` : ''}`);
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    if (pid > 0) return;
    await sleep(50);
  }
  throw new PveS3Error('RestoreFailed', `nbdfuse did not mount within ${READY_TIMEOUT_MS / 1000} s`);
}

/** the serve op's ready line on the descriptor the starter gave it */
export function announceReady(fd: number, path: string): void {
  try {
    writeSync(fd, JSON.stringify({ path }) + '\n');
    closeSync(fd);
  } catch {
    // the starter gave up waiting: it stops us
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
