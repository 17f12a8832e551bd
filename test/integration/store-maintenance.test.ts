// Bucket-level maintenance against the real RadosGW: lifecycle merge that keeps foreign rules,
// aborting only stale uploads under the prefix, integrity check verdicts, and the status report.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import type { LifecycleRule } from '../../host/src/s3/types.js';
import { checkIntegrity } from '../../host/src/store/integrity.js';
import { ARCHIVE_TAG, lifecycleApply, lifecycleShow, ruleIds } from '../../host/src/store/lifecycle.js';
import { abortStaleUploads } from '../../host/src/store/multipart.js';
import { maintenanceStatus, pveStatus } from '../../host/src/store/status.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { LifecycleSettings, StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const MiB = 1024 * 1024;
let c: S3Client;
let dir: string;

function context(prefix: string, o: { lifecycle?: LifecycleSettings; now?: () => Date; cacheDir?: string } = {}): StoreContext {
  const ctx: StoreContext = {
    client: c,
    settings: { storageId: 's3t', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, manifestKey: testManifestKey(dir) },
    logger: nullLogger,
  };
  if (o.lifecycle) ctx.settings.lifecycle = o.lifecycle;
  if (o.cacheDir) ctx.settings.cacheDir = o.cacheDir;
  if (o.now) ctx.now = o.now;
  return ctx;
}

async function put(ctx: StoreContext, volname: string, data: Uint8Array, o: { notes?: string } = {}): Promise<void> {
  const p = join(dir, volname.replace('/', '_'));
  await writeFile(p, data);
  await putVolume(ctx, volname, { src: { path: p }, ...o });
}

