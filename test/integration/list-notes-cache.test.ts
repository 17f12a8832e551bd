// The listing's notes cache (issue 13) against the real RadosGW: a warm listing reads no sidecar,
// notes another client edits are read again on the next listing, a deleted backup and its entry
// disappear, a corrupt or foreign cache file is ignored and rebuilt, concurrent listings leave a
// valid file, and the commands run from S3_* alone keep theirs under $XDG_CACHE_HOME/pve-s3.
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { listVolumes } from '../../host/src/store/list.js';
import { NOTES_CACHE_FILE } from '../../host/src/store/notes-cache.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { countingLogger } from '../helpers/counting-logger.js';
import { closeTestClients, dropBucket, freshBucket, testClient } from '../helpers/s3.js';
import { requireBuild, run, s3Env } from './cli-helpers.js';

const PREFIX = 'pve/';
const names = [100, 101, 102].map((id) => `vzdump-qemu-${id}-2026_01_02-03_04_05.vma.zst`);
const enc = (s: string) => new TextEncoder().encode(s);

let c: S3Client;
let other: S3Client;
let dir: string;

/** A store on a client of its own, whose request log the logger counts. */
function context(cacheDir: string): StoreContext & { logger: ReturnType<typeof countingLogger> } {
  const logger = countingLogger();
  return {
    client: testClient({ bucket: c.bucket }, { logger }),
    settings: { storageId: 's3t', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, cacheDir },
    logger,
  };
}

async function list(cacheDir: string): Promise<{ notes: Record<string, string | undefined>; ops: Record<string, number>; warnings: string[] }> {
  const ctx = context(cacheDir);
  const vols = await listVolumes(ctx, { content: ['backup'], pending: false });
  return { notes: Object.fromEntries(vols.map((v) => [v.name, v.notes])), ops: ctx.logger.ops, warnings: ctx.logger.warnings };
}

const cacheFile = (cacheDir: string) => join(cacheDir, '.pve-s3', NOTES_CACHE_FILE);

