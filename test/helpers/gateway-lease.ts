// The lease protocol of the throw-away test gateways (RadosGW, Swift): a vitest globalSetup
// brings one up (or reuses it) with test/s3/<name>-up.sh and stops it with <name>-down.sh.
//
// Several test runs may share one gateway (engineers on one machine, or a dev's long-lived
// one), so each run holds a lease while it uses it. The gateway is stopped at the end only when
// a test run started it and no other run still holds a lease, and not when the keep variable
// (PVE_S3_RGW_KEEP, PVE_S3_SWIFT_KEEP) is 1. Lock = `mkdir DIR.test-runs/lock` (with `owner` =
// pid; stale when that pid is dead), one `DIR.test-runs/lease-<pid>` per run, and
// `DIR.test-runs/started-by-tests` when a run had to start a daemon.
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive } from '../../host/src/util/process.js';

const scriptsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../s3');

export interface Gateway {
  /** script prefix: test/s3/<name>-up.sh, <name>-down.sh */
  name: 'rgw' | 'swift';
  /** the gateway's DIR (the scripts' first argument) */
  dir: string;
  /** the line the up script prints when it had to start a daemon, e.g. RGW_STARTED */
  startedVar: string;
  /** environment variable that keeps the gateway running at the end when 1 */
  keepVar: string;
}

export class GatewayLease {
  private readonly runsDir: string;
  private readonly lockDir: string;
  private readonly startedMarker: string;
  private readonly leaseFile: string;

  constructor(private readonly g: Gateway) {
    // Next to DIR, not inside it: the up script owns DIR's contents and may purge them.
    this.runsDir = `${g.dir}.test-runs`;
    this.lockDir = join(this.runsDir, 'lock');
    this.startedMarker = join(this.runsDir, 'started-by-tests');
    this.leaseFile = join(this.runsDir, `lease-${process.pid}`);
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(this.runsDir, { recursive: true });
        await mkdir(this.lockDir);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        // A lock left by a killed run: its owner pid is gone (or it died before writing one).
        const owner = Number(await readFile(join(this.lockDir, 'owner'), 'utf8').catch(() => 'NaN'));
        const age = await stat(this.lockDir).then((st) => Date.now() - st.mtimeMs, () => 0);
        if ((Number.isInteger(owner) && !pidAlive(owner)) || (!Number.isInteger(owner) && age > 30_000)) {
          await rm(this.lockDir, { recursive: true, force: true });
          continue;
        }
        if (attempt > 6000) throw new Error(`${this.g.name} global setup: ${this.lockDir} stayed locked for 10 minutes (owner pid ${owner})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await writeFile(join(this.lockDir, 'owner'), String(process.pid));
    try {
      return await fn();
    } finally {
      await rm(this.lockDir, { recursive: true, force: true });
    }
  }

  private async liveLeases(): Promise<string[]> {
    const live: string[] = [];
    for (const name of await readdir(this.runsDir)) {
      const m = /^lease-(\d+)$/.exec(name);
      if (!m) continue;
      if (pidAlive(Number(m[1]))) live.push(name);
      else await rm(join(this.runsDir, name), { force: true });
    }
    return live;
  }

  private runScript(script: string, args: string[]): Promise<string> {
    return new Promise((resolvePromise, reject) => {
      const child = spawn(join(scriptsDir, script), args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      // Progress lines go straight through: a first run installs packages for a minute or two.
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        process.stderr.write(d);
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (code === 0) resolvePromise(stdout);
        else {
          const tail = stderr.trim().split('\n').slice(-5).join('\n');
          reject(new Error(`test/s3/${script} failed (${signal ?? `exit ${code}`}); logs in ${this.g.dir}/log:\n${tail}`));
        }
      });
    });
  }

  /** Brings the gateway up (or reuses it), takes a lease, and returns what the up script printed. */
  async acquire(): Promise<Map<string, string>> {
    return this.withLock(async () => {
      await this.liveLeases(); // prunes leases of runs that died
      const vars = parseEnv(await this.runScript(`${this.g.name}-up.sh`, [this.g.dir]));
      // Only a run that had to start daemons makes the gateway "ours to stop"; one a dev started
      // by hand stays as it was found.
      if (vars.get(this.g.startedVar) === '1') await writeFile(this.startedMarker, '');
      await writeFile(this.leaseFile, String(process.pid));
      return vars;
    });
  }

  /** Drops the lease; stops the gateway when this was the last one and a test run started it. */
  async release(): Promise<void> {
    await this.withLock(async () => {
      await rm(this.leaseFile, { force: true });
      if ((await this.liveLeases()).length > 0) return;
      const startedByTests = await readFile(this.startedMarker).then(
        () => true,
        () => false,
      );
      if (!startedByTests || process.env[this.g.keepVar] === '1') return;
      await this.runScript(`${this.g.name}-down.sh`, [this.g.dir]);
      await rm(this.startedMarker, { force: true });
    });
  }
}

function parseEnv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  return vars;
}

/** The value the up script printed for `k`, or a clear error naming the script. */
export function need(vars: Map<string, string>, script: string, k: string): string {
  const v = vars.get(k);
  if (!v) throw new Error(`test/s3/${script} printed no ${k}; got: ${[...vars.keys()].join(', ')}`);
  return v;
}