beforeAll(async () => {
  c = await freshBucket('store-mnt');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-mnt-'));
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lifecycle', () => {
  const foreign: LifecycleRule = { id: 'someone-elses-rule', status: 'Enabled', filter: { prefix: 'logs/' }, expiration: { days: 30 } };
  const lc: LifecycleSettings = { enabled: true, transitionDays: 30, glacierDays: 365, abortIncompleteDays: 3 };

  it('merges our prefix-scoped rules with a pre-existing foreign rule, never clobbering it', async () => {
    await c.putBucketLifecycle([foreign]);
    const r = await lifecycleApply(context('pve/', { lifecycle: lc }));
    expect(r.changed).toBe(true);
    const rules = await c.getBucketLifecycle();
    const byId = new Map(rules.map((x) => [x.id, x]));
    expect(byId.get('someone-elses-rule')).toMatchObject({ status: 'Enabled', expiration: { days: 30 } });
    const ids = ruleIds('pve/');
    const transition = byId.get(ids.transition)!;
    // only backup archives move: sidecars (notes, manifest, ...) stay readable, ISOs stay instant
    expect(transition).toMatchObject({ status: 'Enabled', filter: { prefix: 'pve/dump/', tags: [ARCHIVE_TAG] } });
    // RGW hands transitions back in its own order
    expect([...transition.transitions!].sort((a, b) => a.days! - b.days!)).toEqual([
      { days: 30, storageClass: 'STANDARD_IA' },
      { days: 365, storageClass: 'GLACIER' },
    ]);
    // one abort rule per folder of ours, never the whole prefix (another storage may live below it)
    expect(ids.abort.map((id) => byId.get(id)?.filter?.prefix)).toEqual(['pve/dump/', 'pve/template/iso/', 'pve/template/cache/', 'pve/snippets/', 'pve/.pve-s3-staging/']);
    for (const id of ids.abort) expect(byId.get(id)).toMatchObject({ abortIncompleteMultipartUpload: { daysAfterInitiation: 3 } });
  });

  it('is idempotent, and another prefix on the same bucket gets its own rules', async () => {
    expect((await lifecycleApply(context('pve/', { lifecycle: lc }))).changed).toBe(false);
    await lifecycleApply(context('other/', { lifecycle: { enabled: true, abortIncompleteDays: 5 } }));
    const ids = (await c.getBucketLifecycle()).map((r) => r.id).sort();
    expect(ids).toEqual([...ruleIds('other/').abort, ...ruleIds('pve/').abort, 'pve-s3-transition:pve/', 'someone-elses-rule'].sort());
    const show = await lifecycleShow(context('pve/'));
    expect(show.ours.sort()).toEqual([...ruleIds('pve/').abort, ruleIds('pve/').transition].sort());
  });

  it('turning lifecycle off (or remove) drops only our rules', async () => {
    const dry = await lifecycleApply(context('pve/', { lifecycle: { enabled: false } }), { dryRun: true });
    expect(dry.removed.sort()).toEqual([...ruleIds('pve/').abort, ruleIds('pve/').transition].sort());
    expect((await c.getBucketLifecycle()).map((r) => r.id)).toContain(ruleIds('pve/').transition);
    const off = await lifecycleApply(context('pve/', { lifecycle: { enabled: false } }));
    expect(off).toMatchObject({ changed: true, ours: [], kept: 1 + ruleIds('other/').abort.length });
    expect(off.removed.sort()).toEqual(dry.removed);
    expect((await lifecycleApply(context('other/'), { remove: true })).removed.sort()).toEqual([...ruleIds('other/').abort].sort());
    const rules = await c.getBucketLifecycle();
    expect(rules.map((r) => r.id)).toEqual(['someone-elses-rule']);
  });

  it('tags backup archives (not their sidecars, not ISOs) only while a transition is configured', async () => {
    const ctx = context('tag/', { lifecycle: { enabled: true, transitionDays: 30 } });
    const name = 'vzdump-qemu-100-2026_01_01-00_00_00.vma.zst';
    await put(ctx, `backup/${name}`, randomBytes(1000), { notes: 'tagged' });
    await put(ctx, 'iso/tag.iso', randomBytes(1000));
    expect((await c.headObject(`tag/dump/${name}`)).tagCount).toBe(1);
    expect((await c.headObject(`tag/dump/${name}.notes`)).tagCount).toBeUndefined();
    expect((await c.headObject(`tag/dump/${name}.s3manifest`)).tagCount).toBeUndefined();
    expect((await c.headObject('tag/template/iso/tag.iso')).tagCount).toBeUndefined();
    const plain = context('untagged/', { lifecycle: { enabled: true, abortIncompleteDays: 3 } });
    await put(plain, `backup/${name}`, randomBytes(1000));
    expect((await c.headObject(`untagged/dump/${name}`)).tagCount).toBeUndefined();
  });

  it('applying transitions tags the archives stored before them (keeping their other tags), once', async () => {
    const before = context('late/', { lifecycle: { enabled: true, abortIncompleteDays: 3 } });
    const name = 'vzdump-lxc-200-2026_01_02-00_00_00.tar.zst';
    const other = 'vzdump-qemu-201-2026_01_03-00_00_00.vma.zst';
    await put(before, `backup/${name}`, randomBytes(1000), { notes: 'stored untagged' });
    await put(before, `backup/${other}`, randomBytes(1000));
    await put(before, 'iso/late.iso', randomBytes(1000));
    await c.putObjectTagging(`late/dump/${other}`, { owner: 'ops' });
    expect((await c.headObject(`late/dump/${name}`)).tagCount).toBeUndefined();

    const now = context('late/', { lifecycle: { enabled: true, transitionDays: 30 } });
    const dry = await lifecycleApply(now, { dryRun: true });
    expect(dry.tagged).toBe(2);
    expect(await c.getObjectTagging(`late/dump/${name}`)).toEqual({});
    const r = await lifecycleApply(now);
    expect(r.tagged).toBe(2);
    expect(await c.getObjectTagging(`late/dump/${name}`)).toEqual({ [ARCHIVE_TAG.key]: ARCHIVE_TAG.value });
    expect(await c.getObjectTagging(`late/dump/${other}`)).toEqual({ owner: 'ops', [ARCHIVE_TAG.key]: ARCHIVE_TAG.value });
    // sidecars and ISOs stay as they were: the rule must never move them
    expect(await c.getObjectTagging(`late/dump/${name}.notes`)).toEqual({});
    expect(await c.getObjectTagging(`late/dump/${name}.s3manifest`)).toEqual({});
    expect(await c.getObjectTagging('late/template/iso/late.iso')).toEqual({});
    expect((await lifecycleApply(now)).tagged).toBe(0);
    // without transitions nothing is tagged
    expect((await lifecycleApply(context('late2/', { lifecycle: { enabled: true, abortIncompleteDays: 3 } }))).tagged).toBe(0);
  });

  it('a multipart archive ends up tagged too (RadosGW drops the tags of a multipart upload and answers their GET with an empty body)', async () => {
    const ctx = context('mptag/', { lifecycle: { enabled: true, transitionDays: 30 } });
    const name = 'vzdump-qemu-300-2026_01_04-00_00_00.vma.zst';
    await put(ctx, `backup/${name}`, randomBytes(7 * 1024 * 1024)); // 5 MB parts: two
    const r = await lifecycleApply(ctx);
    expect(await c.getObjectTagging(`mptag/dump/${name}`)).toEqual({ [ARCHIVE_TAG.key]: ARCHIVE_TAG.value });
    expect(r.tagged).toBeLessThanOrEqual(1); // 0 where the upload's tags were kept, 1 where they were dropped
    expect((await lifecycleApply(ctx)).tagged).toBe(0);
  });

  it('refuses glacier_days not after transition_days', async () => {
    await expect(lifecycleApply(context('pve/', { lifecycle: { enabled: true, transitionDays: 60, glacierDays: 30 } }))).rejects.toThrow(/glacier_days/);
  });
});

