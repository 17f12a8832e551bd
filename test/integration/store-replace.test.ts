// Replacing a volume when the manifest write fails (issue 10 §6): the real RadosGW, with the real
// client wrapped so that the manifest PUT fails. Nothing may be lost: the replacement is staged
// under a name of its own, so a failure before the switch keeps the old backup verified, and a
// failure after it keeps the new bytes verified under the staging name.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { putLocalVolume } from '../../host/src/store/put-local.js';
import { getVolume } from '../../host/src/store/transfer.js';
import { verifyObject } from '../../host/src/transfer/download.js';
import type { StoreClient, StoreContext } from '../../host/src/store/types.js';
import { statVolume } from '../../host/src/store/volumes.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const MiB = 1024 * 1024;
const PREFIX = 'pve/';
let c: S3Client;
let dir: string;

/** The real client; putObject of the keys `failing` matches answers a 500 the client's own
 *  retries give up on (maxRetries of the test client still apply to real requests). */
function failingManifests(failing: (key: string) => boolean): StoreClient {
  return new Proxy(c, {
    get(target, prop, receiver) {
      if (prop === 'putObject') {
        return async (key: string, ...rest: unknown[]) => {
          if (failing(key)) throw new S3Error('InternalError', `injected: PUT ${key} failed`, { status: 500, retryable: true, key });
          return (target.putObject as (...a: unknown[]) => unknown).call(target, key, ...rest);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as unknown as StoreClient;
}

function ctxWith(client: StoreClient): StoreContext {
  return {
    client,
    settings: { storageId: 's3r', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: join(dir, 'cache'), manifestKey: testManifestKey(dir) },
    logger: nullLogger,
  };
}

async function keys(prefix = PREFIX): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix })) out.push(o.key);
  return out.sort();
}

/** The bytes as a restore gets them: verified against the manifest. */
async function restored(ctx: StoreContext, volname: string): Promise<Buffer> {
  const dest = join(dir, `dl-${randomBytes(4).toString('hex')}`);
  await getVolume(ctx, volname, dest);
  const b = await readFile(dest);
  await rm(dest);
  return b;
}

/** The bytes as they are, unverified. */
const raw = async (key: string): Promise<Buffer> => readAll((await c.getObject(key)).body);

const up = (ctx: StoreContext, volname: string, path: string) =>
  putLocalVolume(ctx, volname, path, { replace: true, removeSource: true, waitSeconds: 0, who: 'test' });

beforeAll(async () => {
  c = await freshBucket('store-replace');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-replace-'));
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.each([
  ['single PUT', 300_000],
  ['multipart', 11 * MiB + 7],
])('replacing a backup (%s) when the manifest PUT fails', (_what, size) => {
  const name = `vzdump-qemu-170-2024_05_06-07_08_${size > MiB ? '10' : '09'}.vma.zst`;
  const volname = `backup/${name}`;
  const key = `${PREFIX}dump/${name}`;

  it('the staged copy\'s manifest fails: the old backup stays, verified, byte for byte; nothing else is left', async () => {
    const ok = ctxWith(c);
    const oldData = randomBytes(size);
    const src = join(dir, name);
    await writeFile(src, oldData);
    expect((await up(ok, volname, src)).volume.verified).toBe(true);

    const newData = randomBytes(size);
    await writeFile(src, newData);
    const bad = ctxWith(failingManifests((k) => k.endsWith('.s3manifest')));
    await expect(up(bad, volname, src)).rejects.toMatchObject({ code: 'ManifestWriteFailed' });

    expect(await statVolume(ok, volname)).toMatchObject({ verified: true, size: oldData.length });
    expect((await restored(ok, volname)).equals(oldData)).toBe(true);
    expect(existsSync(src), 'the local file is kept').toBe(true);
    expect(await keys(), 'no staged copy left').toEqual([key, `${key}.s3manifest`]);
    expect(await c.listMultipartUploads({ prefix: PREFIX })).toEqual([]);
  });

  it('the final manifest fails after the switch: the new bytes stay verified under the staging name, the local file stays; a retry finishes', async () => {
    const ok = ctxWith(c);
    const newData = randomBytes(size);
    const src = join(dir, name);
    await writeFile(src, newData);
    const bad = ctxWith(failingManifests((k) => k === `${key}.s3manifest`));
    await expect(up(bad, volname, src)).rejects.toMatchObject({ code: 'ManifestWriteFailed', message: expect.stringMatching(/stays verified as/) });

    // the object of that name holds the new bytes but is not shown as verified
    expect(await statVolume(ok, volname)).toMatchObject({ verified: false, size: newData.length });
    expect((await raw(key)).equals(newData)).toBe(true);
    const staging = `${PREFIX}.pve-s3-staging/dump/${name}`;
    expect((await raw(staging)).equals(newData)).toBe(true);
    expect(await verifyObject(c, staging, { concurrency: 2 }), 'the staged copy verifies against its manifest').toBe('good');
    expect(await keys()).toEqual([staging, `${staging}.s3manifest`, key, `${key}.s3manifest`].sort());
    expect(existsSync(src)).toBe(true);
    expect(await c.listMultipartUploads({ prefix: PREFIX })).toEqual([]);

    // run again without the fault: replaced, verified, staged copy gone, local file removed
    const r = await up(ok, volname, src);
    expect(r).toMatchObject({ result: 'uploaded', sourceRemoved: true, volume: { verified: true } });
    expect((await restored(ok, volname)).equals(newData)).toBe(true);
    expect(await keys()).toEqual([key, `${key}.s3manifest`]);
    const { deleteVolumes } = await import('../../host/src/store/volumes.js');
    await deleteVolumes(ok, [volname]);
  });
});

describe('a new name (nothing to replace) whose manifest PUT fails', () => {
  it('leaves no object: the upload is undone, the local file kept', async () => {
    const name = 'vzdump-qemu-171-2024_05_06-07_08_09.vma.zst';
    const src = join(dir, name);
    await writeFile(src, randomBytes(100_000));
    const bad = ctxWith(failingManifests((k) => k.endsWith('.s3manifest')));
    await expect(up(bad, `backup/${name}`, src)).rejects.toMatchObject({ code: 'ManifestWriteFailed', message: expect.stringMatching(/removed again/) });
    expect(await keys(`${PREFIX}dump/vzdump-qemu-171-`)).toEqual([]);
    expect(existsSync(src)).toBe(true);
  });
});

describe('sameAsStored: is a local file the stored object?', () => {
  it('compares every part of a multipart file; a file changed since an earlier yes is hashed again, even with its mtime put back', async () => {
    const { sameAsStored } = await import('../../host/src/store/replace.js');
    const ctx = ctxWith(c);
    const name = 'vzdump-qemu-172-2024_05_06-07_08_09.vma.zst';
    const key = `${PREFIX}dump/${name}`;
    const src = join(dir, name);
    const data = randomBytes(11 * MiB + 5); // three 5 MiB parts, the last one short
    await writeFile(src, data);
    await putLocalVolume(ctx, `backup/${name}`, src, { replace: false, removeSource: false, waitSeconds: 0, who: 'test' });
    expect(await sameAsStored(ctx, key, src, data.length)).toBe(true);
    expect(await sameAsStored(ctx, key, src, data.length)).toBe(true);
    // one byte of the last part changed in place, the modification time set back as it was: the
    // change time still moved, so the earlier answer is not reused
    const { mtime, atime } = await stat(src);
    data[10 * MiB + 3]! ^= 1;
    await writeFile(src, data);
    await utimes(src, atime, mtime);
    expect(await sameAsStored(ctx, key, src, data.length)).toBe(false);
    data[10 * MiB + 3]! ^= 1;
    await writeFile(src, data);
    expect(await sameAsStored(ctx, key, src, data.length)).toBe(true);
    // shorter than the stored object: no, not an error
    await writeFile(src, data.subarray(0, 6 * MiB));
    expect(await sameAsStored(ctx, key, src, data.length)).toBe(false);
  });
});
