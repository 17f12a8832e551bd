#!/usr/bin/env node
// Transfer engine benchmark against a real RadosGW: upload and download of one file with
// pve-s3's engine and, when installed, the AWS JS SDK (lib-storage) on the same file in the same
// run. Each measured operation runs in a child process so its CPU time (user + sys) and peak RSS
// are its own. Rounds are interleaved because this machine is shared and noisy; medians reported.
//
//   npm run build && node test/bench/transfer.mjs
//   env: SIZE_MB (256) CHUNK_MB (100) CONCURRENCY (3) ROUNDS (2)
//        S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY [S3_BUCKET]  (default: the test RadosGW's
//        $PVE_S3_RGW_DIR/s3.env, /tmp/pve-s3-rgw by default)
//        AWS_SDK_DIR: a directory whose node_modules has @aws-sdk/client-s3 + lib-storage
//        (default: this checkout, then /work/shared/bench); skipped when absent
//   The test gateway keeps data in RAM (memstore) and RadosGW frees deleted multipart data only
//   after its GC delay (hours), so repeated large runs fill memory: prefer a throw-away gateway
//   (rgw-up.sh DIR with other ports, rgw-down.sh DIR --purge afterwards) or bluestore.
//        HASH_VARIANTS=1 adds the engine with hashing on a worker thread (PVE_S3_HASH_THREAD=1)
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = resolve(here, '../..');
// compiled sources (npm run build:ts); PVE_S3_DIST points elsewhere, e.g. a private build
const dist = process.env.PVE_S3_DIST || join(root, 'host/dist');

function s3Env() {
  const e = { ...process.env };
  if (!e.S3_ENDPOINT) {
    const f = join(process.env.PVE_S3_RGW_DIR || '/tmp/pve-s3-rgw', 's3.env');
    if (!existsSync(f)) throw new Error(`no S3_ENDPOINT and no ${f}: start the test gateway (test/s3/rgw-up.sh) or set S3_*`);
    for (const l of readFileSync(f, 'utf8').split('\n')) {
      const m = /^(?:export )?([A-Z0-9_]+)=(.*)$/.exec(l.trim());
      if (m && !e[m[1]]) e[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
    }
  }
  return e;
}

function findSdk() {
  const dirs = [process.env.AWS_SDK_DIR, root, '/work/shared/bench'].filter(Boolean);
  for (const d of dirs) {
    try {
      const req = createRequire(join(d, 'noop.js'));
      return { client: req.resolve('@aws-sdk/client-s3'), storage: req.resolve('@aws-sdk/lib-storage') };
    } catch {
      // not there
    }
  }
  return null;
}

// VmHWM, not resourceUsage().maxRSS: Linux carries ru_maxrss over exec, so a child would report
// its parent's peak
function peakRssMiB() {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

async function fileSha256(path) {
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 4 << 20 })) h.update(c);
  return h.digest('hex');
}

