/**
 * archive-config (Base.pm archive_get_guest_config / archive_get_firewall_config; PVE's Show
 * Configuration): from the manifest's guest texts, else from the head of the archive only — frame
 * 0 of an indexed archive, ranged reads through PVE's decompressor for any other VMA (.vma,
 * .vma.zst/.gz/.lzo/.bz2) or vzdump tar (pct.conf, pct.fw first) — never the whole archive. Bytes
 * are counted at a proxy in front of the real RadosGW.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Client } from '../../host/src/s3/client.js';
import { archiveConfig } from '../../host/src/store/archive-config.js';
import { backupVm } from '../../host/src/store/provider-vm.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { CLUSTER_SIZE, clusterCount } from '../../host/src/vma/format.js';
import { buildHeader, ExtentBuilder, newUuid } from '../../host/src/vma/writer.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { haveQsd, makeImage, servedCopy, startQsd, tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testSettings } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const PREFIX = 'pve/';
const CONF = 'boot: order=scsi0\nmemory: 1024\nname: config-test\nscsi0: local:100/vm-100-disk-0.raw,size=24M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n';
const FW = '[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n';
const PCT = 'arch: amd64\nhostname: ct100\nmemory: 512\nrootfs: local:100/vm-100-disk-0.raw,size=8G\n';
const PCT_FW = '[OPTIONS]\nenable: 0\n';

/** a VMA made by the project's writer: one 24 MiB device of random data (so the archive is big) */
function makeVma(configs: Array<{ name: string; data: Buffer }>): Buffer {
  const dev = { id: 1, name: 'drive-scsi0', size: 24 * 1024 * 1024 + 4608 };
  const uuid = newUuid();
  const parts: Buffer[] = [buildHeader({ uuid, ctime: 1735787045, configs, devices: [dev] })];
  const b = new ExtentBuilder(uuid, dev.id, dev.size);
  for (let c = 0; c < clusterCount(dev.size); c++) {
    b.add(c, randomBytes(CLUSTER_SIZE));
    parts.push(b.take());
  }
  b.flush();
  parts.push(b.take());
  return Buffer.concat(parts);
}

