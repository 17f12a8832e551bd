#!/usr/bin/env node
// Client CPU per GiB of an upload as a user runs it: `pve-s3-backup --source FILE` from this
// checkout's host/bin (a new process per upload: start-up included), and, with BASE=DIR, from
// another built checkout of pve-s3 in the same run, rounds interleaved because the machine is
// shared and noisy. On the 2-core test machine the S3 server shares the CPU, so every CPU-second
// the client saves is the server's: the local test gateway's own CPU (radosgw + ceph-osd +
// ceph-mon, from /proc) per GiB is printed beside it. Medians; ratios this / BASE. Not a test.
//
//   npm run build && node test/bench/upload-cpu.mjs
//   env: SIZE_MB (1024) ROUNDS (3) BASE (a checkout dir, optional)
//        S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY (default: the test RadosGW's s3.env)
//   The test gateway keeps data in RAM (memstore, 8 GiB): each upload is deleted right after it,
//   but RadosGW frees the data only after its GC delay (rgw_gc_obj_min_wait, 30 s there), so
//   keep SIZE_MB × uploads per minute within a few GiB.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchBucket, gatewayCommandEnv, gatewayCpuReader, gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const sizeMiB = Number(process.env.SIZE_MB ?? 1024);
const rounds = Number(process.env.ROUNDS ?? 3);
const checkouts = [{ name: 'this', dir: root }, ...(process.env.BASE ? [{ name: 'base', dir: resolve(process.env.BASE) }] : [])];

const env = gatewayEnv();
const gatewayCpu = gatewayCpuReader(env);
const { client, bucket, work, keyFile, drop } = await benchBucket(root, env, 'upcpu');
const file = join(work, 'upload-cpu.bin');
const fd = openSync(file, 'w');
const block = Buffer.allocUnsafe(1 << 20);
for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(block));
closeSync(fd);

/** One upload from `dir`'s host/bin: client CPU (user + sys of the process tree), gateway CPU, seconds. */
async function upload(dir, round) {
  const cmdEnv = {
    ...gatewayCommandEnv(env, bucket),
    S3_PREFIX: `r${round}/`,
    PVE_S3_MANIFEST_KEY_FILE: keyFile,
  };
  const timeFile = join(work, 'time');
  const g0 = gatewayCpu();
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', ['-f', '%U %S', '-o', timeFile, process.execPath, join(dir, 'host/bin/pve-s3-backup.js'), '--source', file], { cwd: dir, env: cmdEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  const seconds = (performance.now() - t0) / 1000;
  const gw = gatewayCpu() - g0;
  if (code !== 0) throw new Error(`pve-s3-backup from ${dir} exited ${code}: ${stderr.trim().split('\n').at(-1)}`);
  const [u, s] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  const keys = [];
  for await (const o of client.listAll({ prefix: `r${round}/` })) keys.push(o.key);
  if (keys.length) await client.deleteObjects(keys);
  return { cpu: u + s, gw, seconds };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const gib = sizeMiB / 1024;
const results = new Map(checkouts.map((c) => [c.name, []]));
const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
try {
  for (let r = 0; r < rounds; r++) {
    for (const c of checkouts) {
      const x = await upload(c.dir, `${r}-${c.name}`);
      results.get(c.name).push(x);
      console.log(`round ${r + 1} ${c.name}: client ${(x.cpu / gib).toFixed(2)} CPU-s/GiB, gateway ${(x.gw / gib).toFixed(2)} CPU-s/GiB, ${(sizeMiB / x.seconds).toFixed(1)} MiB/s`);
    }
  }
} finally {
  await drop();
}
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`\nupload-cpu: ${sizeMiB} MiB file, ${rounds} rounds, load ${load0} -> ${load1}; medians (min-max)`);
const summary = {};
for (const [name, xs] of results) {
  const cpu = xs.map((x) => x.cpu / gib);
  const gw = xs.map((x) => x.gw / gib);
  const rate = xs.map((x) => sizeMiB / x.seconds);
  summary[name] = { cpu: median(cpu), gw: median(gw), rate: median(rate) };
  console.log(`  ${name.padEnd(5)} client ${median(cpu).toFixed(2)} (${Math.min(...cpu).toFixed(2)}-${Math.max(...cpu).toFixed(2)}) CPU-s/GiB   gateway ${median(gw).toFixed(2)} CPU-s/GiB   ${median(rate).toFixed(1)} MiB/s`);
}
if (summary.base) {
  console.log(`  this / base: client CPU ${(summary.this.cpu / summary.base.cpu).toFixed(2)}x, gateway CPU ${(summary.this.gw / summary.base.gw).toFixed(2)}x, throughput ${(summary.this.rate / summary.base.rate).toFixed(2)}x`);
}
