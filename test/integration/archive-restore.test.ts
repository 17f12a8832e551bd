// Issue 14 §1: restoring a backup that an S3 lifecycle moved to an archive class. RadosGW has no
// archive tiers, so the project's fault proxy answers for the chosen keys as AWS documents
// (test/helpers/archive-tier.ts, each behaviour cited there) in front of the real gateway that
// holds the bytes. pve-s3-restore requests the restore once (HEAD first: never again while it
// runs), exits 6 with the tier, AWS's typical time and what to run, or with --wait polls HEAD and
// then restores the bytes, verified.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, cfgEnv, directAndProxied, requireBuild, run, s3Section } from './cli-helpers.js';

const A100 = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
const A101 = 'vzdump-qemu-101-2024_05_06-07_08_09.vma.zst';
const A102 = 'vzdump-lxc-102-2024_05_06-07_08_09.tar.zst';
let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
const data = new Map<string, Buffer>();

const key = (name: string) => `dump/${name}`;
const exact = (name: string) => new RegExp(`^dump/${name.replace(/\./g, '\\.')}$`);
const posts = () => proxy.requests.filter((r) => r.method === 'POST' && /[?&]restore(=|&|$)/.test(r.target));
const restore = (name: string, args: string[] = []) => run('pve-s3-restore', ['--storage', 'viaproxy', '--source', name, ...args], { env });

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('archive-restore');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-archive-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const storages = await directAndProxied(dir, c.bucket, proxy.url);
  env = storages.env;
  for (const name of [A100, A101, A102]) {
    const d = randomBytes(300 * 1024);
    data.set(name, d);
    await writeFile(join(dir, name), d);
    const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, name)], { env });
    expect(r.code, r.stderr).toBe(0);
  }
  await storages.shareKey();
});

afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  proxy.archive.clear();
  proxy.clearLog();
});

