// What an administrator hits at 3 a.m., as subprocesses against RadosGW: a pipeline whose producer
// died before writing (empty stdin), a restore aimed at a device or through a symlink, a path
// where a volume name belongs, a reader that stops early, the hook under `vzdump --stdout`, a
// storage class the gateway lacks, and check-integrity's advice.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { BIN, MiB, body, cfgEnv, keys, requireBuild, run, s3Env, s3Section } from './cli-helpers.js';

const ARCH = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let data: Buffer;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-edge');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-cli-edge-'));
  env = await cfgEnv(dir, [s3Section('s3e', c.bucket, { multipart_chunk_size: '5' }), s3Section('s3ia', c.bucket, { prefix: 'ia/', storage_class: 'DEEP_ARCHIVE' })]);
  data = randomBytes(6 * MiB + 3);
  await writeFile(join(dir, ARCH), data);
  const r = await run('pve-s3-backup', ['--storage', 's3e', '--source', join(dir, ARCH)], { env });
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('backup from stdin', () => {
  it('an empty stream (the producer failed first) uploads nothing and exits 1', async () => {
    const before = await keys(c);
    for (const extra of [['--vmid', '100', '--type', 'qemu'], ['--name', 'vzdump-qemu-100-2024_09_09-09_09_09.vma.zst']]) {
      const r = await run(`false | ${process.execPath} ${join(BIN, 'pve-s3-backup.js')} --storage s3e --source - ${extra.join(' ')}`, [], { env, shell: true });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/stdin gave no data: nothing was uploaded\. The command before '\|' probably failed.*pipefail/)]);
    }
    expect(await keys(c)).toEqual(before);
    expect(await c.listMultipartUploads({})).toEqual([]);
  });

  it('an upload without a manifest key (S3_* alone) says it was checked but is unsigned, not "NOT verified"', async () => {
    const name = 'vzdump-qemu-777-2024_07_07-07_07_07.vma.zst';
    await writeFile(join(dir, name), randomBytes(1000));
    const r = await run('pve-s3-backup', ['--source', join(dir, name), '--prefix', 'nokey/'], { env: s3Env(dir, c.bucket) });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^no manifest key for storage 'env': this upload is unsigned and will be listed as unverified; /);
    expect(r.stdout.trimEnd()).toMatch(new RegExp(`^uploaded env:backup/${name.replaceAll('.', '\\.')} \\(.*; checked, but unsigned: listed as unverified\\)$`));
    const l = await run('pve-s3-restore', ['--list', '--prefix', 'nokey/'], { env: s3Env(dir, c.bucket) });
    expect(l.stdout).toMatch(new RegExp(`^env:backup/${name.replaceAll('.', '\\.')}\\s+777\\s+qemu\\s.*\\sunverified\\s`, 'm'));
  });

  it('a glob that matched nothing says so (exit 3)', async () => {
    const r = await run(`${process.execPath} ${join(BIN, 'pve-s3-backup.js')} --storage s3e --source ${dir}/vzdump-qemu-999-*.vma.zst --vmid 999`, [], { env, shell: true });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/no file matches '.*vzdump-qemu-999-\*\.vma\.zst' \(check the directory and the pattern\)/);
  });

  it('usage errors still come first, before stdin is read', async () => {
    const r = await run('pve-s3-backup', ['--storage', 's3e', '--source', '-', '--vmid', '100'], { env, input: Buffer.alloc(0) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--source - needs --name NAME, or --vmid and --type/);
  });
});

describe('backup --from-command (the producer\'s exit status decides)', () => {
  const backup = (cmd: string, extra: string[] = []) => run('pve-s3-backup', ['--storage', 's3e', '--vmid', '4100', '--type', 'qemu', '--from-command', cmd, ...extra], { env });

  it('a producer that fails midway: exit 1, its messages shown, no object and no multipart upload left', async () => {
    // 12 MiB: several 5 MiB parts are already up when the producer reports its failure
    const r = await backup('head -c 12582912 /dev/urandom; echo "ERROR: Backup of VM 4100 failed" >&2; exit 3');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ERROR: Backup of VM 4100 failed/);
    expect(r.stderr).toMatch(/exited with status 3: its output is incomplete, so the upload was cancelled and nothing was stored/);
    expect(await keys(c, 'dump/vzdump-qemu-4100-')).toEqual([]);
    expect(await c.listMultipartUploads({ prefix: 'dump/vzdump-qemu-4100-' })).toEqual([]);
  });

  it('a producer that fails before any output: its status, not "stdin gave no data"', async () => {
    const r = await backup('echo "ERROR: guest agent not running" >&2; exit 2');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/exited with status 2: its output is incomplete/);
    expect(await keys(c, 'dump/vzdump-qemu-4100-')).toEqual([]);
  });

  it('a producer that succeeds: its exact bytes under a PVE name; --dry-run does not run it', async () => {
    const f = join(dir, 'produced.bin');
    await writeFile(f, Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(7 * MiB)]));
    const r = await backup(`cat ${f}`, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    const [o] = JSON.parse(r.stdout) as Array<{ key: string; verified: boolean }>;
    expect(o!.key).toMatch(/^dump\/vzdump-qemu-4100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/);
    expect(o!.verified).toBe(true);
    expect((await body(c, o!.key)).equals(await readFile(f))).toBe(true);
    const marker = join(dir, 'ran');
    const d = await backup(`touch ${marker}`, ['--dry-run']);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^would run 'touch .*' and upload its output to storage 's3e'/);
    expect(existsSync(marker)).toBe(false);
  });
});

