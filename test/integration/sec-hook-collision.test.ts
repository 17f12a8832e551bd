// Two clusters sharing a bucket and prefix (and so the manifest key, README "Who can be trusted"),
// each backing up its own guest 100 on the same schedule: vzdump names both archives alike when
// they start in the same second. The vzdump hook replaced an object of its archive's name, taking
// it for a re-run of itself: the second cluster's backup silently took the place of the first's,
// whose listing then offered the other cluster's guest under its own guest's name. A verified
// backup under that name is another writer's and stays; only an unverified object (a run of this
// hook that stopped before its manifest) is replaced (docs/SECURITY.md).
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, utimesSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, body, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-hook-coll');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-hook-'));
  env = await cfgEnv(dir, [
    s3Section('clustera', c.bucket, { prefix: 'shared/', path: join(dir, 'a') }),
    s3Section('clusterb', c.bucket, { prefix: 'shared/', path: join(dir, 'b') }),
    // cluster b again, its uploads slowed to 1 MiB/s in 5 MiB parts
    s3Section('slowb', c.bucket, { prefix: 'shared/', path: join(dir, 'b'), bwlimit: 'default=1024', multipart_chunk_size: '5' }),
    // cluster c: its hook marks are the last test's alone
    s3Section('clusterc', c.bucket, { prefix: 'shared/', path: join(dir, 'c') }),
  ]);
  const key = testManifestKey(join(dir, 'priv'), 'clustera');
  copyFileSync(key.file, join(dir, 'priv', 'clusterb.manifest-key'));
  copyFileSync(key.file, join(dir, 'priv', 'slowb.manifest-key'));
  copyFileSync(key.file, join(dir, 'priv', 'clusterc.manifest-key'));
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

async function archive(cluster: string, name: string, size = MiB): Promise<{ target: string; data: Buffer }> {
  const dumpdir = join(dir, cluster, 'dump');
  await mkdir(dumpdir, { recursive: true });
  const target = join(dumpdir, name);
  const data = randomBytes(size);
  await writeFile(target, data);
  return { target, data };
}

const hook = (storeId: string, target: string) =>
  run('pve-s3-vzdump-hook', ['backup-end', 'snapshot', '100'], { env: { ...env, STOREID: storeId, TARGET: target, DUMPDIR: join(target, '..'), VMTYPE: 'qemu', HOSTNAME: 'pve' } });

