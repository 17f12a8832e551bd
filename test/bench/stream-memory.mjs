#!/usr/bin/env node
// Peak memory of a stream upload, the way `vzdump --stdout | pve-s3-backup --source -` runs it:
// the installed command reads a FIFO fed by a generator (a 4 MiB random block, repeated) and
// uploads to a real RadosGW. Peak = VmHWM of the command's process, read from /proc/<pid>/status
// every 20 ms while it runs (the high-water mark only grows, so the last read before exit holds
// the peak but for its last 20 ms: completing the upload and writing a manifest).
//
// Goal (issue 13): peak RSS does not grow with the stream's length — 8 GiB ÷ 512 MiB ≤ 1.1 — and
// stays under part size × (max_concurrent_uploads + 1) + 64 MiB. Two ways to run a stream:
//   sized    --size <the stream's length>, as a backup job sized by its guest's disks runs
//   default  nothing known: parts for the 1 TiB default maximum (105 MiB)
// Rounds interleave sizes and modes (the machine is shared); medians are reported.
//
//   make bundle && npm run bench:stream-memory                (build/pkg/pve-s3-backup.js)
//   options: --sizes 512M,8G  --modes sized,default  --rounds 1  --bin FILE  --json
//   S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY [S3_REGION] (default: $PVE_S3_RGW_DIR/s3.env, the
//   test gateway). An 8 GiB stream needs a gateway with room for it: the test gateway keeps its
//   data in 8 GiB of RAM (memstore) and frees deleted parts only hours later, so point S3_* at a
//   bluestore one (../shared/bench/rgw-env.sh). A bucket is made and removed; each object is
//   deleted right after its run.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gatewayClient, gatewayCommandEnv, gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const MiB = 1024 * 1024;
const args = process.argv.slice(2);
let sizes = ['512M', '8G'];
let modes = ['sized', 'default'];
let rounds = 1;
let json = false;
let bin = join(root, 'build/pkg/pve-s3-backup.js');
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--sizes') sizes = args[++i].split(',');
  else if (a === '--modes') modes = args[++i].split(',');
  else if (a === '--rounds') rounds = Number(args[++i]);
  else if (a === '--bin') bin = resolve(args[++i]);
  else if (a === '--json') json = true;
  else throw new Error(`unknown argument '${a}' (see the comment at the top of ${fileURLToPath(import.meta.url)})`);
}
const bytesOf = (s) => {
  const m = /^(\d+)([KMG])?$/.exec(s);
  if (!m) throw new Error(`invalid size '${s}': a number with K, M or G`);
  return Number(m[1]) * 1024 ** (m[2] ? 'KMG'.indexOf(m[2]) + 1 : 0);
};
for (const m of modes) if (!['sized', 'default'].includes(m)) throw new Error(`invalid mode '${m}': sized or default`);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`invalid --rounds '${rounds}': an integer ≥ 1`);
if (!existsSync(bin)) throw new Error(`${bin} does not exist: run 'make bundle' (or give --bin)`);
const dist = join(root, 'host/dist');
if (!existsSync(join(dist, 's3/client.js'))) throw new Error(`${dist} is missing: run 'npm run build'`);

const env = gatewayEnv();

const { S3Client } = await import(pathToFileURL(join(dist, 's3/client.js')).href);
const { SCHEMA } = await import(pathToFileURL(join(dist, 'config/schema.js')).href);
const concurrency = SCHEMA.get('max_concurrent_uploads').default;
const bucket = `bench-stream-${Date.now().toString(36)}`;
const client = gatewayClient(S3Client, env, bucket, { requestTimeoutMs: 300_000 });
await client.createBucket();

const work = mkdtempSync(join(tmpdir(), 'pve-s3-bench-stream-'));
const cmdEnv = {
  ...gatewayCommandEnv(env, bucket),
  PVE_S3_STORAGE_CFG: join(work, 'none.cfg'),
  PVE_S3_CREDENTIALS: join(work, 'none'),
  PVE_S3_GUEST_CONF_DIR: join(work, 'none'),
  PVE_S3_LOG_FILE: join(work, 'log'),
};
const GENERATOR = `const b = require('node:crypto').randomBytes(4 << 20); const fs = require('node:fs');
let left = Number(process.argv[1]);
while (left > 0) { const n = Math.min(left, b.length); for (let o = 0; o < n; ) o += fs.writeSync(1, b, o, n - o); left -= n; }`;

