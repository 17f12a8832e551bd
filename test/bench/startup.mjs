#!/usr/bin/env node
// Start-up cost of the installed host, the way PVE pays it: pvestatd starts the host once per
// storage every 10 s for a `status` (docs/PROTOCOL.md). Wall time from spawn to exit of
//   bare    node -e ''                                   (the yardstick)
//   status  HOST < {"op":"status",…}  → RadosGW HeadBucket → envelope on stdout
//   version HOST < {"op":"version"}   (no network: start-up and exit only)
//   restore pve-s3-restore of a 1 MiB backup to a file (HEAD, manifest, one ranged GET, rename)
//   backup  pve-s3-backup of a 1 MiB file under a new name (the upload, its manifest)
//   perl    the plugin's host_try('status') timed inside Perl (Perl → host → RadosGW → back;
//           Perl's own start-up not counted), with the PVE test double of perl/t
// interleaved round by round so the load of a shared machine hits every row alike; medians.
// Beside the wall time, the CPU time (user + sys) each row's process spent, mean per run (the
// perl row: the whole perl process, its own start-up included).
// The goals: status ≤ 1.5 × bare in wall time (issue 6) and in CPU time (issue 13).
// The commands are the ones beside each host (pve-s3-restore.cjs, or .js in a tree built before
// the commands had a code cache), run as their #! line says, with S3_* and a manifest key file
// alone (no storage.cfg or credentials of this machine); their uploads go under a vmid of their
// own and are deleted at the end.
//
// Every process runs as the plugin runs the host on a PVE node (the default "as pvestatd"
// configuration): PVE::Tools::run_command executes /usr/lib/pve-s3/pve-s3-host, so the host's
// `#!` line (`/usr/bin/node`; `/usr/bin/env node` before) says what runs; the runner adds nothing to the
// environment, and pvestatd (a systemd service) has no NODE_* variable — in particular no
// NODE_EXTRA_CA_CERTS, which makes every node start parse a CA bundle (four fifths of a bare
// start's instructions by callgrind) and so flatters the ratios. The code cache directory is
// the bench's own (the installed /var/cache/pve-s3: written by the first status, as here).
// --env-as-is keeps this shell's NODE_* variables instead, to compare.
//
//   make bundle && node test/bench/startup.mjs            (build/pkg, the tree `make install` copies)
//   node test/bench/startup.mjs --root DIR                (an installed tree: DIR/usr/lib/pve-s3)
//   node test/bench/startup.mjs --host FILE[=LABEL] …     (any host executables, compared)
//   (node scripts/bundle.mjs DIR --esm-host builds the host without its code cache, to compare)
//   (node scripts/bundle.mjs DIR --split-commands builds the commands without theirs)
//   options: --runs N (25) --no-perl --no-commands --json --env-as-is --bucket NAME
//   S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY [S3_REGION] (default: $PVE_S3_RGW_DIR/s3.env, i.e. the
//   test gateway of test/s3/rgw-up.sh, /tmp/pve-s3-rgw by default). A bucket is created and removed,
//   unless --bucket names one that exists (a status only reads: with --no-commands this also
//   measures a gateway that refuses writes, e.g. a test OSD past its full ratio).
import { spawnSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const args = process.argv.slice(2);
let runs = 25;
let json = false;
let perl = true;
let commands = true;
let envAsIs = false;
let givenBucket;
const hosts = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--runs') runs = Number(args[++i]);
  else if (a === '--json') json = true;
  else if (a === '--no-perl') perl = false;
  else if (a === '--no-commands') commands = false;
  else if (a === '--env-as-is') envAsIs = true;
  else if (a === '--bucket') givenBucket = args[++i];
  else if (a === '--root') hosts.push({ file: join(resolve(args[++i]), 'usr/lib/pve-s3/pve-s3-host'), label: 'installed' });
  else if (a === '--host') {
    const [file, label] = args[++i].split('=');
    hosts.push({ file: resolve(file), label: label ?? file });
  } else throw new Error(`unknown argument '${a}' (see the comment at the top of ${fileURLToPath(import.meta.url)})`);
}
if (!Number.isInteger(runs) || runs < 3) throw new Error(`invalid --runs '${runs}': must be an integer ≥ 3`);
if (hosts.length === 0) hosts.push({ file: join(root, 'build/pkg/pve-s3-host.cjs'), label: 'build/pkg' });
for (const h of hosts) if (!existsSync(h.file)) throw new Error(`host ${h.file} does not exist: run 'make bundle' (or give --root/--host)`);
for (const h of hosts) h.run = interpreted(h.file);
/** The command `name` beside the host (`.cjs` entries since the commands have a code cache). */
function commandBeside(host, name) {
  const file = [`${name}.cjs`, `${name}.js`].map((f) => join(dirname(host), f)).find((f) => existsSync(f));
  if (!file) throw new Error(`no ${name}.cjs or ${name}.js beside ${host} (--no-commands leaves the commands out)`);
  return interpreted(file);
}
if (commands) for (const h of hosts) h.commands = { restore: commandBeside(h.file, 'pve-s3-restore'), backup: commandBeside(h.file, 'pve-s3-backup') };

