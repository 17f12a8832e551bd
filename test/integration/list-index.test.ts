// The listing index shared through the bucket (issue 13, store/listing-index.ts) against the real
// RadosGW: a cold node lists from the index another node wrote (one GET instead of one per
// manifest and .notes) and shows the same notes and verdicts; entries gone stale are fetched, and
// only they; an index not signed with the storage's key is ignored; two nodes writing it at once
// lose nobody's backup; a storage without a manifest key neither reads nor writes one.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManifestKeyLocation } from '../../host/src/config/manifest-key-location.js';
import { readKeyring } from '../../host/src/config/manifest-key.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { listVolumes } from '../../host/src/store/list.js';
import { INDEX_READ_MIN, INDEX_WRITE_MIN, LISTING_INDEX_KEY, writeIndex } from '../../host/src/store/listing-index.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { StoreContext, Volume } from '../../host/src/store/types.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { countingLogger } from '../helpers/counting-logger.js';
import { closeTestClients, dropBucket, freshBucket, pool, testClient, testS3 } from '../helpers/s3.js';

const PREFIX = 'idx/';
const N = 40;
const raw = Array.from({ length: N }, (_, i) => `vzdump-qemu-${100 + i}-2026_01_02-03_04_05.vma.zst`);
const signed = ['vzdump-qemu-900-2026_01_02-03_04_05.vma.zst', 'vzdump-qemu-901-2026_01_02-03_04_05.vma.zst'];
const enc = (s: string) => new TextEncoder().encode(s);
const dump = (name: string) => `${PREFIX}dump/${name}`;

let c: S3Client;
let dir: string;
let ours: ManifestKeyLocation;
let theirs: ManifestKeyLocation;
let proxy: FaultProxy | undefined;

type Node = StoreContext & { ops: Record<string, number> };

/** A node of the cluster: its own local caches (`name`), the storage's key, requests counted. */
function node(name: string, o: { key?: ManifestKeyLocation | null; endpoint?: string } = {}): Node {
  const logger = countingLogger();
  const key = o.key === undefined ? ours : o.key;
  return {
    ops: logger.ops,
    client: testClient({ bucket: c.bucket, ...(o.endpoint ? { endpoint: o.endpoint } : {}) }, { logger }),
    settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir: join(dir, name), ...(key ? { manifestKey: key } : {}) },
    logger,
  };
}

const list = (n: Node) => listVolumes(n, { content: ['backup'], pending: false });
const seen = (vols: Volume[]) => vols.map((v) => [v.name, v.notes, v.trust]);

async function addRaw(name: string, notes: string): Promise<void> {
  await c.putObject(dump(name), enc('archive'));
  // not a manifest: judged incomplete, a verdict cached like any other
  await c.putObject(`${dump(name)}.s3manifest`, enc('{"not":"a manifest"}'));
  await c.putObject(`${dump(name)}.notes`, enc(notes));
}