describe('abort stale multipart uploads', () => {
  it('aborts only uploads under the prefix initiated before the cutoff', async () => {
    const oldKey = 'mp/dump/old.vma';
    const oldId = await c.createMultipartUpload(oldKey);
    const outsideId = await c.createMultipartUpload('elsewhere/old.vma');
    await new Promise((r) => setTimeout(r, 2500));
    const newId = await c.createMultipartUpload('mp/dump/new.vma');
    const ups = await c.listMultipartUploads();
    const newInit = ups.find((u) => u.uploadId === newId)!.initiated!;
    const oldInit = ups.find((u) => u.uploadId === oldId)!.initiated!;
    expect(newInit.getTime()).toBeGreaterThan(oldInit.getTime());
    // "now" just after the new upload; the cutoff falls between the two
    const ctx = context('mp/', { now: () => new Date(newInit.getTime() + 500) });
    const dry = await abortStaleUploads(ctx, { olderThanSeconds: 1, dryRun: true });
    expect(dry.uploads.map((u) => u.uploadId)).toEqual([oldId]);
    expect((await c.listMultipartUploads()).length).toBe(3);
    const r = await abortStaleUploads(ctx, { olderThanSeconds: 1 });
    expect(r.aborted).toBe(1);
    const left = (await c.listMultipartUploads()).map((u) => u.uploadId).sort();
    expect(left).toEqual([newId, outsideId].sort());
    await c.abortMultipartUpload('mp/dump/new.vma', newId);
    await c.abortMultipartUpload('elsewhere/old.vma', outsideId);
  });
});

describe("this node's resume journals", () => {
  it('removes those of uploads the server no longer has, once older than the cutoff, and only ours', async () => {
    const { UploadJournal } = await import('../../host/src/transfer/journal.js');
    const { readdir, utimes } = await import('node:fs/promises');
    const jdir = join(dir, 'journals');
    const staleId = await c.createMultipartUpload('jr/dump/stale.vma');
    await new Promise((r) => setTimeout(r, 2500));
    const liveId = await c.createMultipartUpload('jr/dump/live.vma');
    const liveInit = (await c.listMultipartUploads()).find((u) => u.uploadId === liveId)!.initiated!;
    const now = new Date(liveInit.getTime() + 500);
    const old = new Date(now.getTime() - 3600_000);
    const journal = async (bucket: string, key: string, uploadId: string, mtime: Date): Promise<string> => {
      const j = await UploadJournal.open(jdir, { bucket, key, path: `/src/${key}`, size: 1, mtimeMs: 1, partSize: 5 * MiB });
      await j.start(uploadId);
      await utimes(j.file, mtime, mtime);
      return j.file.split('/').pop()!;
    };
    await journal(c.bucket, 'jr/dump/stale.vma', staleId, old); // its upload is aborted now
    await journal(c.bucket, 'jr/dump/gone.vma', 'no-such-upload', old); // its upload went earlier
    const live = await journal(c.bucket, 'jr/dump/live.vma', liveId, old); // still on the server
    const young = await journal(c.bucket, 'jr/dump/young.vma', 'no-such-upload-2', now); // may be starting
    const foreign = await journal('another-bucket', 'jr/dump/x.vma', 'elsewhere', old);
    const outside = await journal(c.bucket, 'other/dump/y.vma', 'not-under-prefix', old);
    const tmp = join(jdir, 'abc.json.0badc0de.tmp');
    await writeFile(tmp, '{"half');
    await utimes(tmp, old, old);
    const ctx = { ...context('jr/', { now: () => now }), settings: { ...context('jr/').settings, journalDir: jdir } };

    const dry = await abortStaleUploads(ctx, { olderThanSeconds: 1, dryRun: true });
    expect([dry.uploads.map((u) => u.uploadId), dry.journals]).toEqual([[staleId], 3]);
    expect((await readdir(jdir)).length).toBe(7);

    const r = await abortStaleUploads(ctx, { olderThanSeconds: 1 });
    expect([r.aborted, r.journals]).toEqual([1, 3]);
    expect((await readdir(jdir)).sort()).toEqual([live, young, foreign, outside].sort());
    await c.abortMultipartUpload('jr/dump/live.vma', liveId);
  });
});

