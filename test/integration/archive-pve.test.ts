// Issue 14 §1, the side PVE sees: archived backups in the plugin's listing (the `list` op behind
// volume_list: the GUI's Backups view), in `pve-s3-restore --list` and `pve-s3-maintenance --action
// status`, and PVE's restores of one (the `download` op behind activate_volume, the Backup
// Provider's restore-vm-init). RadosGW has no archive classes: the project's fault proxy answers
// for the marked keys as AWS documents (test/helpers/archive-tier.ts) in front of the real gateway.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { backupVm } from '../../host/src/store/provider-vm.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { hostOp, storageSection } from '../helpers/host-op.js';
import { haveQsd, makeImage, servedCopy, startQsd } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

const A = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
const B = 'vzdump-qemu-101-2024_05_06-07_08_09.vma.zst';
const C = 'vzdump-lxc-102-2024_05_06-07_08_09.tar.zst';
const V = 'vzdump-qemu-103-2025_01_02-03_04_05.vma.zst';
const PREFIX = 'pve/';
const key = (name: string) => `${PREFIX}dump/${name}`;
const exact = (name: string) => new RegExp(`^${PREFIX}dump/${name.replace(/\./g, '\\.')}$`);
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let storage: Record<string, string>;
let hostEnv: NodeJS.ProcessEnv;
const data = new Map<string, Buffer>();

const posts = () => proxy.requests.filter((r) => r.method === 'POST' && /[?&]restore(=|&|$)/.test(r.target));
const heads = () => proxy.requests.filter((r) => r.method === 'HEAD').map((r) => decodeURIComponent(r.target.split('?')[0]!).replace(`/${c.bucket}/`, ''));
const op = (name: string, args: Record<string, unknown>) => hostOp(name, storage, args, { env: hostEnv });

