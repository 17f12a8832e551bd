// Round trips before a transfer's first data byte and after its last (issue 13): the requests
// pve-s3-restore and pve-s3-backup send, in order, as the project's fault proxy sees them in front
// of the real RadosGW. A restore sends one round of metadata requests (HEAD of the archive, GET
// of its manifest, HEAD of its frame index) before its first ranged GET; a backup one LIST before
// CreateMultipartUpload, and after the object and its manifest its sidecars in one round and the
// read-back that verifies the upload in one more. "One round" is shown, not timed: the proxy holds
// every request of the round until all of them have arrived, which a client sending them one
// after the other never gets to (its first request is then let go after 20 s and the count of
// arrivals says so). The error paths of a restore say what they said before this work.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, directAndProxied, requireBuild, run } from './cli-helpers.js';

const NAME = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
const K = `dump/${NAME}`;
const PART = 5 * MiB;
let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let data: Buffer;

/** Each request as `METHOD key[ what]`: LIST, `GET k range`, `POST k uploads`, `PUT k part`, `POST k complete`. */
function describeRequest(r: ProxiedRequest): string {
  const [path, query = ''] = r.target.split('?');
  const key = decodeURIComponent(path!).replace(`/${c.bucket}`, '').replace(/^\//, '');
  if (key === '' && /list-type=2/.test(query)) return 'LIST';
  if (r.method === 'GET' && r.headers.range !== undefined) return `GET ${key} range`;
  if (r.method === 'POST' && /(^|&)uploads=?(&|$)/.test(query)) return `POST ${key} uploads`;
  if (r.method === 'PUT' && /partNumber=/.test(query)) return `PUT ${key} part`;
  if (r.method === 'POST' && /uploadId=/.test(query)) return `POST ${key} complete`;
  return `${r.method} ${key}`;
}
const seq = () => proxy.requests.map(describeRequest);

/**
 * Holds the requests `round` picks until `size` of them have arrived, then lets them all go. Returns
 * how many had arrived when they were let go (size, unless the client sent them one by one and
 * the 20 s fallback let the first go). `after`: picks only once it has seen such a request.
 */
function holdRounds(rounds: { size: number; pick: (d: string) => boolean; after?: (d: string) => boolean }[]) {
  const state = rounds.map(() => ({ arrived: 0, atOpen: undefined as number | undefined, started: false, open: () => {}, gate: Promise.resolve(), timer: undefined as NodeJS.Timeout | undefined }));
  state.forEach((s, i) => {
    s.started = rounds[i]!.after === undefined;
    s.gate = new Promise<void>((res) => {
      s.open = () => {
        s.atOpen ??= s.arrived;
        clearTimeout(s.timer);
        res();
      };
    });
  });
  proxy.plan([
    // sees every request (never matches): starts the rounds that wait for a request
    {
      match: {
        test: (r) => {
          const d = describeRequest(r);
          rounds.forEach((x, i) => {
            if (x.after?.(d)) state[i]!.started = true;
          });
          return false;
        },
      },
      fault: { kind: 'delay', ms: 0 },
    },
    ...rounds.map((x, i) => ({
      match: {
        test: (r: ProxiedRequest) => {
          const s = state[i]!;
          if (!s.started || !x.pick(describeRequest(r))) return false;
          if (++s.arrived === 1) s.timer = setTimeout(s.open, 20_000);
          if (s.arrived === x.size) s.open();
          return true;
        },
      },
      fault: { kind: 'delay' as const, until: state[i]!.gate },
      times: x.size,
    })),
  ]);
  return () => state.map((s) => s.atOpen);
}

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('round-trips');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-trips-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const storages = await directAndProxied(dir, c.bucket, proxy.url, { multipart_chunk_size: '5' });
  env = storages.env;
  data = randomBytes(2 * PART + 12345);
  await writeFile(join(dir, NAME), data);
  const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, NAME)], { env });
  expect(r.code, r.stderr).toBe(0);
  await storages.shareKey();
});

afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  proxy.plan([]);
  proxy.clearLog();
});

const restore = (args: string[], name = NAME) => run('pve-s3-restore', ['--storage', 'viaproxy', '--source', name, ...args], { env });
const META = [`GET ${K}.s3manifest`, `HEAD ${K}`, `HEAD ${K}.s3index`];