beforeAll(async () => {
  c = await freshBucket('notes-cache');
  other = testClient({ bucket: c.bucket });
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-notes-cache-'));
  for (const [i, n] of names.entries()) {
    await c.putObject(`${PREFIX}dump/${n}`, enc('archive'));
    await c.putObject(`${PREFIX}dump/${n}.notes`, enc(`guest ${i}\nsecond line`));
  }
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('notes cache under the storage state dir', () => {
  const cacheDir = () => join(dir, 'path');

  it('a cold listing reads every sidecar and writes the cache (0600 in the 0700 state dir); a warm one reads none', async () => {
    const cold = await list(cacheDir());
    expect(cold.notes).toEqual({ [names[0]!]: 'guest 0', [names[1]!]: 'guest 1', [names[2]!]: 'guest 2' });
    expect(cold.ops.GetObject).toBe(3);
    expect((await stat(cacheFile(cacheDir()))).mode & 0o777).toBe(0o600);
    expect((await stat(join(cacheDir(), '.pve-s3'))).mode & 0o777).toBe(0o700);

    const warm = await list(cacheDir());
    expect(warm.notes).toEqual(cold.notes);
    expect(warm.ops.GetObject ?? 0).toBe(0);
    // the listing's pages only
    expect(Object.keys(warm.ops)).toEqual([expect.stringMatching(/^ListObjects/)]);
  });

  it('notes another client edits are read again on the next listing, and only they', async () => {
    await other.putObject(`${PREFIX}dump/${names[1]}.notes`, enc('edited elsewhere'));
    const r = await list(cacheDir());
    expect(r.notes[names[1]!]).toBe('edited elsewhere');
    expect(r.notes[names[0]!]).toBe('guest 0');
    expect(r.ops.GetObject).toBe(1);
    // and the edit is what the cache now holds
    expect((await list(cacheDir())).ops.GetObject ?? 0).toBe(0);
  });

  it('notes set back to an earlier text are not mistaken for the cached later one', async () => {
    await other.putObject(`${PREFIX}dump/${names[1]}.notes`, enc('guest 1\nsecond line'));
    expect((await list(cacheDir())).notes[names[1]!]).toBe('guest 1');
  });

  it('a backup deleted by another client disappears from the listing and from the cache', async () => {
    await other.deleteObjects([`${PREFIX}dump/${names[2]}`, `${PREFIX}dump/${names[2]}.notes`]);
    const r = await list(cacheDir());
    expect(Object.keys(r.notes).sort()).toEqual([names[0], names[1]]);
    const doc = JSON.parse(await readFile(cacheFile(cacheDir()), 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(doc.entries).sort()).toEqual([`${PREFIX}dump/${names[0]}.notes`, `${PREFIX}dump/${names[1]}.notes`]);
  });

  it('notes removed (the sidecar deleted) are no longer shown', async () => {
    await other.deleteObject(`${PREFIX}dump/${names[1]}.notes`);
    const r = await list(cacheDir());
    expect(r.notes[names[1]!]).toBeUndefined();
    expect(r.notes[names[0]!]).toBe('guest 0');
  });

  it.each([
    ['garbage', Buffer.from('\x00{not json')],
    ['a truncated file', Buffer.from('{"format":"pve-s3-notes-cache-1","origin":"x","entries":{"pve/dump/a')],
    ['wrong shapes', Buffer.from(JSON.stringify({ format: 'pve-s3-notes-cache-1', origin: 'elsewhere', entries: { k: 5 } }))],
  ])('a corrupt cache file (%s) is ignored, the listing is right, and the file is rebuilt', async (_, bytes) => {
    await writeFile(cacheFile(cacheDir()), bytes);
    const r = await list(cacheDir());
    expect(r.notes[names[0]!]).toBe('guest 0');
    expect(r.ops.GetObject).toBe(1);
    const doc = JSON.parse(await readFile(cacheFile(cacheDir()), 'utf8')) as { entries: Record<string, { e: string; n: string }> };
    expect(doc.entries[`${PREFIX}dump/${names[0]}.notes`]?.n).toBe('guest 0\nsecond line');
    expect((await list(cacheDir())).ops.GetObject ?? 0).toBe(0);
  });

  it('an entry whose ETag is not the listed one is never used', async () => {
    const doc = JSON.parse(await readFile(cacheFile(cacheDir()), 'utf8')) as { entries: Record<string, { e: string; n: string }> };
    const k = `${PREFIX}dump/${names[0]}.notes`;
    doc.entries[k] = { e: 'not-the-etag', n: 'stale text' };
    await writeFile(cacheFile(cacheDir()), JSON.stringify(doc));
    expect((await list(cacheDir())).notes[names[0]!]).toBe('guest 0');
  });

  it('concurrent listings with a fresh cache each write a whole file, and leave no temporary file', async () => {
    await rm(cacheFile(cacheDir()), { force: true });
    await other.putObject(`${PREFIX}dump/${names[1]}.notes`, enc('back again'));
    const rs = await Promise.all([1, 2, 3, 4].map(() => list(cacheDir())));
    for (const r of rs) expect(r.notes).toEqual({ [names[0]!]: 'guest 0', [names[1]!]: 'back again' });
    const doc = JSON.parse(await readFile(cacheFile(cacheDir()), 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(doc.entries)).toHaveLength(2);
    expect((await readdir(join(cacheDir(), '.pve-s3'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('notes cache of the commands run from S3_* alone', () => {
  it('pve-s3-restore --list keeps it under $XDG_CACHE_HOME/pve-s3 (0700, file 0600) and sees an edit on the next listing', async () => {
    requireBuild();
    const home = join(dir, 'xdg');
    const env = s3Env(dir, c.bucket, { S3_PREFIX: PREFIX, XDG_CACHE_HOME: home });
    const first = await run('pve-s3-restore', ['--list', '--json'], { env });
    expect(first.code, first.stderr).toBe(0);
    const notes = (r: { stdout: string }) => Object.fromEntries((JSON.parse(r.stdout) as Array<{ name: string; notes?: string }>).map((v) => [v.name, v.notes]));
    expect(notes(first)[names[0]!]).toBe('guest 0');
    expect((await stat(join(home, 'pve-s3'))).mode & 0o777).toBe(0o700);
    const files = await readdir(join(home, 'pve-s3'));
    expect(files).toEqual([expect.stringMatching(/^notes-[0-9a-f]{16}\.json$/)]);
    expect((await stat(join(home, 'pve-s3', files[0]!))).mode & 0o777).toBe(0o600);

    await other.putObject(`${PREFIX}dump/${names[0]}.notes`, enc('changed by another node'));
    const second = await run('pve-s3-restore', ['--list', '--json'], { env });
    expect(second.code, second.stderr).toBe(0);
    expect(notes(second)[names[0]!]).toBe('changed by another node');
  });

  it("pve-s3-restore --list keeps the manifests' verdicts there too: a warm listing reads no manifest, a rewritten one is read again", async () => {
    requireBuild();
    const home = join(dir, 'xdg-trust');
    const log = join(dir, 'trust-list.log');
    const prefix = 'trust/';
    const backups = [200, 201, 202].map((id) => `vzdump-qemu-${id}-2026_01_02-03_04_05.vma.zst`);
    for (const n of backups) {
      await c.putObject(`${prefix}dump/${n}`, enc('archive'));
      await c.putObject(`${prefix}dump/${n}.s3manifest`, enc('{"not":"a manifest"}'));
    }
    const env = s3Env(dir, c.bucket, { S3_PREFIX: prefix, XDG_CACHE_HOME: home, PVE_S3_LOG_FILE: log, PVE_S3_LOG_LEVEL: 'DEBUG' });
    const gets = async () => {
      const text = await readFile(log, 'utf8').catch(() => '');
      await rm(log, { force: true });
      return text.split('\n').filter((l) => l.includes('s3 request operation=GetObject')).length;
    };
    const listing = async () => {
      const r = await run('pve-s3-restore', ['--list', '--json'], { env });
      expect(r.code, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as Array<{ name: string; trust?: string }>).map((v) => v.name);
    };
    expect(await listing()).toEqual(backups);
    expect(await gets()).toBe(3);
    const files = await readdir(join(home, 'pve-s3'));
    const trust = files.find((f) => /^trust-[0-9a-f]{16}\.json$/.test(f));
    expect(trust, files.join(' ')).toBeDefined();
    expect((await stat(join(home, 'pve-s3', trust!))).mode & 0o777).toBe(0o600);
    expect(await listing()).toEqual(backups);
    expect(await gets()).toBe(0);
    await other.putObject(`${prefix}dump/${backups[1]}.s3manifest`, enc('{"still":"not one"}'));
    expect(await listing()).toEqual(backups);
    expect(await gets()).toBe(1);
  });
});