async function listed(): Promise<Map<string, Record<string, unknown>>> {
  const r = await op('list', { content: ['backup'] });
  expect(r.ok, r.error?.message).toBe(true);
  const vols = r.result!.volumes as Array<Record<string, unknown>>;
  return new Map(vols.map((v) => [(v.volname as string).slice('backup/'.length), v]));
}

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('archive-pve');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-archive-pve-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const direct = s3Section('s3a', c.bucket, { prefix: PREFIX });
  // the storage keys PVE's restores take their restore request from
  const viaProxy = { ...direct, id: 'viaproxy', props: { ...direct.props, endpoint: proxy.url, restore_tier: 'Bulk', restore_days: '3' } };
  env = await cfgEnv(dir, [direct, viaProxy]);
  for (const name of [A, B, C]) {
    const d = randomBytes(200 * 1024);
    data.set(name, d);
    await writeFile(join(dir, name), d);
    const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, name), ...(name === A ? ['--notes', 'before the upgrade\nsecond line'] : [])], { env });
    expect(r.code, r.stderr).toBe(0);
  }
  // storages sharing a bucket and prefix share the manifest key (docs/ARCHITECTURE.md)
  await copyFile(join(dir, 'priv', 's3a.manifest-key'), join(dir, 'priv', 'viaproxy.manifest-key'));
  storage = storageSection('viaproxy', c.bucket, { prefix: PREFIX, path: join(dir, 'cache'), extra: { endpoint: proxy.url, restore_tier: 'Bulk', restore_days: '3' } });
  hostEnv = { PVE_S3_LOG_FILE: join(dir, 'host.log'), PVE_S3_MANIFEST_KEY_FILE: join(dir, 'priv', 's3a.manifest-key') };
  proxy.archive.mark(exact(A), { storageClass: 'GLACIER', restoreMs: 600_000 });
  proxy.archive.mark(exact(B), { storageClass: 'DEEP_ARCHIVE', restoreMs: 600_000 });
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('archived backups as PVE sees them (list op, activate_volume download op)', () => {
  it('the listing names the class and state of archived backups, HEADing only those', async () => {
    proxy.clearLog();
    const vols = await listed();
    expect(vols.get(A)).toMatchObject({ storage_class: 'GLACIER', archive: { state: 'archived', storage_class: 'GLACIER', text: 'archived (GLACIER)' }, notes: 'before the upgrade\nsecond line' });
    expect(vols.get(B)).toMatchObject({ storage_class: 'DEEP_ARCHIVE', archive: { state: 'archived', storage_class: 'DEEP_ARCHIVE', text: 'archived (DEEP_ARCHIVE)' } });
    expect(vols.get(C)!.storage_class).toBe('STANDARD');
    expect(vols.get(C)!.archive).toBeUndefined();
    // ListObjects has the class of every object; x-amz-restore needs a HEAD, of the archived ones only
    expect(heads().sort()).toEqual([key(A), key(B)]);
    // and nothing of any archive is read by a listing
    expect(proxy.requests.filter((r) => r.method === 'GET' && /\.(vma|tar)\.zst(\?|$)/.test(r.target))).toEqual([]);
  });

  it("activate_volume's download of an archived backup requests its restore with the storage's restore_tier/restore_days and fails with one line naming what to run", async () => {
    proxy.clearLog();
    const dest = join(dir, 'cache', 'dump', A);
    const r = await op('download', { volname: `backup/${A}`, dest });
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('ArchiveRestorePending');
    expect(r.error!.message).toBe(
      `backup '${A}' is archived in GLACIER: it is not readable until restored; a restore was requested at tier Bulk, typically ready in 5-12 hours; ` +
        `start this restore again once it is done: 'pve-s3-restore --storage viaproxy --list --vmid 100' shows it as 'restored until DATE' then`,
    );
    expect(r.error!.message).not.toMatch(/\n/);
    expect(proxy.archive.restores.map((x) => [x.key, x.tier, x.days])).toEqual([[key(A), 'Bulk', 3]]);
    expect(posts()).toHaveLength(1);
    // nothing of it was read, nothing left at the destination
    expect(proxy.requests.filter((q) => q.method === 'GET' && q.target.includes(A) && !q.target.includes('.s3manifest'))).toEqual([]);
    expect(existsSync(dest)).toBe(false);
  });

  it('while the restore runs the listing says restoring, and a second activation sends no second request', async () => {
    expect((await listed()).get(A)!.archive).toMatchObject({ state: 'restoring', text: 'restoring (GLACIER)' });
    proxy.clearLog();
    const r = await op('download', { volname: `backup/${A}`, dest: join(dir, 'cache', 'dump', A) });
    expect(r.error?.code).toBe('ArchiveRestorePending');
    expect(r.error!.message).toMatch(/^backup '.*' is archived in GLACIER: it is not readable until restored; its restore was requested before and is still running; start this restore again once it is done: /);
    expect(posts()).toHaveLength(0);
    expect(proxy.archive.restores).toHaveLength(1);
  });

  it('once restored the listing says until when, and the same activation downloads the exact bytes', async () => {
    proxy.archive.finish(key(A));
    const a = (await listed()).get(A)!.archive as Record<string, unknown>;
    expect(a.state).toBe('restored');
    expect(a.restored_until).toEqual(expect.any(Number));
    const until = new Date((a.restored_until as number) * 1000);
    // AWS: completion plus Days (3, the storage's restore_days), rounded up to midnight UTC
    expect(until.getTime() - Date.now()).toBeGreaterThan(3 * 86_400_000 - 60_000);
    expect(until.getTime() - Date.now()).toBeLessThanOrEqual(4 * 86_400_000);
    expect(a.text).toBe(`restored until ${until.toISOString().replace('.000Z', 'Z')} (GLACIER)`);
    proxy.clearLog();
    const dest = join(dir, 'cache', 'dump', A);
    await mkdir(join(dir, 'cache', 'dump'), { recursive: true }); // as activate_volume makes it
    const r = await op('download', { volname: `backup/${A}`, dest });
    expect(r.ok, r.error?.message).toBe(true);
    expect(r.result).toMatchObject({ downloaded: true, verified: true });
    expect(Buffer.compare(await readFile(dest), data.get(A)!)).toBe(0);
    expect(posts()).toHaveLength(0);
  });

  it('pve-s3-restore --list shows the class column with the state', async () => {
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/\sCLASS\s+NOTES$/);
    const row = (n: string) => lines.find((l) => l.includes(n))!;
    expect(row(A)).toMatch(/\syes\s+restored until \d{4}-\d\d-\d\dT00:00:00Z \(GLACIER\)\s+before the upgrade$/);
    expect(row(B)).toMatch(/\syes\s+archived \(DEEP_ARCHIVE\)$/);
    expect(row(C)).toMatch(/\syes\s+STANDARD$/);
  });

  it('pve-s3-maintenance --action status counts backups by class and the archived ones by state', async () => {
    const r = await run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'status'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^classes {5}backups by storage class: DEEP_ARCHIVE 1, GLACIER 1, STANDARD 1; must be restored before a read: 1 archived, 1 restored \(the first restored copy expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)$/m,
    );
    const j = await run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'status', '--json'], { env });
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout).archive).toMatchObject({ classes: { DEEP_ARCHIVE: 1, GLACIER: 1, STANDARD: 1 }, archived: 1, restoring: 0, restored: 1 });
  });
});