const env = gatewayEnv();
const region = env.S3_REGION || 'us-east-1';

// The bucket is made, and what the command rows leave in it removed, with hand-signed requests
// so that this script needs nothing built but the trees it measures.
const enc = (v) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
function s3(method, path, query = {}) {
  const u = new URL(env.S3_ENDPOINT);
  const now = new Date().toISOString().replace(/[-:]|\.\d+/g, '');
  const day = now.slice(0, 8);
  const empty = createHash('sha256').update('').digest('hex');
  const qs = Object.keys(query).sort().map((k) => `${enc(k)}=${enc(query[k])}`).join('&');
  const uri = path.split('/').map(enc).join('/');
  const canon = [method, uri, qs, `host:${u.host}`, `x-amz-content-sha256:${empty}`, `x-amz-date:${now}`, '', 'host;x-amz-content-sha256;x-amz-date', empty].join('\n');
  const scope = `${day}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', now, scope, createHash('sha256').update(canon).digest('hex')].join('\n');
  let k = createHmac('sha256', `AWS4${env.S3_SECRET_KEY}`).update(day).digest();
  for (const p of [region, 's3', 'aws4_request']) k = createHmac('sha256', k).update(p).digest();
  const sig = createHmac('sha256', k).update(sts).digest('hex');
  return fetch(`${u.origin}${uri}${qs ? `?${qs}` : ''}`, {
    method,
    headers: {
      'x-amz-date': now,
      'x-amz-content-sha256': empty,
      authorization: `AWS4-HMAC-SHA256 Credential=${env.S3_ACCESS_KEY}/${scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${sig}`,
    },
  }).then(async (r) => {
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: HTTP ${r.status} ${text.slice(0, 200)}`);
    return text;
  });
}

const bucket = givenBucket ?? `startup-bench-${Date.now().toString(36)}`;
const tmp = mkdtempSync(join(tmpdir(), 'pve-s3-startup-'));
const storage = {
  id: 'bench-s3',
  bucket,
  endpoint: env.S3_ENDPOINT,
  region,
  access_key: env.S3_ACCESS_KEY,
  secret_key: env.S3_SECRET_KEY,
  force_path_style: '1',
  path: join(tmp, 'cache'),
};
const statusReq = JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage });
const versionReq = JSON.stringify({ v: 1, op: 'version' });
// the host inherits no S3_* (the request is complete) and logs into the scratch dir; as pvestatd
// runs it, no NODE_* either (unless --env-as-is)
const childEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith('S3_') && (envAsIs || !k.startsWith('NODE_'))),
);
// /usr/bin/env finds this node first, as it finds /usr/bin/node on a PVE node
childEnv.PATH = `${dirname(process.execPath)}:${childEnv.PATH ?? '/usr/bin:/bin'}`;
/** How the kernel runs `file`: its #! line's interpreter and argument, then the file (the file
 *  need not be executable: build/pkg's is not). */
