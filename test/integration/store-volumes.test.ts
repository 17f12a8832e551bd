// Store operations on single volumes against the real RadosGW: listing merged with sidecars,
// stat, attributes, delete with every sidecar, verified download and cache records, sync-local.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { deleteInBatches } from '../../host/src/store/delete-batches.js';
import { listVolumes } from '../../host/src/store/list.js';
import { readRecord } from '../../host/src/store/local-cache.js';
import { putLocalVolume } from '../../host/src/store/put-local.js';
import { syncLocal } from '../../host/src/store/sync.js';
import { getVolume, putVolume, streamVolume } from '../../host/src/store/transfer.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { deleteVolumes, getAttribute, setAttribute, statVolume } from '../../host/src/store/volumes.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const MiB = 1024 * 1024;
const PREFIX = 'pve/';
const ARCHIVE = 'vzdump-qemu-100-2024_01_02-03_04_05.vma.zst';
const ARCHIVE_VOL = `backup/${ARCHIVE}`;

let c: S3Client;
let dir: string;
let ctx: StoreContext;

async function keys(): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix: PREFIX })) out.push(o.key);
  return out.sort();
}

async function file(name: string, data: Uint8Array): Promise<string> {
  const p = join(dir, 'src', name);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(p, data);
  return p;
}