describe('the vzdump hook and an archive name another writer stored', () => {
  it("keeps the other cluster's verified backup and the local archive, failing that guest's backup", async () => {
    const name = 'vzdump-qemu-100-2026_12_06-01_00_02.vma.zst';
    const a = await archive('a', name);
    const ra = await hook('clustera', a.target);
    expect(ra.code, ra.stderr).toBe(0);
    const b = await archive('b', name);
    const rb = await hook('clusterb', b.target);
    expect(rb.code).toBe(2);
    expect(rb.stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^pve-s3-vzdump-hook: 'clusterb:backup\/vzdump-qemu-100-2026_12_06-01_00_02\.vma\.zst' is already in the bucket, verified, with other bytes: another writer of the bucket \(another cluster sharing it\?\) stored it; not replaced, the local archive is kept/,
    );
    expect(existsSync(b.target)).toBe(true);
    expect(readFileSync(b.target).equals(b.data)).toBe(true);
    expect((await body(c, `shared/dump/${name}`)).equals(a.data)).toBe(true);

    // vzdump calls log-end for the failed guest too: its log must not replace the other's
    const logName = name.replace(/\.vma\.zst$/, '.log');
    const logA = join(dir, 'a', 'dump', logName);
    await writeFile(logA, 'INFO: the log of cluster a\n');
    const la = await run('pve-s3-vzdump-hook', ['log-end', 'snapshot', '100'], { env: { ...env, STOREID: 'clustera', TARGET: a.target, LOGFILE: logA, DUMPDIR: join(dir, 'a', 'dump') } });
    expect(la.code, la.stderr).toBe(0);
    const logB = join(dir, 'b', 'dump', logName);
    await writeFile(logB, 'ERROR: Backup of VM 100 failed\n');
    const lb = await run('pve-s3-vzdump-hook', ['log-end', 'snapshot', '100'], { env: { ...env, STOREID: 'clusterb', TARGET: b.target, LOGFILE: logB, DUMPDIR: join(dir, 'b', 'dump') } });
    expect(lb.code, lb.stderr).toBe(0);
    expect(lb.stderr).toContain(`${name} in storage 'clusterb' is not this job's (the backup or its upload failed; another writer of the bucket stored that name): log ${logB} kept locally, not uploaded`);
    expect((await body(c, `shared/dump/${logName}`)).toString()).toBe('INFO: the log of cluster a\n');
    expect(existsSync(logB)).toBe(true);
  });

  it('replaces an unverified object of the name (a run of the hook that stopped before its manifest)', async () => {
    const name = 'vzdump-qemu-100-2026_12_06-02_00_02.vma.zst';
    await c.putObject(`shared/dump/${name}`, Buffer.from('half of an earlier run'));
    const b = await archive('b', name);
    const rb = await hook('clusterb', b.target);
    expect(rb.code, rb.stderr).toBe(0);
    expect((await body(c, `shared/dump/${name}`)).equals(b.data)).toBe(true);
    expect(existsSync(b.target)).toBe(false);
  });

  it('a re-run of the hook with the same archive is no conflict', async () => {
    const name = 'vzdump-qemu-100-2026_12_06-03_00_02.vma.zst';
    const b = await archive('b', name);
    const copy = `${b.target}.copy`;
    copyFileSync(b.target, copy);
    expect((await hook('clusterb', b.target)).code).toBe(0);
    copyFileSync(copy, b.target);
    const again = await hook('clusterb', b.target);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/already in the bucket with these exact bytes/);
  });

  it('an upload the other cluster overtakes (its backup stored while this one was still sending) fails without overwriting it', async () => {
    const name = 'vzdump-qemu-100-2026_12_06-04_00_02.vma.zst';
    const b = await archive('b', name, 6 * MiB);
    const slow = hook('slowb', b.target);
    for (let i = 0; i < 200 && (await c.listMultipartUploads({ prefix: `shared/dump/${name}` })).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await c.listMultipartUploads({ prefix: `shared/dump/${name}` })).length).toBe(1);
    const a = await archive('a', name);
    const ra = await hook('clustera', a.target);
    expect(ra.code, ra.stderr).toBe(0);
    const rb = await slow;
    expect(rb.code).toBe(2);
    expect(rb.stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^pve-s3-vzdump-hook: 'slowb:backup\/vzdump-qemu-100-2026_12_06-04_00_02\.vma\.zst' was stored in the bucket by another writer while this upload ran: not overwritten, nothing stored/,
    );
    expect((await body(c, `shared/dump/${name}`)).equals(a.data)).toBe(true);
    expect(await c.listMultipartUploads({ prefix: `shared/dump/${name}` })).toEqual([]);
    expect(readFileSync(b.target).equals(b.data)).toBe(true);
  }, 120_000);

  it("a job killed between backup-end and log-end: the next hook run on the storage removes its mark once it is a day old, never a running job's", async () => {
    const marks = join(dir, 'c', '.pve-s3', 'hook');
    const ago = (file: string, hours: number): void => {
      const t = new Date(Date.now() - hours * 3600_000);
      utimesSync(join(marks, file), t, t);
    };
    const end = async (name: string) => {
      const a = await archive('c', name);
      const r = await hook('clusterc', a.target);
      expect(r.code, r.stderr).toBe(0);
      return a.target;
    };
    // killed after backup-end, a day and an hour ago: its log-end never comes
    const killed = 'vzdump-qemu-101-2026_12_05-01_00_02.vma.zst';
    await end(killed);
    ago(`${killed}.json`, 25);
    // a job still running: between its backup-end and its log-end, one for 23 hours (far longer than any does)
    const running = 'vzdump-qemu-102-2026_12_06-05_00_02.vma.zst';
    const runningTarget = await end(running);
    const slow = 'vzdump-qemu-103-2026_12_05-07_00_02.vma.zst';
    await end(slow);
    ago(`${slow}.json`, 23);
    // the next job's backup-end on this storage
    const next = 'vzdump-qemu-104-2026_12_06-05_10_02.vma.zst';
    await end(next);
    expect(readdirSync(marks).sort()).toEqual([`${running}.json`, `${slow}.json`, `${next}.json`].sort());

    // another killed job's mark goes with the next log-end, and the running job's log-end still finds its own
    const killed2 = 'vzdump-qemu-105-2026_12_05-02_00_02.vma.zst';
    await end(killed2);
    ago(`${killed2}.json`, 25);
    const logName = running.replace(/\.vma\.zst$/, '.log');
    const log = join(dir, 'c', 'dump', logName);
    await writeFile(log, 'INFO: Finished Backup of VM 102\n');
    const le = await run('pve-s3-vzdump-hook', ['log-end', 'snapshot', '102'], { env: { ...env, STOREID: 'clusterc', TARGET: runningTarget, LOGFILE: log, DUMPDIR: join(dir, 'c', 'dump') } });
    expect(le.code, le.stderr).toBe(0);
    expect((await body(c, `shared/dump/${logName}`)).toString()).toBe('INFO: Finished Backup of VM 102\n');
    expect(readdirSync(marks).sort()).toEqual([`${slow}.json`, `${next}.json`].sort());
  });
});
