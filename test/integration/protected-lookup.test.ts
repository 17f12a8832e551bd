// Issue 10 §1, against the real RadosGW: a protected backup stays protected when other keys sort
// between `<key>` and `<key>.protected`. pve-s3's own uploads make that happen: `X.vma` next to
// `X.vma.gz`, `X.vma.bz2`, `X.vma.lzo`, each with notes and a manifest, puts ten keys before
// `X.vma.protected` (and `X.vma.s3manifest` after it). A lookup from the first page of a prefix
// listing missed the marker, so `delete` removed the protected backup. Through the store, the
// protocol (the plugin's free_image path) and the commands.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { deleteInBatches } from '../../host/src/store/delete-batches.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { StoreContext, StoreSettings } from '../../host/src/store/types.js';
import { deleteVolumes, getAttribute, setAttribute, statVolume } from '../../host/src/store/volumes.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, keys, requireBuild, run, s3Env } from './cli-helpers.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const X = 'vzdump-qemu-100-2024_01_01-00_00_00.vma';
const NEIGHBOURS = [`${X}.gz`, `${X}.bz2`, `${X}.lzo`];

let c: S3Client;
let dir: string;

function context(prefix: string, extra: Partial<StoreSettings> = {}): StoreContext {
  return { client: c, settings: { storageId: 'prot', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, manifestKey: testManifestKey(dir), ...extra }, logger: nullLogger };
}

/** X (protected, with notes) and its three neighbours with notes: 13 keys under `<prefix>dump/X`. */
async function plantAttack(ctx: StoreContext): Promise<string[]> {
  for (const [i, name] of [X, ...NEIGHBOURS].entries()) {
    const p = join(dir, `${ctx.settings.prefix.replace(/\W/g, '')}-${i}`);
    await writeFile(p, randomBytes(64 + i));
    await putVolume(ctx, `backup/${name}`, { src: { path: p }, notes: `notes of ${name}`, ...(name === X ? { protected: true } : {}) });
  }
  const all = await keys(c, `${ctx.settings.prefix}dump/${X}`);
  // the shape of the attack: the marker is not on the first page of ten
  const page = await c.listObjects({ prefix: `${ctx.settings.prefix}dump/${X}`, maxKeys: 10 });
  expect(page.objects.map((o) => o.key)).not.toContain(`${ctx.settings.prefix}dump/${X}.protected`);
  expect(all).toHaveLength(13);
  return all;
}

