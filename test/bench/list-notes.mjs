#!/usr/bin/env node
// A listing of many backups with notes (issue 13): what `pve-s3-restore --list`, PVE's Backups
// view, vzdump's prune and the Restore dialog pay. Each backup is what vzdump + pve-s3 leave: the
// archive, its .s3manifest, its .log and a .notes sidecar (vzdump's default notes template,
// "{{guestname}}"). For 200 / 2,000 / 5,000 backups, the listing (store listVolumes, all
// contents, as the CLI lists) runs
//   cold  no notes cache, trust verdicts nor range bounds (the first listing on a node): the pages one after
//         another, one GET per .notes and per manifest, LIST_FETCH_PARALLEL of each at once
//         and no shared listing index in the bucket (it writes one: store/listing-index.ts)
//   cold+index  no local caches, the shared index there: a new node of a cluster whose nodes
//         have listed (after a reinstall, after the local caches were lost): the pages + 1 GET
//   warm  the caches of the previous listing: the ListObjects pages (a large folder in ranges at
//         once, store/list-bounds.ts) plus the sidecars that changed
//   edit  after another client rewrote 5 sidecars: pages + 5 GETs
//   pages the peer: the same ListObjects pages alone, one after another (S3Client.listAll of every
//         content folder), what a sequential listing of those keys costs
// and, where the gateway runs on this machine (the test gateway's processes, found by its
// directory $PVE_S3_RGW_DIR), its CPU time (radosgw + ceph-osd + ceph-mon, user + sys) per warm
// listing beside this process's: on 2 loaded cores, what the seconds are made of.
// Then the fresh-process rows (list-fresh.mjs): what PVE pays, a new process per listing — the
// installed host's `list` op (volume_list / list_volumes) and `pve-s3-restore --list` — warm
// (caches on disk from a previous process), cold and cold+index; seconds, CPU seconds and requests.
// and prints requests (by operation, counted from the S3 client's own request log) and seconds,
// median of --runs. The goal: warm 5,000 ≤ 1.5 s and ≤ ListObjects pages + 10 requests.
// On a RadosGW without `tcp_nodelay=1` in rgw_frontends (Ceph's default, the test gateway's) each
// small GET and each ListObjects page on a kept-alive connection waits ~40 ms for this side's
// delayed ACK (docs/PROVIDERS.md): the cold rows are mostly that wait. For a gateway with it:
// PVE_S3_RGW_TCP_NODELAY=1 test/s3/rgw-up.sh DIR (a new DIR), then PVE_S3_RGW_DIR=DIR.
//
//   npm run build:ts && make bundle && npm run bench:list-notes -- [--sizes 200,2000,5000] [--runs 3]
//     [--json] [--no-fresh]   (without build/pkg the fresh rows run the checkout's host/bin)
//   S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY [S3_REGION] (default: $PVE_S3_RGW_DIR/s3.env, the test
//   gateway of test/s3/rgw-up.sh). Buckets are created and removed.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayClient, gatewayCpuReader, gatewayEnv } from './gateway.mjs';
import { freshCommands, freshRows } from './list-fresh.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const dist = (p) => import(join(root, 'host/dist', p));
const { S3Client } = await dist('s3/client.js');
const { listVolumes } = await dist('store/list.js');
const { mapLimit } = await dist('store/concurrency.js');
const { LIST_FETCH_PARALLEL } = await dist('store/concurrency.js');
const { LISTING_INDEX_KEY } = await dist('store/listing-index.js');
const { ensureKeyring } = await dist('config/manifest-key.js');

const args = process.argv.slice(2);
let sizes = [200, 2000, 5000];
let runs = 3;
let json = false;
let fresh = true;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--sizes') sizes = args[++i].split(',').map(Number);
  else if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--json') json = true;
  else if (args[i] === '--no-fresh') fresh = false;
  else throw new Error(`unknown argument '${args[i]}' (see the comment at the top of ${fileURLToPath(import.meta.url)})`);
}
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`invalid --sizes: positive integers, comma-separated`);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`invalid --runs '${runs}': a positive integer`);

const env = gatewayEnv();

const gatewayCpu = gatewayCpuReader(env);