// ---------------------------------------------------------------- child: one measured operation
async function child([op, file, key]) {
  const env = s3Env();
  const chunkMB = Number(env.CHUNK_MB || 100);
  const concurrency = Number(env.CONCURRENCY || 3);
  const settings = {
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION || 'us-east-1',
    bucket: env.BENCH_BUCKET,
    credentials: { accessKeyId: env.S3_ACCESS_KEY, secretAccessKey: env.S3_SECRET_KEY },
    forcePathStyle: true,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 120_000,
  };
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  if (op === 'up' || op === 'down') {
    const { S3Client } = await import(pathToFileURL(join(dist, 's3/client.js')).href);
    const { uploadObject } = await import(pathToFileURL(join(dist, 'transfer/upload.js')).href);
    const { downloadObject } = await import(pathToFileURL(join(dist, 'transfer/download.js')).href);
    const c = new S3Client(settings);
    if (op === 'up') await uploadObject(c, key, { path: file }, { chunkSizeMB: chunkMB, concurrency });
    else await downloadObject(c, key, { path: file }, { concurrency, force: true });
    await c.close?.();
  } else {
    const sdk = findSdk();
    const { S3Client, GetObjectCommand } = await import(pathToFileURL(sdk.client).href);
    const { Upload } = await import(pathToFileURL(sdk.storage).href);
    const s3 = new S3Client({
      endpoint: settings.endpoint,
      region: settings.region,
      forcePathStyle: true,
      credentials: settings.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    if (op === 'sdk-up') {
      const up = new Upload({
        client: s3,
        params: { Bucket: settings.bucket, Key: key, Body: createReadStream(file, { highWaterMark: 1 << 20 }) },
        partSize: Number(env.SDK_PART_MB || 8) << 20,
        queueSize: Number(env.SDK_QUEUE || 4),
      });
      await up.done();
    } else {
      const r = await s3.send(new GetObjectCommand({ Bucket: settings.bucket, Key: key }));
      await pipeline(r.Body, createWriteStream(file));
    }
    s3.destroy();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(
    JSON.stringify({ seconds, cpu: (cpu.user + cpu.system) / 1e6, maxRssMiB: peakRssMiB() }) + '\n',
  );
}

// ---------------------------------------------------------------- parent
function runChild(args, env) {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? res(JSON.parse(out.trim().split('\n').at(-1))) : rej(new Error(`${args[0]} exited ${code}`))));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const env = s3Env();
  const sizeMB = Number(env.SIZE_MB || 256);
  const rounds = Number(env.ROUNDS || 2);
  const bytes = sizeMB * 1024 * 1024;
  const dir = join(tmpdir(), `pve-s3-bench-${process.pid}`);
  const src = join(dir, 'src.bin');
  const dst = join(dir, 'dst.bin');
  await import('node:fs/promises').then((f) => f.mkdir(dir, { recursive: true }));
  const fd = openSync(src, 'w');
  const block = Buffer.allocUnsafe(8 << 20);
  for (let done = 0; done < bytes; done += block.length) {
    randomFillSync(block);
    writeSync(fd, block, 0, Math.min(block.length, bytes - done));
  }
  closeSync(fd);
  const srcSha = await fileSha256(src);

  const { S3Client } = await import(pathToFileURL(join(dist, 's3/client.js')).href);
  const bucket = env.S3_BUCKET || `bench-transfer-${Date.now().toString(36)}`;
  const admin = new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION || 'us-east-1',
    bucket,
    credentials: { accessKeyId: env.S3_ACCESS_KEY, secretAccessKey: env.S3_SECRET_KEY },
    forcePathStyle: true,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 120_000,
  });
  if (!env.S3_BUCKET) await admin.createBucket();
  const childEnv = { ...env, BENCH_BUCKET: bucket };

  const sdk = findSdk();
  const clients = [['pve-s3', 'up', 'down']];
  // HASH_VARIANTS=1: also the engine with hashing on a worker thread
  if (env.HASH_VARIANTS === '1') clients.push(['pve-s3 (hash thread)', 'up', 'down', { PVE_S3_HASH_THREAD: '1' }]);
  if (sdk) clients.push(['aws-sdk-js (lib-storage)', 'sdk-up', 'sdk-down']);
  else console.error('AWS JS SDK not installed (@aws-sdk/client-s3 + @aws-sdk/lib-storage): skipped');

  const results = new Map();
  for (let r = 0; r < rounds; r++) {
    for (const [name, up, down, extraEnv] of clients) {
      const key = `bench/${name.replace(/\W+/g, '-')}/${r}`;
      const cenv = { ...childEnv, ...extraEnv };
      const u = await runChild([up, src, key], cenv);
      rmSync(dst, { force: true });
      const d = await runChild([down, dst, key], cenv);
      if ((await fileSha256(dst)) !== srcSha) throw new Error(`${name}: downloaded file differs`);
      const entry = results.get(name) ?? { up: [], down: [] };
      entry.up.push(u);
      entry.down.push(d);
      results.set(name, entry);
      console.error(`round ${r + 1} ${name}: up ${(sizeMB / u.seconds).toFixed(1)} MiB/s, down ${(sizeMB / d.seconds).toFixed(1)} MiB/s`);
    }
  }

  const gib = bytes / 2 ** 30;
  console.log(`\n${sizeMB} MiB, chunk ${env.CHUNK_MB || 100} MB, concurrency ${env.CONCURRENCY || 3}, ${rounds} rounds (medians)`);
  console.log('client                     | op   |   MiB/s | CPU s/GiB | peak RSS MiB');
  console.log('---------------------------|------|---------|-----------|-------------');
  for (const [name, e] of results) {
    for (const op of ['up', 'down']) {
      const xs = e[op];
      const rate = median(xs.map((x) => sizeMB / x.seconds));
      const cpu = median(xs.map((x) => x.cpu / gib));
      const rss = Math.max(...xs.map((x) => x.maxRssMiB));
      console.log(`${name.padEnd(27)}| ${op.padEnd(5)}| ${rate.toFixed(1).padStart(7)} | ${cpu.toFixed(2).padStart(9)} | ${rss.toFixed(0).padStart(12)}`);
    }
  }

  // leave the gateway as we found it
  for await (const o of admin.listAll({ prefix: 'bench/' })) await admin.deleteObject(o.key);
  if (!env.S3_BUCKET) await admin.deleteBucket().catch(() => undefined);
  await admin.close?.();
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === '--child') await child(process.argv.slice(3));
else await main();
