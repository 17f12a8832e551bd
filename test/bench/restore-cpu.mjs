#!/usr/bin/env node
// Client CPU per GiB of a restore as a user runs it: `pve-s3-restore --source NAME --destination
// FILE --force` from this checkout's host/bin (a new process per restore: start-up included; the
// command peer-bench.sh times), and, with BASE=DIR, from another built checkout of pve-s3 in the
// same run, rounds interleaved because the machine is shared and noisy. The local test gateway's
// own CPU (radosgw + ceph-osd + ceph-mon, from /proc) per GiB is printed beside it: on the 2-core
// test machine the client and the server share the CPU. Medians; ratios this / BASE. Not a test.
//
//   npm run build && node test/bench/restore-cpu.mjs
//   env: SIZE_MB (1024) ROUNDS (3) BASE (a checkout dir, optional) PROF_DIR (write --cpu-prof
//        profiles there) S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY (default: the test RadosGW's s3.env)
//   One object of SIZE_MB is uploaded (by this checkout) and deleted at the end; the restored
//   files go to a temporary directory and are removed after each run.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchBucket, gatewayCommandEnv, gatewayCpuReader, gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const sizeMiB = Number(process.env.SIZE_MB ?? 1024);
const rounds = Number(process.env.ROUNDS ?? 3);
const profDir = process.env.PROF_DIR ? resolve(process.env.PROF_DIR) : null;
const checkouts = [{ name: 'this', dir: root }, ...(process.env.BASE ? [{ name: 'base', dir: resolve(process.env.BASE) }] : [])];

const env = gatewayEnv();
const gatewayCpu = gatewayCpuReader(env);
const { client, bucket, work, keyFile, drop } = await benchBucket(root, env, 'restcpu');
const name = 'vzdump-qemu-900-2026_01_01-00_00_00.vma.zst';
const file = join(work, name);
const cmdEnv = { ...gatewayCommandEnv(env, bucket), PVE_S3_MANIFEST_KEY_FILE: keyFile };

/** Runs a host/bin command of `dir` under /usr/bin/time: client CPU (user + sys), gateway CPU, seconds. */
async function run(dir, bin, args, nodeArgs = []) {
  const timeFile = join(work, 'time');
  const g0 = gatewayCpu();
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, ...nodeArgs, join(dir, 'host/bin', bin), ...args], { cwd: dir, env: cmdEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  const seconds = (performance.now() - t0) / 1000;
  const gw = gatewayCpu() - g0;
  if (code !== 0) throw new Error(`${bin} from ${dir} exited ${code}: ${stderr.trim().split('\n').at(-1)}`);
  const [u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { user: u, sys: s, cpu: u + s, gw, seconds };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const gib = sizeMiB / 1024;
const results = new Map(checkouts.map((c) => [c.name, []]));
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
let load0 = '';
try {
  const fd = openSync(file, 'w');
  const block = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(block));
  closeSync(fd);
  await run(root, 'pve-s3-backup.js', ['--source', file, '--vmid', '900']);
  rmSync(file);
  load0 = loadavg();
  for (let r = 0; r < rounds; r++) {
    for (const c of checkouts) {
      const dest = join(work, `restored-${c.name}.bin`);
      const nodeArgs = profDir ? ['--cpu-prof', '--cpu-prof-dir', join(profDir, c.name)] : [];
      const x = await run(c.dir, 'pve-s3-restore.js', ['--source', name, '--destination', dest, '--force'], nodeArgs);
      rmSync(dest, { force: true });
      results.get(c.name).push(x);
      console.log(`round ${r + 1} ${c.name}: client ${(x.cpu / gib).toFixed(2)} CPU-s/GiB (user ${(x.user / gib).toFixed(2)} sys ${(x.sys / gib).toFixed(2)}), gateway ${(x.gw / gib).toFixed(2)} CPU-s/GiB, ${(sizeMiB / x.seconds).toFixed(1)} MiB/s, load ${loadavg()}`);
    }
  }
} finally {
  await drop();
}
console.log(`\nrestore-cpu: ${sizeMiB} MiB object, ${rounds} rounds, load ${load0} -> ${loadavg()}; medians (min-max)`);
const summary = {};
for (const [n, xs] of results) {
  const cpu = xs.map((x) => x.cpu / gib);
  const sys = xs.map((x) => x.sys / gib);
  const gw = xs.map((x) => x.gw / gib);
  const rate = xs.map((x) => sizeMiB / x.seconds);
  summary[n] = { cpu: median(cpu), gw: median(gw), rate: median(rate) };
  console.log(`  ${n.padEnd(5)} client ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}-${Math.max(...cpu).toFixed(2)}) CPU-s/GiB, sys ${median(sys).toFixed(2)}   gateway ${median(gw).toFixed(2)} CPU-s/GiB   ${median(rate).toFixed(1)} MiB/s`);
}
if (summary.base) {
  console.log(`  this / base: client CPU ${(summary.this.cpu / summary.base.cpu).toFixed(2)}x, gateway CPU ${(summary.this.gw / summary.base.gw).toFixed(2)}x, throughput ${(summary.this.rate / summary.base.rate).toFixed(2)}x`);
}
