#!/usr/bin/env node
// Backup Provider VM restore (docs/BACKUP-PROVIDER.md §6) against its peer, pve-s3-restore of the
// same archive to a local file, in the same run. The archive is made once by the provider's
// backup (host op backup-vm from qemu-storage-daemon's NBD export: indexed), and stored again by
// pve-s3-backup (no index, as older uploads). Each round restores:
//   peer       pve-s3-restore of the archive to a file (what a classic restore downloads first)
//   indexed    restore-vm-init → restore-volume-start (NBD server + nbdfuse) → qemu-img convert
//              of the mounted file to a raw image → restore-volume-stop → restore-vm-cleanup
//   no index   restore-vm-init (one streaming pass into a sparse image) → qemu-img convert → …
// and prints wall time, throughput of the disk size, peak RSS (of the NBD server process for the
// indexed restore, of the host process for the streaming pass, of pve-s3-restore), local disk
// used under the storage's path, and the ratios to the peer. Every restored image is compared
// with the source. Show Configuration (host op archive-config) is run through a byte-counting
// relay: every byte the gateway sends counts. Needs the test RadosGW, a build, qemu-storage-daemon,
// qemu-img, nbdfuse and /dev/fuse.
//   node test/bench/provider-restore.mjs [GiB=2] [rounds=2]
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGuestImage } from './guest-image.mjs';
import { gatewayClient, gatewayEnv } from './gateway.mjs';

const GiB = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 2);
const root = new URL('../..', import.meta.url).pathname;
const HOST = join(root, 'host/bin/pve-s3-host.js');
const env = gatewayEnv();
const dir = mkdtempSync(join(tmpdir(), 'pve-s3-bench-pr-'));
// one manifest key for the host ops and the commands below (no /etc/pve/priv here): else the
// restores refuse what the backups stored as unsigned
process.env.PVE_S3_MANIFEST_KEY_FILE ??= join(dir, 'bench.manifest-key');
const img = join(dir, 'disk.raw');
const out = join(dir, 'out.raw');
const size = GiB * 2 ** 30;
writeGuestImage(img, size);

const { S3Client } = await import(join(root, 'host/dist/s3/client.js'));
const bucket = `bench-pr-${Date.now()}`;
const c = gatewayClient(S3Client, env, bucket);
await c.createBucket();
const cache = join(dir, 'cache');
const storage = { id: 'bench', bucket, endpoint: env.S3_ENDPOINT, region: env.S3_REGION, access_key: env.S3_ACCESS_KEY, secret_key: env.S3_SECRET_KEY, force_path_style: '1', path: cache };
const cliEnv = { S3_ENDPOINT: env.S3_ENDPOINT, S3_REGION: env.S3_REGION, S3_ACCESS_KEY: env.S3_ACCESS_KEY, S3_SECRET_KEY: env.S3_SECRET_KEY, S3_BUCKET: bucket, S3_FORCE_PATH_STYLE: 'true', PVE_S3_STORAGE_CFG: '/nonexistent' };

/** a command under /usr/bin/time: wall s, peak RSS MiB, CPU s, stdout */
function timed(cmd, args, o = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    let so = '', se = '';
    p.stdout.on('data', (d) => (so += d));
    p.stderr.on('data', (d) => (se += d));
    p.on('close', (code) => {
      const last = se.trim().split('\n').pop().split(' ').map(Number);
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ').slice(0, 200)} exited ${code}: ${se.slice(-800)}`));
      resolve({ wall: last[0], rssMiB: last[1] / 1024, cpu: last[2] + last[3], out: so });
    });
    p.stdin.end(o.input ?? '');
  });
}

// node flags for the host processes and the commands, e.g. '--cpu-prof --cpu-prof-dir=DIR' (not
// allowed in NODE_OPTIONS); the detached NBD server takes its starter's flags
const nodeArgs = (process.env.PVE_S3_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);

async function host(op, args, st = storage) {
  const r = await timed('node', [...nodeArgs, HOST], { input: JSON.stringify({ v: 1, op, storage: st, args }) });
  const e = JSON.parse(r.out);
  if (!e.ok) throw new Error(`${op}: ${e.error.code}: ${e.error.message}`);
  return { ...r, result: e.result };
}

function same(a, b) {
  const r = spawnSync('cmp', ['-s', a, b]);
  if (r.status !== 0) throw new Error(`${b} differs from ${a}`);
}