describe('an archived backup without --wait', () => {
  it('requests its restore once (exit 6, tier and time named), then does not ask again while it runs, then restores', async () => {
    proxy.archive.mark(exact(A100), { storageClass: 'GLACIER', restoreMs: 600_000 });
    const out = await mkdtemp(join(dir, 'out-'));
    const r = await restore(A100, ['--restore-tier', 'Bulk', '--destination', out]);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(
      new RegExp(`^pve-s3-restore: backup '${A100.replace(/\./g, '\\.')}' is archived in GLACIER: it is not readable until restored; a restore was requested at tier Bulk, typically ready in 5-12 hours; run the same command again then \\(or add --wait to wait for it\\) \\[ArchiveRestorePending\\]\\n$`),
    );
    expect(posts()).toHaveLength(1);
    expect(proxy.archive.restores).toEqual([{ key: key(A100), tier: 'Bulk', days: 7, at: expect.any(Number) }]);
    // nothing of it was read (its manifest, not archived, came in the restore's first round), nothing written
    expect(proxy.requests.filter((q) => q.method === 'GET' && q.target.includes(A100) && !q.target.includes('.s3manifest'))).toEqual([]);
    expect(await readdir(out)).toEqual([]);

    proxy.clearLog();
    const again = await restore(A100, ['--destination', out]);
    expect(again.code, again.stderr).toBe(6);
    expect(again.stderr).toMatch(/its restore was requested before and is still running; run the same command again then/);
    expect(posts()).toHaveLength(0);
    expect(proxy.archive.restores).toHaveLength(1);

    proxy.archive.finish(key(A100));
    proxy.clearLog();
    const done = await restore(A100, ['--destination', out]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/verified against the manifest/);
    expect(posts()).toHaveLength(0);
    expect(Buffer.compare(await readFile(join(out, A100)), data.get(A100)!)).toBe(0);
  });

  it('asks for every archived object the restore reads (archive and manifest), with the storage key defaults', async () => {
    proxy.archive.mark(exact(A101), { storageClass: 'DEEP_ARCHIVE', restoreMs: 600_000 });
    proxy.archive.mark(exact(A101 + '.s3manifest'), { storageClass: 'DEEP_ARCHIVE', restoreMs: 600_000 });
    const r = await restore(A101, ['--restore-days', '2', '--destination', join(dir, 'never')]);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/is archived in DEEP_ARCHIVE: 2 of its objects are not readable until restored; a restore was requested at tier Standard, typically ready within 12 hours/);
    expect(posts()).toHaveLength(2);
    expect(proxy.archive.restores.map((x) => [x.key, x.tier, x.days]).sort()).toEqual([
      [key(A101), 'Standard', 2],
      [key(A101) + '.s3manifest', 'Standard', 2],
    ]);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('Expedited from DEEP_ARCHIVE is refused before anything is sent (exit 2, naming key, value and what is allowed)', async () => {
    proxy.archive.mark(exact(A101), { storageClass: 'DEEP_ARCHIVE' });
    const r = await restore(A101, ['--restore-tier', 'Expedited', '--destination', join(dir, 'never')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/invalid restore_tier 'Expedited': DEEP_ARCHIVE offers no Expedited retrieval: use Standard \(typically within 12 hours\) or Bulk \(within 48 hours\)/);
    expect(posts()).toHaveLength(0);
  });

  it('INTELLIGENT_TIERING in an archive tier: restored without Days, as AWS requires', async () => {
    proxy.archive.mark(exact(A102), { storageClass: 'INTELLIGENT_TIERING', accessTier: 'DEEP_ARCHIVE_ACCESS', restoreMs: 600_000 });
    const r = await restore(A102, ['--destination', join(dir, 'never')]);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stderr).toMatch(/archived in INTELLIGENT_TIERING \(DEEP_ARCHIVE_ACCESS\).*requested at tier Standard, typically ready within 12 hours/);
    expect(proxy.archive.restores).toEqual([{ key: key(A102), tier: 'Standard', at: expect.any(Number) }]);
  });
});

describe('--wait', () => {
  it('polls HEAD with a progress line, then restores the bytes verified', async () => {
    proxy.archive.mark(exact(A101), { storageClass: 'GLACIER', restoreMs: 4000 });
    const out = await mkdtemp(join(dir, 'wait-'));
    const r = await restore(A101, ['--restore-tier', 'Expedited', '--wait', '--wait-interval', '1', '--destination', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/backup '.*' is archived: a restore was requested at tier Expedited, typically ready in 1-5 minutes; waiting \(checking every 1 s; Ctrl-C stops waiting/);
    expect(r.stderr).toMatch(/waiting for the restore of '.*' from its archive class: 0 of 1 object restored, 00:00:0\d waited/);
    expect(r.stderr).toMatch(/1 of 1 object restored/);
    expect(r.stdout).toMatch(/verified against the manifest/);
    expect(posts()).toHaveLength(1);
    expect(Buffer.compare(await readFile(join(out, A101)), data.get(A101)!)).toBe(0);
    // HEAD showed the restore running, then the restored copy's expiry
    const heads = proxy.requests.filter((q) => q.method === 'HEAD' && q.target.endsWith(A101));
    expect(heads.length).toBeGreaterThanOrEqual(3);
  });

  it('Ctrl-C stops the waiting, not the restore: exit 1, nothing written, the next run finds it running', async () => {
    proxy.archive.mark(exact(A102), { storageClass: 'GLACIER', restoreMs: 600_000 });
    const out = await mkdtemp(join(dir, 'int-'));
    const child = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), '--storage', 'viaproxy', '--source', A102, '--wait', '--wait-interval', '60', '--destination', out], { env });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // once: a second Ctrl-C is the user insisting, which ends the process at once
      if (!sent && /0 of 1 object restored/.test(stderr)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, stderr).toBe(1);
    expect(stderr).toMatch(/waiting for the restore of '.*' was interrupted; the restore goes on in S3: run the command again to continue \[Aborted\]/);
    expect(await readdir(out)).toEqual([]);
    expect(proxy.archive.restores).toHaveLength(1);
    proxy.clearLog();
    const again = await restore(A102, ['--destination', out]);
    expect(again.code).toBe(6);
    expect(posts()).toHaveLength(0);
  });

  it('to stdout as well', async () => {
    proxy.archive.mark(exact(A100), { storageClass: 'GLACIER', restoreMs: 1200 });
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--source', A100, '--destination', '-', '--wait', '--wait-interval', '1'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(Buffer.compare(r.out, data.get(A100)!)).toBe(0);
  });
});

