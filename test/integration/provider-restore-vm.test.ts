/**
 * VM restore through the Backup Provider's host operations (docs/BACKUP-PROVIDER.md §6), driven
 * as the Perl provider drives them — one host process per operation, JSON on stdin — with
 * qemu-img reading what restore-volume-start hands back, as qemu-server's
 * restore_external_archive does. The archives come from QEMU's own NBD server through the
 * host's backup-vm (indexed), and the same VMA stored without an index: uploaded by
 * pve-s3-backup as a plain .vma.zst, and made by the zstd program from the writer's VMA. Every
 * device must come out byte for byte; nothing may stay mounted, running or on disk afterwards.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storageConfigFromSection } from '../../host/src/config/resolve.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { openStore } from '../../host/src/store/open.js';
import { backupVm } from '../../host/src/store/provider-vm.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { haveQsd, processesIn, servedCopy, standardImages, startQsd, tempDir, type TestImage } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testS3 } from '../helpers/s3.js';
import { hostOp, storageSection, type Envelope } from '../helpers/host-op.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { putVolume } from '../../host/src/store/transfer.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const PREFIX = 'pve/';
const CONF = 'boot: order=scsi0\ncores: 2\nmemory: 2048\nname: vm100\nscsi0: local:100/vm-100-disk-0.raw,size=32M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n';
const FW = '[OPTIONS]\nenable: 1\n';
const have = haveQsd() && existsSync('/usr/bin/nbdfuse') && existsSync('/dev/fuse') && existsSync('/usr/bin/qemu-img');
const d = have ? describe : describe.skip;

d('provider VM restore: restore-vm-init, restore-volume-start/stop, restore-vm-cleanup, qemu-img', () => {
  const tmp = tempDir('pvr');
  let c: S3Client;
  let ctx: StoreContext & { close(): Promise<void> };
  let storage: Record<string, string>;
  let images: TestImage[];
  const indexed = 'backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst';
  const byCli = 'backup/vzdump-qemu-101-2025_01_02-03_04_05.vma.zst';
  const byZstd = 'backup/vzdump-qemu-102-2025_01_02-03_04_05.vma.zst';
  // what vzdump wrote before zstd, or with compress 0 (copied into the bucket by the hook)
  const older: Array<[string, string[] | null]> = [
    ['backup/vzdump-qemu-103-2025_01_02-03_04_05.vma.gz', ['gzip', '-c']],
    ['backup/vzdump-qemu-104-2025_01_02-03_04_05.vma.lzo', ['lzop', '-c']],
    ['backup/vzdump-qemu-105-2025_01_02-03_04_05.vma', null],
  ];
  const planted = 'backup/vzdump-qemu-106-2025_01_02-03_04_05.vma.zst';

  function host(op: string, args: Record<string, unknown>): Promise<Envelope & { stderr: string }> {
    return hostOp(op, storage, args, { env: { PVE_S3_LOG_FILE: join(tmp.dir, 'host.log') } });
  }

  beforeAll(async () => {
    // the storage's manifest key, for this process's store, the host ops and pve-s3-backup alike:
    // a restore uses only what it signed
    process.env.PVE_S3_MANIFEST_KEY_FILE = testManifestKey(tmp.dir).file;
    c = await freshBucket('pvr');
    storage = storageSection('pvr', c.bucket, { prefix: PREFIX, path: join(tmp.dir, 'cache') });
    const { id, ...section } = storage;
    ctx = await openStore(storageConfigFromSection(id, section), { logger: nullLogger, storageId: id });
    images = standardImages(tmp.dir, 21);
    const qsd = await startQsd(tmp.dir, images.map((i) => servedCopy(i, tmp.dir)));
    try {
      await backupVm(ctx, {
        volname: indexed,
        time: 1735787045,
        config: Buffer.from(CONF),
        firewall: Buffer.from(FW),
        devices: images.map((i) => ({ name: i.name, size: i.size, nbdPath: qsd.socket })),
      });
    } finally {
      await qsd.stop();
    }
    // the same archive without an index: stored by pve-s3-backup as any .vma.zst would be
    const obj = await readAll((await c.getObject(`${PREFIX}dump/${indexed.slice(7)}`)).body);
    writeFileSync(join(tmp.dir, 'frames.vma.zst'), obj);
    const t = testS3();
    const cli = spawnSync(process.execPath, [join(ROOT, 'host/bin/pve-s3-backup.js'), '--source', join(tmp.dir, 'frames.vma.zst'), '--name', byCli.slice(7)], {
      env: { ...process.env, S3_ENDPOINT: t.endpoint, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_BUCKET: c.bucket, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: PREFIX, PVE_S3_STORAGE_CFG: '/nonexistent' },
      encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    // and one frame of zstd over the writer's whole VMA, as `zstd` makes it
    const vma = spawnSync('zstd', ['-d', '-c', '-q', join(tmp.dir, 'frames.vma.zst')], { maxBuffer: 1 << 30 }).stdout as Buffer;
    const one = spawnSync('zstd', ['-3', '-c', '-q'], { input: vma, maxBuffer: 1 << 30 }).stdout as Buffer;
    // stored by pve-s3-backup too: an object without a manifest signed with the storage's key is
    // refused by restore-vm-init (issue 10 §7, below)
    writeFileSync(join(tmp.dir, 'one.vma.zst'), one);
    const cli2 = spawnSync(process.execPath, [join(ROOT, 'host/bin/pve-s3-backup.js'), '--source', join(tmp.dir, 'one.vma.zst'), '--name', byZstd.slice(7)], {
      env: { ...process.env, S3_ENDPOINT: t.endpoint, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_BUCKET: c.bucket, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: PREFIX, PVE_S3_STORAGE_CFG: '/nonexistent' },
      encoding: 'utf8',
    });
    expect(cli2.status, cli2.stderr).toBe(0);
    // and the same bytes planted by someone who can write to the bucket, without our manifest
    await c.putObject(`${PREFIX}dump/${planted.slice(7)}`, one);
    // the older formats, stored as the hook stores them (signed, issue 10 §7)
    for (const [volname, cmd] of older) {
      const body = cmd ? (spawnSync(cmd[0]!, cmd.slice(1), { input: vma, maxBuffer: 1 << 30 }).stdout as Buffer) : vma;
      const file = join(tmp.dir, volname.slice(7));
      writeFileSync(file, body);
      await putVolume(ctx, volname, { src: { path: file } });
    }
  }, 240_000);

  afterAll(async () => {
    await ctx?.close();
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  const restoreRoot = (): string => join(tmp.dir, 'cache', '.pve-s3', 'restore');
  const mounts = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(tmp.dir));
  const servers = (): string[] => processesIn(tmp.dir);

  async function restoreAll(volname: string, expectIndexed: boolean): Promise<void> {
    const init = await host('restore-vm-init', { volname });
    expect(init.ok, init.error?.message).toBe(true);
    const r = init.result as { dir: string; indexed: boolean; devices: Array<{ name: string; size: number }>; config_b64: string; firewall_b64: string | null };
    expect(r.indexed).toBe(expectIndexed);
    expect(Buffer.from(r.config_b64, 'base64').toString()).toBe(CONF);
    expect(Buffer.from(r.firewall_b64 ?? '', 'base64').toString()).toBe(FW);
    expect(r.devices.map((x) => [x.name, x.size])).toEqual([...images].sort((a, b) => (a.name < b.name ? -1 : 1)).map((i) => [i.name, i.size]));
    for (const img of images) {
      const start = await host('restore-volume-start', { dir: r.dir, device: img.name });
      expect(start.ok, start.error?.message).toBe(true);
      const path = (start.result as { path: string }).path;
      // what file_size_info asks of the path: a file whose raw size is the device's
      const info = spawnSync('qemu-img', ['info', '--output=json', '-f', 'raw', path], { encoding: 'utf8' });
      expect(info.status, info.stderr).toBe(0);
      const j = JSON.parse(info.stdout) as { 'virtual-size': number; 'actual-size': number };
      expect(j['virtual-size']).toBe(img.size);
      expect(Number.isInteger(j['actual-size'])).toBe(true);
      const out = join(tmp.dir, `${img.name}.out`);
      const conv = spawnSync('qemu-img', ['convert', '-p', '-f', 'raw', '-O', 'raw', path, out], { encoding: 'utf8' });
      expect(conv.status, conv.stderr).toBe(0);
      expect(readFileSync(out).equals(readFileSync(img.path)), img.name).toBe(true);
      const stop = await host('restore-volume-stop', { dir: r.dir, device: img.name });
      expect(stop.ok, stop.error?.message).toBe(true);
      expect(mounts()).toEqual([]);
      expect(servers()).toEqual([]);
    }
    const clean = await host('restore-vm-cleanup', { dir: r.dir });
    expect(clean.ok, clean.error?.message).toBe(true);
    expect(existsSync(r.dir)).toBe(false);
    expect(readdirSync(restoreRoot())).toEqual([]);
  }

  it('restores an indexed archive from the bucket through NBD and nbdfuse, byte for byte', async () => {
    await restoreAll(indexed, true);
  }, 240_000);

  it('restores the same VMA uploaded by pve-s3-backup as a plain .vma.zst, through sparse images', async () => {
    await restoreAll(byCli, false);
  }, 240_000);

  it('restores a .vma.zst made by the zstd program from the project writer\'s VMA', async () => {
    await restoreAll(byZstd, false);
  }, 240_000);

  for (const [volname, cmd] of older) {
    it(`restores a ${volname.split('.').slice(1).join('.')} of the same VMA${cmd ? ` (${cmd[0]})` : ''}, through sparse images`, async () => {
      await restoreAll(volname, false);
    }, 240_000);
  }
  it('refuses an archive no manifest signed with the storage\'s key vouches for, before reading it (issue 10 §7)', async () => {
    const before = existsSync(restoreRoot()) ? readdirSync(restoreRoot()) : [];
    const init = await host('restore-vm-init', { volname: planted });
    expect(init.ok).toBe(false);
    expect(init.error?.code).toBe('Unverified');
    expect(init.error?.message).toMatch(/cannot be verified: no manifest .*refused, nothing downloaded\. .*pve-s3-restore --storage \S+ --source backup\/vzdump-qemu-106-\S+ --allow-unverified/);
    expect(existsSync(restoreRoot()) ? readdirSync(restoreRoot()) : []).toEqual(before);
  }, 60_000);
});