beforeAll(async () => {
  c = await freshBucket('list-index');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-list-index-'));
  ours = testManifestKey(dir, 'ours');
  theirs = testManifestKey(dir, 'attacker');
  await pool(raw, 16, (n, i) => addRaw(n, `guest ${i}\nmore`));
  const writer = node('writer');
  for (const n of signed) {
    const p = join(dir, `src-${randomBytes(4).toString('hex')}`);
    await writeFile(p, randomBytes(1000));
    await putVolume(writer, `backup/${n}`, { src: { path: p }, notes: `signed ${n}` });
  }
});
afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('listing index shared through the bucket', () => {
  let first: Volume[];

  it('a cold node writes it; another cold node lists from it with one GET and shows the same', async () => {
    expect(2 * N).toBeGreaterThanOrEqual(INDEX_WRITE_MIN);
    expect(N).toBeGreaterThanOrEqual(INDEX_READ_MIN);
    const a = node('a');
    first = await list(a);
    expect(first).toHaveLength(N + 2);
    expect(first.filter((v) => v.verified).map((v) => v.name)).toEqual(signed);
    expect(first.find((v) => v.name === raw[3])?.notes).toBe('guest 3');
    expect(a.ops.GetObject).toBe(2 * (N + 2) + 1); // its own look at the index (none yet), then everything
    expect(a.ops.PutObject).toBe(1);
    const info = await c.headObject(PREFIX + LISTING_INDEX_KEY);
    expect(info.size).toBeGreaterThan(0);

    const b = node('b');
    expect(seen(await list(b))).toEqual(seen(first));
    expect(b.ops.GetObject).toBe(1);
    expect(b.ops.PutObject ?? 0).toBe(0);
    // and it keeps what the index gave: its next listing reads nothing
    const again = node('b');
    expect(seen(await list(again))).toEqual(seen(first));
    expect(again.ops.GetObject ?? 0).toBe(0);
  });

  it('entries gone stale (notes edited, a manifest replaced, a backup added since) are fetched, and only they', async () => {
    await c.putObject(`${dump(raw[1]!)}.notes`, enc('edited on another node'));
    await c.putObject(`${dump(raw[2]!)}.notes`, enc('edited too'));
    // a signed backup's manifest replaced by one nobody signed: it must not stay verified
    await c.putObject(`${dump(signed[0]!)}.s3manifest`, enc('{"forged":true}'));
    await addRaw('vzdump-qemu-199-2026_01_02-03_04_05.vma.zst', 'added since');
    const n = node('c');
    const vols = await list(n);
    expect(vols).toHaveLength(N + 3);
    const by = new Map(vols.map((v) => [v.name, v]));
    expect(by.get(raw[1]!)?.notes).toBe('edited on another node');
    expect(by.get(raw[2]!)?.notes).toBe('edited too');
    expect(by.get(signed[0]!)?.verified).toBe(false);
    expect(by.get(signed[0]!)?.trust).toBe('incomplete');
    expect(by.get(signed[1]!)?.verified).toBe(true);
    expect(by.get('vzdump-qemu-199-2026_01_02-03_04_05.vma.zst')?.notes).toBe('added since');
    // the index, 2 notes, 1 manifest, the new backup's manifest and notes
    expect(n.ops.GetObject).toBe(6);
    expect(n.ops.PutObject ?? 0).toBe(0); // 5 fetched: below INDEX_WRITE_MIN, the index stays
  });

  it('an index not signed with the storage key (forged, edited, or signed with another key) is ignored', async () => {
    const key = PREFIX + LISTING_INDEX_KEY;
    const vols = await list(node('truth'));
    const truth = seen(vols);
    // another key: a complete, well-formed index claiming every backup verified, with other notes
    const attacker = readKeyring(theirs.file)!;
    const forgedTrust: Record<string, unknown> = {};
    const forgedNotes: Record<string, unknown> = {};
    const listing = new Map<string, { etag: string; lastModified: Date }>();
    for await (const o of c.listAll({ prefix: `${PREFIX}dump/` })) listing.set(o.key, o);
    // everything a listing checks an entry against is public: ETags, dates, the key ids (every
    // signed manifest names its key's id); only the signature is not
    const ids = readKeyring(ours.file)!.ids.join(',');
    for (const v of vols) {
      const m = listing.get(`${v.key}.s3manifest`)!;
      forgedTrust[v.key] = { e: v.etag, s: v.size, me: m.etag, mt: m.lastModified.getTime(), k: ids, t: 'verified' };
      const side = listing.get(`${v.key}.notes`);
      if (side) forgedNotes[`${v.key}.notes`] = { e: side.etag.replace(/"/g, ''), n: 'FORGED' };
    }
    await writeIndex(node('attacker', { key: theirs }), attacker, { trust: forgedTrust, notes: forgedNotes });
    // (that index would pass every check but the signature's)
    expect(truth.filter(([, , t]) => t === 'verified')).toHaveLength(1);
    const d = node('d');
    expect(seen(await list(d))).toEqual(truth);
    expect(d.ops.GetObject).toBe(1 + 2 * (N + 3));
    // and it wrote a good one back (it fetched more than INDEX_WRITE_MIN)
    expect(d.ops.PutObject).toBe(1);

    // the good index with one byte of its signed body changed
    const text = (await readAll(c, key)).replace('"format"', '"formaT"');
    await c.putObject(key, enc(text));
    const e = node('e');
    expect(seen(await list(e))).toEqual(truth);
    expect(e.ops.GetObject).toBe(1 + 2 * (N + 3));
  });

  it('two nodes writing it at once lose nobody: a backup one of them had not seen is fetched by the next reader', async () => {
    // node f lists (cold) before backup Y exists; its index PUT is held until node g has added Y,
    // listed and written its own index: f's stale index lands last
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // f is a node as cold as can be: no index either
    await c.deleteObject(PREFIX + LISTING_INDEX_KEY);
    proxy = await startFaultProxy(testS3().endpoint);
    proxy.plan([{ match: { method: 'PUT', pathIncludes: LISTING_INDEX_KEY }, fault: { kind: 'delay', until: held } }]);
    const f = node('f', { endpoint: proxy.url });
    const fListing = list(f);
    // wait until f's PUT is held (its listing is done with the bucket's contents)
    for (let i = 0; i < 600 && !proxy.requests.some((r) => r.method === 'PUT'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(proxy.requests.some((r) => r.method === 'PUT')).toBe(true);
    const y = 'vzdump-qemu-300-2026_01_02-03_04_05.vma.zst';
    await addRaw(y, 'only g saw it');
    const g = node('g');
    const gVols = await list(g);
    expect(gVols.map((v) => v.name)).toContain(y);
    expect(g.ops.PutObject).toBe(1);
    release();
    const fVols = await fListing;
    expect(fVols.map((v) => v.name)).not.toContain(y);
    expect(proxy.hits()[0]).toBe(1);

    const h = node('h');
    const hVols = await list(h);
    expect(hVols.map((v) => v.name)).toEqual(gVols.map((v) => v.name));
    expect(hVols.find((v) => v.name === y)?.notes).toBe('only g saw it');
    expect(seen(hVols)).toEqual(seen(gVols));
    // the index f wrote lacks Y: its manifest and notes are fetched, nothing else
    expect(h.ops.GetObject).toBe(1 + 2);
  });

  it('a node shares a few new backups at a time once it has fetched INDEX_WRITE_MIN since its last write', async () => {
    const k = node('k');
    await list(k); // cold: from the index f wrote, plus what it lacks
    const batch = async (from: number) => {
      for (let i = from; i < from + 10; i++) await addRaw(`vzdump-qemu-${400 + i}-2026_01_02-03_04_05.vma.zst`, `batch ${i}`);
      const n = node('k');
      await list(n);
      return n.ops;
    };
    expect(20).toBeLessThan(INDEX_WRITE_MIN);
    const first = await batch(0);
    expect(first.GetObject).toBe(20); // 10 manifests, 10 notes: too few to read the index
    expect(first.PutObject ?? 0).toBe(0); // 2 + 20 fetched since its last write: not yet
    const second = await batch(10);
    expect(second.GetObject).toBe(20);
    expect(second.PutObject).toBe(1); // 42: shared
    const third = node('k');
    await list(third);
    expect(third.ops.PutObject ?? 0).toBe(0); // and counted from 0 again
    // a new node finds all of them in the index
    const m = node('m');
    const vols = await list(m);
    expect(vols.find((v) => v.name === 'vzdump-qemu-405-2026_01_02-03_04_05.vma.zst')?.notes).toBe('batch 5');
    expect(m.ops.GetObject).toBe(1);
  });

  it('a storage without a manifest key neither reads nor writes the index', async () => {
    const n = node('nokey', { key: null });
    const vols = await list(n);
    expect(vols.find((v) => v.name === raw[0])?.notes).toBe('guest 0');
    expect(vols.every((v) => !v.verified)).toBe(true);
    expect(n.ops.GetObject).toBe(2 * vols.length);
    expect(n.ops.PutObject ?? 0).toBe(0);
  });
});

async function readAll(client: S3Client, key: string): Promise<string> {
  const { body } = await client.getObject(key);
  const chunks: Buffer[] = [];
  for await (const ch of body) chunks.push(Buffer.from(ch));
  return Buffer.concat(chunks).toString('utf8');
}