beforeAll(async () => {
  c = await freshBucket('store-vol');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-store-'));
  ctx = {
    client: c,
    settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: join(dir, 'cache'), manifestKey: testManifestKey(dir) },
    logger: nullLogger,
  };
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('put, list, stat', () => {
  const data = randomBytes(6 * MiB + 123);

  it('uploads a backup with notes, protection and log; every sidecar lands beside it', async () => {
    const src = await file(ARCHIVE, data);
    const log = await file('vzdump-qemu-100-2024_01_02-03_04_05.log', Buffer.from('INFO: starting backup\n'));
    const vol = await putVolume(ctx, ARCHIVE_VOL, { src: { path: src }, notes: 'web server\nsecond line', protected: true, logPath: log });
    expect(vol.size).toBe(data.length);
    expect(vol.verified).toBe(true);
    expect(await keys()).toEqual([
      `${PREFIX}dump/vzdump-qemu-100-2024_01_02-03_04_05.log`,
      `${PREFIX}dump/vzdump-qemu-100-2024_01_02-03_04_05.log.s3manifest`,
      `${PREFIX}dump/${ARCHIVE}`,
      `${PREFIX}dump/${ARCHIVE}.notes`,
      `${PREFIX}dump/${ARCHIVE}.protected`,
      `${PREFIX}dump/${ARCHIVE}.s3manifest`,
    ]);
    // Proxmox metadata travels in x-amz-meta-*
    const head = await c.headObject(`${PREFIX}dump/${ARCHIVE}`);
    expect(head.metadata).toMatchObject({ vmid: '100', 'guest-type': 'qemu', format: 'vma', compression: 'zst', size: String(data.length) });
  });

  it('uploads an ISO, a template and a snippet into their folders', async () => {
    await putVolume(ctx, 'iso/debian.iso', { src: { path: await file('debian.iso', randomBytes(1000)) } });
    await putVolume(ctx, 'vztmpl/debian-12.tar.zst', { src: { path: await file('t.tar.zst', randomBytes(2000)) } });
    await putVolume(ctx, 'snippets/hook.pl', { src: { path: await file('hook.pl', Buffer.from('#!/usr/bin/perl\n')) } });
    const k = await keys();
    expect(k).toContain(`${PREFIX}template/iso/debian.iso`);
    expect(k).toContain(`${PREFIX}template/cache/debian-12.tar.zst`);
    expect(k).toContain(`${PREFIX}snippets/hook.pl`);
  });

  it('lists volumes merged with their sidecars: first notes line, protected, size, ctime from the name', async () => {
    const vols = await listVolumes(ctx);
    expect(vols.map((v) => v.volname).sort()).toEqual([ARCHIVE_VOL, 'iso/debian.iso', 'snippets/hook.pl', 'vztmpl/debian-12.tar.zst']);
    const b = vols.find((v) => v.volname === ARCHIVE_VOL)!;
    expect(b).toMatchObject({
      volid: `s3t:${ARCHIVE_VOL}`,
      content: 'backup',
      size: data.length,
      ctime: Math.floor(new Date(2024, 0, 2, 3, 4, 5).getTime() / 1000),
      format: 'vma.zst',
      vmid: 100,
      subtype: 'qemu',
      notes: 'web server',
      protected: true,
      manifest: true,
      verified: true,
      log: true,
    });
    expect(vols.find((v) => v.volname === 'vztmpl/debian-12.tar.zst')!.format).toBe('tzst');
    expect(vols.find((v) => v.volname === 'snippets/hook.pl')!.format).toBe('snippet');
  });

  it('filters by content and by vmid (a vmid keeps backups only)', async () => {
    expect((await listVolumes(ctx, { content: ['iso'] })).map((v) => v.volname)).toEqual(['iso/debian.iso']);
    expect((await listVolumes(ctx, { vmid: 100 })).map((v) => v.volname)).toEqual([ARCHIVE_VOL]);
    expect(await listVolumes(ctx, { vmid: 101 })).toEqual([]);
  });

  it('stat gives the full notes and checks the manifest against the object', async () => {
    const v = await statVolume(ctx, ARCHIVE_VOL);
    expect(v.notes).toBe('web server\nsecond line');
    expect(v.verified).toBe(true);
    await expect(statVolume(ctx, 'backup/vzdump-qemu-100-2024_01_02-03_04_06.vma.zst')).rejects.toMatchObject({ code: 'NoSuchKey' });
    await expect(statVolume(ctx, 'backup/../etc/passwd.vma')).rejects.toMatchObject({ code: 'InvalidVolume' });
  });
});

describe('attributes', () => {
  it('reads and writes notes and protection as sidecar objects', async () => {
    expect(await getAttribute(ctx, ARCHIVE_VOL, 'protected')).toBe(true);
    expect(await setAttribute(ctx, ARCHIVE_VOL, 'notes', 'renamed')).toBe('renamed');
    expect(await getAttribute(ctx, ARCHIVE_VOL, 'notes')).toBe('renamed');
    await setAttribute(ctx, ARCHIVE_VOL, 'notes', '');
    expect(await getAttribute(ctx, ARCHIVE_VOL, 'notes')).toBe('');
    expect(await keys()).not.toContain(`${PREFIX}dump/${ARCHIVE}.notes`);
  });

  it('non-backups have no attributes; missing volumes are NoSuchKey', async () => {
    expect(await getAttribute(ctx, 'iso/debian.iso', 'notes')).toBeNull();
    await expect(setAttribute(ctx, 'iso/debian.iso', 'notes', 'x')).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(setAttribute(ctx, 'backup/vzdump-lxc-200-2024_01_01-00_00_00.tar', 'protected', true)).rejects.toMatchObject({ code: 'NoSuchKey' });
    expect(await keys()).not.toContain(`${PREFIX}dump/vzdump-lxc-200-2024_01_01-00_00_00.tar.protected`);
  });
});

describe('download', () => {
  it('downloads verified bytes, records the cache copy, and skips an unchanged copy', async () => {
    const dest = join(ctx.settings.cacheDir!, 'dump', ARCHIVE);
    await mkdir(join(ctx.settings.cacheDir!, 'dump'), { recursive: true });
    const first = await getVolume(ctx, ARCHIVE_VOL, dest);
    expect(first).toMatchObject({ downloaded: true, verified: true });
    const want = await readAll((await c.getObject(`${PREFIX}dump/${ARCHIVE}`)).body);
    expect((await readFile(dest)).equals(want)).toBe(true);
    const rec = await readRecord(ctx.settings.cacheDir!, 'backup', ARCHIVE);
    expect(rec).toMatchObject({ volname: ARCHIVE_VOL, size: want.length, etag: first.etag });
    expect(Math.floor((await stat(dest)).mtimeMs / 1000)).toBe(first.mtime);
    const again = await getVolume(ctx, ARCHIVE_VOL, dest);
    expect(again.downloaded).toBe(false);
    const forced = await getVolume(ctx, ARCHIVE_VOL, dest, { force: true });
    expect(forced.downloaded).toBe(true);
  });

  it('streams a volume (restore pipelines) with the same bytes', async () => {
    const { PassThrough } = await import('node:stream');
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on('data', (d: Buffer) => chunks.push(d));
    const r = await streamVolume(ctx, ARCHIVE_VOL, out);
    const want = await readAll((await c.getObject(`${PREFIX}dump/${ARCHIVE}`)).body);
    expect(r).toMatchObject({ size: want.length, verified: true });
    expect(Buffer.concat(chunks).equals(want)).toBe(true);
    await expect(streamVolume(ctx, 'iso/none.iso', new PassThrough())).rejects.toMatchObject({ code: 'NoSuchKey' });
  });

  it('refuses a relative destination and a missing parent directory', async () => {
    await expect(getVolume(ctx, ARCHIVE_VOL, 'x.vma')).rejects.toMatchObject({ code: 'InvalidArgument' });
    await expect(getVolume(ctx, ARCHIVE_VOL, join(dir, 'nope', 'x.vma'))).rejects.toMatchObject({ code: 'InvalidArgument' });
  });
});

describe('sync-local', () => {
  it('uploads quiet local-only files with their sidecars, never cached copies or busy files', async () => {
    const cache = ctx.settings.cacheDir!;
    await mkdir(join(cache, 'template', 'iso'), { recursive: true });
    const iso = join(cache, 'template', 'iso', 'local.iso');
    await writeFile(iso, randomBytes(3000));
    const old = new Date(Date.now() - 3600_000);
    await utimes(iso, old, old);
    const busy = join(cache, 'template', 'iso', 'busy.iso');
    await writeFile(busy, randomBytes(10));
    const pending = 'vzdump-lxc-101-2024_02_03-04_05_06.tar.zst';
    const pendingPath = join(cache, 'dump', pending);
    await writeFile(pendingPath, randomBytes(5000));
    await writeFile(pendingPath + '.notes', 'pending notes');
    await utimes(pendingPath, old, old);
    await writeFile(join(cache, 'dump', 'vzdump-lxc-101-2024_02_03-04_05_06.tar.dat'), randomBytes(10));

    // meanwhile the listing shows the pending files (with their local notes)
    const listed = await listVolumes(ctx, { content: ['backup', 'iso'] });
    expect(listed.find((v) => v.name === pending)).toMatchObject({ pending: true, notes: 'pending notes', vmid: 101 });

    const r = await syncLocal(ctx, { quietSeconds: 60 });
    expect(r.errors).toEqual([]);
    expect(r.uploaded.sort()).toEqual([`backup/${pending}`, 'iso/local.iso']);
    expect(r.skipped).toContainEqual({ volname: 'iso/busy.iso', reason: 'recently modified' });
    // the downloaded archive has a cache record: it is a copy, not a new file
    expect(r.uploaded).not.toContain(ARCHIVE_VOL);
    const k = await keys();
    expect(k).toContain(`${PREFIX}dump/${pending}.notes`);
    expect(k).toContain(`${PREFIX}template/iso/local.iso.s3manifest`);
    // a second run finds nothing new
    const again = await syncLocal(ctx, { quietSeconds: 60 });
    expect(again.uploaded).toEqual([]);
  });
});

describe('sync-local with keep_local 0 (issue 10 §4)', () => {
  it('removes uploaded backups and templates locally, never snippets or ISOs (PVE reads those by path, without activation)', async () => {
    const cache = join(dir, 'cache-keep0');
    const c0: StoreContext = { ...ctx, settings: { ...ctx.settings, prefix: 'keep0/', cacheDir: cache } };
    const old = new Date(Date.now() - 3600_000);
    const files: Record<string, string> = {
      'snippets/hook.pl': join(cache, 'snippets', 'hook.pl'),
      'snippets/user-data.yaml': join(cache, 'snippets', 'user-data.yaml'),
      'iso/installer.iso': join(cache, 'template', 'iso', 'installer.iso'),
      'vztmpl/debian-12.tar.zst': join(cache, 'template', 'cache', 'debian-12.tar.zst'),
      'backup/vzdump-lxc-102-2024_02_03-04_05_06.tar.zst': join(cache, 'dump', 'vzdump-lxc-102-2024_02_03-04_05_06.tar.zst'),
    };
    for (const p of Object.values(files)) {
      await mkdir(join(p, '..'), { recursive: true });
      await writeFile(p, randomBytes(2000));
      await utimes(p, old, old);
    }
    const r = await syncLocal(c0, { quietSeconds: 60, keepLocal: false });
    expect(r.errors).toEqual([]);
    expect(r.uploaded.sort()).toEqual(Object.keys(files).sort());
    for (const v of ['snippets/hook.pl', 'snippets/user-data.yaml', 'iso/installer.iso']) {
      expect((await stat(files[v]!)).isFile(), `${v} stays on the node`).toBe(true);
      // and is a cached copy now, so no later sync uploads it again
      expect(await readRecord(cache, v.split('/')[0] as 'iso', v.split('/')[1]!), v).not.toBeNull();
    }
    for (const v of ['vztmpl/debian-12.tar.zst', 'backup/vzdump-lxc-102-2024_02_03-04_05_06.tar.zst']) {
      await expect(stat(files[v]!), `${v} is removed locally`).rejects.toMatchObject({ code: 'ENOENT' });
    }
    expect((await syncLocal(c0, { quietSeconds: 60, keepLocal: false })).uploaded).toEqual([]);
    await deleteVolumes(c0, Object.keys(files));
  });
});

describe('delete', () => {
  it('refuses a protected backup and deletes nothing', async () => {
    await expect(deleteVolumes(ctx, [ARCHIVE_VOL, 'iso/debian.iso'])).rejects.toMatchObject({ code: 'VolumeProtected' });
    expect(await keys()).toContain(`${PREFIX}template/iso/debian.iso`);
  });

  it('removes archive and every sidecar (.notes, .protected, .log, .s3manifest); reports missing ones', async () => {
    await setAttribute(ctx, ARCHIVE_VOL, 'notes', 'bye');
    await setAttribute(ctx, ARCHIVE_VOL, 'protected', false);
    const r = await deleteVolumes(ctx, [ARCHIVE_VOL, 'iso/debian.iso', 'iso/never.iso']);
    expect(r.deleted.sort()).toEqual([ARCHIVE_VOL, 'iso/debian.iso']);
    expect(r.missing).toEqual(['iso/never.iso']);
    const k = await keys();
    expect(k.filter((x) => x.includes('vzdump-qemu-100-2024_01_02-03_04_05'))).toEqual([]);
    expect(k.filter((x) => x.includes('debian.iso'))).toEqual([]);
    expect(await readRecord(ctx.settings.cacheDir!, 'backup', ARCHIVE)).toBeNull();
  });

  it('keeps a log shared by name with another archive of the same guest and second until that one goes too', async () => {
    const base = 'vzdump-qemu-300-2024_03_03-03_03_03';
    const log = await file(`${base}.log`, Buffer.from('INFO: shared\n'));
    await putVolume(ctx, `backup/${base}.vma.zst`, { src: { path: await file(`${base}.vma.zst`, randomBytes(1000)) }, notes: 'a', protected: true, logPath: log });
    await putVolume(ctx, `backup/${base}.vma.lzo`, { src: { path: await file(`${base}.vma.lzo`, randomBytes(1000)) }, notes: 'b' });
    await deleteVolumes(ctx, [`backup/${base}.vma.zst`], { allowProtected: true });
    expect((await keys()).filter((x) => x.includes(base))).toEqual([
      `${PREFIX}dump/${base}.log`,
      `${PREFIX}dump/${base}.log.s3manifest`,
      `${PREFIX}dump/${base}.vma.lzo`,
      `${PREFIX}dump/${base}.vma.lzo.notes`,
      `${PREFIX}dump/${base}.vma.lzo.s3manifest`,
    ]);
    await deleteVolumes(ctx, [`backup/${base}.vma.lzo`]);
    expect((await keys()).filter((x) => x.includes(base))).toEqual([]);
  });

  it('deletes in batches for retention: a protected backup in the batch is refused alone, the rest still go', async () => {
    const name = (d: number) => `vzdump-qemu-310-2024_03_0${d}-00_00_00.vma.zst`;
    for (const d of [1, 2, 3]) await putVolume(ctx, `backup/${name(d)}`, { src: { path: await file(name(d), randomBytes(500)) }, protected: d === 2 });
    const r = await deleteInBatches(ctx, [1, 2, 3].map((d) => `backup/${name(d)}`));
    expect(r.removed).toEqual([`backup/${name(1)}`, `backup/${name(3)}`]);
    expect(r.errors.map((e) => e.volname)).toEqual([`backup/${name(2)}`]);
    expect(r.errors[0]!.message).toMatch(/protected/);
    expect((await keys()).filter((x) => x.includes('vzdump-qemu-310-'))).toEqual([
      `${PREFIX}dump/${name(2)}`,
      `${PREFIX}dump/${name(2)}.protected`,
      `${PREFIX}dump/${name(2)}.s3manifest`,
    ]);
  });
});

describe('upload with removeSource', () => {
  it('removes the local archive, its sidecars and its uploaded log only after the upload is verified', async () => {
    const name = 'vzdump-qemu-150-2024_06_01-00_00_00.vma';
    const src = await file(name, randomBytes(4000));
    await writeFile(src + '.notes', 'n');
    await writeFile(src + '.protected', '');
    const log = await file('vzdump-qemu-150-2024_06_01-00_00_00.log', Buffer.from('log\n'));
    const r = await putLocalVolume(ctx, `backup/${name}`, src, { replace: false, notes: 'n', protected: true, logPath: log, removeSource: true, waitSeconds: 0, who: 'test' });
    expect(r).toMatchObject({ result: 'uploaded', sourceRemoved: true });
    expect(r.volume).toMatchObject({ verified: true, protected: true, log: true });
    for (const p of [src, src + '.notes', src + '.protected', log]) {
      await expect(stat(p)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await setAttribute(ctx, `backup/${name}`, 'protected', false);
    await deleteVolumes(ctx, [`backup/${name}`]);
  });
});

describe('upload from a stream', () => {
  it('stores a stream (vzdump --stdout) multipart, with manifest and metadata, byte-identical', async () => {
    const { Readable } = await import('node:stream');
    const data = randomBytes(12 * MiB + 5);
    const name = 'vzdump-lxc-160-2024_06_02-00_00_00.tar.zst';
    const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    const vol = await putVolume(ctx, `backup/${name}`, { src: { stream: Readable.from(chunks), maxSize: 64 * MiB } });
    expect(vol).toMatchObject({ size: data.length, verified: true, vmid: 160, subtype: 'lxc' });
    const got = await readAll((await c.getObject(`${PREFIX}dump/${name}`)).body);
    expect(got.equals(data)).toBe(true);
    expect((await c.headObject(`${PREFIX}dump/${name}`)).metadata).toMatchObject({ vmid: '160', 'guest-type': 'lxc', format: 'tar' });
    await deleteVolumes(ctx, [`backup/${name}`]);
  });
});
