// Retention in the bucket against the real RadosGW: prune follows PVE's marks and never touches
// protected backups; cleanup by age works on the time in the name, with keep-last per guest.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBackupTime } from '../../host/src/pve/backup-time.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { cleanupByAge } from '../../host/src/store/cleanup.js';
import { prune, prunePlan } from '../../host/src/store/prune.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

let c: S3Client;
let dir: string;

function context(prefix: string): StoreContext {
  return { client: c, settings: { storageId: 's3t', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, manifestKey: testManifestKey(dir) }, logger: nullLogger };
}

async function backup(ctx: StoreContext, name: string, o: { protected?: boolean; notes?: string } = {}): Promise<void> {
  const p = join(dir, name);
  await writeFile(p, randomBytes(100));
  await putVolume(ctx, `backup/${name}`, { src: { path: p }, ...o });
}

async function names(prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix })) out.push(o.key.slice(prefix.length));
  return out.sort();
}

beforeAll(async () => {
  c = await freshBucket('store-ret');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-ret-'));
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('prune', () => {
  const P = 'prune/';
  const q = (d: number) => `vzdump-qemu-100-2024_01_0${d}-00_00_00.vma.zst`;

  beforeAll(async () => {
    const ctx = context(P);
    await backup(ctx, q(1), { protected: true });
    for (const d of [2, 3, 4, 5]) await backup(ctx, q(d), { notes: `day ${d}` });
    await backup(ctx, 'vzdump-qemu-100-custom.vma');
    await backup(ctx, 'vzdump-lxc-200-2024_01_01-00_00_00.tar');
  });

  it('marks with PVE semantics: keep-last per guest, protected and renamed never removed', async () => {
    const plan = await prunePlan(context(P), { 'keep-last': 2 });
    const marks = Object.fromEntries(plan.map((e) => [e.volname.slice('backup/'.length), e.mark]));
    expect(marks).toEqual({
      [q(1)]: 'protected',
      [q(2)]: 'remove',
      [q(3)]: 'remove',
      [q(4)]: 'keep',
      [q(5)]: 'keep',
      'vzdump-qemu-100-custom.vma': 'renamed',
      'vzdump-lxc-200-2024_01_01-00_00_00.tar': 'keep',
    });
    expect(plan.find((e) => e.volname === `backup/${q(2)}`)).toMatchObject({ type: 'qemu', vmid: 100 });
  });

  it('narrows by type and vmid', async () => {
    const lxc = await prunePlan(context(P), { 'keep-last': 1 }, { type: 'lxc' });
    expect(lxc.map((e) => e.volname)).toEqual(['backup/vzdump-lxc-200-2024_01_01-00_00_00.tar']);
    const other = await prunePlan(context(P), { 'keep-last': 1 }, { vmid: 999 });
    expect(other).toEqual([]);
  });

  it('dry run deletes nothing', async () => {
    const before = await names(P + 'dump/');
    const r = await prune(context(P), { 'keep-last': 2 }, { dryRun: true });
    expect(r.removed).toEqual([]);
    expect(await names(P + 'dump/')).toEqual(before);
  });

  it('removes the marked backups with their sidecars; the protected one survives', async () => {
    const r = await prune(context(P), { 'keep-last': 2 }, { type: 'qemu' });
    expect(r.errors).toEqual([]);
    expect(r.removed.sort()).toEqual([`backup/${q(2)}`, `backup/${q(3)}`]);
    const left = await names(P + 'dump/');
    expect(left.filter((n) => n.startsWith(q(2)) || n.startsWith(q(3)))).toEqual([]);
    expect(left).toContain(q(1));
    expect(left).toContain(`${q(1)}.protected`);
    expect(left).toContain(`${q(4)}.notes`);
  });

  it('keep-all keeps everything', async () => {
    const plan = await prunePlan(context(P), { 'keep-all': true });
    expect(plan.filter((e) => e.mark === 'remove')).toEqual([]);
  });
});

describe('cleanup by age', () => {
  const P = 'cleanup/';
  const recent = formatBackupTime(new Date(Date.now() - 24 * 3600_000));
  const a = (vmid: number, t: string, ext = 'vma.zst') => `vzdump-qemu-${vmid}-${t}.${ext}`;

  beforeAll(async () => {
    const ctx = context(P);
    await backup(ctx, a(300, '2020_01_01-00_00_00'), { protected: true });
    await backup(ctx, a(300, '2020_02_01-00_00_00'), { notes: 'old' });
    await backup(ctx, a(300, '2020_03_01-00_00_00'));
    await backup(ctx, a(300, recent));
    await backup(ctx, a(301, '2020_01_01-00_00_00'));
    await backup(ctx, 'vzdump-qemu-302-renamed.vma');
  });

  it('dry run lists what would go, by the time in the name, never protected, keep-last per guest', async () => {
    const r = await cleanupByAge(context(P), { olderThan: '90d', keepLast: 1, dryRun: true });
    const by = Object.fromEntries(r.items.map((i) => [i.volname.slice('backup/'.length), `${i.action}:${i.reason}`]));
    expect(by).toEqual({
      [a(300, '2020_01_01-00_00_00')]: 'keep:protected',
      [a(300, '2020_02_01-00_00_00')]: 'remove:older',
      [a(300, '2020_03_01-00_00_00')]: 'remove:older',
      [a(300, recent)]: 'keep:newer',
      [a(301, '2020_01_01-00_00_00')]: 'keep:keep-last',
      'vzdump-qemu-302-renamed.vma': 'keep:unnamed',
    });
    expect(r.removed).toEqual([]);
  });

  it('deletes them with their sidecars and nothing else', async () => {
    const r = await cleanupByAge(context(P), { olderThan: '90d', keepLast: 1 });
    expect(r.removed.sort()).toEqual([`backup/${a(300, '2020_02_01-00_00_00')}`, `backup/${a(300, '2020_03_01-00_00_00')}`]);
    const left = await names(P + 'dump/');
    expect(left.filter((n) => n.includes('2020_02_01') || n.includes('2020_03_01'))).toEqual([]);
    expect(left).toContain(a(300, '2020_01_01-00_00_00'));
    expect(left).toContain(a(300, recent));
    expect(left).toContain(a(301, '2020_01_01-00_00_00'));
  });

  it('refuses a bad duration naming the key', async () => {
    await expect(cleanupByAge(context(P), { olderThan: '90 days' })).rejects.toThrow(/older-than/);
  });
});