describe('archive-config reads only the head of an archive', () => {
  const tmp = tempDir('pac');
  let c: S3Client;
  let proxy: FaultProxy;
  let ctx: StoreContext;
  const vma = makeVma([
    { name: 'qemu-server.conf', data: Buffer.from(CONF) },
    { name: 'qemu-server.fw', data: Buffer.from(FW) },
  ]);

  beforeAll(async () => {
    const owner = await freshBucket('pac');
    c = owner;
    proxy = await startFaultProxy(testSettings().endpoint);
    const viaProxy = new S3Client(testSettings({ bucket: owner.bucket, endpoint: proxy.url }));
    ctx = {
      client: viaProxy,
      // the manifest's guest texts and frame index are used only when it is signed with this key
      settings: { storageId: 's3c', bucket: owner.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: join(tmp.dir, 'cache'), manifestKey: testManifestKey(tmp.dir) },
      logger: nullLogger,
    };
  });
  afterAll(async () => {
    await proxy?.close();
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  async function put(name: string, body: Buffer): Promise<string> {
    await c.putObject(`${PREFIX}dump/${name}`, body);
    return `backup/${name}`;
  }

  /** body bytes the server sent for the archive object itself */
  function archiveBytes(name: string): number {
    return proxy.requests.filter((r) => r.method === 'GET' && r.target.split('?')[0]!.endsWith(`/dump/${name}`)).reduce((s, r) => s + r.bodyBytes, 0);
  }

  // what a decompressor needs before it writes anything out is its first block: zstd 128 KiB and
  // lzop 256 KiB of output, bzip2 900 kB; the ranges double from 64 KiB, so at most twice that
  const compressed: Array<[string, string[] | null, number]> = [
    ['vma', null, 64 << 10],
    ['vma.zst', ['zstd', '-3', '-c', '-q'], 256 << 10],
    ['vma.gz', ['gzip', '-c'], 64 << 10],
    ['vma.lzo', ['lzop', '-c'], 512 << 10],
    ['vma.bz2', ['bzip2', '-c'], 2 << 20],
  ];
  for (const [ext, cmd, bound] of compressed) {
    it(`.${ext}: guest and firewall config from the VMA header, a few KiB read`, async () => {
      const body = cmd ? (spawnSync(cmd[0]!, cmd.slice(1), { input: vma, maxBuffer: 1 << 30 }).stdout as Buffer) : vma;
      const name = `vzdump-qemu-100-2025_01_02-03_04_05.${ext}`;
      const volname = await put(name, body);
      proxy.clearLog();
      const g = await archiveConfig(ctx, volname, 'guest');
      expect(g.text?.toString()).toBe(CONF);
      expect(g.source).toBe('archive');
      const f = await archiveConfig(ctx, volname, 'firewall');
      expect(f.text?.toString()).toBe(FW);
      expect(g.bytesRead).toBeLessThanOrEqual(bound);
      expect(archiveBytes(name)).toBe(g.bytesRead + f.bytesRead);
      expect(body.length).toBeGreaterThan(8 * g.bytesRead);
    });
  }

  it('a header larger than the first range: read on in growing ranges, still only the head', async () => {
    const big = Buffer.from(`${CONF}description: ${'x'.repeat(60000)}\n`);
    const body = makeVma([{ name: 'qemu-server.conf', data: big }]);
    const volname = await put('vzdump-qemu-101-2025_01_02-03_04_05.vma', body);
    const g = await archiveConfig(ctx, volname, 'guest');
    expect(g.text!.equals(big)).toBe(true);
    expect(g.bytesRead).toBe((64 + 128) << 10);
    expect((await archiveConfig(ctx, volname, 'firewall')).text).toBeNull();
  });

  it('a vzdump tar of a container: pct.conf and pct.fw, the first members', async () => {
    const root = join(tmp.dir, 'ct');
    mkdirSync(join(root, 'etc', 'vzdump'), { recursive: true });
    mkdirSync(join(root, 'srv'), { recursive: true });
    writeFileSync(join(root, 'etc', 'vzdump', 'pct.conf'), PCT);
    writeFileSync(join(root, 'etc', 'vzdump', 'pct.fw'), PCT_FW);
    writeFileSync(join(root, 'srv', 'data.bin'), randomBytes(6 << 20));
    spawnSync('setfattr', ['-n', 'user.test', '-v', 'x', join(root, 'etc', 'vzdump', 'pct.conf')]);
    // vzdump's order and flags (pve-container VZDump/LXC.pm archive): the configs first
    const tar = spawnSync(
      'tar',
      ['cpf', '-', '--sparse', '--numeric-owner', '--acls', '--xattrs', '--xattrs-include=user.*', '-C', root, './etc/vzdump/pct.conf', './etc/vzdump/pct.fw', './srv'],
      { maxBuffer: 1 << 30 },
    ).stdout as Buffer;
    for (const [ext, cmd, bound] of [
      ['tar.zst', ['zstd', '-c', '-q'], 256 << 10],
      ['tar.gz', ['gzip', '-c'], 64 << 10],
    ] as const) {
      const name = `vzdump-lxc-200-2025_01_02-03_04_05.${ext}`;
      const volname = await put(name, spawnSync(cmd[0], cmd.slice(1), { input: tar, maxBuffer: 1 << 30 }).stdout as Buffer);
      const g = await archiveConfig(ctx, volname, 'guest');
      expect(g.text?.toString()).toBe(PCT);
      expect((await archiveConfig(ctx, volname, 'firewall')).text?.toString()).toBe(PCT_FW);
      expect(g.bytesRead).toBeLessThanOrEqual(bound);
    }
  });

  it('not an archive: a clear error after the first range, not a read of the whole object', async () => {
    const volname = await put('vzdump-qemu-102-2025_01_02-03_04_05.vma', randomBytes(4 << 20));
    await expect(archiveConfig(ctx, volname, 'guest')).rejects.toMatchObject({ code: 'VmaInvalid', message: expect.stringMatching(/not a valid VMA archive: wrong magic/) });
    expect(archiveBytes('vzdump-qemu-102-2025_01_02-03_04_05.vma')).toBe(64 << 10);
  });

  (haveQsd() ? it : it.skip)('an indexed archive: the manifest\'s texts (nothing of the archive read), or frame 0 when they are not UTF-8', async () => {
    const img = join(tmp.dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 20 << 20 }], 3);
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    const latin1 = Buffer.from(`${CONF}description: caf\xe9\n`, 'latin1');
    try {
      for (const [vmid, config] of [
        [110, Buffer.from(CONF)],
        [111, latin1],
      ] as const) {
        await backupVm(ctx, {
          volname: `backup/vzdump-qemu-${vmid}-2025_01_02-03_04_05.vma.zst`,
          time: 1735787045,
          config,
          firewall: Buffer.from(FW),
          devices: [{ name: 'drive-scsi0', size, nbdPath: qsd.socket }],
        });
      }
    } finally {
      await qsd.stop();
    }
    proxy.clearLog();
    const m = await archiveConfig(ctx, 'backup/vzdump-qemu-110-2025_01_02-03_04_05.vma.zst', 'guest');
    expect([m.text?.toString(), m.source, m.bytesRead]).toEqual([CONF, 'manifest', 0]);
    expect(archiveBytes('vzdump-qemu-110-2025_01_02-03_04_05.vma.zst')).toBe(0);
    const f0 = await archiveConfig(ctx, 'backup/vzdump-qemu-111-2025_01_02-03_04_05.vma.zst', 'guest');
    expect(f0.text!.equals(latin1)).toBe(true);
    expect(f0.source).toBe('archive');
    // frame 0 is the VMA header alone: a few KiB
    expect(f0.bytesRead).toBeLessThan(16 << 10);
    expect(archiveBytes('vzdump-qemu-111-2025_01_02-03_04_05.vma.zst')).toBe(f0.bytesRead);
    expect((await archiveConfig(ctx, 'backup/vzdump-qemu-111-2025_01_02-03_04_05.vma.zst', 'firewall')).text?.toString()).toBe(FW);
  }, 120_000);
});
