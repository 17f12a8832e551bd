// The vzdump hook as vzdump runs it: `<script> <phase> [<mode> <vmid>]` with STOREID, TARGET,
// LOGFILE, DUMPDIR, VMTYPE, HOSTNAME in the environment, against a storage.cfg holding s3 storages
// and a dir storage, and the real RadosGW.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveName } from '../../host/src/pve/volname.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, body, cfgEnv, keys, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let n = 0;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('hook');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-hook-'));
  env = await cfgEnv(dir, [
    s3Section('s3bk', c.bucket, { prefix: 'pve/', path: join(dir, 's3bk'), multipart_chunk_size: '5' }),
    s3Section('s3keep', c.bucket, { prefix: 'keep/', path: join(dir, 's3keep'), keep_local: '1' }),
    { ...s3Section('s3bad', c.bucket, { prefix: 'bad/', path: join(dir, 's3bad') }), secret: 'notTheRightSecret000000000000000000000' },
    { type: 'dir', id: 'local', props: { path: join(dir, 'local'), content: 'backup,iso' } },
  ]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** A finished vzdump archive in the storage's dump dir, as vzdump leaves it before backup-end. */
async function archive(storage: string, o: { size?: number; notes?: string; protected?: boolean } = {}) {
  const dumpdir = join(dir, storage, 'dump');
  await mkdir(dumpdir, { recursive: true });
  // distinct seconds: several backups of guest 100 in one test run
  const name = archiveName({ vmid: 100, guestType: 'qemu', compression: 'zst', time: new Date(Date.UTC(2024, 0, 1, 0, 0, n++)) });
  const target = join(dumpdir, name);
  const data = randomBytes(o.size ?? 2 * MiB);
  await writeFile(target, data);
  if (o.notes !== undefined) await writeFile(target + '.notes', o.notes);
  if (o.protected) await writeFile(target + '.protected', '');
  const log = join(dumpdir, name.replace(/\.vma\.zst$/, '.log'));
  return { name, target, data, dumpdir, log, logName: name.replace(/\.vma\.zst$/, '.log') };
}

const hook = (args: string[], vz: Record<string, string>) =>
  run('pve-s3-vzdump-hook', args, { env: { ...env, VMTYPE: 'qemu', HOSTNAME: 'pve1', ...vz } });

describe('vzdump hook on an s3 storage', () => {
  it('a whole job: job-start, backup-start, backup-end uploads + verifies + drops the local copy, log-end uploads the log, job-end', async () => {
    const a = await archive('s3bk', { size: 11 * MiB, notes: 'nightly\nVM 100', protected: true });
    const vz = { STOREID: 's3bk', DUMPDIR: a.dumpdir };
    for (const [phase, extra] of [['job-start', []], ['backup-start', ['snapshot', '100']], ['pre-stop', ['stop', '100']]] as const) {
      const r = await hook([phase, ...extra], vz);
      expect(r.code, `${phase}: ${r.stderr}`).toBe(0);
    }
    expect(await keys(c, 'pve/')).toEqual([]);

    let r = await hook(['backup-end', 'snapshot', '100'], { ...vz, TARGET: a.target });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`uploaded s3bk:backup/${a.name.replaceAll('.', '\\.')} in .* verified; local copy removed`));
    expect(await keys(c, 'pve/')).toEqual([
      `pve/dump/${a.name}`,
      `pve/dump/${a.name}.notes`,
      `pve/dump/${a.name}.protected`,
      `pve/dump/${a.name}.s3manifest`,
    ]);
    expect((await body(c, `pve/dump/${a.name}`)).equals(a.data)).toBe(true);
    expect((await body(c, `pve/dump/${a.name}.notes`)).toString()).toBe('nightly\nVM 100');
    expect(existsSync(a.target)).toBe(false);
    expect(existsSync(a.target + '.notes')).toBe(false);

    await writeFile(a.log, 'INFO: Starting Backup of VM 100 (qemu)\nINFO: Finished Backup of VM 100 (00:00:05)\n');
    r = await hook(['log-end', 'snapshot', '100'], { ...vz, TARGET: a.target, LOGFILE: a.log });
    expect(r.code, r.stderr).toBe(0);
    expect((await body(c, `pve/dump/${a.logName}`)).toString()).toContain('Finished Backup of VM 100');
    expect(existsSync(a.log)).toBe(false);

    r = await hook(['job-end'], vz);
    expect(r.code).toBe(0);
    // what PVE then lists
    const l = await run('pve-s3-restore', ['--storage', 's3bk', '--list', '--json'], { env });
    expect(JSON.parse(l.stdout)).toEqual([expect.objectContaining({ volid: `s3bk:backup/${a.name}`, notes: 'nightly', protected: true, log: true, verified: true })]);
  });

  it("a backup the Backup Provider made (TARGET is the bare archive name): backup-end and log-end do nothing and succeed", async () => {
    const a = await archive('s3bk');
    await writeFile(a.log, 'INFO: Finished Backup of VM 100 (00:00:05)\n');
    const vz = { STOREID: 's3bk', DUMPDIR: a.dumpdir, TARGET: a.name };
    for (const phase of ['backup-end', 'log-end']) {
      const r = await hook([phase, 'snapshot', '100'], { ...vz, ...(phase === 'log-end' ? { LOGFILE: a.log } : {}) });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`${a.name} was stored in storage 's3bk' by the Backup Provider (its log too): nothing for the hook to do`);
    }
    expect((await keys(c, 'pve/')).filter((k) => k.includes(a.name))).toEqual([]);
    expect(existsSync(a.target)).toBe(true);
    expect(existsSync(a.log)).toBe(true);
  });

  it('keep_local 1: uploaded and verified, the local archive stays', async () => {
    const a = await archive('s3keep');
    const r = await hook(['backup-end', 'snapshot', '100'], { STOREID: 's3keep', DUMPDIR: a.dumpdir, TARGET: a.target });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/local copy kept \(keep_local\)/);
    expect(existsSync(a.target)).toBe(true);
    expect(await keys(c, 'keep/')).toEqual([`keep/dump/${a.name}`, `keep/dump/${a.name}.s3manifest`]);
  });

  it('a failed upload fails the hook with one clear line and keeps the local archive', async () => {
    const a = await archive('s3bad');
    const r = await hook(['backup-end', 'snapshot', '100'], { STOREID: 's3bad', DUMPDIR: a.dumpdir, TARGET: a.target });
    expect(r.code).toBe(4);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(/^pve-s3-vzdump-hook: access key or secret rejected/);
    expect(r.stderr).not.toContain('notTheRightSecret');
    expect(existsSync(a.target)).toBe(true);
    expect(await keys(c, 'bad/')).toEqual([]);
  });

  it('S3_* variables exported in the shell that ran vzdump change nothing: the storage.cfg section decides (issue 10 §3)', async () => {
    const elsewhere = await freshBucket('hook-elsewhere');
    try {
      const a = await archive('s3bk');
      const t = testS3();
      const r = await hook(['backup-end', 'snapshot', '100'], {
        STOREID: 's3bk',
        DUMPDIR: a.dumpdir,
        TARGET: a.target,
        S3_BUCKET: elsewhere.bucket,
        S3_PREFIX: 'elsewhere/',
        S3_ENDPOINT: t.endpoint.replace(/:\d+$/, ':9'),
        S3_ACCESS_KEY: t.accessKeyId,
        S3_SECRET_KEY: t.secretAccessKey,
        S3_PROFILE: 'nowhere',
      });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`to storage 's3bk' \\(s3://${c.bucket}/pve/\\)`));
      expect(await keys(c, `pve/dump/${a.name}`)).toEqual([`pve/dump/${a.name}`, `pve/dump/${a.name}.s3manifest`]);
      expect(await keys(elsewhere, '')).toEqual([]);
      expect(existsSync(a.target)).toBe(false);
    } finally {
      await dropBucket(elsewhere);
    }
  });

  it('a missing TARGET fails (exit 3) rather than reporting success', async () => {
    const r = await hook(['backup-end', 'snapshot', '100'], { STOREID: 's3bk', TARGET: join(dir, 's3bk', 'dump', 'vzdump-qemu-100-2024_01_01-09_09_09.vma.zst') });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/does not exist: nothing to upload to storage 's3bk'/);
  });
});

describe('vzdump hook on other storages', () => {
  it('a dir storage, an unknown storage and no storage at all are left untouched (exit 0, silent)', async () => {
    const localDump = join(dir, 'local', 'dump');
    await mkdir(localDump, { recursive: true });
    const target = join(localDump, 'vzdump-qemu-100-2024_02_02-02_02_02.vma.zst');
    await writeFile(target, 'local backup');
    const before = await keys(c);
    const envs: Record<string, string>[] = [{ STOREID: 'local', DUMPDIR: localDump, TARGET: target }, { STOREID: 'elsewhere', TARGET: target }, { TARGET: target }];
    for (const vz of envs) {
      for (const phase of ['backup-end', 'log-end']) {
        const r = await hook([phase, 'snapshot', '100'], { ...vz, LOGFILE: target });
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        expect(r.stdout).toBe('');
      }
    }
    expect(existsSync(target)).toBe(true);
    expect(await keys(c)).toEqual(before);
  });

  it('no phase is a usage error; --help explains the installation', async () => {
    let r = await hook([], {});
    expect(r.code).toBe(2);
    r = await hook(['--help'], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('script: /usr/bin/pve-s3-vzdump-hook');
  });
});
