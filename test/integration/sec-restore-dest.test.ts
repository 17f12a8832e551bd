// Issue 10 §9: `pve-s3-restore --destination` in a shared directory. Another user can plant a
// symlink under the name the restore will write (root then overwrote the link's target), or
// create the file while the restore runs. The destination is never followed through a symlink,
// and "does it exist" is decided once, atomically, when the restored file is put in place: a
// file that appears meanwhile is never replaced without --force. Each race is made certain by
// holding the restore's request in the fault proxy while the test plants the file.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, lstat, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { cfgEnv, requireBuild, run, s3Section, type Run } from './cli-helpers.js';

const ARCH = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let data: Buffer;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-restore-dest');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-dest-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const direct = s3Section('s3a', c.bucket);
  env = await cfgEnv(dir, [direct, { ...direct, id: 'viaproxy', props: { ...direct.props, endpoint: proxy.url } }]);
  data = randomBytes(256 * 1024);
  await writeFile(join(dir, ARCH), data);
  const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH)], { env });
  expect(r.code, r.stderr).toBe(0);
  // two storages on one bucket and prefix share the manifest key (docs/ARCHITECTURE.md "Manifest
  // key"): without it 'viaproxy' would refuse s3a's backup as unverified
  await copyFile(join(dir, 'priv', 's3a.manifest-key'), join(dir, 'priv', 'viaproxy.manifest-key'));
});

afterAll(async () => {
  await proxy.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** A restore through the proxy whose first `method` request for the archive is held until the
 *  test has done `meanwhile`: the command has made its checks and not yet put the file in place. */
async function restoreWhile(method: 'HEAD' | 'GET', args: string[], meanwhile: () => Promise<void>): Promise<Run> {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  proxy.clearLog();
  proxy.plan([{ match: { method, path: new RegExp(`/${ARCH.replace(/\./g, '\\.')}(\\?|$)`) }, fault: { kind: 'delay', until: gate } }]);
  const running = run('pve-s3-restore', ['--storage', 'viaproxy', '--source', ARCH, ...args], { env });
  try {
    for (let i = 0; !proxy.requests.some((q) => q.fault === 'delay'); i++) {
      if (i > 6000) throw new Error(`the restore never sent its ${method}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await meanwhile();
  } finally {
    release();
  }
  const r = await running;
  proxy.plan([]);
  return r;
}

const tempsIn = async (d: string) => (await readdir(d)).filter((n) => n.includes('.pve-s3-tmp-'));

describe('a symlink planted at the destination', () => {
  it('without --force: refused (exit 2), link and target untouched', async () => {
    const d = await mkdtemp(join(dir, 'shared-'));
    const victim = join(d, 'victim');
    await writeFile(victim, 'precious');
    await symlink(victim, join(d, 'out.vma.zst'));
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', join(d, 'out.vma.zst')], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is a symbolic link.*\[DestinationExists\]/);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(await readlink(join(d, 'out.vma.zst'))).toBe(victim);
  });

  it('with --force: the link itself is replaced by the restored file; its target is never written', async () => {
    const d = await mkdtemp(join(dir, 'shared-'));
    const victim = join(d, 'victim');
    await writeFile(victim, 'precious');
    await symlink(victim, join(d, 'out.vma.zst'));
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', join(d, 'out.vma.zst'), '--force'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(join(d, 'out.vma.zst'))).isFile()).toBe(true);
    expect((await readFile(join(d, 'out.vma.zst'))).equals(data)).toBe(true);
  });

  it('a symlink planted while the restore runs (--force) is replaced, never followed', async () => {
    const d = await mkdtemp(join(dir, 'shared-'));
    const victim = join(d, 'victim');
    await writeFile(victim, 'precious');
    const dest = join(d, 'out.vma.zst');
    const r = await restoreWhile('GET', ['--destination', dest, '--force'], () => symlink(victim, dest));
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(dest)).isFile()).toBe(true);
    expect((await readFile(dest)).equals(data)).toBe(true);
  });
});

describe('a file that appears while the restore runs (no --force)', () => {
  for (const method of ['HEAD', 'GET'] as const) {
    it(`appearing during the ${method}: refused at the end (exit 2), that file kept, no temp file left`, async () => {
      const d = await mkdtemp(join(dir, 'shared-'));
      const dest = join(d, 'out.vma.zst');
      const r = await restoreWhile(method, ['--destination', dest], () => writeFile(dest, 'someone else'));
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/already exists.*\[DestinationExists\]/);
      expect(await readFile(dest, 'utf8')).toBe('someone else');
      expect(await tempsIn(d)).toEqual([]);
    });
  }

  it('a symlink appearing during the download is not followed either', async () => {
    const d = await mkdtemp(join(dir, 'shared-'));
    const victim = join(d, 'victim');
    await writeFile(victim, 'precious');
    const dest = join(d, 'out.vma.zst');
    const r = await restoreWhile('HEAD', ['--destination', dest], () => symlink(victim, dest));
    expect(r.code).toBe(2);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(dest)).isSymbolicLink()).toBe(true);
    expect(existsSync(join(d, 'victim'))).toBe(true);
  });
});

describe('leftovers of a killed restore', () => {
  it('only our own regular files are removed, never a link or another user-planted name of another type', async () => {
    const d = await mkdtemp(join(dir, 'shared-'));
    const victim = join(d, 'victim');
    await writeFile(victim, 'precious');
    const planted = join(d, `.${ARCH}.pve-s3-tmp-aaaaaaaaaaaa`);
    await symlink(victim, planted);
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', d], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(planted)).isSymbolicLink()).toBe(true);
  });
});