describe('a restore', () => {
  for (const to of ['a file', 'stdout'] as const) {
    it(`to ${to}: one round of HEAD, manifest GET and index HEAD, then only the ranges`, { timeout: 90_000 }, async () => {
      const held = holdRounds([{ size: 3, pick: (d) => !d.endsWith(' range') }]);
      const out = join(await mkdtemp(join(dir, 'r-')), NAME);
      const r = await restore(['--destination', to === 'stdout' ? '-' : out]);
      expect(r.code, r.stderr).toBe(0);
      expect(held()).toEqual([3]);
      const s = seq();
      expect(s.slice(0, 3).sort()).toEqual(META);
      // then ranged GETs of the archive and nothing else (how many: transfer/stream-governor.ts)
      expect(s.length).toBeGreaterThan(3);
      expect(s.slice(3).filter((x) => x !== `GET ${K} range`)).toEqual([]);
      expect(Buffer.compare(to === 'stdout' ? r.out : await readFile(out), data)).toBe(0);
    });
  }

  it('says what it said before: a missing archive (exit 3), nothing written', async () => {
    const d = await mkdtemp(join(dir, 'm-'));
    const gone = 'vzdump-qemu-100-2020_01_01-00_00_00.vma.zst';
    const r = await restore(['--destination', d], gone);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`pve-s3-restore: volume 'backup/${gone}' does not exist in storage 'viaproxy' (object 'dump/${gone}' not found) [NoSuchKey]\n`);
    expect(await readdir(d)).toEqual([]);
    expect(seq().sort()).toEqual([`GET dump/${gone}.s3manifest`, `HEAD dump/${gone}`, `HEAD dump/${gone}.s3index`]);
  });

  it('says what it said before: no manifest (exit 5, refused), and with --allow-unverified checked by size', async () => {
    const other = 'vzdump-qemu-101-2024_05_06-07_08_09.vma.zst';
    await c.putObject(`dump/${other}`, data.subarray(0, 1000));
    const d = await mkdtemp(join(dir, 'n-'));
    const r = await restore(['--destination', d], other);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(
      `pve-s3-restore: 'viaproxy:backup/${other}' cannot be verified: no manifest (not uploaded by pve-s3, or its upload did not finish); refused, nothing downloaded. To restore it as it is, checked by its ETag or size only: pve-s3-restore --storage viaproxy --source backup/${other} --allow-unverified [Unverified]\n`,
    );
    expect(await readdir(d)).toEqual([]);
    const ok = await restore(['--destination', '-', '--allow-unverified'], other);
    expect(ok.code, ok.stderr).toBe(0);
    expect(Buffer.compare(ok.out, data.subarray(0, 1000))).toBe(0);
    expect(ok.stderr).toMatch(/UNVERIFIED \(no manifest\): checked by MD5 only/);
  });

  it('says what it said before: a manifest whose signature does not match (exit 5), nothing written', async () => {
    const forged = 'vzdump-qemu-102-2024_05_06-07_08_09.vma.zst';
    const f = join(await mkdtemp(join(dir, 'f-')), forged);
    await writeFile(f, data.subarray(0, 3000));
    const up = await run('pve-s3-backup', ['--storage', 's3a', '--source', f], { env });
    expect(up.code, up.stderr).toBe(0);
    // what the manifest says about the object changed, the old mac kept
    await c.putObject(`dump/${forged}.s3manifest`, await body(`dump/${forged}.s3manifest`, (m) => m.replace('"vmid":"102"', '"vmid":"103"')));
    const d = await mkdtemp(join(dir, 's-'));
    const r = await restore(['--destination', d], forged);
    expect(r.code).toBe(5);
    expect(r.stderr).toBe(
      `pve-s3-restore: 'viaproxy:backup/${forged}' is unverified (its manifest signature does not match (edited after signing, or forged)): refused, nothing downloaded. If you know it is yours, sign it after checking its bytes: pve-s3-maintenance --storage viaproxy --action adopt --source backup/${forged}; or restore it once as it is: pve-s3-restore --storage viaproxy --source backup/${forged} --allow-unverified [Unverified]\n`,
    );
    expect(await readdir(d)).toEqual([]);
  });

  it('says what it said before: an archived backup (exit 6) is not read, its manifest answered in the same round', async () => {
    proxy.archive.mark(K, { storageClass: 'GLACIER', restoreMs: 600_000 });
    try {
      const d = await mkdtemp(join(dir, 'a-'));
      const r = await restore(['--destination', d]);
      expect(r.code, r.stderr).toBe(6);
      expect(r.stderr).toBe(
        `pve-s3-restore: backup '${NAME}' is archived in GLACIER: it is not readable until restored; a restore was requested at tier Standard, typically ready in 3-5 hours; run the same command again then (or add --wait to wait for it) [ArchiveRestorePending]\n`,
      );
      expect(seq().slice(0, 3).sort()).toEqual(META);
      expect(seq().slice(3)).toEqual([`POST ${K}`]);
      expect(await readdir(d)).toEqual([]);
    } finally {
      proxy.archive.clear();
    }
  });
});

