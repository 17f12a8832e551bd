#!/usr/bin/env node
// A restore to a pipe against the same restore to a file: `pve-s3-restore --destination - |
// CONSUMER` for the consumers a restore meets (`cat >/dev/null`: the pipe alone; `zstd -d
// >/dev/null`: a vzdump archive decompressed on its way to qmrestore; `sha256sum`: a check, itself
// CPU-bound near 500 MiB/s on this machine), and `--destination FILE`. Per variant: wall time of
// the whole pipeline, the restore's own CPU (user + sys, from /usr/bin/time) and the local
// gateway's CPU per GiB. With BASE=DIR the same runs from another built checkout; rounds
// interleave checkouts and variants because the machine is shared and noisy. Medians; ratios
// pipe / file and this / base. Not a test.
//
//   npm run build && node test/bench/restore-pipe.mjs
//   env: SIZE_MB (1024; the compressed archive, twice that decompressed) ROUNDS (3)
//        VARIANTS (file,cat,zstd,sha256sum) BASE (a checkout dir, optional) PROF_DIR (--cpu-prof)
//        S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY (default: the test RadosGW's s3.env)
//   Needs zstd. One archive of SIZE_MB (half random, half zeros before compression) is uploaded
//   by this checkout and deleted at the end, with the restored files.
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchBucket, gatewayCommandEnv, gatewayCpuReader, gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const sizeMiB = Number(process.env.SIZE_MB ?? 1024);
const rounds = Number(process.env.ROUNDS ?? 3);
const variants = (process.env.VARIANTS ?? 'file,cat,zstd,sha256sum').split(',');
const profDir = process.env.PROF_DIR ? resolve(process.env.PROF_DIR) : null;
const checkouts = [{ name: 'this', dir: root }, ...(process.env.BASE ? [{ name: 'base', dir: resolve(process.env.BASE) }] : [])];
const CONSUMERS = { cat: 'cat >/dev/null', zstd: 'zstd -d -q >/dev/null', sha256sum: 'sha256sum >/dev/null' };

const env = gatewayEnv();
const gatewayCpu = gatewayCpuReader(env);
const { bucket, work, keyFile, drop } = await benchBucket(root, env, 'restpipe');
const name = 'vzdump-qemu-900-2026_01_01-00_00_00.vma.zst';
const file = join(work, name);
const cmdEnv = { ...gatewayCommandEnv(env, bucket), PVE_S3_MANIFEST_KEY_FILE: keyFile, BENCH_TIME: join(work, 'time') };

/** `script` in bash (the restore in it under /usr/bin/time -o $BENCH_TIME): restore CPU, gateway CPU, seconds. */
async function run(script, args = []) {
  const g0 = gatewayCpu();
  const t0 = performance.now();
  const child = spawn('bash', ['-c', `set -o pipefail; ${script}`, 'bench', ...args], { cwd: work, env: cmdEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  const seconds = (performance.now() - t0) / 1000;
  const gw = gatewayCpu() - g0;
  if (code !== 0) throw new Error(`${script} exited ${code}: ${stderr.trim().split('\n').at(-1)}`);
  const [u, s] = readFileSync(cmdEnv.BENCH_TIME, 'utf8').trim().split('\n').at(-1).split(' ').map(Number);
  return { cpu: u + s, gw, seconds };
}

/** Compressed to about sizeMiB: each MiB is half random, half zeros. */
async function makeArchive() {
  const z = spawn('zstd', ['-1', '-q', '-T2', '-o', file], { stdio: ['pipe', 'ignore', 'inherit'] });
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < sizeMiB * 2; i++) {
    randomFillSync(block, 0, 1 << 19);
    if (!z.stdin.write(block)) await new Promise((r) => z.stdin.once('drain', r));
  }
  z.stdin.end();
  const code = await new Promise((r) => z.on('close', r));
  if (code !== 0) throw new Error(`zstd exited ${code}`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const results = new Map();
let gib = sizeMiB / 1024;
let load0 = '';
try {
  await makeArchive();
  gib = statSync(file).size / 2 ** 30;
  await run(`/usr/bin/time -f '%U %S' -o "$BENCH_TIME" "${process.execPath}" "${join(root, 'host/bin/pve-s3-backup.js')}" --source "$1" --vmid 900`, [file]);
  rmSync(file);
  load0 = loadavg();
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      for (const c of checkouts) {
        const prof = profDir ? `--cpu-prof --cpu-prof-dir "${join(profDir, `${c.name}-${v}`)}"` : '';
        const restore = `/usr/bin/time -f '%U %S' -o "$BENCH_TIME" "${process.execPath}" ${prof} "${join(c.dir, 'host/bin/pve-s3-restore.js')}" --source ${name}`;
        const script = v === 'file' ? `${restore} --destination restored.bin --force >/dev/null; rm -f restored.bin` : `${restore} --destination - | ${CONSUMERS[v]}`;
        const x = await run(script);
        const k = `${c.name} ${v}`;
        results.set(k, [...(results.get(k) ?? []), x]);
        console.log(`round ${r + 1} ${k.padEnd(15)} ${(sizeMiB / x.seconds).toFixed(1).padStart(6)} MiB/s  restore ${(x.cpu / gib).toFixed(2)} CPU-s/GiB  gateway ${(x.gw / gib).toFixed(2)} CPU-s/GiB  load ${loadavg()}`);
      }
    }
  }
} finally {
  await drop();
}
console.log(`\nrestore-pipe: ${sizeMiB} MiB archive, ${rounds} rounds, load ${load0} -> ${loadavg()}; medians`);
const m = {};
for (const [k, xs] of results) {
  m[k] = { rate: median(xs.map((x) => (gib * 1024) / x.seconds)), cpu: median(xs.map((x) => x.cpu / gib)), gw: median(xs.map((x) => x.gw / gib)) };
  console.log(`  ${k.padEnd(15)} ${m[k].rate.toFixed(1).padStart(6)} MiB/s  restore ${m[k].cpu.toFixed(2)} CPU-s/GiB  gateway ${m[k].gw.toFixed(2)} CPU-s/GiB`);
}
for (const c of checkouts) {
  const f = m[`${c.name} file`];
  if (!f) continue;
  for (const v of variants.filter((x) => x !== 'file')) {
    const p = m[`${c.name} ${v}`];
    console.log(`  ${c.name} ${v} / file: throughput ${(p.rate / f.rate).toFixed(2)}x, restore CPU ${(p.cpu / f.cpu).toFixed(2)}x, gateway CPU ${(p.gw / f.gw).toFixed(2)}x`);
  }
}
if (process.env.BASE) {
  for (const v of variants) {
    const a = m[`this ${v}`];
    const b = m[`base ${v}`];
    console.log(`  this / base ${v}: throughput ${(a.rate / b.rate).toFixed(2)}x, restore CPU ${(a.cpu / b.cpu).toFixed(2)}x, gateway CPU ${(a.gw / b.gw).toFixed(2)}x`);
  }
}