beforeAll(async () => {
  c = await freshBucket('prot-lookup');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-prot-'));
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('store', () => {
  it('statVolume sees the marker, the notes and the manifest by name', async () => {
    const ctx = context('stat/');
    await plantAttack(ctx);
    const v = await statVolume(ctx, `backup/${X}`);
    expect(v).toMatchObject({ protected: true, manifest: true, verified: true, notes: `notes of ${X}` });
    expect(await getAttribute(ctx, `backup/${X}`, 'protected')).toBe(true);
    const n = await statVolume(ctx, `backup/${X}.gz`);
    expect(n).toMatchObject({ protected: false, manifest: true, verified: true });
  });

  it('deleteVolumes and the retention batches refuse the protected backup and delete nothing of it', async () => {
    const ctx = context('del/');
    const before = await plantAttack(ctx);
    await expect(deleteVolumes(ctx, [`backup/${X}`])).rejects.toMatchObject({ code: 'VolumeProtected', message: expect.stringContaining(X) });
    // all or nothing: an unprotected volume named with it is not deleted either
    await expect(deleteVolumes(ctx, [`backup/${X}.gz`, `backup/${X}`])).rejects.toMatchObject({ code: 'VolumeProtected' });
    expect(await keys(c, 'del/dump/')).toEqual(before);
    const r = await deleteInBatches(ctx, [`backup/${X}`, `backup/${X}.lzo`]);
    expect(r.removed).toEqual([`backup/${X}.lzo`]);
    expect(r.errors.map((e) => e.volname)).toEqual([`backup/${X}`]);
    expect(await keys(c, 'del/dump/')).toEqual(before.filter((k) => !k.includes(`${X}.lzo`)));
  });

  it('once unprotected it goes with its own sidecars only; the neighbours stay whole', async () => {
    const ctx = context('unprot/');
    const before = await plantAttack(ctx);
    await setAttribute(ctx, `backup/${X}`, 'protected', false);
    expect(await deleteVolumes(ctx, [`backup/${X}`])).toEqual({ deleted: [`backup/${X}`], missing: [], locked: [] });
    const mine = new Set([X, `${X}.notes`, `${X}.protected`, `${X}.s3manifest`].map((n) => `unprot/dump/${n}`));
    expect(await keys(c, 'unprot/dump/')).toEqual(before.filter((k) => !mine.has(k)));
  });

  it('with SSE-C the marker (written with the key) is still found and honoured', async () => {
    const sse = { type: 'SSE-C' as const, key: randomBytes(32) };
    const ctx = context('ssec/', { put: { sse } });
    const before = await plantAttack(ctx);
    expect(await statVolume(ctx, `backup/${X}`)).toMatchObject({ protected: true, verified: true });
    await expect(deleteVolumes(ctx, [`backup/${X}`])).rejects.toMatchObject({ code: 'VolumeProtected' });
    expect(await keys(c, 'ssec/dump/')).toEqual(before);
    expect((await deleteVolumes(ctx, [`backup/${X}.gz`])).deleted).toEqual([`backup/${X}.gz`]);
  });
});

describe('protocol (the plugin free_image / stat path)', () => {
  const host = (request: unknown): Promise<{ code: number | null; envelope: { ok: boolean; result?: any; error?: any } }> =>
    new Promise((res, rej) => {
      const p = spawn(process.execPath, [join(BIN, 'pve-s3-host.js')], { env: { ...process.env, PVE_S3_LOG_FILE: join(dir, 'host.log'), PVE_S3_MANIFEST_KEY_FILE: testManifestKey(dir).file }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.resume();
      p.on('error', rej);
      p.on('close', (code) => res({ code, envelope: JSON.parse(out) }));
      p.stdin.end(JSON.stringify(request));
    });

  it('stat reports protected and verified; delete refuses with VolumeProtected and keeps every key', async () => {
    requireBuild();
    const before = await plantAttack(context('proto/'));
    const t = testS3();
    const storage = {
      id: 'prot',
      bucket: c.bucket,
      endpoint: t.endpoint,
      region: t.region,
      access_key: t.accessKeyId,
      secret_key: t.secretAccessKey,
      prefix: 'proto/',
      path: join(dir, 'cache'),
      force_path_style: '1',
    };
    const st = await host({ v: 1, op: 'stat', storage, args: { volname: `backup/${X}` } });
    expect(st.envelope.result.volume).toMatchObject({ protected: true, verified: true, notes: `notes of ${X}` });
    const del = await host({ v: 1, op: 'delete', storage, args: { volnames: [`backup/${X}`] } });
    expect(del.code).toBe(2);
    expect(del.envelope.error).toMatchObject({ code: 'VolumeProtected' });
    expect(await keys(c, 'proto/dump/')).toEqual(before);
  });
});

describe('commands', () => {
  it('maintenance prune removes neighbours, never the protected backup or its marker', async () => {
    requireBuild();
    const before = await plantAttack(context('cli/'));
    const env = s3Env(dir, c.bucket, { S3_PREFIX: 'cli/', PVE_S3_MANIFEST_KEY_FILE: testManifestKey(dir).file });
    const prune = await run('pve-s3-maintenance', ['--action', 'prune', '--keep-last', '1'], { env });
    expect(prune.code, prune.stderr).toBe(0);
    const left = await keys(c, 'cli/dump/');
    for (const k of [X, `${X}.protected`, `${X}.notes`, `${X}.s3manifest`]) expect(left).toContain(`cli/dump/${k}`);
    // same guest, same second: keep-last 1 keeps one neighbour and removes two, each with its sidecars
    expect(left).toHaveLength(before.length - 6);
  });
});
