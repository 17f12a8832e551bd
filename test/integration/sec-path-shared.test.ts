// A storage's `path` shared with another storage (`path /var/lib/vz`, which is PVE's `local`): the
// background sync took local's vzdump archives for files of this storage waiting to go up,
// uploaded them and removed them from local (keep_local 0), leaving how many stay to this
// storage's prune-backups. It now stops, naming the other storage (docs/SECURITY.md).
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { hostOp, storageSection } from '../helpers/host-op.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';

let c: S3Client;
let dir: string;

beforeAll(async () => {
  c = await freshBucket('sec-path-shared');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-path-'));
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('the background sync of a storage whose path is another storage\'s', () => {
  it("leaves the other storage's backups where they are, and says why", async () => {
    const vz = join(dir, 'vz');
    mkdirSync(join(vz, 'dump'), { recursive: true });
    const archive = join(vz, 'dump', 'vzdump-qemu-100-2026_12_06-01_00_02.vma.zst');
    writeFileSync(archive, Buffer.alloc(4096, 1));
    const cfg = join(dir, 'storage.cfg');
    // the same directory written another way (a trailing slash) is the same directory
    await writeFile(cfg, `dir: local\n\tpath ${vz}/\n\tcontent iso,vztmpl,backup\n\ns3: s3a\n\tbucket ${c.bucket}\n\tpath ${vz}\n\n`);
    const storage = storageSection('s3a', c.bucket, { prefix: 'pve/', path: vz });
    const env = { PVE_S3_STORAGE_CFG: cfg, PVE_S3_PRIV_DIR: join(dir, 'priv'), PVE_S3_LOG_FILE: join(dir, 'host.log') };
    const r = await hostOp('sync-local', storage, { quiet_seconds: 0 }, { env });
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('PathShared');
    expect(r.error?.message).toBe(
      `path '${vz}' of storage 's3a' is also the path of storage 'local' (dir): its files there are not this storage's to upload or remove, so nothing is synced; give 's3a' a path of its own (pvesm set s3a --path DIR)`,
    );
    expect(existsSync(archive)).toBe(true);
    const keys: string[] = [];
    for await (const o of c.listAll({ prefix: 'pve/' })) keys.push(o.key);
    expect(keys).toEqual([]);

    // a path of its own: the same archive goes up and, keep_local 0, leaves the spool
    const own = join(dir, 'own');
    mkdirSync(join(own, 'dump'), { recursive: true });
    const mine = join(own, 'dump', 'vzdump-qemu-100-2026_12_06-01_00_02.vma.zst');
    writeFileSync(mine, Buffer.alloc(4096, 1));
    const ok = await hostOp('sync-local', { ...storage, path: own }, { quiet_seconds: 0 }, { env });
    expect(ok.ok, JSON.stringify(ok.error)).toBe(true);
    expect(ok.result?.uploaded).toEqual(['backup/vzdump-qemu-100-2026_12_06-01_00_02.vma.zst']);
    expect(existsSync(mine)).toBe(false);
  });
});
