// Issue 10 §14: two storages in one bucket, one prefix below the other ('site/' and 'site/b/').
// The outer storage's maintenance acts on what it wrote only: abort-uploads never aborts the
// inner storage's uploads, status does not count them, and its lifecycle abort rules cover its own
// folders, never the inner storage's keys. Against RadosGW, through the store.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import type { LifecycleRule } from '../../host/src/s3/types.js';
import { lifecycleApply } from '../../host/src/store/lifecycle.js';
import { abortStaleUploads } from '../../host/src/store/multipart.js';
import { maintenanceStatus } from '../../host/src/store/status.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';

let c: S3Client;
const OUTER = 'site/';
const INNER = 'site/b/';
const outerKey = `${OUTER}dump/vzdump-qemu-100-2024_05_06-07_08_09.vma.zst`;
const innerKey = `${INNER}dump/vzdump-qemu-200-2024_05_06-07_08_09.vma.zst`;
const stagedKey = `${OUTER}.pve-s3-staging/dump/vzdump-qemu-101-2024_05_06-07_08_09.vma.zst`;

function context(prefix: string): StoreContext {
  return {
    client: c,
    settings: { storageId: 's3t', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, lifecycle: { enabled: true, abortIncompleteDays: 3 } },
    logger: nullLogger,
  };
}

/** Would S3 apply this rule to the key? (prefix filters are all ours use) */
const covers = (r: LifecycleRule, key: string) => key.startsWith(r.filter?.prefix ?? r.legacyPrefix ?? '');

beforeAll(async () => {
  c = await freshBucket('sec-nested');
});
afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
});

describe('a storage whose prefix holds another storage', () => {
  it("abort-uploads aborts its own stale uploads (staged copies included), never the inner storage's", async () => {
    const outer = await c.createMultipartUpload(outerKey);
    const staged = await c.createMultipartUpload(stagedKey);
    const inner = await c.createMultipartUpload(innerKey);
    const s = await maintenanceStatus(context(OUTER));
    expect(s.multipart.count).toBe(2);
    const r = await abortStaleUploads(context(OUTER), { olderThanSeconds: 0 });
    expect(r.uploads.map((u) => u.key).sort()).toEqual([outerKey, stagedKey].sort());
    const left = await c.listMultipartUploads();
    expect(left.map((u) => u.uploadId)).toEqual([inner]);
    expect(left.some((u) => u.uploadId === outer || u.uploadId === staged)).toBe(false);
    await c.abortMultipartUpload(innerKey, inner);
  });

  it("its lifecycle abort rules cover its own folders and never the inner storage's keys", async () => {
    await lifecycleApply(context(OUTER));
    const rules = await c.getBucketLifecycle();
    const aborts = rules.filter((r) => r.abortIncompleteMultipartUpload);
    expect(aborts.length).toBeGreaterThan(0);
    for (const key of [outerKey, stagedKey, `${OUTER}template/iso/x.iso`, `${OUTER}template/cache/t.tar.zst`, `${OUTER}snippets/hook.pl`]) {
      expect(aborts.some((r) => covers(r, key)), key).toBe(true);
    }
    expect(aborts.filter((r) => covers(r, innerKey))).toEqual([]);
    // and the inner storage's own rules live beside them; applying the outer again keeps them
    await lifecycleApply(context(INNER));
    await lifecycleApply(context(OUTER));
    const again = (await c.getBucketLifecycle()).filter((r) => r.abortIncompleteMultipartUpload);
    expect(again.filter((r) => covers(r, innerKey)).length).toBeGreaterThan(0);
    expect(again.filter((r) => covers(r, innerKey)).every((r) => (r.filter?.prefix ?? '').startsWith(INNER))).toBe(true);
  });

  it('a rule written by an earlier version (one abort rule on the whole prefix) is replaced', async () => {
    const legacy: LifecycleRule = { id: `pve-s3-abort-multipart:${OUTER}`, status: 'Enabled', filter: { prefix: OUTER }, abortIncompleteMultipartUpload: { daysAfterInitiation: 7 } };
    await c.putBucketLifecycle([...(await c.getBucketLifecycle()), legacy]);
    await lifecycleApply(context(OUTER));
    const ids = (await c.getBucketLifecycle()).map((r) => r.id);
    expect(ids).not.toContain(legacy.id);
    expect((await c.getBucketLifecycle()).filter((r) => r.abortIncompleteMultipartUpload && covers(r, innerKey) && !(r.filter?.prefix ?? '').startsWith(INNER))).toEqual([]);
  });
});

describe('retention of storages sharing a bucket: nested prefixes, and one given without its slash', () => {
  // 'site' (written without the trailing slash), 'site/b/' inside it, and 'site2/', which shares
  // the string 'site': prune and cleanup of the outer storage count and remove its own backups only
  it('prune and cleanup of the outer storage leave the inner and the sibling storage whole', async () => {
    const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { cfgEnv, run, s3Section } = await import('./cli-helpers.js');
    const dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-nested-'));
    try {
      const env = await cfgEnv(dir, [
        s3Section('outer', c.bucket, { prefix: 'site' }),
        s3Section('inner', c.bucket, { prefix: 'site/b/' }),
        s3Section('sibling', c.bucket, { prefix: 'site2/' }),
      ]);
      const names = ['vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', 'vzdump-qemu-100-2024_06_01-00_00_00.vma.zst'];
      for (const n of names) await writeFile(join(dir, n), `bytes of ${n}`);
      for (const id of ['outer', 'inner', 'sibling']) {
        const up = await run('pve-s3-backup', ['--storage', id, ...names.flatMap((n) => ['--source', join(dir, n)])], { env });
        expect(up.code, up.stderr).toBe(0);
      }
      const all = async () => {
        const out: string[] = [];
        for await (const o of c.listAll({ prefix: 'site' })) if (!o.key.includes('.pve-s3')) out.push(o.key);
        return out.sort();
      };
      const before = await all();
      const others = before.filter((k) => k.startsWith('site/b/') || k.startsWith('site2/'));
      expect(others).toHaveLength(8); // two archives and their manifests, in each

      const prune = await run('pve-s3-maintenance', ['--storage', 'outer', '--action', 'prune', '--keep-last', '1'], { env });
      expect(prune.code, prune.stderr).toBe(0);
      expect(await all()).toEqual(before.filter((k) => !k.startsWith(`site/dump/${names[0]}`)));
      const cleanup = await run('pve-s3-maintenance', ['--storage', 'outer', '--action', 'cleanup', '--older-than', '1d', '--allow-last'], { env });
      expect(cleanup.code, cleanup.stderr).toBe(0);
      expect(await all()).toEqual(others);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
