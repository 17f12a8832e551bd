/**
 * Restores to a file write through O_DIRECT where the destination is on a local disk
 * (direct-file.ts): the bytes round-trip whatever the path (direct, page cache, a range fetched
 * again after damage on the wire), and tmpfs or `directIo: false` write through the page cache.
 */
import { closeSync, existsSync, openSync, statfsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { DirectWriter } from '../../host/src/transfer/direct-file.js';
import { downloadObject } from '../../host/src/transfer/download.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testClient, testS3 } from '../helpers/s3.js';
import { MiB, payload } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
let direct = false;
// 5 MiB parts, the last one ends mid-page
const data = payload(23 * MiB + 7, 77);

beforeAll(async () => {
  c = await freshBucket('direct-io');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-direct-io-'));
  const src = join(dir, 'src.bin');
  await writeFile(src, data);
  await uploadObject(c, 'obj', { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
  await rm(src);
  const probe = join(dir, 'probe');
  const fd = openSync(probe, 'w');
  const w = await DirectWriter.open(probe, fd);
  direct = w !== null;
  await w?.close();
  closeSync(fd);
  await rm(probe);
  if (!direct) console.warn(`transfer-direct-io: ${dir} (f_type 0x${statfsSync(dir).type.toString(16)}) takes no O_DIRECT here: restores write through the page cache`);
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

const expectDirect = (n: number | undefined): void => {
  if (direct) expect(n).toBeGreaterThan(data.length / 2);
  else expect(n).toBe(0);
};

describe('restores to a file on a local disk go through O_DIRECT', () => {
  it('one stream and four: byte-exact, most bytes direct, no temp file left', async () => {
    for (const concurrency of [1, 4]) {
      const dest = join(dir, `plain-${concurrency}.bin`);
      const r = await downloadObject(c, 'obj', { path: dest }, { concurrency });
      expect((await readFile(dest)).equals(data)).toBe(true);
      expectDirect(r.directBytes);
    }
    expect((await readdir(dir)).filter((n) => n.includes('pve-s3-tmp'))).toEqual([]);
  });

  it('directIo: false writes through the page cache, byte-exact', async () => {
    const dest = join(dir, 'cached.bin');
    const r = await downloadObject(c, 'obj', { path: dest }, { concurrency: 2, directIo: false });
    expect(r.directBytes).toBe(0);
    expect((await readFile(dest)).equals(data)).toBe(true);
  });

  it('a byte damaged on the wire: the range is fetched again and its new bytes win over the ones already on their way to the disk', async () => {
    for (const concurrency of [1, 2]) {
      const proxy = await startFaultProxy(testS3().endpoint);
      try {
        const viaProxy = testClient({ endpoint: proxy.url, bucket: c.bucket });
        // the first ranged GET: its byte 3 MiB + 5 inverted, in a stage that is already full and written when the range ends
        proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=/ } }, fault: { kind: 'corrupt', at: 3 * MiB + 5 }, times: 1 }]);
        const dest = join(dir, `damaged-${concurrency}.bin`);
        const r = await downloadObject(viaProxy, 'obj', { path: dest }, { concurrency });
        expect(proxy.hits()).toEqual([1]);
        expect((await readFile(dest)).equals(data)).toBe(true);
        expectDirect(r.directBytes);
      } finally {
        await proxy.close();
      }
    }
  });

  it('on tmpfs: through the page cache, byte-exact', async (ctx) => {
    if (!existsSync('/dev/shm') || statfsSync('/dev/shm').type !== 0x01021994) ctx.skip();
    const d = await mkdtemp('/dev/shm/pve-s3-direct-io-');
    try {
      const r = await downloadObject(c, 'obj', { path: join(d, 'f.bin') }, { concurrency: 2 });
      expect(r.directBytes).toBe(0);
      expect((await readFile(join(d, 'f.bin'))).equals(data)).toBe(true);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
