/**
 * Show Configuration of a backup of a few GB (issue 12: "extract_vzdump_config on an archive of a
 * few GB fetches only kilobytes"): PVE::Storage::extract_vzdump_config, as pve-manager's
 * extractconfig calls it, inside the real PVE 9 and 8.4 code (the project's double without
 * PVE_UPSTREAM_DIR), through perl/t/bin/show-config, with the Backup Provider switched on. The
 * archive is a 2 GiB .vma.zst of incompressible data stored by pve-s3-backup — no frame index,
 * no guest texts in its manifest, as every archive made before the provider — so the
 * configuration can only come from the head of the archive. Every byte the gateway sends is
 * counted at a proxy in front of the real RadosGW.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { CLUSTER_SIZE, clusterCount } from '../../host/src/vma/format.js';
import { buildHeader, ExtentBuilder, newUuid } from '../../host/src/vma/writer.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const PREFIX = 'pve/';
const GIB = 2;
const CONF = `boot: order=scsi0\nmemory: 4096\nname: big\nscsi0: local:100/vm-100-disk-0.raw,size=${GIB}G\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n`;
const NAME = 'vzdump-qemu-100-2025_01_02-03_04_05.vma.zst';
const have = spawnSync('perl', ['-MJSON::PP', '-e', '1']).status === 0 && spawnSync('zstd', ['--version']).status === 0;
const versions = process.env.PVE_UPSTREAM_DIR ? ['pve9', 'pve84'] : ['double'];

/** the VMA of one GIB-GiB device of incompressible data (slices of a random pool), as a stream */
function bigVma(): Readable {
  const dev = { id: 1, name: 'drive-scsi0', size: GIB * 2 ** 30 + 4608 };
  const uuid = newUuid();
  const pool = randomBytes(32 << 20);
  const slots = pool.length / 4096 - CLUSTER_SIZE / 4096;
  return Readable.from(
    (function* () {
      yield buildHeader({ uuid, ctime: 1735787045, configs: [{ name: 'qemu-server.conf', data: Buffer.from(CONF) }], devices: [dev] });
      const b = new ExtentBuilder(uuid, dev.id, dev.size);
      const n = clusterCount(dev.size);
      for (let c = 0; c < n; c++) {
        const at = ((c * 2654435761) % slots) * 4096;
        b.add(c, pool.subarray(at, at + CLUSTER_SIZE));
        if (c % 59 === 58) yield b.take();
      }
      b.flush();
      yield b.take();
    })(),
    { objectMode: false },
  );
}

(have ? describe : describe.skip)('Show Configuration of a backup of a few GB reads only its head', () => {
  const tmp = tempDir('pvsc');
  let c: S3Client;
  let proxy: FaultProxy;
  let archiveSize = 0;

  beforeAll(async () => {
    // the storage's manifest key for the host ops and pve-s3-backup: a restore uses only what it signed
    process.env.PVE_S3_MANIFEST_KEY_FILE = testManifestKey(tmp.dir).file;
    c = await freshBucket('pvsc');
    proxy = await startFaultProxy(testS3().endpoint);
    const file = join(tmp.dir, NAME);
    const z = spawn('zstd', ['-1', '-q', '-c'], { stdio: ['pipe', openSync(file, 'w'), 'inherit'] });
    const exited = new Promise<number | null>((r) => z.on('close', r));
    await pipeline(bigVma(), z.stdin!);
    expect(await exited).toBe(0);
    archiveSize = statSync(file).size;
    const t = testS3();
    const up = spawnSync(process.execPath, [join(ROOT, 'host/bin/pve-s3-backup.js'), '--source', file, '--name', NAME], {
      env: { ...process.env, S3_ENDPOINT: t.endpoint, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_BUCKET: c.bucket, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: PREFIX, PVE_S3_STORAGE_CFG: '/nonexistent' },
      encoding: 'utf8',
    });
    expect(up.status, up.stderr).toBe(0);
    rmSync(file);
  }, 900_000);

  afterAll(async () => {
    await proxy?.close();
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  for (const version of versions) {
    it(`extract_vzdump_config inside ${version === 'double' ? "the project's double" : version}: the config, for a few hundred KiB of a ${GIB} GiB archive`, async () => {
      expect(archiveSize).toBeGreaterThan(GIB * 2 ** 30);
      const t = testS3();
      const storage = {
        storage: 'big-s3', bucket: c.bucket, endpoint: proxy.url, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey,
        prefix: PREFIX, force_path_style: 1, path: join(tmp.dir, `cache-${version}`),
      };
      proxy.clearLog();
      const r = await new Promise<{ status: number | null; out: string; err: string }>((res) => {
        // not spawnSync: the proxy answers from this process
        const p = spawn('perl', [join(ROOT, 'perl/t/bin/show-config'), version, `backup/${NAME}`], {
          env: { ...process.env, PVE_S3_HOST_BIN: `${process.execPath} ${join(ROOT, 'host/bin/pve-s3-host.js')}`, PVE_S3_LOG_FILE: join(tmp.dir, 'host.log') },
        });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (status) => res({ status, out, err }));
        p.stdin.end(JSON.stringify(storage));
      });
      expect(r.status, r.err).toBe(0);
      expect(r.out).toBe(CONF);
      const gets = proxy.requests.filter((q) => q.method === 'GET');
      const ofArchive = gets.filter((q) => q.target.split('?')[0]!.endsWith(`/dump/${NAME}`)).reduce((s, q) => s + q.bodyBytes, 0);
      const all = proxy.requests.reduce((s, q) => s + q.bodyBytes, 0);
      // zstd writes nothing before a whole 128 KiB block: the ranges, 64 KiB doubling, stop at 192 KiB
      expect(ofArchive).toBeGreaterThan(0);
      expect(ofArchive).toBeLessThanOrEqual(256 << 10);
      // with the manifest and what else was asked: still a few hundred KiB of a 2 GiB object
      expect(all).toBeLessThanOrEqual(512 << 10);
      console.log(`${version}: extract_vzdump_config of a ${(archiveSize / 2 ** 20).toFixed(0)} MiB archive: ${all} bytes from the gateway (${ofArchive} of the archive, ${proxy.requests.length} requests)`);
    }, 300_000);
  }
});