function procStatus(pid) {
  try {
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { hwmKiB: Number(/VmHWM:\s+(\d+) kB/.exec(st)[1]), cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null; // gone
  }
}
const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

let seq = 0;
async function runOnce(size, mode) {
  const name = `vzdump-qemu-990-2024_01_01-00_00_${String(seq++ % 60).padStart(2, '0')}.vma`;
  const fifo = join(work, 'stdin');
  rmSync(fifo, { force: true });
  spawnSync('mkfifo', [fifo]);
  const rfd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const wfd = openSync(fifo, constants.O_WRONLY);
  const gen = spawn(process.execPath, ['-e', GENERATOR, String(size)], { stdio: ['ignore', wfd, 'inherit'] });
  const cmdArgs = [bin, '--source', '-', '--name', name, '--force', ...(mode === 'sized' ? ['--size', String(size)] : [])];
  const t0 = performance.now();
  const cmd = spawn(process.execPath, cmdArgs, { env: cmdEnv, stdio: [rfd, 'ignore', 'pipe'] });
  closeSync(rfd);
  closeSync(wfd);
  rmSync(fifo, { force: true });
  let stderr = '';
  cmd.stderr.on('data', (d) => (stderr += d));
  let last = null;
  const poll = setInterval(() => {
    const s = procStatus(cmd.pid);
    if (s) last = s;
  }, 20);
  const code = await new Promise((r) => cmd.on('close', r));
  clearInterval(poll);
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => (gen.exitCode !== null ? r() : gen.on('close', r)));
  if (code !== 0) throw new Error(`${cmdArgs.join(' ')} exited ${code}: ${stderr.trim().split('\n').at(-1)}`);
  const key = `dump/${name}`;
  const chunks = [];
  for await (const c of (await client.getObject(`${key}.s3manifest`)).body) chunks.push(c);
  const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  await client.deleteObjects([key, `${key}.s3manifest`]);
  return { size, mode, peakMiB: last.hwmKiB / 1024, cpuSeconds: last.cpuTicks / TICK, seconds, partSize: manifest.partSize };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
try {
  for (let r = 0; r < rounds; r++) {
    for (const mode of modes) {
      for (const s of sizes) {
        const x = await runOnce(bytesOf(s), mode);
        x.label = s;
        results.push(x);
        if (!json) process.stderr.write(`round ${r + 1}: ${mode} ${s}: peak ${x.peakMiB.toFixed(1)} MiB, parts ${x.partSize / MiB} MiB, ${x.seconds.toFixed(1)} s, ${x.cpuSeconds.toFixed(1)} CPU-s\n`);
      }
    }
  }
} finally {
  await client.deleteBucket().catch(() => undefined);
  await client.close();
  rmSync(work, { recursive: true, force: true });
}

const rows = [];
for (const mode of modes) {
  const per = sizes.map((s) => {
    const xs = results.filter((x) => x.mode === mode && x.label === s);
    const partSize = xs[0].partSize;
    return { mode, size: s, peakMiB: median(xs.map((x) => x.peakMiB)), boundMiB: (partSize * (concurrency + 1)) / MiB + 64, partMiB: partSize / MiB, mibPerS: bytesOf(s) / MiB / median(xs.map((x) => x.seconds)), cpuPerGiB: median(xs.map((x) => x.cpuSeconds / (bytesOf(s) / 1024 ** 3))) };
  });
  const ratio = per.at(-1).peakMiB / per[0].peakMiB;
  rows.push({ mode, runs: per, ratio });
}
if (json) {
  process.stdout.write(JSON.stringify({ concurrency, rounds, rows }, null, 2) + '\n');
} else {
  console.log(`stream upload peak RSS (VmHWM), ${bin}, max_concurrent_uploads ${concurrency}, ${rounds} round(s), medians`);
  console.log('mode     size   parts     peak MiB   bound MiB   MiB/s   CPU-s/GiB');
  for (const r of rows) {
    for (const x of r.runs) {
      console.log(`${r.mode.padEnd(8)} ${x.size.padStart(5)} ${String(x.partMiB).padStart(5)} MiB ${x.peakMiB.toFixed(1).padStart(10)} ${x.boundMiB.toFixed(0).padStart(11)} ${x.mibPerS.toFixed(1).padStart(7)} ${x.cpuPerGiB.toFixed(2).padStart(11)}`);
    }
    console.log(`${r.mode}: peak ${sizes.at(-1)} ÷ ${sizes[0]} = ${r.ratio.toFixed(3)} (goal ≤ 1.1); under the bound: ${r.runs.every((x) => x.peakMiB <= x.boundMiB) ? 'yes' : 'NO'}`);
  }
}