describe('bad values', () => {
  it.each([
    [['--restore-tier', 'Fastest'], /invalid --restore-tier 'Fastest': must be one of Standard, Bulk, Expedited/],
    [['--restore-days', '0'], /invalid --restore-days '0': must be an integer 1\.\.36500 \(days\)/],
    [['--restore-days', 'week'], /invalid --restore-days 'week': must be an integer 1\.\.36500 \(days\)/],
    [['--wait-interval', '5'], /--wait-interval needs --wait/],
    [['--wait', '--wait-interval', '0'], /invalid --wait-interval '0': must be an integer 1\.\.86400/],
  ])('%j: exit 2 before any request', async (args, msg) => {
    const r = await restore(A100, [...args, '--destination', join(dir, 'never')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(msg);
    expect(proxy.requests).toEqual([]);
  });

  it('the storage keys are checked like every key', async () => {
    const d = await mkdtemp(join(dir, 'cfg-'));
    const base = s3Section('bad', c.bucket);
    for (const [k, v, msg] of [
      ['restore_tier', 'Fastest', /invalid restore_tier 'Fastest': must be one of Standard, Bulk, Expedited/],
      ['restore_days', '-1', /invalid restore_days '-1': must be an integer 1\.\.36500 \(days\)/],
    ] as const) {
      const e = await cfgEnv(d, [{ ...base, props: { ...base.props, [k]: v } }]);
      const r = await run('pve-s3-restore', ['--storage', 'bad', '--source', A100, '--destination', join(d, 'x')], { env: e });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });
});

describe('check-integrity', () => {
  const check = (args: string[] = []) => run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'check-integrity', ...args], { env });

  it('counts archived backups apart (not corrupt, not missing) and reads none of them', async () => {
    proxy.archive.mark(exact(A100), { storageClass: 'GLACIER', restoreMs: 600_000 });
    proxy.archive.mark(exact(A102), { storageClass: 'INTELLIGENT_TIERING', accessTier: 'ARCHIVE_ACCESS', restoreMs: 600_000 });
    const r = await check();
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^ARCHIVED +viaproxy:backup/${A100.replace(/\./g, '\\.')} \\(300 KiB\\): ${A100.replace(/\./g, '\\.')} archived \\(GLACIER\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^ARCHIVED +viaproxy:backup/${A102.replace(/\./g, '\\.')} .*archived \\(INTELLIGENT_TIERING \\(ARCHIVE_ACCESS\\)\\)$`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^GOOD +viaproxy:backup/${A101.replace(/\./g, '\\.')}`, 'm'));
    expect(r.stdout).toMatch(/^integrity: 1 good, 0 corrupt, 2 archived$/m);
    expect(r.stderr).toMatch(/archived: in an archive storage class, so not read \(neither corrupt nor missing\): --restore-archived requests their restore/);
    expect(posts()).toHaveLength(0);
    expect(proxy.requests.filter((q) => q.method === 'GET' && (q.target.includes(A100) || q.target.includes(A102)))).toEqual([]);
  });

  it('--restore-archived requests their restores once (exit 6), then checks them once restored', async () => {
    proxy.archive.mark(exact(A100), { storageClass: 'GLACIER', restoreMs: 600_000 });
    proxy.archive.mark(exact(A102), { storageClass: 'INTELLIGENT_TIERING', accessTier: 'ARCHIVE_ACCESS', restoreMs: 600_000 });
    const r = await check(['--restore-archived', '--restore-tier', 'Expedited', '--restore-days', '1']);
    expect(r.code, r.stderr).toBe(6);
    expect(r.stdout).toMatch(new RegExp(`^ARCHIVED .*${A100.replace(/\./g, '\\.')} restoring \\(GLACIER\\): restore requested$`, 'm'));
    expect(r.stdout).toMatch(/^integrity: 1 good, 0 corrupt, 2 archived$/m);
    expect(proxy.archive.restores.map((x) => [x.key, x.tier, x.days]).sort()).toEqual([
      [key(A102), 'Expedited', undefined],
      [key(A100), 'Expedited', 1],
    ]);
    proxy.clearLog();
    const again = await check(['--restore-archived']);
    expect(again.code, again.stderr).toBe(6);
    expect(again.stdout).toMatch(new RegExp(`${A100.replace(/\./g, '\\.')} restoring \\(GLACIER\\)$`, 'm'));
    expect(posts()).toHaveLength(0);
    proxy.archive.finish(key(A100));
    proxy.archive.finish(key(A102));
    const done = await check(['--restore-archived']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^integrity: 3 good, 0 corrupt$/m);
  });

  it('--restore-tier without --restore-archived is refused', async () => {
    const r = await check(['--restore-tier', 'Bulk']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--restore-tier needs --restore-archived/);
  });
});
