// backup_cleanup after a failed provider backup sends `backup-discard` for the archive name its
// backup_init chose. That name is free when the backup starts (backup-init refuses one the bucket
// holds), but another writer of the bucket - another cluster sharing it, the same guest id and
// schedule - can store a backup under the same name while this one runs. The discard of the failed
// run must remove only what that run left: never another writer's complete backup, least of all
// a protected one (docs/SECURITY.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { hostOp, storageSection } from '../helpers/host-op.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { haveQsd, makeImage, servedCopy, startQsd, tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';

const PREFIX = 'pve/';
let c: S3Client;
let dir: string;
let storage: Record<string, string>;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  c = await freshBucket('sec-discard');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-discard-'));
  mkdirSync(join(dir, 'priv'), { mode: 0o700 });
  testManifestKey(join(dir, 'priv'), 'sd');
  storage = storageSection('sd', c.bucket, { prefix: PREFIX, path: join(dir, 'cache') });
  env = { PVE_S3_PRIV_DIR: join(dir, 'priv'), PVE_S3_LOG_FILE: join(dir, 'host.log') };
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

async function keys(): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix: PREFIX })) out.push(o.key);
  return out.sort();
}

describe('backup-discard of a failed provider backup', () => {
  it("keeps another writer's backup stored under the same name meanwhile (protected or not)", async () => {
    for (const [vmid, prot] of [
      [100, true],
      [101, false],
    ] as const) {
      const init = await hostOp('backup-init', storage, { vmid, type: 'qemu', time: 1764982800 }, { env });
      expect(init.ok, JSON.stringify(init.error)).toBe(true);
      const volname = init.result!.volname as string;

      // another writer stores a backup under that name while this run goes on
      const src = join(dir, `other-${vmid}.vma.zst`);
      writeFileSync(src, Buffer.alloc(4096, vmid));
      const up = await hostOp('upload', storage, { volname, src, protected: prot, notes: 'the other cluster' }, { env });
      expect(up.ok, JSON.stringify(up.error)).toBe(true);
      const before = await keys();
      expect(before).toContain(`${PREFIX}${volname.replace(/^backup\//, 'dump/')}`);

      // this run fails before it stored anything: its cleanup discards (as the plugin sends it,
      // and as an older plugin did, without the run)
      for (const args of [{ volname, run: init.result!.run }, { volname }]) {
        const discard = await hostOp('backup-discard', storage, args, { env });
        expect(discard.ok, JSON.stringify(discard.error)).toBe(true);
        expect(discard.result).toMatchObject({ removed: [], aborted: 0, kept: `${PREFIX}${volname.replace(/^backup\//, 'dump/')}` });
        expect(discard.stderr).toMatch(/; kept '.*': it was not made by this backup run \(it carries no run id\): another writer stored a backup under that name/);
        expect(await keys()).toEqual(before);
      }
      const stat = await hostOp('stat', storage, { volname }, { env });
      expect(stat.result?.volume).toMatchObject({ verified: true, protected: prot });
    }
  });

  (haveQsd() ? it : it.skip)('still removes the archive its own run stored (backup-vm), and only with its run id', async () => {
    const tmp = tempDir('sec-discard-qsd');
    const img = join(tmp.dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 1 << 20 }], 5);
    const init = await hostOp('backup-init', storage, { vmid: 102, type: 'qemu', time: 1764982800 }, { env });
    const { volname, run } = init.result as { volname: string; run: string };
    expect(run).toMatch(/^[0-9a-f]{32}$/);
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    try {
      const b = await hostOp('backup-vm', storage, {
        volname, run, time: 1764982800, config_b64: Buffer.from('memory: 512\n').toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }],
      }, { env });
      expect(b.ok, JSON.stringify(b.error)).toBe(true);
    } finally {
      await qsd.stop();
    }
    const key = `${PREFIX}${volname.replace(/^backup\//, 'dump/')}`;
    expect((await c.headObject(key)).metadata['backup-run']).toBe(run);
    // a later step of the job failed: backup_cleanup discards what the run stored; another run's
    // discard (another id) would not
    const other = await hostOp('backup-discard', storage, { volname, run: 'f'.repeat(32) }, { env });
    expect(other.result).toMatchObject({ removed: [], kept: key });
    const discard = await hostOp('backup-discard', storage, { volname, run }, { env });
    expect(discard.ok, JSON.stringify(discard.error)).toBe(true);
    expect((discard.result!.removed as string[]).sort()).toEqual([key, `${key}.s3index`, `${key}.s3manifest`]);
    expect((await keys()).filter((k) => k.startsWith(key))).toEqual([]);
    const bad = await hostOp('backup-discard', storage, { volname, run: '../x' }, { env });
    expect(bad.error?.message).toBe("invalid run '../x': must be the 32 hex digits backup-init answered");
  }, 120_000);

  (haveQsd() ? it : it.skip)('a backup-vm whose name another writer stored while it ran fails without overwriting it', async () => {
    const tmp = tempDir('sec-discard-race');
    const img = join(tmp.dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 6 << 20 }], 9);
    const init = await hostOp('backup-init', storage, { vmid: 103, type: 'qemu', time: 1764982800 }, { env });
    const { volname, run } = init.result as { volname: string; run: string };
    const key = `${PREFIX}${volname.replace(/^backup\//, 'dump/')}`;
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    try {
      // 6 MiB of random data at 1 MiB/s: the other writer stores its backup meanwhile
      const backup = hostOp('backup-vm', storage, {
        volname, run, time: 1764982800, bwlimit_kib: 1024, config_b64: Buffer.from('memory: 512\n').toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }],
      }, { env });
      // the run record appears as the backup starts reading the disk
      const record = join(dir, 'cache', '.pve-s3', 'provider', `${volname.slice('backup/'.length)}.run`);
      for (let i = 0; i < 200 && !existsSync(record); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(record)).toBe(true);
      const src = join(dir, 'other-103.vma.zst');
      writeFileSync(src, Buffer.alloc(4096, 103));
      // another cluster: its own node, its own cache dir (and writer locks)
      const up = await hostOp('upload', { ...storage, path: join(dir, 'other-node') }, { volname, src, protected: true }, { env });
      expect(up.ok, JSON.stringify(up.error)).toBe(true);
      const b = await backup;
      expect(b.ok).toBe(false);
      expect(b.error?.code).toBe('DestinationExists');
      expect(b.error?.message).toContain(`backup '${volname}' was stored in bucket '${c.bucket}' by another writer while this backup ran: not overwritten, this backup is not stored`);
    } finally {
      await qsd.stop();
      tmp.remove();
    }
    const stat = await hostOp('stat', storage, { volname }, { env });
    expect(stat.result?.volume).toMatchObject({ verified: true, protected: true, size: 4096 });
    expect(await c.listMultipartUploads({ prefix: key })).toEqual([]);
    const discard = await hostOp('backup-discard', storage, { volname, run }, { env });
    expect(discard.result).toMatchObject({ removed: [], kept: key });
  }, 120_000);

  (haveQsd() ? it : it.skip)("aborts only its own run's upload of the name: another writer's upload of it still under way completes", async () => {
    const tmp = tempDir('sec-discard-own-upload');
    const img = join(tmp.dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 12 << 20 }], 11);
    const init = await hostOp('backup-init', storage, { vmid: 104, type: 'qemu', time: 1764982800 }, { env });
    const { volname, run } = init.result as { volname: string; run: string };
    const key = `${PREFIX}${volname.replace(/^backup\//, 'dump/')}`;
    // another cluster backs up the same guest id in the same second: its upload of that key is under way
    const part = randomBytes(5 << 20);
    const theirs = await c.createMultipartUpload(key);
    const theirPart = await c.uploadPart(key, theirs, 1, part, createHash('sha256').update(part).digest('hex'));

    const record = join(dir, 'cache', '.pve-s3', 'provider', `${volname.slice('backup/'.length)}.run`);
    const recorded = (): Array<{ key: string; uploadId: string }> => {
      try {
        return (JSON.parse(readFileSync(record, 'utf8')) as { uploads: Array<{ key: string; uploadId: string }> }).uploads;
      } catch {
        return [];
      }
    };
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    let child: ChildProcess | undefined;
    try {
      // 12 MiB of random data at 1 MiB/s: killed (as the OOM killer or a node reset would) once
      // its multipart upload is created
      const backup = hostOp('backup-vm', storage, {
        volname, run, time: 1764982800, bwlimit_kib: 1024, config_b64: Buffer.from('memory: 512\n').toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }],
      }, { env, start: (cmd, argv, e) => (child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: e })) });
      for (let i = 0; i < 600 && recorded().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(recorded()).toHaveLength(1);
      child!.kill('SIGKILL');
      await expect(backup).rejects.toThrow(/no envelope from backup-vm/);
    } finally {
      await qsd.stop();
      tmp.remove();
    }
    const [ours] = recorded();
    expect(ours!.key).toBe(key);
    expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId).sort()).toEqual([ours!.uploadId, theirs].sort());

    const discard = await hostOp('backup-discard', storage, { volname, run }, { env });
    expect(discard.ok, JSON.stringify(discard.error)).toBe(true);
    expect(discard.result).toMatchObject({ removed: [], aborted: 1, left: 1 });
    expect(discard.stderr).toContain(
      `discarded ${volname}: 0 objects removed, 1 uploads aborted; left 1 incomplete upload(s) of it this run did not make (another writer's still under way, or one left behind: the lifecycle rule or pve-s3-maintenance --action abort-uploads removes that)`,
    );
    expect(existsSync(record)).toBe(false);
    // nor does the node keep its own record of the killed upload (abandoned-uploads.ts) any more
    const remembered = join(dir, 'cache', '.pve-s3', 'multipart-uploads');
    expect(existsSync(remembered) ? readdirSync(remembered) : []).toEqual([]);
    expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId)).toEqual([theirs]);

    // the other writer's backup completes, whole
    await c.completeMultipartUpload(key, theirs, [{ partNumber: 1, ...theirPart }]);
    const got = createHash('sha256');
    for await (const b of (await c.getObject(key)).body) got.update(b);
    expect(got.digest('hex')).toBe(createHash('sha256').update(part).digest('hex'));
    // a second discard (the job's cleanup again) leaves their backup: it carries no run id
    const again = await hostOp('backup-discard', storage, { volname, run }, { env });
    expect(again.result).toMatchObject({ removed: [], aborted: 0, left: 0, kept: key });
    expect((await c.headObject(key)).size).toBe(part.length);
  }, 120_000);
});
