// The lean download path against RadosGW: ranges follow the manifest's parts, as many in flight as
// the setting says; every piece of every body arrives in the one reused read buffer (no
// allocation per piece); a restore to a stream writes from at most concurrency + 1 reused range
// buffers; and every way of reading gives back exactly the bytes uploaded.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { PveS3Error } from '../../host/src/util/errors.js';
import { downloadObject, verifyObject } from '../../host/src/transfer/download.js';
import { MANIFEST_MAX_BYTES, readManifest } from '../../host/src/transfer/manifest.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, payload, sha256, wrapClient } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
const data = payload(31 * MiB + 7, 77); // 7 parts of 5 MiB
const KEY = 'lean/obj';

beforeAll(async () => {
  c = await freshBucket('transfer-lean');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-lean-'));
  await writeFile(join(dir, 'src'), data);
  await uploadObject(c, KEY, { path: join(dir, 'src') }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3 });
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** Ranged GETs in flight at once, the ranges asked for, and the memory every piece arrived in;
 *  each GET is held back 250 ms, so that the streams overlap, the bound is actually reached and
 *  two streams clearly move twice what one does (a download to a file widens: StreamGovernor).
 *  The manifest's GET (the whole small object, no range) goes the same lean way and the same
 *  read buffer, but is not one of the ranges. */
function watchedGets() {
  let now = 0;
  let max = 0;
  const ranges: string[] = [];
  const memory = new Set<ArrayBufferLike>();
  const client = wrapClient(c, {
    getObjectInto: async (key, o, onData) => {
      if (!o.range) return c.getObjectInto(key, o, (chunk) => (memory.add(chunk.buffer), onData(chunk)));
      now++;
      max = Math.max(max, now);
      ranges.push(`${o.range![0]}-${o.range![1]}`);
      try {
        await new Promise((r) => setTimeout(r, 250));
        return await c.getObjectInto(key, o, (chunk) => {
          memory.add(chunk.buffer);
          onData(chunk);
        });
      } finally {
        now--;
      }
    },
  });
  return { client, max: () => max, ranges, memory };
}

/**
 * A gateway whose GETs take turns: each waits for the one before it, then 100 ms, so two streams
 * move no more than one. `cutAt` ends the first GET that passes that offset of the object there
 * (a connection lost mid-body); `flipAt` changes the byte at that offset in every GET that
 * carries it.
 */
function serialGets(o: { cutAt?: number; flipAt?: number } = {}) {
  const ranges: string[] = [];
  let turn: Promise<unknown> = Promise.resolve();
  let cut = o.cutAt;
  const client = wrapClient(c, {
    getObjectInto: async (key, opt, onData) => {
      if (!opt.range) return c.getObjectInto(key, opt, onData);
      const [first] = opt.range;
      ranges.push(`${opt.range[0]}-${opt.range[1]}`);
      const mine = turn.then(() => new Promise((r) => setTimeout(r, 100))).then(() => {
        let at = first;
        return c.getObjectInto(key, opt, (chunk) => {
          const end = at + chunk.length;
          if (cut !== undefined && cut >= at && cut < end) {
            const keep = cut - at;
            cut = undefined;
            if (keep > 0) onData(chunk.subarray(0, keep));
            throw new PveS3Error('ShortRead', 'connection lost (test)', { retryable: true });
          }
          if (o.flipAt !== undefined && o.flipAt >= at && o.flipAt < end) {
            const copy = Uint8Array.from(chunk);
            copy[o.flipAt - at]! ^= 0xff;
            onData(copy);
          } else onData(chunk);
          at = end;
        });
      });
      turn = mine.catch(() => undefined);
      return mine;
    },
  });
  return { client, ranges };
}

const parts = Array.from({ length: 7 }, (_, i) => `${i * 5 * MiB}-${Math.min(data.length, (i + 1) * 5 * MiB) - 1}`);

describe('the lean download path', () => {
  it('to a file, from a gateway that serves each stream at its own rate: one range per part, widening to `concurrency` at once, every piece in the one reused read buffer', async () => {
    const w = watchedGets();
    const dest = join(dir, 'out3');
    const r = await downloadObject(w.client, KEY, { path: dest }, { concurrency: 3 });
    expect(r.checks).toEqual(['crc64nvme']);
    expect(sha256(await readFile(dest))).toBe(sha256(data));
    expect([...w.ranges].sort()).toEqual([...parts].sort());
    expect(w.max()).toBe(3);
    expect(w.memory.size).toBe(1);
  });

  it('to a stream: in order, from at most concurrency + 1 reused range buffers', async () => {
    const w = watchedGets();
    const seen = new Set<ArrayBufferLike>();
    const got: Buffer[] = [];
    const out = new Writable({
      write(chunk: Buffer, _e, cb) {
        seen.add(chunk.buffer);
        got.push(Buffer.from(chunk));
        // a slow reader: the buffers must wait for it, not multiply
        setTimeout(cb, 20);
      },
    });
    await downloadObject(w.client, KEY, { stream: out }, { concurrency: 2, verify: 'sha256' });
    expect(sha256(Buffer.concat(got))).toBe(sha256(data));
    expect(w.max()).toBeLessThanOrEqual(2);
    expect(seen.size).toBeLessThanOrEqual(3);
    expect(w.memory.size).toBe(1);
  });

  it('a verify widens the same way (one range, two, then the other four at once) and stores nothing', async () => {
    const w = watchedGets();
    expect(await verifyObject(w.client, KEY, { concurrency: 6 })).toBe('good');
    expect(w.max()).toBe(4);
    expect(await verifyObject(w.client, KEY, { concurrency: 6, verify: 'sha256' })).toBe('good');
  });

  it('from a gateway that two streams do not make faster: one stream, the rest of the object in one GET', async () => {
    const w = serialGets();
    const dest = join(dir, 'one');
    const r = await downloadObject(w.client, KEY, { path: dest }, { concurrency: 4 });
    expect(r.checks).toEqual(['crc64nvme']);
    expect(sha256(await readFile(dest))).toBe(sha256(data));
    // part 4 went while the two were still being measured
    expect(w.ranges).toEqual([...parts.slice(0, 4), `${20 * MiB}-${data.length - 1}`]);
  });

  it('a GET of several parts cut in part 6: asked again from part 6, not from the start of the GET', async () => {
    const w = serialGets({ cutAt: 27 * MiB });
    const dest = join(dir, 'cut');
    await downloadObject(w.client, KEY, { path: dest }, { concurrency: 4 });
    expect(sha256(await readFile(dest))).toBe(sha256(data));
    expect(w.ranges).toEqual([...parts.slice(0, 4), `${20 * MiB}-${data.length - 1}`, `${25 * MiB}-${data.length - 1}`]);
  });

  it('a part that arrives wrong in a GET of several parts: asked again from that part, then IntegrityError naming it; no file', async () => {
    const w = serialGets({ flipAt: 27 * MiB });
    const dest = join(dir, 'bad');
    await expect(downloadObject(w.client, KEY, { path: dest }, { concurrency: 4 })).rejects.toMatchObject({
      code: 'IntegrityError',
      message: expect.stringContaining(`part 6 (bytes ${25 * MiB}..${30 * MiB - 1}) does not match its CRC-64/NVME in the manifest`),
    });
    const again = `${25 * MiB}-${data.length - 1}`;
    expect(w.ranges).toEqual([...parts.slice(0, 4), `${20 * MiB}-${data.length - 1}`, again, again]);
    expect((await readdir(dir)).filter((n) => n.includes('bad'))).toEqual([]);
  });

  it('the manifest comes the lean way too: read whole, none when absent, and one past 4 MiB refused', async () => {
    const m = await readManifest(c, KEY);
    expect(m).toMatchObject({ size: data.length, partSize: 5 * MiB });
    expect(m!.parts).toHaveLength(7);
    expect(await readManifest(c, 'lean/none')).toBeNull();
    await c.putObject('lean/huge.s3manifest', new Uint8Array(MANIFEST_MAX_BYTES + 1));
    await expect(readManifest(c, 'lean/huge')).rejects.toMatchObject({ code: 'ManifestInvalid', message: expect.stringContaining('larger than 4194304 bytes') });
    // the connection the refusal dropped is not reused: the next read works
    expect((await readManifest(c, KEY))!.parts).toHaveLength(7);
  });
});
