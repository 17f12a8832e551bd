// Immutable backups (issue 14 §2) against the real RadosGW, in a bucket created with Object Lock:
// archives and manifests are written with the storage's retention (multipart too: RadosGW 16.2
// drops the x-amz-object-lock-* headers of CreateMultipartUpload, the client sets the retention
// after Complete), sidecars stay unlocked, every delete path keeps a locked backup whole and says
// "locked until DATE", the keys alone cannot destroy a locked version, and a backup whose
// retention has passed is deleted. "Passed" is made real, not simulated: the test (never pve-s3)
// shortens a GOVERNANCE retention to a few seconds with the bypass header, then waits for it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { cleanupByAge } from '../../host/src/store/cleanup.js';
import { ARCHIVE_TAG, NONCURRENT_DAYS, lifecycleApply, ruleIds } from '../../host/src/store/lifecycle.js';
import { listVolumes } from '../../host/src/store/list.js';
import { prune } from '../../host/src/store/prune.js';
import { maintenanceStatus } from '../../host/src/store/status.js';
import { OPS } from '../../host/src/protocol/ops.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { deleteVolumes, setAttribute } from '../../host/src/store/volumes.js';
import { nullLogger } from '../../host/src/util/log.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';

let c: S3Client;
let plain: S3Client;
let dir: string;
const DAY = 86_400_000;

function context(prefix: string, o: { client?: S3Client; lock?: boolean } = {}): StoreContext {
  const client = o.client ?? c;
  return {
    client,
    settings: {
      storageId: 'lk',
      bucket: client.bucket,
      prefix,
      chunkSizeMB: 5,
      concurrency: 2,
      manifestKey: testManifestKey(dir),
      ...(o.lock === false ? {} : { lock: { days: 1, mode: 'governance' as const } }),
    },
    logger: nullLogger,
  };
}

const q = (d: number) => `vzdump-qemu-100-2024_01_0${d}-00_00_00.vma.zst`;

async function backup(ctx: StoreContext, name: string, bytes: number, o: { notes?: string; log?: boolean } = {}): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, randomBytes(bytes));
  const logPath = join(dir, name.replace(/\.vma\.zst$/, '.log'));
  if (o.log) await writeFile(logPath, 'INFO: backup log\n');
  await putVolume(ctx, `backup/${name}`, { src: { path: p }, ...(o.notes ? { notes: o.notes } : {}), ...(o.log ? { logPath } : {}) });
  return ctx.settings.prefix + 'dump/' + name;
}

/** Every version of every key under the prefix, current or not, and the delete markers. */
async function versions(prefix: string): Promise<{ key: string; versionId: string; marker: boolean }[]> {
  const res = await c.transport.request({ operation: 'ListObjectVersions', method: 'GET', query: [['versions', ''], ['prefix', prefix]], idempotent: true });
  const body = Buffer.from(res.body as Uint8Array).toString('utf8');
  const out: { key: string; versionId: string; marker: boolean }[] = [];
  for (const m of body.matchAll(/<(Version|DeleteMarker)>(.*?)<\/\1>/gs)) {
    out.push({ key: /<Key>(.*?)<\/Key>/.exec(m[2]!)![1]!, versionId: /<VersionId>(.*?)<\/VersionId>/.exec(m[2]!)![1]!, marker: m[1] === 'DeleteMarker' });
  }
  return out;
}

/** What only a test does: shorten a GOVERNANCE retention (bypass) so that it passes in seconds. */
async function expireSoon(key: string, seconds: number): Promise<Date> {
  const until = new Date(Math.ceil((Date.now() + seconds * 1000) / 1000) * 1000);
  for (const v of await versions(key)) {
    if (v.key === key && !v.marker) await c.putObjectRetention(key, { mode: 'GOVERNANCE', retainUntil: until }, { versionId: v.versionId, bypassGovernance: true });
  }
  return until;
}

beforeAll(async () => {
  c = await freshBucket('lock');
  // freshBucket makes a plain bucket; Object Lock exists only from a bucket's creation on
  await c.deleteBucket();
  await c.createBucket({ objectLock: true });
  plain = await freshBucket('nolock');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-lock-'));
});

