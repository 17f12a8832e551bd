/**
 * A large folder listed in ranges at once (store/list-bounds.ts) against RadosGW: what it lists
 * always equals a sequential listing of the same keys — on the first listing, warm, and after keys
 * were added (inside a range, before the first bound, after the last, more than a page's headroom),
 * removed (the bound keys themselves, a whole range) or the bounds file was damaged — and a warm
 * listing of unchanged keys costs one request per range.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { compareKeys } from '../../host/src/s3/key-order.js';
import { LIST_RANGE_STRIDE, ListBounds, listPrefix } from '../../host/src/store/list-bounds.js';
import { listVolumes } from '../../host/src/store/list.js';
import type { StoreContext } from '../../host/src/store/types.js';
import type { Logger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket, pool, testClient } from '../helpers/s3.js';

const PREFIX = 'pfx/';
const DIR = `${PREFIX}dump/`;
const body = new Uint8Array([1]);
let c: S3Client;
let dir: string;

function context(): StoreContext & { ops: () => number } {
  let n = 0;
  const logger: Logger = {
    debugEnabled: true,
    debug(msg) {
      if (msg === 's3 request') n++;
    },
    info() {},
    warn() {},
    error() {},
  };
  return {
    client: testClient({ bucket: c.bucket }, { logger }),
    settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: dir },
    logger,
    ops: () => n,
  };
}

async function sequential(): Promise<string[]> {
  const out: string[] = [];
  for await (const o of c.listAll({ prefix: DIR })) out.push(o.key);
  return out;
}

/** One listing as listVolumes does it: bounds loaded, folder listed, bounds saved. */
async function ranged(): Promise<{ keys: string[]; requests: number; bounds: readonly string[] }> {
  const ctx = context();
  const b = ListBounds.load(ctx);
  const objs = await listPrefix(ctx, DIR, b);
  b.save(ctx);
  return { keys: objs.map((o) => o.key), requests: ctx.ops(), bounds: ListBounds.load(ctx).of(DIR) };
}

const pad = (n: number) => String(n).padStart(2, '0');
/** a backup's archive name as vzdump makes it, one minute apart */
function name(i: number): string {
  const d = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
  return `${DIR}vzdump-qemu-${100 + (i % 7)}-${d.getUTCFullYear()}_${pad(d.getUTCMonth() + 1)}_${pad(d.getUTCDate())}-${pad(d.getUTCHours())}_${pad(d.getUTCMinutes())}_00.vma.zst`;
}
const put = (keys: string[]) => pool(keys, 16, async (k) => void (await c.putObject(k, body)));