function interpreted(file) {
  const first = readFileSync(file, 'latin1').slice(0, 256).split('\n')[0];
  if (!first.startsWith('#!')) throw new Error(`${file} has no #! line: the plugin could not execute it`);
  const [interp, ...arg] = first.slice(2).trim().split(/\s+/);
  return [interp, [...arg.slice(0, 1), file]];
}
const droppedNode = envAsIs ? [] : Object.keys(process.env).filter((k) => k.startsWith('NODE_'));
childEnv.PVE_S3_LOG_FILE = join(tmp, 'host.log');
// the V8 code cache of scripts/host-loader.mjs, as /var/cache/pve-s3 holds it on a PVE node (the
// untimed first round writes it); PVE_S3_CODE_CACHE_DIR='' measures without it
if (childEnv.PVE_S3_CODE_CACHE_DIR === undefined) {
  childEnv.PVE_S3_CODE_CACHE_DIR = join(tmp, 'code-cache');
  mkdirSync(childEnv.PVE_S3_CODE_CACHE_DIR);
}

// CPU time (user + sys) of the children this process has waited for: cutime + cstime of
// /proc/self/stat. Linux keeps the sum exact and reports it in clock ticks, so a row's mean over
// its runs is exact to a tick / runs, though one run alone is not.
const TICK_MS = 1000 / (Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100);
function childrenCpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * TICK_MS;
}

function timed(cmd, argv, input, check, env = childEnv) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { input, env, maxBuffer: 1 << 20, cwd: tmp });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0 || (check && !check(r.stdout.toString()))) {
    throw new Error(`${cmd} ${argv.join(' ')} failed (exit ${r.status}): ${r.stdout}${r.stderr}`.slice(0, 2000));
  }
  return ms;
}
const activeReply = (out) => JSON.parse(out).result?.active === true;

// Perl: load the plugin once per run (not timed), then time one host_try('status') call.
const perlScript = `
use strict; use warnings;
use Time::HiRes qw(time);
use S3PluginTest;
S3PluginTest::load_plugin('9');
my $scfg = { type => 's3', bucket => $ENV{B_BUCKET}, endpoint => $ENV{B_ENDPOINT}, region => $ENV{B_REGION},
  access_key => $ENV{B_AK}, force_path_style => 1, path => $ENV{B_PATH}, content => { backup => 1 }, shared => 1 };
S3PluginTest::write_file("$ENV{PVE_S3_PRIV_DIR}/bench-s3.pw", "$ENV{B_SK}\\n");
my $t0 = time();
my ($res, $err) = PVE::Storage::Custom::S3Plugin::host_try('bench-s3', $scfg, 'status', {});
my $ms = (time() - $t0) * 1000;
die "status failed: $err->{message}\\n" if $err || !$res->{active};
printf("%.3f\\n", $ms);
`;
function perlRun(host) {
  const r = spawnSync('perl', ['-I', join(root, 'perl/t/lib'), '-I', join(root, 'perl'), '-e', perlScript], {
    env: {
      ...childEnv,
      PVE_S3_HOST_BIN: host,
      PVE_S3_PRIV_DIR: join(tmp, 'priv'),
      B_BUCKET: bucket, B_ENDPOINT: env.S3_ENDPOINT, B_REGION: region, B_AK: env.S3_ACCESS_KEY, B_SK: env.S3_SECRET_KEY,
      B_PATH: join(tmp, 'perl-cache'),
    },
  });
  if (r.status !== 0) throw new Error(`perl status run failed: ${r.stderr}`.slice(0, 2000));
  return Number(r.stdout.toString().trim());
}
if (perl && spawnSync('perl', ['-e', '1']).status !== 0) perl = false;