describe('check-integrity and status', () => {
  const P = 'chk/';
  const good = 'vzdump-qemu-100-2024_03_01-00_00_00.vma.zst';
  const bad = 'vzdump-qemu-100-2024_03_02-00_00_00.vma.zst';
  const bare = 'vzdump-lxc-101-2024_03_03-00_00_00.tar.zst';
  const gone = 'vzdump-lxc-101-2024_01_01-00_00_00.tar';
  const nolog = 'vzdump-qemu-102-2024_03_04-00_00_00.vma';
  let pendingUpload: { key: string; id: string };

  beforeAll(async () => {
    const ctx = context(P);
    await put(ctx, `backup/${good}`, randomBytes(6 * MiB), { notes: 'fine' });
    const orig = randomBytes(7 * MiB);
    await put(ctx, `backup/${bad}`, orig);
    // overwrite through the S3 API with the same size: the old manifest stays, the bytes differ
    const tampered = Buffer.from(orig);
    tampered[4 * MiB] ^= 0xff;
    await c.putObject(`${P}dump/${bad}`, tampered);
    // written by another tool: no manifest at all
    await c.putObject(`${P}dump/${bare}`, randomBytes(1000));
    // a sidecar whose archive was deleted behind our back
    await c.putObject(`${P}dump/${gone}.notes`, Buffer.from('orphan'));
    await put(ctx, 'iso/tool.iso', randomBytes(2000));
    // uploaded with its log, which then disappears
    const logPath = join(dir, 'nolog.log');
    await writeFile(logPath, 'INFO: done\n');
    const nologPath = join(dir, nolog);
    await writeFile(nologPath, randomBytes(3000));
    await putVolume(ctx, `backup/${nolog}`, { src: { path: nologPath }, logPath });
    await c.deleteObjects([`${P}dump/vzdump-qemu-102-2024_03_04-00_00_00.log`, `${P}dump/vzdump-qemu-102-2024_03_04-00_00_00.log.s3manifest`]);
    const id = await c.createMultipartUpload(`${P}dump/unfinished.vma`);
    const part = randomBytes(5 * MiB);
    const { createHash } = await import('node:crypto');
    await c.uploadPart(`${P}dump/unfinished.vma`, id, 1, part, createHash('sha256').update(part).digest('hex'));
    pendingUpload = { key: `${P}dump/unfinished.vma`, id };
  });
  afterAll(async () => {
    if (pendingUpload) await c.abortMultipartUpload(pendingUpload.key, pendingUpload.id);
  });

  it('tells good, corrupt, missing-manifest, missing and orphaned sidecars apart', async () => {
    const seen: string[] = [];
    const r = await checkIntegrity(context(P), { onItem: (i) => seen.push(i.volname) });
    const by = Object.fromEntries(r.items.map((i) => [i.volname, i.status]));
    expect(by).toEqual({
      [`backup/${good}`]: 'good',
      [`backup/${bad}`]: 'corrupt',
      [`backup/${bare}`]: 'missing-manifest',
      [`backup/${gone}.notes`]: 'orphan-sidecar',
      [`backup/${nolog}`]: 'missing-sidecar',
    });
    expect(r.summary).toMatchObject({ good: 1, corrupt: 1, 'missing-manifest': 1, 'missing-sidecar': 1, 'orphan-sidecar': 1, error: 0 });
    expect(r.ok).toBe(false);
    expect(seen.sort()).toEqual([`backup/${bare}`, `backup/${good}`, `backup/${bad}`, `backup/${nolog}`]);
  });

  it('checks only the named volumes when asked', async () => {
    const r = await checkIntegrity(context(P), { volnames: [`backup/${good}`, 'iso/tool.iso'] });
    expect(r.items.map((i) => [i.volname, i.status])).toEqual([
      [`backup/${good}`, 'good'],
      ['iso/tool.iso', 'good'],
    ]);
    expect(r.ok).toBe(true);
  });

  it('reports counts and bytes per content, oldest/newest backup, incomplete uploads and lifecycle', async () => {
    const cacheDir = join(dir, 'cache');
    const s = await maintenanceStatus(context(P, { cacheDir }));
    expect(s.endpointReachable).toBe(true);
    expect(s.auth).toBe(true);
    expect(s.contents.backup.volumes).toBe(4);
    // archives + manifests + notes + the orphan
    expect(s.contents.backup.objects).toBe(4 + 3 + 1 + 1);
    expect(s.contents.iso).toMatchObject({ volumes: 1, objects: 2 });
    expect(s.contents.backup.bytes).toBeGreaterThan(13 * MiB);
    expect(s.backups.count).toBe(4);
    expect(s.backups.oldest?.volname).toBe(`backup/${good}`);
    expect(s.backups.newest?.volname).toBe(`backup/${nolog}`);
    expect(s.multipart).toEqual({ count: 1, bytes: 5 * MiB });
    expect(Array.isArray(s.lifecycle)).toBe(true);
    // the full listing is remembered as usage for the cheap PVE status
    const pve = await pveStatus(context(P, { cacheDir }));
    expect(pve.used).toBe(s.totalBytes);
    expect(pve.total).toBe(pve.used + pve.avail);
  });
});

