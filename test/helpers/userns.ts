/**
 * A process run as an unprivileged container's root, the way pve-container's
 * PVE::LXC::Namespaces::run_in_userns runs Base.pm backup_container: a new user and mount
 * namespace whose id map newuidmap/newgidmap write (`0 100000 65536`, PVE's default), then uid
 * and gid 0 inside — so the process is uid 100000 on the host, sees the container's files under
 * their in-container owners and host-owned ones as nobody. unshare(1) (util-linux) does it here,
 * with the stand-ins of test/helpers/idmap for newuidmap/newgidmap (they skip /etc/subuid, which
 * the tests must not edit). Needs root and user namespaces.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';

export const CT_UID_BASE = 100000;
export const CT_ID_COUNT = 65536;
export const IDMAP_DIR = join(import.meta.dirname, 'idmap');

let usable: boolean | undefined;

function unshareArgs(cmd: string, args: string[]): string[] {
  const map = `${CT_UID_BASE},0,${CT_ID_COUNT}`;
  return ['--user', '--mount', `--map-users=${map}`, `--map-groups=${map}`, '--setuid', '0', '--setgid', '0', '--', cmd, ...args];
}

function withIdmap(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  const e = env ?? process.env;
  return { ...e, PATH: `${IDMAP_DIR}:${e.PATH ?? '/usr/bin:/bin'}` };
}

/** root here, and a mapped user namespace can be made and entered */
export function haveUserns(): boolean {
  if (usable !== undefined) return usable;
  if (process.getuid?.() !== 0) return (usable = false);
  const r = spawnSync('unshare', unshareArgs('id', ['-u']), { env: withIdmap(undefined), encoding: 'utf8' });
  return (usable = r.status === 0 && r.stdout.trim() === '0');
}

/** `cmd args` as the container's root */
export function spawnInUserns(cmd: string, args: string[], o: SpawnOptions = {}): ChildProcess {
  return spawn('unshare', unshareArgs(cmd, args), { ...o, env: withIdmap(o.env) });
}

export function spawnSyncInUserns(cmd: string, args: string[], o: SpawnSyncOptions = {}): ReturnType<typeof spawnSync> {
  return spawnSync('unshare', unshareArgs(cmd, args), { ...o, env: withIdmap(o.env) });
}
