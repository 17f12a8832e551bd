// Issue 10 §5, against the real RadosGW: retention counts only verified backups. A newer 8-byte
// object without a manifest used to be kept by --keep-last 1 while the verified backup went, and
// `cleanup --older-than 30d` removed every backup of a guest whose backups stopped a month ago.
// Through the store and the commands.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBackupTime } from '../../host/src/pve/backup-time.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { cleanupByAge } from '../../host/src/store/cleanup.js';
import { prune, prunePlan } from '../../host/src/store/prune.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { keys, requireBuild, run, s3Env } from './cli-helpers.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const DAY = 86_400_000;
const name = (vmid: number, daysAgo: number) => `vzdump-qemu-${vmid}-${formatBackupTime(new Date(Date.now() - daysAgo * DAY))}.vma.zst`;

let c: S3Client;
let dir: string;

function context(prefix: string): StoreContext {
  return { client: c, settings: { storageId: 'ret', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, manifestKey: testManifestKey(dir) }, logger: nullLogger };
}

async function backup(ctx: StoreContext, n: string): Promise<void> {
  const p = join(dir, n);
  await writeFile(p, randomBytes(1000));
  await putVolume(ctx, `backup/${n}`, { src: { path: p } });
}

/** What someone with write access to the bucket (or a half-finished tool) leaves: no manifest. */
async function plant(prefix: string, n: string): Promise<void> {
  await c.putObject(`${prefix}dump/${n}`, Buffer.from('8 bytes!'));
}

const stored = async (prefix: string) => (await keys(c, `${prefix}dump/`)).map((k) => k.slice(`${prefix}dump/`.length)).filter((k) => !k.includes('.s3manifest'));

beforeAll(async () => {
  c = await freshBucket('ret-verified');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-retv-'));
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('prune --keep-last 1 with a newer object without a manifest', () => {
  const old = name(100, 3);
  const planted = name(100, 1);

  it('store: the planted object is marked unverified and the verified backup is kept', async () => {
    const P = 'p-store/';
    await backup(context(P), old);
    await plant(P, planted);
    const r = await prune(context(P), { 'keep-last': 1 });
    expect(Object.fromEntries(r.entries.map((e) => [e.volname, e.mark]))).toEqual({ [`backup/${old}`]: 'keep', [`backup/${planted}`]: 'unverified' });
    expect(r.removed).toEqual([]);
    expect(await stored(P)).toEqual([old, planted].sort());
  });

  it('store: a second verified backup is what pushes the first out', async () => {
    const P = 'p-store2/';
    const newer = name(100, 2);
    await backup(context(P), old);
    await backup(context(P), newer);
    await plant(P, planted);
    const r = await prune(context(P), { 'keep-last': 1 });
    expect(r.removed).toEqual([`backup/${old}`]);
    expect(await stored(P)).toEqual([newer, planted].sort());
  });

  it('pve-s3-maintenance --action prune --keep-last 1 keeps both and says why', async () => {
    requireBuild();
    const P = 'p-cli/';
    await backup(context(P), old);
    await plant(P, planted);
    const r = await run('pve-s3-maintenance', ['--action', 'prune', '--keep-last', '1'], { env: s3Env(dir, c.bucket, { S3_PREFIX: P, PVE_S3_MANIFEST_KEY_FILE: testManifestKey(dir).file }) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${planted.replace(/\./g, '\\.')}\\s+\\S+ \\S+\\s+unverified`));
    expect(r.stderr).toContain('1 unverified backup was kept and not counted');
    expect(await stored(P)).toEqual([old, planted].sort());
  });
});

describe('cleanup --older-than 30d on a guest whose backups stopped a month ago', () => {
  const olds = [name(200, 40), name(200, 35), name(200, 32)];

  it('store: keeps the last verified backup, removes the older ones; a newer planted object changes nothing', async () => {
    const P = 'c-store/';
    for (const n of olds) await backup(context(P), n);
    const planted = name(200, 1);
    await plant(P, planted);
    const r = await cleanupByAge(context(P), { olderThan: '30d' });
    const by = Object.fromEntries(r.items.map((i) => [i.volname.slice('backup/'.length), `${i.action}:${i.reason}`]));
    expect(by).toEqual({ [olds[0]!]: 'remove:older', [olds[1]!]: 'remove:older', [olds[2]!]: 'keep:last-verified', [planted]: 'keep:unverified' });
    expect(await stored(P)).toEqual([olds[2]!, planted].sort());
    // told to, it goes too; the unverified object is never removed by age
    const again = await cleanupByAge(context(P), { olderThan: '30d', allowLast: true });
    expect(again.removed).toEqual([`backup/${olds[2]}`]);
    expect(await stored(P)).toEqual([planted]);
  });

  it('store: keep-last counts only verified backups', async () => {
    const P = 'c-keeplast/';
    for (const n of olds) await backup(context(P), n);
    await plant(P, name(200, 31));
    const r = await cleanupByAge(context(P), { olderThan: '30d', keepLast: 2 });
    expect(r.removed).toEqual([`backup/${olds[0]}`]);
    expect(r.items.find((i) => i.volname === `backup/${olds[1]}`)).toMatchObject({ action: 'keep', reason: 'keep-last' });
  });

  it('pve-s3-maintenance --action cleanup --older-than 30d keeps the last one and names --allow-last', async () => {
    requireBuild();
    const P = 'c-cli/';
    for (const n of olds) await backup(context(P), n);
    const env = s3Env(dir, c.bucket, { S3_PREFIX: P, PVE_S3_MANIFEST_KEY_FILE: testManifestKey(dir).file });
    const r = await run('pve-s3-maintenance', ['--action', 'cleanup', '--older-than', '30d'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kept \(last-verified\)/);
    expect(r.stderr).toContain('kept the last verified backup of 1 guest although older than 30d: add --allow-last to remove it too');
    expect(await stored(P)).toEqual([olds[2]!]);
    const all = await run('pve-s3-maintenance', ['--action', 'cleanup', '--older-than', '30d', '--allow-last'], { env });
    expect(all.code, all.stderr).toBe(0);
    expect(await stored(P)).toEqual([]);
    const wrong = await run('pve-s3-maintenance', ['--action', 'prune', '--keep-last', '1', '--allow-last'], { env });
    expect(wrong.code).toBe(2);
  });
});

describe('prunePlan', () => {
  it('keep-all still lists unverified backups as unverified', async () => {
    const P = 'p-all/';
    await plant(P, name(300, 1));
    const plan = await prunePlan(context(P), { 'keep-all': true });
    expect(plan.map((e) => e.mark)).toEqual(['unverified']);
  });
});