describe("PVE's status probe", () => {
  it('a key that may list only under its prefix: HeadBucket is refused, the prefix listing decides', async () => {
    const { runRgwAdmin } = await import('../helpers/rgw.js');
    const { testClient } = await import('../helpers/s3.js');
    const access = 'PVES3OTHERUSER000001';
    const secret = 'pveS3OtherUserSecret00000000000000000001';
    await runRgwAdmin(['user', 'create', '--uid=pve-s3-other', '--display-name=other', `--access-key=${access}`, `--secret=${secret}`]).catch((e: Error) => {
      if (!/exists/i.test(e.message)) throw e;
    });
    const policy = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: ['arn:aws:iam:::user/pve-s3-other'] },
          Action: 's3:ListBucket',
          Resource: `arn:aws:s3:::${c.bucket}`,
          Condition: { StringLike: { 's3:prefix': 'node1/*' } },
        },
      ],
    };
    await c.transport.request({ operation: 'PutBucketPolicy', method: 'PUT', query: [['policy', '']], body: Buffer.from(JSON.stringify(policy)), idempotent: true });
    try {
      const other = testClient({ bucket: c.bucket, maxRetries: 0, credentials: { accessKeyId: access, secretAccessKey: secret } });
      // the premise: this gateway refuses the key a HeadBucket
      await expect(other.headBucket()).rejects.toMatchObject({ status: 403 });
      await expect(pveStatus({ ...context('node1/'), client: other })).resolves.toMatchObject({ active: true });
      // outside its prefix the listing's own verdict is the answer
      await expect(pveStatus({ ...context('node2/'), client: other })).rejects.toMatchObject({ code: 'AccessDenied', message: expect.stringContaining('ListObjectsV2') });
    } finally {
      await c.transport.request({ operation: 'DeleteBucketPolicy', method: 'DELETE', query: [['policy', '']], idempotent: true });
    }
  });

  it('a missing bucket is named as such, not as a failed HeadBucket', async () => {
    const { testClient } = await import('../helpers/s3.js');
    const gone = testClient({ bucket: `${c.bucket}-missing`, maxRetries: 0 });
    await expect(pveStatus({ ...context('x/'), client: gone })).rejects.toMatchObject({ code: 'NoSuchBucket', message: expect.stringContaining(`${c.bucket}-missing does not exist`) });
  });
});

describe('status when the probe fails', () => {
  it('reports an unreachable endpoint and rejected credentials as answers, not exceptions', async () => {
    const { testClient } = await import('../helpers/s3.js');
    const dead = testClient({ endpoint: 'http://127.0.0.1:9', bucket: c.bucket, maxRetries: 0 });
    const s = await maintenanceStatus({ ...context('x/'), client: dead });
    expect(s).toMatchObject({ endpointReachable: false, auth: false });
    expect(s.error?.message).toMatch(/127\.0\.0\.1:9/);
    const wrong = testClient({ bucket: c.bucket, credentials: { accessKeyId: 'PVES3TESTACCESSKEY01', secretAccessKey: 'not-the-secret-0000000000000000000000000' } });
    const w = await maintenanceStatus({ ...context('x/'), client: wrong });
    expect(w).toMatchObject({ endpointReachable: true, auth: false, error: { code: 'SignatureDoesNotMatch' } });
  });
});