describe('backup under a name the bucket already holds', () => {
  it('refuses without --force (exit 2, object untouched, nothing of the batch uploaded); --force replaces it', async () => {
    const other = join(dir, 'vzdump-qemu-100-2024_05_07-00_00_00.vma.zst');
    await writeFile(other, 'second');
    const changed = join(dir, 'again', ARCH);
    await mkdir(join(dir, 'again'), { recursive: true });
    await writeFile(changed, 'a different archive under the same name');
    let r = await run('pve-s3-backup', ['--storage', 's3e', '--source', other, changed], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`'s3e:backup/${ARCH.replaceAll('.', '\\.')}' is already in the bucket \\(${data.length} bytes, uploaded .* UTC\\): nothing uploaded; add --force to replace it`));
    expect((await body(c, `dump/${ARCH}`)).equals(data)).toBe(true);
    expect(await keys(c, 'dump/vzdump-qemu-100-2024_05_07')).toEqual([]);
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', changed, '--force'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((await body(c, `dump/${ARCH}`)).toString()).toBe('a different archive under the same name');
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', join(dir, ARCH), '--force'], { env });
    expect(r.code, r.stderr).toBe(0);
  });

  it('the same file again is a no-op, not a conflict: exit 0, nothing transferred, sidecars brought up to date', async () => {
    const name = 'vzdump-qemu-100-2024_05_13-00_00_00.vma.zst';
    const f = join(dir, 'same', name);
    await mkdir(join(dir, 'same'), { recursive: true });
    await writeFile(f, randomBytes(11 * MiB)); // multipart with 5 MiB parts: every part compared
    let r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f], { env });
    expect(r.code, r.stderr).toBe(0);
    const before = (await c.headObject(`dump/${name}`)).lastModified;
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f, '--notes', 'added later', '--protected', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([expect.objectContaining({ alreadyStored: true, verified: true, notes: true, protected: true })]);
    expect((await c.headObject(`dump/${name}`)).lastModified).toEqual(before);
    expect((await body(c, `dump/${name}.notes`)).toString()).toBe('added later');
    // protected now, and still the same bytes: a re-run is fine; one changed byte is refused
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/is already in the bucket, identical to .* \(checked against its manifest\): not uploaded again/);
    const changed = await readFile(f);
    changed[6 * MiB]! ^= 1;
    await writeFile(f, changed);
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already in the bucket and protected/);
  });

  it('never replaces a protected backup, --force or not, from the command or the hook', async () => {
    const name = 'vzdump-qemu-100-2024_05_08-00_00_00.vma.zst';
    const f = join(dir, 'prot', name);
    await mkdir(join(dir, 'prot'), { recursive: true });
    await writeFile(f, 'kept forever');
    let r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f, '--protected'], { env });
    expect(r.code, r.stderr).toBe(0);
    await writeFile(f, 'an impostor');
    r = await run('pve-s3-backup', ['--storage', 's3e', '--source', f, '--force'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is already in the bucket and protected: a protected backup is never replaced/);
    r = await run('pve-s3-vzdump-hook', ['backup-end', 'snapshot', '100'], { env: { ...env, STOREID: 's3e', TARGET: f, DUMPDIR: join(dir, 'prot'), VMTYPE: 'qemu' } });
    expect(r.code).toBe(2);
    expect(existsSync(f)).toBe(true); // the local archive stays when the hook fails
    expect((await body(c, `dump/${name}`)).toString()).toBe('kept forever');
  });
});