/** bytes allocated under a directory (du -B1 -s); 0 when gone */
function diskUsed(d) {
  const r = spawnSync('du', ['-B1', '-s', '-x', d], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split('\t')[0]) : 0;
}

/** peak RSS (VmHWM) of a process, read while it lives */
function hwm(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far, read while it lives; 0 when gone */
function cpuOf(pid) {
  try {
    // fields after the command's closing parenthesis: utime and stime are the 12th and 13th
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** samples the NBD server's and nbdfuse's peak RSS and CPU and the restore dir's disk use until stopped */
function sampler(restoreDir, device) {
  const s = { serverMiB: 0, fuseMiB: 0, diskMax: 0, serverCpu: 0, fuseCpu: 0 };
  const tick = () => {
    try {
      const st = JSON.parse(readFileSync(join(restoreDir, `${device}.serve.json`), 'utf8'));
      s.serverMiB = Math.max(s.serverMiB, hwm(st.pid));
      s.serverCpu = Math.max(s.serverCpu, cpuOf(st.pid));
      if (st.fusePid) s.fuseMiB = Math.max(s.fuseMiB, hwm(st.fusePid));
      if (st.fusePid) s.fuseCpu = Math.max(s.fuseCpu, cpuOf(st.fusePid));
    } catch {
      // not started yet, or gone
    }
    // the mount is another file system: -x keeps its contents out of the count
    s.diskMax = Math.max(s.diskMax, diskUsed(cache));
  };
  const t = setInterval(tick, 250);
  return { s, stop: () => (tick(), clearInterval(t)) };
}

async function providerRestore(volname, device) {
  const t0 = Date.now();
  // the owner is the PVE worker in real life: here this process (the host's parent is /usr/bin/time)
  const init = await host('restore-vm-init', { volname, owner_pid: process.pid });
  const rdir = init.result.dir;
  const afterInit = diskUsed(cache);
  const mon = sampler(rdir, device);
  let conv, stop, start, cleanup;
  try {
    start = await host('restore-volume-start', { dir: rdir, device });
    conv = await timed('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', start.result.path, out]);
    mon.stop();
    stop = await host('restore-volume-stop', { dir: rdir, device });
  } finally {
    mon.stop();
    cleanup = await host('restore-vm-cleanup', { dir: rdir });
  }
  const wall = (Date.now() - t0) / 1000;
  same(img, out);
  rmSync(out);
  // every process of the restore: the host ops (the streaming pass and its decompressor are
  // init's), the detached NBD server and nbdfuse (sampled: up to 250 ms of their CPU may be
  // missed at the end), qemu-img
  const serve = mon.s.serverCpu + mon.s.fuseCpu;
  const cpu = init.cpu + start.cpu + serve + conv.cpu + stop.cpu + cleanup.cpu;
  const phases = `init ${init.wall}s, start ${start.wall}s, qemu-img ${conv.wall}s, stop ${stop.wall}s, cleanup ${cleanup.wall}s`;
  return { wall, cpu, serveCpu: serve, phases, init, conv, stats: stop.result.stats, serverMiB: mon.s.serverMiB, fuseMiB: mon.s.fuseMiB, diskMiB: Math.max(afterInit, mon.s.diskMax) / 2 ** 20 };
}

/** Show Configuration through a relay counting every byte the gateway sends back */
async function showConfigBytes(volname) {
  const up = new URL(env.S3_ENDPOINT);
  let bytes = 0;
  const relay = createServer((sock) => {
    const u = connect(Number(up.port), up.hostname);
    u.on('data', (d) => (bytes += d.length));
    sock.pipe(u).pipe(sock);
    sock.on('error', () => u.destroy());
    u.on('error', () => sock.destroy());
  });
  await new Promise((r) => relay.listen(0, '127.0.0.1', r));
  try {
    const r = await host('archive-config', { volname, which: 'guest' }, { ...storage, endpoint: `http://127.0.0.1:${relay.address().port}` });
    return { wire: bytes, archive: r.result.bytes_read, source: r.result.source, wall: r.wall };
  } finally {
    relay.close();
  }
}

try {
  // --- the archives: one made by the provider's backup (indexed), the same bytes by pve-s3-backup
  const indexed = 'vzdump-qemu-100-2025_01_02-03_04_05.vma.zst';
  const plain = 'vzdump-qemu-101-2025_01_02-03_04_05.vma.zst';
  const conf = `memory: 2048\nscsi0: local:100/vm-100-disk-0.raw,size=${GiB}G\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n`;
  {
    const sock = join(dir, 'nbd.sock');
    const qsd = spawn('qemu-storage-daemon', ['--blockdev', `driver=file,node-name=f0,filename=${img}`, '--blockdev', 'driver=raw,node-name=n0,file=f0', '--nbd-server', `addr.type=unix,addr.path=${sock}`, '--export', 'type=nbd,id=drive-scsi0,node-name=n0,name=drive-scsi0,writable=off'], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !existsSync(sock); i++) await new Promise((res) => setTimeout(res, 25));
    const b = await host('backup-vm', { volname: `backup/${indexed}`, time: 1735787045, config_b64: Buffer.from(conf).toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: sock }] });
    qsd.kill('SIGTERM');
    await new Promise((res) => qsd.once('exit', res));
    console.log(`archive: ${(b.result.size / 2 ** 20).toFixed(0)} MiB of a ${GiB} GiB disk (backup-vm ${b.wall}s)`);
    await timed('node', [join(root, 'host/bin/pve-s3-restore.js'), '--source', indexed, '--destination', join(dir, 'copy.vma.zst')], { env: cliEnv });
    await timed('node', [join(root, 'host/bin/pve-s3-backup.js'), '--source', join(dir, 'copy.vma.zst'), '--name', plain], { env: cliEnv });
    rmSync(join(dir, 'copy.vma.zst'));
  }

  const mib = (s) => (size / 2 ** 20 / s).toFixed(0);
  for (let r = 0; r < rounds; r++) {
    const peerFile = join(dir, 'peer.vma.zst');
    const peer = await timed('node', [...nodeArgs, join(root, 'host/bin/pve-s3-restore.js'), '--source', indexed, '--destination', peerFile], { env: cliEnv });
    rmSync(peerFile);
    const ix = await providerRestore(`backup/${indexed}`, 'drive-scsi0');
    const nx = await providerRestore(`backup/${plain}`, 'drive-scsi0');
    console.log(`round ${r}:`);
    console.log(`  pve-s3-restore (peer) ${peer.wall}s (${mib(peer.wall)} MiB/s of disk), peak RSS ${peer.rssMiB.toFixed(0)} MiB, CPU ${peer.cpu.toFixed(1)}s, local disk = the archive`);
    console.log(`  provider, indexed     ${ix.wall.toFixed(1)}s (${mib(ix.wall)} MiB/s; qemu-img ${ix.conv.wall}s), NBD server peak RSS ${ix.serverMiB.toFixed(0)} MiB, nbdfuse ${ix.fuseMiB.toFixed(0)} MiB, local disk ${ix.diskMiB.toFixed(1)} MiB, frames ${ix.stats?.framesFetched} (${((ix.stats?.bytesFetched ?? 0) / 2 ** 20).toFixed(0)} MiB fetched), CPU ${ix.cpu.toFixed(1)}s (NBD server + nbdfuse ${ix.serveCpu.toFixed(1)}s, qemu-img ${ix.conv.cpu.toFixed(1)}s) | time ratio provider/peer ${(ix.wall / peer.wall).toFixed(2)}, CPU ratio ${(ix.cpu / peer.cpu).toFixed(2)}`);
    console.log(`    phases: ${ix.phases}`);
    console.log(`  provider, no index    ${nx.wall.toFixed(1)}s (${mib(nx.wall)} MiB/s; streaming pass ${nx.init.wall}s, qemu-img ${nx.conv.wall}s), streaming pass peak RSS ${nx.init.rssMiB.toFixed(0)} MiB, local disk ${nx.diskMiB.toFixed(0)} MiB, CPU ${nx.cpu.toFixed(1)}s (streaming pass ${nx.init.cpu.toFixed(1)}s, qemu-img ${nx.conv.cpu.toFixed(1)}s) | time ratio provider/peer ${(nx.wall / peer.wall).toFixed(2)}, CPU ratio ${(nx.cpu / peer.cpu).toFixed(2)}`);
    console.log(`    phases: ${nx.phases}`);
  }
  for (const [label, name] of [['indexed', indexed], ['no index', plain]]) {
    const s = await showConfigBytes(`backup/${name}`);
    console.log(`Show Configuration, ${label}: ${s.wire} bytes from the gateway in all (${s.archive} of them of the archive itself, source ${s.source}), ${s.wall}s`);
  }
} finally {
  for await (const o of c.listAll({})) await c.deleteObject(o.key);
  for (const u of await c.listMultipartUploads({})) await c.abortMultipartUpload(u.key, u.uploadId);
  await c.deleteBucket();
  await c.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
