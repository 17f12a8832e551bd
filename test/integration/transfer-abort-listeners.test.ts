// What a caller's AbortSignal carries while many requests wait on it, against the real RadosGW:
// a transfer of more parts than Node's listener limit (10), at a concurrency above it, leaves the
// signal with the listeners it had before, holds a few at most meanwhile, and prints no
// MaxListenersExceededWarning (which a backup's task log or a terminal would show). So does a
// cold listing, whose GETs of notes and manifests (32 of each at once) all wait on the caller's
// signal. Before util/on-abort.ts the signals held a listener per request in flight: 11 of 12
// parts, 63 of a cold listing's GETs.
import { getEventListeners } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { listVolumes } from '../../host/src/store/list.js';
import { downloadObject } from '../../host/src/transfer/download.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import { countingLogger } from '../helpers/counting-logger.js';
import { closeTestClients, dropBucket, freshBucket, pool, testClient } from '../helpers/s3.js';
import { MiB, nothingLeft, payload, sha256, wrapClient } from './transfer-helpers.js';

const CONCURRENCY = 12; // above Node's 10 listeners per signal
const PARTS = 2 * CONCURRENCY;
const data = payload(PARTS * 5 * MiB - 1234, 91);

let c: S3Client;
let dir: string;
const warnings: string[] = [];
const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);

beforeAll(async () => {
  process.on('warning', onWarning);
  c = await freshBucket('abort-listeners');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-abort-listeners-'));
  await writeFile(join(dir, 'src.bin'), data);
});
afterAll(async () => {
  process.off('warning', onWarning);
  if (c) await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const count = (s: AbortSignal | undefined): number => (s ? getEventListeners(s, 'abort').length : 0);

/**
 * The real client; part uploads go out CONCURRENCY at a time, all together (each waits until as
 * many have arrived), so that when one settles the others are in flight. Every part upload and
 * ranged GET notes, as it starts and as it settles, how many abort listeners the caller's signal
 * and the signal the request was given hold.
 */
function sampling(caller: AbortSignal): { client: ReturnType<typeof wrapClient>; peak: { caller: number; request: number }; calls: { parts: number; gets: number } } {
  const peak = { caller: 0, request: 0 };
  const calls = { parts: 0, gets: 0 };
  const note = (s: AbortSignal | undefined): void => {
    peak.caller = Math.max(peak.caller, count(caller));
    peak.request = Math.max(peak.request, count(s));
  };
  let gathered: Array<() => void> = [];
  const together = (): Promise<void> =>
    new Promise((go) => {
      gathered.push(go);
      if (gathered.length < CONCURRENCY) return;
      for (const g of gathered) g();
      gathered = [];
    });
  const client = wrapClient(c, {
    uploadPart: async (k, id, n, body, sha, o) => {
      calls.parts++;
      await together();
      note(o?.signal);
      try {
        return await c.uploadPart(k, id, n, body, sha, o);
      } finally {
        note(o?.signal);
      }
    },
    getObjectInto: async (k, o, onData) => {
      calls.gets++;
      note(o?.signal);
      try {
        return await c.getObjectInto(k, o, onData);
      } finally {
        note(o?.signal);
      }
    },
  });
  return { client, peak, calls };
}

describe("a caller's signal through transfers and listings", () => {
  it(`a ${PARTS}-part upload and download at concurrency ${CONCURRENCY}: listeners bounded meanwhile, none left after, no warning`, async () => {
    const ac = new AbortController();
    const before = count(ac.signal);
    const s = sampling(ac.signal);
    const key = 'big/obj';
    // a bandwidth limit too, so parts also wait on the signal between paced slices
    const up = await uploadObject(s.client, key, { path: join(dir, 'src.bin') }, { manifestSigner: null, chunkSizeMB: 5, concurrency: CONCURRENCY, signal: ac.signal, bwlimitKiB: 400 * 1024 });
    expect(up.partCount).toBe(PARTS);
    expect(count(ac.signal)).toBe(before);

    const dest = join(dir, 'back.bin');
    const down = await downloadObject(s.client, key, { path: dest }, { concurrency: CONCURRENCY, signal: ac.signal });
    expect(down.size).toBe(data.length);
    expect(sha256(await readFile(dest))).toBe(sha256(data));
    expect(count(ac.signal)).toBe(before);

    // every part went up through the sampled calls, and came back in ranged GETs (a GET may carry
    // several parts), many at once
    expect(s.calls.parts).toBe(PARTS);
    expect(s.calls.gets).toBeGreaterThan(1);
    expect(s.peak.caller).toBeLessThanOrEqual(3);
    expect(s.peak.request).toBeLessThanOrEqual(3);
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });

  it(`a cancel with ${CONCURRENCY} parts in flight ends them all: Aborted, nothing left, no listener left`, async () => {
    const ac = new AbortController();
    const before = count(ac.signal);
    const key = 'big/cancelled';
    let sent = 0;
    const client = wrapClient(c, {
      uploadPart: (k, id, n, body, sha, o) => {
        const p = c.uploadPart(k, id, n, body, sha, o);
        // the parts are on their way when the cancel comes, all waiting on the one listener
        if (++sent === CONCURRENCY) setImmediate(() => ac.abort(new Error('stop')));
        return p;
      },
    });
    await expect(uploadObject(client, key, { path: join(dir, 'src.bin') }, { manifestSigner: null, chunkSizeMB: 5, concurrency: CONCURRENCY, signal: ac.signal })).rejects.toMatchObject({
      code: 'Aborted',
    });
    expect(sent).toBeLessThan(PARTS);
    expect(count(ac.signal)).toBe(before);
    await nothingLeft(c, key);
  });

  it('a cold listing of 40 backups (80 GETs, 64 at once) on the signal: none left after, no warning', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `vzdump-qemu-${300 + i}-2026_01_02-03_04_05.vma.zst`);
    const enc = (t: string) => new TextEncoder().encode(t);
    await pool(names, 16, async (n, i) => {
      await c.putObject(`cold/dump/${n}`, enc('archive'));
      await c.putObject(`cold/dump/${n}.s3manifest`, enc('{"not":"a manifest"}'));
      await c.putObject(`cold/dump/${n}.notes`, enc(`guest ${i}`));
    });
    const ac = new AbortController();
    const before = count(ac.signal);
    // each request is logged just before it goes out, while the others in flight wait on the signal
    const logger = countingLogger();
    let peak = 0;
    const debug = logger.debug.bind(logger);
    logger.debug = (msg, f) => {
      if (msg === 's3 request') peak = Math.max(peak, count(ac.signal));
      debug(msg, f);
    };
    const ctx = {
      client: testClient({ bucket: c.bucket }, { logger }),
      settings: { storageId: 's3t', bucket: c.bucket, prefix: 'cold/', chunkSizeMB: 5, concurrency: 2, cacheDir: join(dir, 'cache') },
      logger,
      signal: ac.signal,
    };
    const vols = await listVolumes(ctx, { content: ['backup'], pending: false });
    expect(vols.map((v) => v.notes)).toEqual(names.map((_, i) => `guest ${i}`));
    expect(logger.ops.GetObject).toBe(2 * names.length); // cold: every sidecar and manifest fetched
    expect(count(ac.signal)).toBe(before);
    expect(peak).toBeLessThanOrEqual(3);
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });
});