describe('restore destination', () => {
  it('refuses a device or a FIFO (exit 2, node untouched) instead of replacing it', async () => {
    const r = await run('pve-s3-restore', ['--storage', 's3e', '--source', ARCH, '--destination', '/dev/null', '--force'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/destination '\/dev\/null' is not a regular file \(a character device\): .*--destination -/);
    expect((await lstat('/dev/null')).isCharacterDevice()).toBe(true);
  });

  it('a file in a directory that does not exist: the --destination given and the missing directory, exit 2', async () => {
    const missing = join(dir, 'no-such-dir');
    const r = await run('pve-s3-restore', ['--storage', 's3e', '--source', ARCH, '--destination', join(missing, 'x.vma.zst')], { env });
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd()).toBe(`pve-s3-restore: destination '${join(missing, 'x.vma.zst')}': directory '${missing}' does not exist: create it first (mkdir -p), or name another [InvalidArgument]`);
    expect(existsSync(missing)).toBe(false);
  });

  it('never restores through a symlink: without --force refused, with --force the link itself is replaced (issue 10 §9)', async () => {
    const target = join(dir, 'real.vma.zst');
    const link = join(dir, 'link.vma.zst');
    await writeFile(target, 'old');
    await symlink(target, link);
    let r = await run('pve-s3-restore', ['--storage', 's3e', '--source', ARCH, '--destination', link], { env });
    expect(r.code).toBe(2);
    expect(await readlink(link)).toBe(target);
    r = await run('pve-s3-restore', ['--storage', 's3e', '--source', ARCH, '--destination', link, '--force'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((await lstat(link)).isFile()).toBe(true);
    expect((await readFile(link)).equals(data)).toBe(true);
    expect(await readFile(target, 'utf8')).toBe('old');
  });

  it('removes the temporary file a killed restore left, and nothing else', async () => {
    const sub = await mkdtemp(join(dir, 'killed-'));
    const leftover = join(sub, `.${ARCH}.pve-s3-tmp-0123456789ab`);
    const unrelated = join(sub, `.other.vma.zst.pve-s3-tmp-0123456789ab`);
    await writeFile(leftover, 'partial');
    await writeFile(unrelated, 'not ours to judge');
    const r = await run('pve-s3-restore', ['--storage', 's3e', '--source', ARCH, '--destination', sub], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/removed .*\.pve-s3-tmp-0123456789ab, left by an earlier restore that was killed/);
    expect(existsSync(leftover)).toBe(false);
    expect(existsSync(unrelated)).toBe(true);
    expect((await readFile(join(sub, ARCH))).equals(data)).toBe(true);
  });

  it('a path where a volume name belongs is refused before any request (exit 2)', async () => {
    for (const source of ['../etc/passwd', `/var/lib/vz/dump/${ARCH}`]) {
      const r = await run('pve-s3-restore', ['--storage', 's3e', '--source', source, '--destination', join(dir, 'never')], { env });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid volume '.*': not a path but an archive name as --list shows it/);
      expect(existsSync(join(dir, 'never'))).toBe(false);
    }
  });

  it('a reader that stops early: exit 1 and a message saying the archive it got is incomplete', async () => {
    const r = await run(`{ ${process.execPath} ${join(BIN, 'pve-s3-restore.js')} --storage s3e --source ${ARCH} --destination -; echo "restore exit $?" >&2; } | head -c 10 >/dev/null`, [], { env, shell: true });
    expect(r.stderr).toMatch(/restore exit 1$/m);
    expect(r.stderr).toMatch(/the command reading stdout stopped before the end of '.*' \(broken pipe\): it got an incomplete archive/);
  });
});

describe('storage class', () => {
  it('a class the gateway lacks: exit 1 and the message names the setting', async () => {
    const f = join(dir, 'small.iso');
    await writeFile(f, 'iso');
    const r = await run('pve-s3-backup', ['--storage', 's3ia', '--source', f], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/storage class 'DEEP_ARCHIVE' \(from the storage's storage_class\): use a class it supports/);
    expect(await keys(c, 'ia/')).toEqual([]);
  });
});

describe('vzdump hook', () => {
  it('backup-end with TARGET=- (vzdump --stdout) uploads nothing and does not fail the job', async () => {
    const r = await run('pve-s3-vzdump-hook', ['backup-end', 'snapshot', '100'], { env: { ...env, STOREID: 's3e', TARGET: '-', VMTYPE: 'qemu', HOSTNAME: 'pve1' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/vzdump --stdout\): nothing to upload/);
  });
});

describe('vzdump hook, log-end of a failed backup', () => {
  it('keeps the log locally and uploads nothing when the archive never reached the bucket', async () => {
    const dumpdir = await mkdtemp(join(dir, 'dump-'));
    const base = 'vzdump-qemu-100-2024_05_09-00_00_00';
    const log = join(dumpdir, `${base}.log`);
    await writeFile(log, 'ERROR: Backup of VM 100 failed - interrupted\n');
    const r = await run('pve-s3-vzdump-hook', ['log-end', 'snapshot', '100'], {
      env: { ...env, STOREID: 's3e', TARGET: join(dumpdir, `${base}.vma.zst`), LOGFILE: log, DUMPDIR: dumpdir, VMTYPE: 'qemu' },
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/is not in storage 's3e' \(the backup or its upload failed\): log .* kept locally, not uploaded/);
    expect(existsSync(log)).toBe(true);
    expect(await keys(c, `dump/${base}`)).toEqual([]);
  });
});

describe('check-integrity', () => {
  it('says what to do about a corrupt backup, and when there is nothing to check', async () => {
    const key = `dump/${ARCH}`;
    const bad = Buffer.from(data);
    bad[100]! ^= 0xff;
    await c.putObject(key, bad);
    let r = await run('pve-s3-maintenance', ['--storage', 's3e', '--action', 'check-integrity'], { env });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/corrupt: the stored data differs from what was uploaded: do not restore it; take a new backup/);
    r = await run('pve-s3-maintenance', ['--storage', 's3e', '--action', 'check-integrity', '--vmid', '4242'], { env });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/no backups to check in storage 's3e' for guest 4242/);
  });
});