// The commands' environment: the gateway, the bucket and a manifest key (with S3_* alone nothing
// is signed, and a restore refuses what is not), nothing of this machine's configuration.
const vmid = 900000 + Math.floor(Math.random() * 99999);
const key = randomBytes(32);
writeFileSync(join(tmp, 'manifest.key'), `${createHash('sha256').update(key).digest('hex').slice(0, 16)} ${key.toString('hex')}\n`, { mode: 0o600 });
const cmdEnv = {
  ...childEnv,
  HOME: tmp,
  XDG_CACHE_HOME: join(tmp, 'xdg-cache'),
  S3_ENDPOINT: env.S3_ENDPOINT,
  S3_REGION: region,
  S3_ACCESS_KEY: env.S3_ACCESS_KEY,
  S3_SECRET_KEY: env.S3_SECRET_KEY,
  S3_BUCKET: bucket,
  S3_FORCE_PATH_STYLE: 'true',
  PVE_S3_STORAGE_CFG: join(tmp, 'no-storage.cfg'),
  PVE_S3_CREDENTIALS: join(tmp, 'no-credentials'),
  PVE_S3_PRIV_DIR: join(tmp, 'priv'),
  PVE_S3_MANIFEST_KEY_FILE: join(tmp, 'manifest.key'),
};
const MiB = 1 << 20;
const archive = (n) => `vzdump-qemu-${vmid}-2026_01_01-${String(Math.floor(n / 3600) % 24).padStart(2, '0')}_${String(Math.floor(n / 60) % 60).padStart(2, '0')}_${String(n % 60).padStart(2, '0')}.vma.zst`;
const restoreArgs = ['--source', archive(0), '--destination', join(tmp, 'restored.bin'), '--force'];
const restored = () => readFileSync(join(tmp, 'restored.bin')).length === MiB;
let backups = 0;
/** A new 1 MiB archive in the scratch dir and the arguments that upload it. */
function nextBackup() {
  const name = archive(++backups);
  writeFileSync(join(tmp, name), randomBytes(MiB));
  return ['--source', join(tmp, name), '--vmid', String(vmid)];
}
const withArgs = ([interp, argv], extra) => [interp, [...argv, ...extra]];

