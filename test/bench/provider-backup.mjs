#!/usr/bin/env node
// Backup Provider VM backup (host op backup-vm: NBD from qemu-storage-daemon → VMA → zstd frames
// → RadosGW) against its peer, pve-s3-backup of the same raw image compressed by `zstd -3 -T2`
// (a classic job's data without VMA, uploaded from a stream), in the same run. Prints wall time,
// throughput of the disk size, peak RSS and CPU of each, and the ratios. Needs the test RadosGW
// (test/s3/rgw-up.sh), a build (npm run build) and qemu-storage-daemon.
//   node test/bench/provider-backup.mjs [GiB=2] [rounds=2]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeGuestImage } from './guest-image.mjs';
import { gatewayClient, gatewayEnv } from './gateway.mjs';

const GiB = Number(process.argv[2] ?? 2);
const rounds = Number(process.argv[3] ?? 2);
const root = new URL('../..', import.meta.url).pathname;
const env = gatewayEnv();
const dir = mkdtempSync(join(tmpdir(), 'pve-s3-bench-pb-'));
// one manifest key for the host ops and the commands below (no /etc/pve/priv here): else the
// restores refuse what the backups stored as unsigned
process.env.PVE_S3_MANIFEST_KEY_FILE ??= join(dir, 'bench.manifest-key');
const img = join(dir, 'disk.raw');
const size = GiB * 2 ** 30;
writeGuestImage(img, size);
const { S3Client } = await import(join(root, 'host/dist/s3/client.js'));
const bucket = `bench-pb-${Date.now()}`;
const c = gatewayClient(S3Client, env, bucket);
await c.createBucket();
const storage = { id: 'bench', bucket, endpoint: env.S3_ENDPOINT, region: env.S3_REGION, access_key: env.S3_ACCESS_KEY, secret_key: env.S3_SECRET_KEY, force_path_style: '1', path: join(dir, 'cache') };

function timed(cmd, args, o = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/time', ['-f', '%e %M %U %S', cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    let out = '', err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => {
      const last = err.trim().split('\n').pop().split(' ').map(Number);
      if (code !== 0) return reject(new Error(`${cmd} exited ${code}: ${err.slice(-500)}`));
      resolve({ wall: last[0], rssMiB: last[1] / 1024, cpu: last[2] + last[3], out });
    });
    if (o.input) p.stdin.end(o.input);
    else p.stdin.end();
  });
}

const rows = [];
for (let r = 0; r < rounds; r++) {
  const qsd = spawn('qemu-storage-daemon', ['--blockdev', `driver=file,node-name=f0,filename=${img}`, '--blockdev', 'driver=raw,node-name=n0,file=f0', '--nbd-server', `addr.type=unix,addr.path=${dir}/nbd.sock`, '--export', 'type=nbd,id=drive-scsi0,node-name=n0,name=drive-scsi0,writable=off'], { stdio: 'ignore' });
  for (let i = 0; i < 200 && !existsSync(`${dir}/nbd.sock`); i++) await new Promise((res) => setTimeout(res, 25));
  const t = 1735787045 + r;
  const name = `vzdump-qemu-100-2025_01_02-03_04_${String(5 + r).padStart(2, '0')}.vma.zst`;
  const req = { v: 1, op: 'backup-vm', storage, args: { volname: `backup/${name}`, time: t, config_b64: Buffer.from('memory: 2048\n').toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: `${dir}/nbd.sock` }] } };
  const prov = await timed('node', [join(root, 'host/bin/pve-s3-host.js')], { input: JSON.stringify(req) });
  const provSize = JSON.parse(prov.out).result.size;
  qsd.kill('SIGTERM');
  await new Promise((res) => qsd.once('exit', res));
  rmSync(`${dir}/nbd.sock`, { force: true });
  const peerName = `vzdump-qemu-200-2025_01_02-03_04_${String(5 + r).padStart(2, '0')}.vma.zst`;
  const peer = await timed('node', [join(root, 'host/bin/pve-s3-backup.js'), '--from-command', `zstd -3 -T2 -q -c ${img}`, '--name', peerName, '--max-size', `${GiB + 1}G`], {
    env: { S3_ENDPOINT: env.S3_ENDPOINT, S3_REGION: env.S3_REGION, S3_ACCESS_KEY: env.S3_ACCESS_KEY, S3_SECRET_KEY: env.S3_SECRET_KEY, S3_BUCKET: bucket, S3_FORCE_PATH_STYLE: 'true', PVE_S3_STORAGE_CFG: '/nonexistent' },
  });
  rows.push({ r, prov, provSize, peer });
  const mb = (s) => (size / 2 ** 20 / s).toFixed(0);
  console.log(`round ${r}: provider backup-vm ${prov.wall}s (${mb(prov.wall)} MiB/s of disk), peak RSS ${prov.rssMiB.toFixed(0)} MiB, CPU ${prov.cpu.toFixed(1)}s, archive ${(provSize / 2 ** 20).toFixed(0)} MiB | pve-s3-backup of zstd -T2 stream ${peer.wall}s (${mb(peer.wall)} MiB/s), peak RSS ${peer.rssMiB.toFixed(0)} MiB (+ zstd), CPU ${peer.cpu.toFixed(1)}s | time ratio provider/peer ${(prov.wall / peer.wall).toFixed(2)}`);
}
for await (const o of c.listAll({})) await c.deleteObject(o.key);
for (const u of await c.listMultipartUploads({})) await c.abortMultipartUpload(u.key, u.uploadId);
await c.deleteBucket();
await c.close();
rmSync(dir, { recursive: true, force: true });
console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
