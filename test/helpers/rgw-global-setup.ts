// vitest globalSetup of the `integration` project: brings up (or reuses) the throw-away RadosGW
// via test/s3/rgw-up.sh and hands its settings to the tests (read them with testS3()).
//
// Several test runs may share one gateway (engineers on one machine, or a dev's long-lived
// one), so each run holds a lease while it uses it. The gateway is stopped at the end only when
// a test run started it and no other run still holds a lease; PVE_S3_RGW_KEEP=1 keeps it.
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { pidAlive } from '../../host/src/util/process.js';
import type { RgwSettings } from './rgw.js';

const scriptsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../s3');
const rgwDir = resolve(process.env.PVE_S3_RGW_DIR ?? '/tmp/pve-s3-rgw');
// Next to DIR, not inside it: rgw-up.sh owns DIR's contents and may purge them.
const runsDir = `${rgwDir}.test-runs`;
const lockDir = join(runsDir, 'lock');
const startedMarker = join(runsDir, 'started-by-tests');
const leaseFile = join(runsDir, `lease-${process.pid}`);

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(runsDir, { recursive: true });
      await mkdir(lockDir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A lock left by a killed run: its owner pid is gone (or it died before writing one).
      const owner = Number(await readFile(join(lockDir, 'owner'), 'utf8').catch(() => 'NaN'));
      const age = await stat(lockDir).then((st) => Date.now() - st.mtimeMs, () => 0);
      if ((Number.isInteger(owner) && !pidAlive(owner)) || (!Number.isInteger(owner) && age > 30_000)) {
        await rm(lockDir, { recursive: true, force: true });
        continue;
      }
      if (attempt > 6000) throw new Error(`rgw global setup: ${lockDir} stayed locked for 10 minutes (owner pid ${owner})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await writeFile(join(lockDir, 'owner'), String(process.pid));
  try {
    return await fn();
  } finally {
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function liveLeases(): Promise<string[]> {
  const live: string[] = [];
  for (const name of await readdir(runsDir)) {
    const m = /^lease-(\d+)$/.exec(name);
    if (!m) continue;
    if (pidAlive(Number(m[1]))) live.push(name);
    else await rm(join(runsDir, name), { force: true });
  }
  return live;
}

function runScript(script: string, args: string[]): Promise<string> {
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
        reject(new Error(`test/s3/${script} failed (${signal ?? `exit ${code}`}); logs in ${rgwDir}/log:\n${tail}`));
      }
    });
  });
}

function parseEnv(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  return vars;
}

export async function setup(project: TestProject): Promise<void> {
  const out = await withLock(async () => {
    await liveLeases(); // prunes leases of runs that died
    const stdout = await runScript('rgw-up.sh', [rgwDir]);
    const vars = parseEnv(stdout);
    // Only a run that had to start daemons makes the gateway "ours to stop"; one a dev started
    // by hand stays as it was found.
    if (vars.get('RGW_STARTED') === '1') await writeFile(startedMarker, '');
    await writeFile(leaseFile, String(process.pid));
    return vars;
  });
  const need = (k: string): string => {
    const v = out.get(k);
    if (!v) throw new Error(`test/s3/rgw-up.sh printed no ${k}; got: ${[...out.keys()].join(', ')}`);
    return v;
  };
  const settings: RgwSettings = {
    endpoint: need('S3_ENDPOINT'),
    region: need('S3_REGION'),
    accessKeyId: need('S3_ACCESS_KEY'),
    secretAccessKey: need('S3_SECRET_KEY'),
    cephConf: need('PVE_S3_RGW_CONF'),
  };
  project.provide('pveS3Rgw', settings);
}

export async function teardown(): Promise<void> {
  await withLock(async () => {
    await rm(leaseFile, { force: true });
    if ((await liveLeases()).length > 0) return;
    const startedByTests = await readFile(startedMarker).then(
      () => true,
      () => false,
    );
    if (!startedByTests || process.env.PVE_S3_RGW_KEEP === '1') return;
    await runScript('rgw-down.sh', [rgwDir]);
    await rm(startedMarker, { force: true });
  });
}
