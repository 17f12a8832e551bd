// A cold listing (issue 13: no local caches, every `.notes` sidecar and every manifest fetched)
// against the real RadosGW: manifests and notes come in one stream of GETs; what a listing killed
// part way fetched is on disk (checkpoints) and the next listing fetches only the rest; a
// corrupt trust cache is ignored and rewritten.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { listVolumes } from '../../host/src/store/list.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { countingLogger } from '../helpers/counting-logger.js';
import { closeTestClients, dropBucket, freshBucket, pool, testClient } from '../helpers/s3.js';
import { BIN, requireBuild, s3Env } from './cli-helpers.js';

const PREFIX = 'cold/';
const N = 40;
const names = Array.from({ length: N }, (_, i) => `vzdump-qemu-${100 + i}-2026_01_02-03_04_05.vma.zst`);
const enc = (s: string) => new TextEncoder().encode(s);

let c: S3Client;
let dir: string;
let proxy: FaultProxy | undefined;

beforeAll(async () => {
  c = await freshBucket('list-cold');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-list-cold-'));
  await pool(names, 16, async (n, i) => {
    await c.putObject(`${PREFIX}dump/${n}`, enc('archive'));
    // not a manifest: judged incomplete, a verdict the trust cache keeps like any other
    await c.putObject(`${PREFIX}dump/${n}.s3manifest`, enc('{"not":"a manifest"}'));
    await c.putObject(`${PREFIX}dump/${n}.notes`, enc(`guest ${i}\nmore`));
  });
});
afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A store on a client of its own whose requests are counted by operation. */
function context(cacheDir: string): StoreContext & { ops: Record<string, number> } {
  const logger = countingLogger();
  return {
    ops: logger.ops,
    client: testClient({ bucket: c.bucket }, { logger }),
    settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir },
    logger,
  };
}

/** Entries in the listing caches of a command run from S3_* alone (notes + trust verdicts). */
async function cachedEntries(home: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(join(home, 'pve-s3')).catch(() => [] as string[])) {
    if (!/^(notes|trust)-[0-9a-f]{16}\.json$/.test(f)) continue;
    try {
      n += Object.keys((JSON.parse(await readFile(join(home, 'pve-s3', f), 'utf8')) as { entries: object }).entries).length;
    } catch {
      // being renamed into place: read again on the next poll
    }
  }
  return n;
}

describe('cold listing', () => {
  it('fetches every manifest and every .notes once, and a warm listing neither', async () => {
    const ctx = context(join(dir, 'path'));
    const vols = await listVolumes(ctx, { content: ['backup'], pending: false });
    expect(vols.map((v) => v.notes)).toEqual(names.map((_, i) => `guest ${i}`));
    expect(vols.every((v) => v.trust === 'incomplete')).toBe(true);
    expect(ctx.ops.GetObject).toBe(2 * N);
    const warm = context(join(dir, 'path'));
    const again = await listVolumes(warm, { content: ['backup'], pending: false });
    expect(again.map((v) => [v.notes, v.trust])).toEqual(vols.map((v) => [v.notes, v.trust]));
    expect(warm.ops.GetObject ?? 0).toBe(0);
  });

  it('a corrupt trust cache is ignored (the verdicts are read again, right) and rewritten', async () => {
    const file = join(dir, 'path', '.pve-s3', 'trust.json');
    await writeFile(file, '{"v":1,"entries":{"cold/dump/x":');
    const ctx = context(join(dir, 'path'));
    const vols = await listVolumes(ctx, { content: ['backup'], pending: false });
    expect(vols.every((v) => v.trust === 'incomplete')).toBe(true);
    expect(ctx.ops.GetObject).toBe(N); // the manifests; the notes are still cached
    const doc = JSON.parse(await readFile(file, 'utf8')) as { v: number; entries: Record<string, { t: string }> };
    expect(Object.keys(doc.entries)).toHaveLength(N);
    expect(doc.entries[`${PREFIX}dump/${names[0]}`]?.t).toBe('incomplete');
  });

  it('a listing killed part way leaves what it fetched; the next one fetches only the rest', async () => {
    requireBuild();
    proxy = await startFaultProxy(s3Env(dir, c.bucket).S3_ENDPOINT!);
    const done = 15;
    // the first `done` GETs of sidecars and manifests are answered, every later one hangs: the
    // listing is stuck after fetching exactly those, as one that pveproxy is about to kill
    proxy.plan([{ match: { method: 'GET', path: /\.(notes|s3manifest)$/ }, skip: done, times: Infinity, fault: { kind: 'hang' } }]);
    const home = join(dir, 'xdg-killed');
    const log = join(dir, 'killed.log');
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), '--list', '--json'], {
      env: s3Env(dir, c.bucket, { S3_ENDPOINT: proxy.url, S3_PREFIX: PREFIX, XDG_CACHE_HOME: home }),
      stdio: 'ignore',
    });
    const exited = new Promise<NodeJS.Signals | null>((res) => p.on('exit', (_code, sig) => res(sig)));
    const safety = setTimeout(() => p.kill('SIGKILL'), 60_000);
    // the checkpoint writes the fetched entries within a second of their arrival
    let seen = 0;
    for (let i = 0; i < 300 && seen < done; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = await cachedEntries(home);
    }
    p.kill('SIGKILL');
    clearTimeout(safety);
    expect(await exited).toBe('SIGKILL');
    expect(seen).toBe(done);
    expect(proxy.hits()[0]).toBeGreaterThan(0); // it was stuck on the rest, not finished

    // the same endpoint (the caches belong to endpoint, bucket and prefix), now answering all
    proxy.plan([]);
    const env = s3Env(dir, c.bucket, { S3_ENDPOINT: proxy.url, S3_PREFIX: PREFIX, XDG_CACHE_HOME: home, PVE_S3_LOG_FILE: log, PVE_S3_LOG_LEVEL: 'DEBUG' });
    const r = await new Promise<{ code: number | null; out: string; err: string }>((res, rej) => {
      const q = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), '--list', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      q.stdout.on('data', (d) => (out += d));
      q.stderr.on('data', (d) => (err += d));
      q.on('error', rej);
      q.on('close', (code) => res({ code, out, err }));
    });
    expect(r.code).toBe(0);
    // 64 GETs at once on the command's signal, each dropping its wait as it settles: nothing that
    // Node would call a leak (MaxListenersExceededWarning on the terminal)
    expect(r.err).toBe('');
    const listed = JSON.parse(r.out) as Array<{ name: string; notes?: string; trust?: string }>;
    expect(listed.map((v) => v.notes)).toEqual(names.map((_, i) => `guest ${i}`));
    expect(listed.every((v) => v.trust === 'incomplete')).toBe(true);
    const gets = (await readFile(log, 'utf8')).split('\n').filter((l) => l.includes('s3 request operation=GetObject')).length;
    expect(gets).toBe(2 * N - done);
    expect(await cachedEntries(home)).toBe(2 * N);
  });
});