afterAll(async () => {
  if (c) {
    // GOVERNANCE retention yields to the owner's bypass: every version goes, then the bucket
    for (const v of await versions('')) {
      await c.transport
        .request({ operation: 'DeleteObject', method: 'DELETE', key: v.key, query: [['versionId', v.versionId]], headers: { 'x-amz-bypass-governance-retention': 'true' }, idempotent: true })
        .catch(() => undefined);
    }
    await c.deleteBucket().catch(() => undefined);
  }
  if (plain) await dropBucket(plain);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('locked writes', () => {
  it('a single-PUT and a multipart archive and their manifests carry the retention; notes, protected flag and log do not', async () => {
    const ctx = context('w/');
    const before = Date.now();
    const small = await backup(ctx, q(1), 1000, { notes: 'n', log: true });
    const big = await backup(ctx, q(2), 11 * 1024 * 1024); // 3 parts of 5 MiB
    await setAttribute(ctx, `backup/${q(1)}`, 'protected', true);
    for (const key of [small, `${small}.s3manifest`, big, `${big}.s3manifest`]) {
      const h = await c.headObject(key);
      expect(h.objectLock?.mode, key).toBe('GOVERNANCE');
      const until = h.objectLock!.retainUntil!.getTime();
      expect(until).toBeGreaterThanOrEqual(before + DAY - 1000);
      expect(until).toBeLessThanOrEqual(Date.now() + DAY + 1000);
    }
    expect((await c.headObject(big)).etag).toMatch(/-3"?$/);
    for (const key of [`${small}.notes`, `${small}.protected`, 'w/dump/vzdump-qemu-100-2024_01_01-00_00_00.log']) {
      expect((await c.headObject(key)).objectLock, key).toBeUndefined();
    }
    // sidecars stay editable: notes change, protection comes off again
    await setAttribute(ctx, `backup/${q(1)}`, 'notes', 'changed');
    await setAttribute(ctx, `backup/${q(1)}`, 'protected', false);
    const [v] = await listVolumes(ctx, { content: ['backup'], vmid: 100, notesFull: true }).then((l) => l.filter((x) => x.name === q(1)));
    expect(v).toMatchObject({ notes: 'changed', protected: false, verified: true });
  });
});

describe('deleting a locked backup', () => {
  const P = 'd/';
  let key: string;
  beforeAll(async () => {
    key = await backup(context(P), q(1), 1000, { notes: 'keep me', log: true });
  });

  it('free (GUI delete, vdisk_free) keeps it whole and says until when; nothing is hidden behind a delete marker', async () => {
    const r = await deleteVolumes(context(P), [`backup/${q(1)}`]);
    expect(r.deleted).toEqual([]);
    expect(r.locked).toHaveLength(1);
    expect(r.locked[0]!.reason).toMatch(/^locked until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(GOVERNANCE\)$/);
    expect(new Date(r.locked[0]!.until!).getTime()).toBe((await c.headObject(key)).objectLock!.retainUntil!.getTime());
    const vols = await listVolumes(context(P), { content: ['backup'] });
    expect(vols.map((v) => [v.name, v.verified, v.notes, v.log, v.locked])).toEqual([[q(1), true, 'keep me', true, r.locked[0]!.reason]]);
    expect((await versions(P)).filter((v) => v.marker)).toEqual([]);
  });

  it('prune and cleanup by age keep it and report it, and do not fail', async () => {
    const ctx = context(P);
    await backup(ctx, q(2), 1000);
    const p = await prune(ctx, { 'keep-last': 1 });
    expect(p.errors).toEqual([]);
    expect(p.removed).toEqual([]);
    expect(p.locked.map((l) => l.volname)).toEqual([`backup/${q(1)}`]);
    const cl = await cleanupByAge(ctx, { olderThan: '1d', allowLast: true });
    expect(cl.errors).toEqual([]);
    expect(cl.removed).toEqual([]);
    expect(cl.locked.map((l) => l.volname).sort()).toEqual([`backup/${q(1)}`, `backup/${q(2)}`]);
    expect((await listVolumes(ctx, { content: ['backup'] })).map((v) => v.name)).toEqual([q(1), q(2)]);
  });

  it('an attacker with the keys cannot destroy the locked version: a version DELETE is refused, a plain DELETE only hides it', async () => {
    const [v] = (await versions(key)).filter((x) => x.key === key);
    const e = (await c.transport
      .request({ operation: 'DeleteObject', method: 'DELETE', key, query: [['versionId', v!.versionId]], idempotent: true })
      .catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.status).toBe(403);
    // GOVERNANCE shortening needs the bypass too
    const e2 = (await c
      .putObjectRetention(key, { mode: 'GOVERNANCE', retainUntil: new Date(Date.now() + 60_000) }, { versionId: v!.versionId })
      .catch((x: unknown) => x)) as S3Error;
    expect(e2).toBeInstanceOf(S3Error);
    expect(e2.status).toBe(403);
    await c.deleteObject(key);
    await expect(c.headObject(key)).rejects.toMatchObject({ status: 404 });
    const kept = await c.headObject(key, { versionId: v!.versionId });
    expect(kept.objectLock?.mode).toBe('GOVERNANCE');
    // the owner's undo: removing the delete marker brings the backup back
    const [marker] = (await versions(key)).filter((x) => x.key === key && x.marker);
    await c.transport.request({ operation: 'DeleteObject', method: 'DELETE', key, query: [['versionId', marker!.versionId]], idempotent: true });
    expect((await c.headObject(key)).versionId).toBe(v!.versionId);
  });

  it('once the retention has passed, free deletes it like any backup', async () => {
    const ctx = context(P);
    const until = await expireSoon(key, 3);
    await expireSoon(`${key}.s3manifest`, 3);
    while (Date.now() <= until.getTime() + 1000) await new Promise((r) => setTimeout(r, 250));
    const r = await deleteVolumes(ctx, [`backup/${q(1)}`]);
    expect(r.locked).toEqual([]);
    expect(r.deleted).toEqual([`backup/${q(1)}`]);
    expect((await listVolumes(ctx, { content: ['backup'] })).map((v) => v.name)).toEqual([q(2)]);
    // a plain DELETE in a versioned bucket: the bytes stay as a noncurrent version until the
    // lifecycle rule for noncurrent versions removes them (docs/CONFIG.md, Object Lock)
    const left = (await versions(key)).filter((x) => x.key === key);
    expect(left.filter((x) => x.marker)).toHaveLength(1);
    expect(left.filter((x) => !x.marker)).toHaveLength(1);
  });
});

describe('the bucket check', () => {
  const checkLock = async (ctx: StoreContext) => (await OPS['check-lock']!(ctx, {}, {} as never)).result as { ok: boolean; object_lock: boolean; versioning: string; message: string };

  it("a bucket without Object Lock: check-lock (the plugin's pvesm add/set) and status say so, naming the bucket and what to do", async () => {
    const ctx = context('', { client: plain });
    const lock = await checkLock(ctx);
    expect(lock).toMatchObject({ ok: false, object_lock: false, versioning: 'Off' });
    expect(lock.message).toContain(`bucket '${plain.bucket}' has no S3 Object Lock`);
    expect(lock.message).toContain('remove lock_days');
    const s = await maintenanceStatus(ctx);
    expect(s.objectLock).toMatchObject({ days: 1, mode: 'governance', bucket: { objectLock: false, versioning: 'Off' } });
    expect(s.objectLock.problem).toContain('only be enabled when a bucket is created');
  });

  it('a backup into a bucket without Object Lock fails naming the bucket, lock_days and what to do (not a bare 400 InvalidRequest), and stores nothing', async () => {
    const ctx = context('refused/', { client: plain });
    // one single PUT, one multipart upload (5 MB parts): each carries the retention
    for (const [name, bytes] of [[q(1), 1000], [q(2), 11 * 1024 * 1024]] as const) {
      const err = await backup(ctx, name, bytes).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toMatchObject({ code: 'BucketNotLockable', exitCode: 1 });
      expect((err as Error).message).toBe(
        `'backup/${name}' not stored: bucket '${plain.bucket}' has no S3 Object Lock, so lock_days 1 cannot make backups immutable (uploads would fail): Object Lock can only be enabled when a bucket is created (x-amz-bucket-object-lock-enabled, e.g. 'aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket'): use such a bucket, or remove lock_days`,
      );
      expect(((err as Error).cause as S3Error).status).toBe(400);
    }
    const left: string[] = [];
    for await (const o of plain.listAll({ prefix: 'refused/' })) left.push(o.key);
    expect(left).toEqual([]);
    expect(await plain.listMultipartUploads({ prefix: 'refused/' })).toEqual([]);
  });

  it('a replacement into a bucket without Object Lock is refused before the old volume is touched', async () => {
    const name = q(3);
    const old = join(dir, 'old-' + name);
    await writeFile(old, randomBytes(11 * 1024 * 1024));
    await putVolume(context('kept/', { client: plain, lock: false }), `backup/${name}`, { src: { path: old } });
    const before = await plain.headObject(`kept/dump/${name}`);
    const renew = join(dir, 'new-' + name);
    await writeFile(renew, randomBytes(11 * 1024 * 1024));
    const err = await putVolume(context('kept/', { client: plain }), `backup/${name}`, { src: { path: renew }, replace: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'BucketNotLockable', exitCode: 1 });
    expect((err as Error).message).toMatch(new RegExp(`^'backup/${name.replace(/\./g, '\\.')}' not replaced: bucket '${plain.bucket}' has no S3 Object Lock, so lock_days 1 `));
    const after = await plain.headObject(`kept/dump/${name}`);
    expect([after.etag, after.size]).toEqual([before.etag, before.size]);
    expect((await readAll((await plain.getObject(`kept/dump/${name}`)).body)).equals(await readFile(old))).toBe(true);
    const [vol] = await listVolumes(context('kept/', { client: plain }), { content: ['backup'] });
    expect(vol).toMatchObject({ name, trust: 'verified' });
    const keys: string[] = [];
    for await (const o of plain.listAll({ prefix: 'kept/' })) keys.push(o.key);
    expect(keys.filter((k) => k.includes('staging'))).toEqual([]);
  });

  it('a bucket with Object Lock passes; a storage without lock_days has nothing to fail', async () => {
    expect(await checkLock(context(''))).toMatchObject({ ok: true, object_lock: true, versioning: 'Enabled' });
    expect(await checkLock(context('', { client: plain, lock: false }))).toMatchObject({ ok: true, object_lock: false });
    const s = await maintenanceStatus(context(''));
    expect(s.objectLock).toMatchObject({ bucket: { objectLock: true, versioning: 'Enabled' } });
    expect(s.objectLock.problem).toBeUndefined();
  });
});

describe('lifecycle with Object Lock and versioning', () => {
  it('applies its rules to the locked, versioned bucket, adding expiry of noncurrent versions and lone delete markers; transitions still tag locked archives', async () => {
    const P = 'lc/';
    const ctx = context(P);
    ctx.settings.lifecycle = { enabled: true, transitionDays: 30, glacierDays: 365, abortIncompleteDays: 3 };
    const key = await backup(context(P), q(1), 1000);
    const r = await lifecycleApply(ctx);
    expect(r.changed).toBe(true);
    expect(r.tagged).toBe(1);
    expect(await c.getObjectTagging(key)).toEqual({ [ARCHIVE_TAG.key]: ARCHIVE_TAG.value });
    const byId = new Map((await c.getBucketLifecycle()).map((x) => [x.id, x]));
    const ids = ruleIds(P);
    for (const [i, id] of ids.noncurrent.entries()) {
      expect(byId.get(id), id).toMatchObject({
        status: 'Enabled',
        filter: { prefix: P + ['dump/', 'template/iso/', 'template/cache/', 'snippets/', '.pve-s3-staging/'][i] },
        noncurrentVersionExpiration: { noncurrentDays: NONCURRENT_DAYS },
        expiration: { expiredObjectDeleteMarker: true },
      });
    }
    expect(byId.get(ids.transition)).toBeDefined();
    expect(ids.abort.every((id) => byId.has(id))).toBe(true);
    // a second apply finds everything as it wants it (RGW hands the rules back in its own shape)
    expect((await lifecycleApply(ctx)).changed).toBe(false);
    // a plain bucket gets no noncurrent rules
    const pctx = context(P, { client: plain, lock: false });
    pctx.settings.lifecycle = { enabled: true, abortIncompleteDays: 3 };
    await lifecycleApply(pctx);
    expect((await plain.getBucketLifecycle()).some((x) => x.id?.startsWith('pve-s3-noncurrent:'))).toBe(false);
    await plain.putBucketLifecycle([]);
  });
});
