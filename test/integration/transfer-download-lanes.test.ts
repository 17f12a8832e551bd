import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { downloadObject, verifyObject } from '../../host/src/transfer/download.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, collector, payload, sha256, wrapClient } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
const data = payload(31 * MiB + 7, 77); // 7 parts of 5 MiB
const KEY = 'lanes/obj';

beforeAll(async () => {
  c = await freshBucket('transfer-lanes');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-lanes-'));
  await writeFile(join(dir, 'src'), data);
  await uploadObject(c, KEY, { path: join(dir, 'src') }, { chunkSizeMB: 5, concurrency: 3 });
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** Ranged GETs in flight at once (from the request until its body is consumed or abandoned);
 *  each is held back a little so the workers overlap and the bound is actually reached. */
function countingGets(): { client: ReturnType<typeof wrapClient>; max: () => number } {
  let now = 0;
  let max = 0;
  const client = wrapClient(c, {
    getObject: async (key, o) => {
      now++;
      max = Math.max(max, now);
      await new Promise((r) => setTimeout(r, 100));
      const res = await c.getObject(key, o);
      async function* body(): AsyncGenerator<Uint8Array> {
        try {
          yield* res.body;
        } finally {
          now--;
        }
      }
      return { ...res, body: body() };
    },
  });
  return { client, max: () => max };
}

describe('download ranges hashed on shared SIMD lanes', () => {
  it('to a file with concurrency 3: 4 ranges in flight (one full 4-lane bank), content intact', async () => {
    const w = countingGets();
    const dest = join(dir, 'out3');
    const r = await downloadObject(w.client, KEY, { path: dest }, { concurrency: 3 });
    expect(r.verifiedBy).toBe('manifest');
    expect(sha256(await readFile(dest))).toBe(sha256(data));
    expect(w.max()).toBe(4);
  });

  it('a setting of 2 is kept (a deliberate throttle), and so is 3 for a stream (it buffers whole ranges)', async () => {
    const w2 = countingGets();
    await downloadObject(w2.client, KEY, { path: join(dir, 'out2') }, { concurrency: 2 });
    expect(w2.max()).toBe(2);
    const w3 = countingGets();
    const out = collector();
    await downloadObject(w3.client, KEY, { stream: out.stream }, { concurrency: 3 });
    expect(sha256(out.data())).toBe(sha256(data));
    expect(w3.max()).toBeLessThanOrEqual(3);
  });

  it('6 ranges at once (two banks, lanes reused) verify as good', async () => {
    const w = countingGets();
    expect(await verifyObject(w.client, KEY, { concurrency: 6 })).toBe('good');
    expect(w.max()).toBe(6);
  });
});