beforeAll(async () => {
  c = await freshBucket('ranges');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-ranges-'));
  // 2,400 keys: 2 bounds, 3 ranges; plus keys outside the folder on both sides
  await put([...Array.from({ length: 2400 }, (_, i) => name(i)), `${PREFIX}a-before`, `${PREFIX}snippets/x.yaml`, 'zz-after']);
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a folder listed in ranges at once', () => {
  it('the first listing is sequential and leaves bounds; a warm one lists the same with one request per range', async () => {
    const first = await ranged();
    expect(first.keys).toEqual(await sequential());
    expect(first.keys.length).toBe(2400);
    expect(first.bounds).toEqual([first.keys[LIST_RANGE_STRIDE - 1], first.keys[2 * LIST_RANGE_STRIDE - 1]]);
    const warm = await ranged();
    expect(warm.keys).toEqual(first.keys);
    expect(warm.requests).toBe(3);
  });

  it('keys added inside ranges, before the first bound and after the last are listed once, in order', async () => {
    const before = await ranged();
    const [b0, b1] = before.bounds;
    // more than a page's headroom in the middle range: it takes a second page
    const added = [`${DIR}0-first`, `${b0}-just-after-bound`, ...Array.from({ length: 150 }, (_, i) => `${b1!.slice(0, -8)}-${i}`), `${DIR}zzz-last`];
    await put(added);
    const r = await ranged();
    const seq = await sequential();
    expect(r.keys).toEqual(seq);
    expect(new Set(r.keys).size).toBe(r.keys.length);
    for (const k of added) expect(r.keys).toContain(k);
    expect(r.requests).toBeGreaterThanOrEqual(3);
    expect(r.requests).toBeLessThanOrEqual(5);
    // the new bounds: one request per range again
    expect((await ranged()).requests).toBe(3);
  });

  it('removed keys — the bounds themselves, a whole range — are gone and nothing else is', async () => {
    const before = await ranged();
    const gone = [...before.bounds];
    // everything from the second bound on: the last range empty, the middle one cut short
    gone.push(...before.keys.filter((k) => compareKeys(k, before.bounds[1]!) > 0).slice(0, 2000));
    await c.deleteObjects(gone);
    const r = await ranged();
    expect(r.keys).toEqual(await sequential());
    for (const k of gone) expect(r.keys).not.toContain(k);
    expect(r.keys.length).toBe(before.keys.length - new Set(gone).size);
  });

  it('keys beyond U+FFFF and in U+E000-U+FFFF around a bound are cut where S3 orders them (UTF-8 bytes)', async () => {
    const odd = Array.from({ length: 40 }, (_, i) => [`${DIR}u-${i}-\u{1F600}`, `${DIR}u-${i}-\uFFFD`, `${DIR}u-${i}-\uE000x`]).flat();
    await put(odd);
    // bounds placed on such keys: the ranges must still split the folder where the gateway does
    const seq = await sequential();
    const ctx = context();
    const file = join(dir, '.pve-s3', 'bounds-cache.json');
    const doc = JSON.parse(await readFile(file, 'utf8')) as { folders: Record<string, string[]> };
    doc.folders[DIR] = [`${DIR}u-1-\uFFFD`, `${DIR}u-2-\u{1F600}`, `${DIR}u-3-\uE000x`];
    await writeFile(file, JSON.stringify(doc));
    const b = ListBounds.load(ctx);
    expect(b.of(DIR)).toEqual(doc.folders[DIR]);
    const objs = await listPrefix(ctx, DIR, b);
    expect(objs.map((o) => o.key)).toEqual(seq);
    expect([...seq].sort(compareKeys)).toEqual(seq);
    expect(seq.indexOf(`${DIR}u-1-\u{1F600}`)).toBeGreaterThan(seq.indexOf(`${DIR}u-1-\uFFFD`));
  });

  it('a damaged, foreign or out-of-order bounds file is ignored (sequential listing) and rewritten', async () => {
    const file = join(dir, '.pve-s3', 'bounds-cache.json');
    const seq = await sequential();
    const good = JSON.parse(await readFile(file, 'utf8')) as { origin: string; folders: Record<string, string[]> };
    for (const bad of [
      '{"format":"pve-s3-list-bounds-1",',
      JSON.stringify({ ...good, origin: 'elsewhere' }),
      JSON.stringify({ ...good, folders: { [DIR]: [seq[1000], seq[10]] } }),
      JSON.stringify({ ...good, folders: { [DIR]: ['other/x'] } }),
    ]) {
      await writeFile(file, bad);
      const ctx = context();
      expect(ListBounds.load(ctx).of(DIR)).toEqual([]);
      const r = await ranged();
      expect(r.keys).toEqual(seq);
      expect(r.bounds.length).toBeGreaterThan(0);
    }
  });

  it('listVolumes in ranges shows what it shows listed page after page', async () => {
    await put(Array.from({ length: 30 }, (_, i) => name(5000 + i).replace('.vma.zst', '.log')));
    const ctx = context();
    const warm = await listVolumes(ctx, { pending: false, notes: false });
    await rm(join(dir, '.pve-s3', 'bounds-cache.json'));
    const cold = await listVolumes(context(), { pending: false, notes: false });
    expect(warm.map((v) => [v.volid, v.size, v.etag, v.log, v.manifest])).toEqual(cold.map((v) => [v.volid, v.size, v.etag, v.log, v.manifest]));
    expect(warm.length).toBeGreaterThan(400);
  });
});
