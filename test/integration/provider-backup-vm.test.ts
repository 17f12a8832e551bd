/**
 * VM backup as the Backup Provider makes it (docs/BACKUP-PROVIDER.md §5): the data comes from
 * QEMU's own NBD server (qemu-storage-daemon, one export per device on one unix socket as
 * archive_external sets it up); the .vma.zst in the real RadosGW must decompress with the zstd
 * program, extract with the project's VMA reader to the source images byte for byte, carry a
 * frame index that matches the object, and leave nothing behind when the NBD server dies.
 * PVE_S3_VMA_PY may name an independent VMA reader (vma.py of Yusheng9966/vma-extractor), run too.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { backupVm } from '../../host/src/store/provider-vm.js';
import { discardBackup } from '../../host/src/store/provider-run.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { decodeIndex, FrameKind } from '../../host/src/vma/frame-index.js';
import { readVma } from '../../host/src/vma/reader.js';
import { Crc64Nvme, Sha256 } from '../../host/src/wasm/digests.js';
import { zstd } from '../../host/src/zstd/native.js';
import { allocatedBytes, haveQsd, makeImage, servedCopy, standardImages, startQsd, tempDir, type TestImage } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const PREFIX = 'pve/';
const CONF = 'boot: order=scsi0\ncores: 2\nmemory: 2048\nname: vm100 – ünïcode\nscsi0: local:100/vm-100-disk-0.raw,size=32M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n';
const FW = '[OPTIONS]\nenable: 1\n';
const d = haveQsd() ? describe : describe.skip;

d('provider VM backup from qemu-storage-daemon into the bucket', () => {
  const tmp = tempDir('pvm');
  let c: S3Client;
  let ctx: StoreContext;
  let images: TestImage[];
  beforeAll(async () => {
    c = await freshBucket('pvm');
    ctx = { client: c, settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: join(tmp.dir, 'cache'), manifestKey: testManifestKey(tmp.dir) }, logger: nullLogger };
    images = standardImages(tmp.dir, 11);
  });
  afterAll(async () => {
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  async function keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of c.listAll({ prefix: PREFIX })) out.push(o.key);
    return out.sort();
  }

  it('stores a standard VMA in zstd frames that the zstd program, the VMA reader and the index all agree on', async () => {
    const served = images.map((i) => servedCopy(i, tmp.dir));
    const before = served.map((s) => allocatedBytes(s.path));
    const qsd = await startQsd(tmp.dir, served);
    const lines: string[] = [];
    const volname = 'backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst';
    try {
      const r = await backupVm(ctx, {
        volname,
        time: 1735787045,
        config: Buffer.from(CONF),
        firewall: Buffer.from(FW),
        devices: images.map((i) => ({ name: i.name, size: i.size, nbdPath: qsd.socket })).reverse(),
        onLine: (l) => lines.push(l),
      });
      expect(r.volume.verified).toBe(true);
      expect(r.zeroBytes).toBeGreaterThanOrEqual(20 << 20);
    } finally {
      await qsd.stop();
    }
    const key = `${PREFIX}dump/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst`;
    expect(await keys()).toEqual([key, `${key}.s3index`, `${key}.s3manifest`]);
    expect(lines.some((l) => /drive-scsi0: \d+% /.test(l))).toBe(true);

    // discard: every range read was trimmed on the export once stored
    served.forEach((s, i) => expect(allocatedBytes(s.path)).toBeLessThanOrEqual(before[i]!));
    expect(allocatedBytes(served.find((s) => s.name === 'drive-virtio1')!.path)).toBeLessThan(1 << 20);

    const obj = await readAll((await c.getObject(key)).body);
    // the zstd program reads the whole multi-frame file
    const z = spawnSync('zstd', ['-d', '-c', '-q'], { input: obj, maxBuffer: 1 << 30 });
    expect(z.status).toBe(0);
    const vma = z.stdout as Buffer;

    // the project's reader: configs, devices in sorted order, bytes equal to the sources
    const out = new Map(images.map((i) => [i.name, Buffer.alloc(i.size)]));
    const rd = await readVma([vma], { onData: (dev, off, data) => void data.copy(out.get(dev.name)!, off) });
    expect(rd.header.configs.map((x) => [x.name, x.data.toString()])).toEqual([['qemu-server.conf', CONF], ['qemu-server.fw', FW]]);
    expect(rd.header.devices.map((x) => x.name)).toEqual([...images.map((i) => i.name)].sort());
    expect(rd.header.ctime).toBe(1735787045);
    for (const img of images) expect(out.get(img.name)!.equals(readFileSync(img.path))).toBe(true);

    // the manifest names the index and carries the guest texts
    const m = JSON.parse((await readAll((await c.getObject(`${key}.s3manifest`)).body)).toString());
    expect(m.guest).toMatchObject({ type: 'qemu', config: CONF, firewall: FW });
    const ixBody = await readAll((await c.getObject(`${key}.s3index`)).body);
    expect(m.index).toEqual({ type: 'vma-zstd-frames-1', key: `${key}.s3index`, size: ixBody.length, sha256: Buffer.from(Sha256.hash(ixBody)).toString('hex') });
    const ix = decodeIndex(ixBody);
    expect(ix.archiveSize).toBe(obj.length);
    let v = 0;
    for (const f of ix.frames) {
      const bytes = obj.subarray(f.offset, f.offset + f.clen);
      expect(Buffer.from(Sha256.hash(bytes)).equals(f.sha256)).toBe(true);
      expect(f.crc64).toBe(Crc64Nvme.hash(bytes));
      const dec = Buffer.alloc(f.ulen);
      expect(zstd().decompress(dec, bytes)).toBe(f.ulen);
      expect(dec.equals(vma.subarray(v, v + f.ulen))).toBe(true);
      v += f.ulen;
    }
    expect(v).toBe(vma.length);
    // the 20 MiB hole of drive-scsi0 is a zero frame; efidisk0 (all hole) stores no block
    expect(ix.frames.some((f) => f.kind === FrameKind.zero && f.clusterCount >= 256)).toBe(true);
    const efi = ix.devices.find((x) => x.name === 'drive-efidisk0')!;
    expect(ix.frames.filter((f) => f.devId === efi.id).every((f) => f.storedBlocks === 0)).toBe(true);

    const py = process.env.PVE_S3_VMA_PY;
    if (py) {
      const dir = join(tmp.dir, 'vma-py');
      writeFileSync(join(tmp.dir, 'a.vma'), vma);
      const r = spawnSync('python3', [py, join(tmp.dir, 'a.vma'), dir], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      for (const img of images) {
        const f = readdirSync(dir).find((n) => n.startsWith(img.name))!;
        expect(readFileSync(join(dir, f)).subarray(0, img.size).equals(readFileSync(img.path))).toBe(true);
      }
      expect(readFileSync(join(dir, 'qemu-server.conf'), 'utf8')).toBe(CONF);
    }
  });

  it('fails clearly and leaves nothing when the NBD server dies mid-backup', async () => {
    const t = tempDir('pvm-kill');
    const path = join(t.dir, 'big.raw');
    const big = { name: 'drive-virtio1', path, size: makeImage(path, [{ kind: 'data', length: 64 << 20 }], 5) };
    const qsd = await startQsd(t.dir, [servedCopy(big, t.dir)]);
    const volname = 'backup/vzdump-qemu-101-2025_01_02-03_04_05.vma.zst';
    let reads = 0;
    const p = backupVm(ctx, {
      volname,
      time: 1735787045,
      config: Buffer.from(CONF),
      devices: [{ name: big.name, size: big.size, nbdPath: qsd.socket }],
      onLine: () => {
        if (++reads === 1) qsd.proc.kill('SIGKILL');
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'NbdError', message: expect.stringMatching(/NBD export 'drive-virtio1' at .*: /) });
    await qsd.stop();
    t.remove();
    expect((await keys()).filter((k) => k.includes('-101-'))).toEqual([]);
    expect((await c.listMultipartUploads({ prefix: PREFIX })).length).toBe(0);
    // and the discard of backup_cleanup finds nothing more to do
    expect(await discardBackup(ctx, volname)).toMatchObject({ removed: [], aborted: 0 });
  });
});