async function body(key: string, edit: (s: string) => string): Promise<Buffer> {
  const { body: b } = await c.getObject(key);
  const chunks: Buffer[] = [];
  for await (const x of b) chunks.push(Buffer.from(x as Uint8Array));
  return Buffer.from(edit(Buffer.concat(chunks).toString('utf8')));
}

describe('a backup', () => {
  const name = 'vzdump-qemu-200-2024_05_06-07_08_09.vma.zst';
  const k = `dump/${name}`;
  /** the read-back that verifies an upload: the object, its manifest and its sidecars */
  const readBack = (k: string) => [`GET ${k}.notes`, `GET ${k}.s3manifest`, `HEAD ${k.replace(/\.vma\.zst$/, '.log')}`, `HEAD ${k}`, `HEAD ${k}.protected`];

  /** what follows the last part of `k`: the HEAD that checks the name is still free (another
   *  writer may have stored it meanwhile: UploadOptions.beforeWrite), Complete, the HEAD that
   *  RadosGW releases answering Complete with an empty ETag need (transfer/upload.ts), then
   *  what this returns */
  function afterParts(s: string[], k: string): string[] {
    const tail = s.slice(s.lastIndexOf(`PUT ${k} part`) + 1);
    expect(tail.slice(0, 2)).toEqual([`HEAD ${k}`, `POST ${k} complete`]);
    return tail.slice(tail[2] === `HEAD ${k}` ? 3 : 2);
  }

  it('of a file: one LIST before CreateMultipartUpload; after the parts the name checked again, Complete, the manifest, the sidecars in one round, the read-back in one round', { timeout: 90_000 }, async () => {
    const f = join(await mkdtemp(join(dir, 'b-')), name);
    await writeFile(f, data);
    const held = holdRounds([
      { size: 2, pick: (d) => d === `PUT ${k}.notes` || d === `PUT ${k}.protected` },
      { size: 5, pick: (d) => readBack(k).includes(d), after: (d) => d === `PUT ${k}.s3manifest` },
    ]);
    const r = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', f, '--notes', 'round trips', '--protected'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/; notes, protected, verified\)\n$/);
    expect(held()).toEqual([2, 5]);
    const s = seq();
    expect(s.slice(0, 3)).toEqual(['LIST', `POST ${k} uploads`, `PUT ${k} part`]);
    expect(s.filter((x) => x === `PUT ${k} part`)).toHaveLength(3);
    const tail = afterParts(s, k);
    expect(tail[0]).toBe(`PUT ${k}.s3manifest`);
    expect(tail.slice(1, 3).sort()).toEqual([`PUT ${k}.notes`, `PUT ${k}.protected`]);
    expect(tail.slice(3).sort()).toEqual(readBack(k));
  });

  it('of the same file again: LIST and the .protected HEAD, then the stored object and its manifest in one round; nothing sent', { timeout: 90_000 }, async () => {
    const held = holdRounds([{ size: 2, pick: (d) => d === `HEAD ${K}` || d === `GET ${K}.s3manifest`, after: (d) => d === `HEAD ${K}.protected` }]);
    const r = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, NAME)], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/is already in the bucket, identical to/);
    expect(held()).toEqual([2]);
    const s = seq();
    expect(s.slice(0, 2)).toEqual(['LIST', `HEAD ${K}.protected`]);
    expect(s.slice(2, 4).sort()).toEqual([`GET ${K}.s3manifest`, `HEAD ${K}`]);
    // then the read-back (statVolume), nothing written
    expect(s.slice(4).sort()).toEqual(readBack(K));
  });

  it('of a stream: one LIST, the HEAD that checks the name is still free, then the object (one PUT: a stream of unknown size goes up in large parts); the manifest, the read-back in one round', { timeout: 90_000 }, async () => {
    const sname = 'vzdump-qemu-201-2024_05_06-07_08_09.vma.zst';
    const sk = `dump/${sname}`;
    const held = holdRounds([{ size: 5, pick: (d) => readBack(sk).includes(d), after: (d) => d === `PUT ${sk}.s3manifest` }]);
    const r = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', '-', '--name', sname], { env, input: data });
    expect(r.code, r.stderr).toBe(0);
    expect(held()).toEqual([5]);
    const s = seq();
    expect(s.slice(0, 4)).toEqual(['LIST', `HEAD ${sk}`, `PUT ${sk}`, `PUT ${sk}.s3manifest`]);
    expect(s.slice(4).sort()).toEqual(readBack(sk));
    const got = await restore(['--destination', '-'], sname);
    expect(Buffer.compare(got.out, data)).toBe(0);
  });
});