/** Counts the client's requests by operation (its debug line 's3 request'). */
function countingLogger() {
  const counts = {};
  return {
    counts,
    reset() {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    debugEnabled: true,
    debug(msg, f) {
      if (msg === 's3 request') counts[f.operation] = (counts[f.operation] ?? 0) + 1;
    },
    info() {},
    warn(msg, f) {
      console.error(`warn: ${msg} ${JSON.stringify(f)}`);
    },
    error(msg, f) {
      console.error(`error: ${msg} ${JSON.stringify(f)}`);
    },
  };
}

const pad = (n) => String(n).padStart(2, '0');
function backupName(i) {
  const d = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
  const stamp = `${d.getUTCFullYear()}_${pad(d.getUTCMonth() + 1)}_${pad(d.getUTCDate())}-${pad(d.getUTCHours())}_${pad(d.getUTCMinutes())}_${pad(d.getUTCSeconds())}`;
  return `vzdump-qemu-${100 + (i % 50)}-${stamp}`;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
for (const n of sizes) {
  const bucket = `list-notes-${n}-${Date.now().toString(36)}`;
  const log = countingLogger();
  const c = gatewayClient(S3Client, env, bucket, { logger: log });
  const tmp = mkdtempSync(join(tmpdir(), 'pve-s3-list-notes-'));
  // the storage's manifest key (every node of a cluster has it): it signs the shared listing index
  const keyFile = join(tmp, 'bench.manifest-key');
  ensureKeyring(keyFile);
  const ctx = {
    client: c,
    settings: { storageId: 'bench', bucket, prefix: '', chunkSizeMB: 100, concurrency: 4, cacheDir: join(tmp, 'path'), manifestKey: { file: keyFile, mayCreate: true } },
    logger: log,
  };
  const cacheFiles = ['notes-cache.json', 'bounds-cache.json', 'trust.json'].map((f) => join(tmp, 'path', '.pve-s3', f));
  try {
    await c.createBucket();
    const t0 = Date.now();
    const names = Array.from({ length: n }, (_, i) => backupName(i));
    const body = new Uint8Array(64);
    await mapLimit(names, 32, async (name, i) => {
      const k = `dump/${name}.vma.zst`;
      await c.putObject(k, body);
      await c.putObject(`${k}.s3manifest`, new TextEncoder().encode('{}'));
      await c.putObject(`dump/${name}.log`, new TextEncoder().encode('INFO: done\n'));
      await c.putObject(`${k}.notes`, new TextEncoder().encode(`guest-${i}\n`));
    });
    const seedS = (Date.now() - t0) / 1000;

    const row = { backups: n, objects: n * 4, seedS: +seedS.toFixed(1) };
    const measure = async (label, before) => {
      const times = [];
      let counts;
      let notes = 0;
      for (let r = 0; r < runs; r++) {
        await before?.(r);
        log.reset();
        const t = process.hrtime.bigint();
        const vols = await listVolumes(ctx, { pending: false });
        times.push(Number(process.hrtime.bigint() - t) / 1e9);
        counts = { ...log.counts };
        notes = vols.filter((v) => v.notes !== undefined).length;
      }
      if (notes !== n) throw new Error(`${label} listing of ${n} backups showed ${notes} with notes`);
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      const pages = (counts.ListObjectsV2 ?? 0) + (counts.ListObjects ?? 0);
      row[label] = { s: +median(times).toFixed(3), requests: total, pages, gets: counts.GetObject ?? 0 };
    };
    const dropLocal = () => cacheFiles.forEach((f) => rmSync(f, { force: true }));
    // cold: no local caches and no shared index (the first listing ever; it writes the index);
    // cold+index: no local caches, the index there (a new node of a cluster whose nodes listed)
    await measure('cold', async () => {
      dropLocal();
      await c.deleteObject(LISTING_INDEX_KEY);
    });
    await measure('coldIndex', dropLocal);
    await measure('warm');
    // another client edits 5 sidecars before each listing: exactly those are read again
    await measure('edit', (r) => mapLimit([0, 1, 2, 3, 4], 5, (j) => c.putObject(`dump/${names[(j * 97 + r) % n]}.vma.zst.notes`, new TextEncoder().encode(`edited ${r} ${j}\n`))));
    // the peer: the pages alone, interleaved with a warm listing so that the load hits both alike
    const pagesT = [];
    const warmT = [];
    let pagesCpu = 0;
    let warmCpu = 0;
    let pagesGw = 0;
    let warmGw = 0;
    let seqPages = 0;
    const cpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    for (let r = 0; r < runs; r++) {
      log.reset();
      let c0 = cpu();
      let g0 = gatewayCpu();
      let t = process.hrtime.bigint();
      await Promise.all(['dump/', 'template/iso/', 'template/cache/', 'snippets/'].map(async (prefix) => {
        for await (const _ of c.listAll({ prefix }));
      }));
      pagesT.push(Number(process.hrtime.bigint() - t) / 1e9);
      pagesCpu += cpu() - c0;
      pagesGw += gatewayCpu() - g0;
      seqPages = (log.counts.ListObjectsV2 ?? 0) + (log.counts.ListObjects ?? 0);
      c0 = cpu();
      g0 = gatewayCpu();
      t = process.hrtime.bigint();
      await listVolumes(ctx, { pending: false });
      warmT.push(Number(process.hrtime.bigint() - t) / 1e9);
      warmCpu += cpu() - c0;
      warmGw += gatewayCpu() - g0;
    }
    row.pagesOnly = {
      s: +median(pagesT).toFixed(3),
      // the ListObjects pages of a sequential listing of every folder: what the goal's "pages" are
      pages: seqPages,
      warmS: +median(warmT).toFixed(3),
      ratio: +(median(warmT) / median(pagesT)).toFixed(2),
      // this process's CPU (user + sys) per listing: the client's share of the cost
      cpuS: +(pagesCpu / runs).toFixed(3),
      warmCpuS: +(warmCpu / runs).toFixed(3),
      // the gateway's CPU per listing (NaN: it does not run here)
      gwCpuS: +(pagesGw / runs).toFixed(3),
      warmGwCpuS: +(warmGw / runs).toFixed(3),
    };
    row.goal = row.warm.s <= 1.5 && row.warm.requests <= row.pagesOnly.pages + 10 ? 'met' : 'NOT met';
    if (fresh) {
      row.fresh = await freshRows({ root, env, bucket, n, runs, tmp, keyFile, dropIndex: () => c.deleteObject(LISTING_INDEX_KEY) });
      const h = row.fresh.host.warm;
      row.freshGoal = h.s <= 1.5 && h.requests <= row.pagesOnly.pages + 10 ? 'met' : 'NOT met';
    }
    results.push(row);
  } finally {
    // empty the bucket (pages of 1000) and remove it
    try {
      const keys = [];
      for await (const o of c.listAll({})) keys.push(o.key);
      for (let i = 0; i < keys.length; i += 1000) await c.deleteObjects(keys.slice(i, i + 1000));
      await c.deleteBucket();
    } catch (e) {
      console.error(`cleanup of ${bucket}: ${e.message}`);
    }
    await c.close();
    rmSync(tmp, { recursive: true, force: true });
  }
}
const gw = (x) => (Number.isNaN(x) ? '-' : x.toFixed(2));
const load1 = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
if (json) console.log(JSON.stringify({ node: process.version, runs, parallel: LIST_FETCH_PARALLEL, load: [load0, load1], fresh: fresh ? freshCommands(root).from : null, results }, null, 2));
else {
  console.log(`node ${process.version}, median of ${runs}, cold GETs ${LIST_FETCH_PARALLEL} notes + ${LIST_FETCH_PARALLEL} manifests at once, load ${load0} → ${load1}`);
  console.log(`gateway CPU: ${gatewayCpu.describe()}`);
  console.log('backups  objects   cold s  cold req  cold+index s  req    warm s  warm req (seq. pages)   edit s  edit req   pages-only s  warm÷pages  CPU s pages/warm  gw CPU s pages/warm  goal (warm ≤ 1.5 s, ≤ pages + 10)');
  for (const r of results) {
    console.log(
      `${String(r.backups).padStart(7)} ${String(r.objects).padStart(8)} ${r.cold.s.toFixed(3).padStart(8)} ${String(r.cold.requests).padStart(9)} ${r.coldIndex.s.toFixed(3).padStart(13)} ${String(r.coldIndex.requests).padStart(4)} ${r.warm.s.toFixed(3).padStart(9)} ${String(r.warm.requests).padStart(9)} (${r.pagesOnly.pages})`.padEnd(89) +
        `${r.edit.s.toFixed(3).padStart(8)} ${String(r.edit.requests).padStart(9)} ${r.pagesOnly.s.toFixed(3).padStart(13)} ${r.pagesOnly.ratio.toFixed(2).padStart(10)}×  ${r.pagesOnly.cpuS.toFixed(2).padStart(6)} / ${r.pagesOnly.warmCpuS.toFixed(2).padEnd(6)}  ${gw(r.pagesOnly.gwCpuS).padStart(9)} / ${gw(r.pagesOnly.warmGwCpuS).padEnd(6)}  ${r.goal}`,
    );
  }
  if (fresh) {
    console.log(`fresh process per listing (${freshCommands(root).from}; median of ${runs} warm, one cold): seconds / CPU seconds / requests`);
    console.log('backups   host list warm          host list cold          host cold+index         restore --list warm     restore --list cold     restore cold+index      goal (host warm ≤ 1.5 s, ≤ pages + 10)');
    const cell = (x) => `${x.s.toFixed(2).padStart(6)} / ${x.cpuS.toFixed(2).padStart(5)} / ${String(x.requests).padStart(5)}`.padEnd(24);
    for (const r of results) {
      const f = r.fresh;
      console.log(`${String(r.backups).padStart(7)}   ${cell(f.host.warm)}${cell(f.host.cold)}${cell(f.host.coldIndex)}${cell(f.restore.warm)}${cell(f.restore.cold)}${cell(f.restore.coldIndex)}${r.freshGoal}`);
    }
  }
}