/** Deletes what the command rows uploaded: every key under dump/ of this run's vmid. */
async function dropUploads() {
  const keys = [];
  let token;
  do {
    const xml = await s3('GET', `/${bucket}`, { 'list-type': '2', prefix: `dump/vzdump-qemu-${vmid}-`, ...(token ? { 'continuation-token': token } : {}) });
    for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(m[1].replace(/&amp;/g, '&'));
    token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? /<NextContinuationToken>([^<]*)</.exec(xml)?.[1] : undefined;
  } while (token);
  for (const k of keys) await s3('DELETE', `/${bucket}/${k}`);
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

if (givenBucket === undefined) await s3('PUT', `/${bucket}`);
const rows = [{ name: 'bare', label: "node -e ''", times: [], cpuMs: 0 }];
for (const h of hosts) {
  rows.push({ name: 'status', label: `${h.label} status`, host: h, times: [], cpuMs: 0 });
  rows.push({ name: 'version', label: `${h.label} version`, host: h, times: [], cpuMs: 0 });
  if (commands) {
    rows.push({ name: 'restore', label: `${h.label} restore 1 MiB`, host: h, times: [], cpuMs: 0 });
    rows.push({ name: 'backup', label: `${h.label} backup 1 MiB`, host: h, times: [], cpuMs: 0 });
  }
  // the whole perl process's CPU, its own start-up and plugin load included (not the host's alone)
  if (perl) rows.push({ name: 'perl', label: `${h.label} perl→host status`, host: h, times: [], cpuMs: 0 });
}
try {
  // what every restore row restores, uploaded once by the first tree's pve-s3-backup
  if (commands) {
    writeFileSync(join(tmp, archive(0)), randomBytes(MiB));
    timed(...withArgs(hosts[0].commands.backup, ['--source', join(tmp, archive(0)), '--vmid', String(vmid)]), '', undefined, cmdEnv);
  }
  // one untimed round warms the page cache for every file involved
  for (let i = 0; i <= runs; i++) {
    for (const r of rows) {
      let ms;
      const cpu0 = childrenCpuMs();
      // the host as its #! line runs it
      if (r.name === 'bare') ms = timed(process.execPath, ['-e', ''], '');
      else if (r.name === 'status') ms = timed(...r.host.run, statusReq, activeReply);
      else if (r.name === 'version') ms = timed(...r.host.run, versionReq);
      else if (r.name === 'restore') ms = timed(...withArgs(r.host.commands.restore, restoreArgs), '', restored, cmdEnv);
      else if (r.name === 'backup') ms = timed(...withArgs(r.host.commands.backup, nextBackup()), '', undefined, cmdEnv);
      else ms = perlRun([r.host.run[0], ...r.host.run[1]].join(' '));
      if (i > 0) {
        r.times.push(ms);
        r.cpuMs += childrenCpuMs() - cpu0;
      }
    }
  }
} finally {
  if (commands) await dropUploads().catch((e) => console.error(`cleanup: ${e.message}`));
  if (givenBucket === undefined) await s3('DELETE', `/${bucket}`).catch((e) => console.error(`cleanup: ${e.message}`));
  rmSync(tmp, { recursive: true, force: true });
}

const bare = median(rows[0].times);
const bareCpu = rows[0].cpuMs / runs;
const summary = rows.map((r) => ({
  label: r.label,
  median_ms: +median(r.times).toFixed(1),
  min_ms: +Math.min(...r.times).toFixed(1),
  ratio: +(median(r.times) / bare).toFixed(2),
  cpu_ms: +(r.cpuMs / runs).toFixed(1),
  cpu_ratio: +(r.cpuMs / runs / bareCpu).toFixed(2),
}));
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const configuration = envAsIs
  ? `this shell's environment (--env-as-is)${childEnv.NODE_EXTRA_CA_CERTS ? `, NODE_EXTRA_CA_CERTS=${childEnv.NODE_EXTRA_CA_CERTS}` : ''}: NOT as a PVE node runs the host`
  : `as pvestatd runs the host on a PVE node: as its #! line says (${[...new Set(hosts.map((h) => [h.run[0], ...h.run[1].slice(0, -1), 'HOST'].join(' ')))].join('; ')}), no NODE_* variable${droppedNode.length ? ` (${droppedNode.join(', ')} of this shell left out)` : ''}, code cache ${childEnv.PVE_S3_CODE_CACHE_DIR ? 'on (the first, untimed round writes it, as the first status writes /var/cache/pve-s3)' : 'off'}`;
if (json) {
  console.log(JSON.stringify({ node: process.version, runs, load, configuration, rows: summary }, null, 2));
} else {
  console.log(`node ${process.version}, ${runs} interleaved runs, load ${load}`);
  console.log(`configuration: ${configuration}`);
  for (const s of summary) {
    console.log(`${s.label.padEnd(44)} median ${String(s.median_ms).padStart(7)} ms  min ${String(s.min_ms).padStart(7)} ms  ${s.ratio.toFixed(2)}× bare   CPU ${s.cpu_ms.toFixed(1).padStart(6)} ms  ${s.cpu_ratio.toFixed(2)}× bare`);
  }
  if (childEnv.NODE_EXTRA_CA_CERTS) {
    console.log(`note: NODE_EXTRA_CA_CERTS is set: every node here loads ${childEnv.NODE_EXTRA_CA_CERTS} at start-up, which makes bare node dearer and the ratios smaller than on a PVE node; run without --env-as-is to compare as pvestatd runs`);
  }
  const st = summary.filter((_, i) => rows[i].name === 'status');
  for (const s of st) {
    console.log(`${s.label}: wall ${s.ratio <= 1.5 ? 'within' : 'ABOVE'} the 1.5× goal, CPU ${s.cpu_ratio <= 1.5 ? 'within' : 'ABOVE'} it (${envAsIs ? 'this shell\'s environment' : 'as pvestatd runs it'})`);
  }
}