const dq = haveQsd() && existsSync('/usr/bin/qemu-img') ? describe : describe.skip;

dq('the Backup Provider restore of an archived VM backup (restore-vm-init)', () => {
  it('requests the restore of each archived object it reads once, fails with the one line, then restores once done', async () => {
    const t = testS3();
    // a provider-made archive (frame index and all), written straight to the gateway
    const ctx: StoreContext = {
      client: c,
      settings: { storageId: 's3a', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, manifestKey: { file: join(dir, 'priv', 's3a.manifest-key'), mayCreate: false } },
      logger: nullLogger,
    };
    const img = join(dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 2 << 20 }, { kind: 'hole', length: 1 << 20 }], 5);
    const qsd = await startQsd(dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, dir)]);
    try {
      await backupVm(ctx, { volname: `backup/${V}`, time: 1735787045, config: Buffer.from('memory: 512\n'), devices: [{ name: 'drive-scsi0', size, nbdPath: qsd.socket }] });
    } finally {
      await qsd.stop();
    }
    expect(t.endpoint).not.toBe(proxy.url);
    // a bucket owner's rule on the whole prefix moves the index too: both must come back
    proxy.archive.mark(exact(V), { storageClass: 'GLACIER', restoreMs: 600_000 });
    proxy.archive.mark(exact(`${V}.s3index`), { storageClass: 'GLACIER', restoreMs: 600_000 });
    proxy.clearLog();
    const r = await op('restore-vm-init', { volname: `backup/${V}` });
    expect(r.ok).toBe(false);
    expect(r.error!.code).toBe('ArchiveRestorePending');
    expect(r.error!.message).toMatch(
      new RegExp(`^backup '${re(V)}' is archived in GLACIER: 2 of its objects are not readable until restored; a restore was requested at tier Bulk, typically ready in 5-12 hours; start this restore again once it is done: 'pve-s3-restore --storage viaproxy --list --vmid 103' shows it as 'restored until DATE' then$`),
    );
    expect(proxy.archive.restores.filter((x) => x.key.includes(V)).map((x) => x.key).sort()).toEqual([key(V), `${key(V)}.s3index`]);
    // no restore directory was made
    expect(existsSync(join(dir, 'cache', '.pve-s3', 'restore')) ? readdirSync(join(dir, 'cache', '.pve-s3', 'restore')) : []).toEqual([]);

    proxy.clearLog();
    const again = await op('restore-vm-init', { volname: `backup/${V}` });
    expect(again.error?.code).toBe('ArchiveRestorePending');
    expect(again.error!.message).toMatch(/its restore was requested before and is still running/);
    expect(posts()).toHaveLength(0);

    proxy.archive.finish(key(V));
    proxy.archive.finish(`${key(V)}.s3index`);
    const ok = await op('restore-vm-init', { volname: `backup/${V}` });
    expect(ok.ok, ok.error?.message).toBe(true);
    expect(ok.result).toMatchObject({ indexed: true, devices: [{ name: 'drive-scsi0', size }] });
    const done = await op('restore-vm-cleanup', { dir: ok.result!.dir as string });
    expect(done.ok, done.error?.message).toBe(true);
  }, 120_000);
});
