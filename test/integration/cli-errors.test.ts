// Exit codes and failure behaviour of the commands, as subprocesses against RadosGW: bad usage,
// unknown storage, wrong secret, missing archive, a corrupted object, overwrite protection,
// nothing partial after a failed restore, and secrets kept out of every output in debug mode.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, MiB, body, cfgEnv, keys, requireBuild, run, s3Env, s3Section } from './cli-helpers.js';

const ARCH = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let data: Buffer;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-errors');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-cli-err-'));
  env = await cfgEnv(dir, [
    s3Section('s3a', c.bucket, { multipart_chunk_size: '5' }),
    s3Section('s3lc', c.bucket, { prefix: 'lc/', lifecycle_enabled: '1' }),
    { type: 'dir', id: 'local', props: { path: '/var/lib/vz', content: 'backup' } },
  ]);
  data = randomBytes(11 * MiB + 7);
  await writeFile(join(dir, ARCH), data);
  const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH)], { env });
  expect(r.code).toBe(0);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

const oneLine = (s: string) => s.trimEnd().split('\n');

describe('usage and configuration errors exit 2 with one line', () => {
  it('unknown option', async () => {
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--lst'], { env });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^pve-s3-restore: Unknown option '--lst'; usage: pve-s3-restore .*--list/);
  });

  it('missing or contradictory options, bad values', async () => {
    for (const [cmd, args, re] of [
      ['pve-s3-backup', ['--storage', 's3a'], /no --source given/],
      ['pve-s3-restore', ['--storage', 's3a'], /give --list or --source/],
      ['pve-s3-restore', ['--storage', 's3a', '--list', '--source', ARCH], /--list and --source exclude each other/],
      ['pve-s3-maintenance', ['--storage', 's3a', '--action', 'explode'], /invalid --action 'explode': must be one of status, cleanup, check-integrity, lifecycle, abort-uploads, prune/],
      ['pve-s3-maintenance', ['--storage', 's3a', '--action', 'cleanup'], /--action cleanup needs --older-than/],
      ['pve-s3-maintenance', ['--storage', 's3a', '--action', 'cleanup', '--older-than', '90x'], /invalid --older-than '90x'/],
      ['pve-s3-maintenance', ['--storage', 's3a', '--action', 'status', '--keep-last', '2'], /--keep-last does not apply to --action status/],
      ['pve-s3-restore', ['--storage', 's3a', '--list', '--vmid', 'abc'], /invalid --vmid 'abc': must be an integer 100\.\.999999999/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', '-', '--vmid', '100'], /--source - needs --name NAME, or --vmid and --type/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH), '--vmid', '101'], /is not a backup of guest 101/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH), '--format', 'tar'], /--format applies to --source - \(stdin\) only/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', '-', '--vmid', '100', '--type', 'lxc', '--format', 'vma', '--compress', 'zstd'], /invalid format 'vma' for lxc/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', '-', '--name', 'x.vma', '--max-size', '12Q'], /invalid --max-size '12Q'/],
      ['pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH), '--storage-class', 'CHEAP'], /invalid storage_class 'CHEAP'/],
      ['pve-s3-restore', ['--storage', 's3a', '--source', 'other:backup/' + ARCH], /names storage 'other', but --storage is 's3a'/],
      ['pve-s3-restore', ['--storage', 's3a', '--source', 'backup/../../etc/passwd'], /invalid volume name/],
    ] as const) {
      const r = await run(cmd, [...args], { env });
      expect(r.code, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(oneLine(r.stderr)).toHaveLength(1);
    }
  });

  it('a secret can never be given on the command line', async () => {
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--list', '--secret-key', 'sEcReT-on-argv'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--secret-key'/);
    expect(r.stderr).not.toContain('sEcReT-on-argv');
  });

  it('unknown storage (not in storage.cfg, no S3_*) and a storage of another type', async () => {
    let r = await run('pve-s3-restore', ['--storage', 'nope', '--list'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/storage 'nope' not found: no section 's3: nope' in .*storage\.cfg/);
    r = await run('pve-s3-restore', ['--storage', 'local', '--list'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/storage 'local' .* is of type 'dir', not 's3'/);
  });

  it('--help of every command has examples and the exit codes, exit 0', async () => {
    for (const cmd of ['pve-s3-backup', 'pve-s3-restore', 'pve-s3-maintenance', 'pve-s3-vzdump-hook']) {
      const r = await run(cmd, ['--help'], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: /);
      expect(r.stdout).toContain('Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 not found');
      if (cmd !== 'pve-s3-vzdump-hook') expect(r.stdout).toContain(`Examples:\n  ${cmd} --storage my-s3`);
      // examples show only what works: --notes on a backup, never on a snippet where it is ignored
      for (const line of r.stdout.split('\n').filter((l) => l.includes('--notes') && l.includes('--storage'))) expect(line).toMatch(/vzdump-/);
    }
  });
});

describe('S3 outcomes map to exit codes', () => {
  it('wrong secret → 4, from the secret file and from S3_SECRET_KEY, without printing it', async () => {
    const bad = await cfgEnv(join(dir, 'bad'), [{ ...s3Section('s3a', c.bucket), secret: 'wrongSecretValue0000000000000000000000' }]);
    let r = await run('pve-s3-restore', ['--storage', 's3a', '--list'], { env: bad });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/SignatureDoesNotMatch|rejected/);
    expect(r.stderr).not.toContain('wrongSecretValue');
    r = await run('pve-s3-maintenance', ['--action', 'status'], { env: s3Env(dir, c.bucket, { S3_SECRET_KEY: 'wrongSecretValue0000000000000000000000' }) });
    expect(r.code).toBe(4);
    expect(r.stderr).not.toContain('wrongSecretValue');
  });

  it('status against an unreachable endpoint ends with the one-line error and its [Code], table or --json', async () => {
    for (const json of [false, true]) {
      const r = await run('pve-s3-maintenance', ['--action', 'status', ...(json ? ['--json'] : [])], { env: s3Env(dir, c.bucket, { S3_ENDPOINT: 'http://127.0.0.1:9' }) });
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(/^pve-s3-maintenance: cannot reach http:\/\/127\.0\.0\.1:9: connection refused .*\[ConnectionRefused\]$/);
    }
  });

  it('missing archive → 3, and no file created', async () => {
    const dest = join(dir, 'never.vma.zst');
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', 'vzdump-qemu-100-2020_01_01-00_00_00.vma.zst', '--destination', dest], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/volume 'backup\/vzdump-qemu-100-2020_01_01-00_00_00\.vma\.zst' does not exist in storage 's3a'/);
    expect(existsSync(dest)).toBe(false);
  });

  it('missing local source → 3', async () => {
    const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'vzdump-qemu-100-2020_01_01-00_00_00.vma.zst')], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/does not exist/);
  });
});

describe('restore', () => {
  it('refuses to overwrite without --force (exit 2, file untouched); --force replaces it', async () => {
    const dest = join(dir, 'existing.vma.zst');
    await writeFile(dest, 'precious');
    let r = await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', dest], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already exists: refusing to overwrite it \(add --force/);
    expect(await readFile(dest, 'utf8')).toBe('precious');
    r = await run('pve-s3-restore', ['--storage', 's3a', '--source', `s3a:backup/${ARCH}`, '--destination', dest, '--force'], { env });
    expect(r.code).toBe(0);
    expect((await readFile(dest)).equals(data)).toBe(true);
  });

  it('into a directory keeps the archive name; the volume id alone names the storage', async () => {
    const sub = await mkdtemp(join(dir, 'into-'));
    const r = await run('pve-s3-restore', ['--source', `s3a:backup/${ARCH}`, '--destination', sub, '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ volid: `s3a:backup/${ARCH}`, path: join(sub, ARCH), size: data.length, verified: true });
  });

  it('--destination - writes exactly the original bytes to stdout, messages to stderr', async () => {
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', '-'], { env });
    expect(r.code).toBe(0);
    expect(r.out.equals(data)).toBe(true);
    expect(r.stderr).toMatch(/restored s3a:backup\/\S+ to stdout .* verified against the manifest/);
  });
});

describe('backup', () => {
  it('from stdin with --vmid/--type: PVE name with the current time, compression detected, bytes intact', async () => {
    // zstd frame magic first: the archive must be named .vma.zst
    const stream = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), randomBytes(7 * MiB)]);
    const before = Date.now();
    const up = await run(`cat | ${process.execPath} ${join(BIN, 'pve-s3-backup.js')} --storage s3a --source - --vmid 100 --type qemu --json`, [], { env, shell: true, input: stream });
    expect(up.code, up.stderr).toBe(0);
    const [o] = JSON.parse(up.stdout) as Array<{ volid: string; key: string; size: number; verified: boolean }>;
    expect(o!.volid).toMatch(/^s3a:backup\/vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/);
    const t = /(\d{4})_(\d\d)_(\d\d)-(\d\d)_(\d\d)_(\d\d)/.exec(o!.volid)!.slice(1).map(Number);
    const when = new Date(t[0]!, t[1]! - 1, t[2], t[3], t[4], t[5]).getTime();
    expect(Math.abs(when - before)).toBeLessThan(10 * 60_000); // local time of the run, not UTC or epoch
    expect(o!.size).toBe(stream.length);
    expect(o!.verified).toBe(true);
    expect((await body(c, o!.key)).equals(stream)).toBe(true);
    await c.deleteObjects([o!.key, o!.key + '.s3manifest']);
  });

  it('--dry-run transfers nothing; --delete-source removes the local files only after a verified upload', async () => {
    const name = 'vzdump-lxc-200-2024_02_03-04_05_06.tar.zst';
    const p = join(dir, name);
    await writeFile(p, randomBytes(6 * MiB));
    await writeFile(p + '.notes', 'from vzdump');
    const before = await keys(c);
    let r = await run('pve-s3-backup', ['--storage', 's3a', '--source', p, '--delete-source', '--dry-run'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`would upload ${p} -> s3a:backup/${name} (s3://${c.bucket}/dump/${name}, 6.0 MiB, with notes)`);
    expect(await keys(c)).toEqual(before);
    expect(existsSync(p)).toBe(true);
    r = await run('pve-s3-backup', ['--storage', 's3a', '--source', p, '--delete-source', '--protected'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/uploaded s3a:backup\/vzdump-lxc-200-\S+ \(6\.0 MiB .*notes, protected, verified, local copy deleted\)/);
    expect(existsSync(p)).toBe(false);
    expect(existsSync(p + '.notes')).toBe(false);
    expect((await body(c, `dump/${name}.notes`)).toString()).toBe('from vzdump');
    expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.notes`, `dump/${name}.protected`, `dump/${name}.s3manifest`]);
  });

  it('--name renames; --source may repeat; --progress draws rate and ETA on stderr, never on stdout', async () => {
    const a = join(dir, 'my backup (1).vma.zst');
    await writeFile(a, randomBytes(6 * MiB));
    let r = await run('pve-s3-backup', ['--storage', 's3a', '--source', a, '--name', 'vzdump-qemu-500-2024_05_05-05_05_05.vma.zst', '--progress'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^uploaded s3a:backup\/vzdump-qemu-500-2024_05_05-05_05_05\.vma\.zst \(6\.0 MiB/);
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^vzdump-qemu-500-\S+ \[[#.]{24}\] +\d+% [\d.]+ \S+ \/ 6\.0 MiB  [\d.]+ MiB\/s  ETA (\d\d:\d\d|--:--)$/m);
    // without a terminal and without --progress: no progress lines at all
    await writeFile(join(dir, 'hook-a.txt'), 'a');
    await writeFile(join(dir, 'hook-b.txt'), 'b');
    r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'hook-a.txt'), '--source', join(dir, 'hook-b.txt')], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/snippets\/hook-a\.txt[\s\S]*snippets\/hook-b\.txt/);
    // PVE's upload-name rule: characters outside [A-Za-z0-9_.-] become '_'; the extension makes
    // it a (non-standard) backup name, which PVE lists but never prunes
    r = await run('pve-s3-backup', ['--storage', 's3a', '--source', a, '--dry-run'], { env });
    expect(r.stdout).toContain('-> s3a:backup/my_backup__1_.vma.zst');
  });

  it('ISO, template and --content placement', async () => {
    await writeFile(join(dir, 'debian-12.iso'), randomBytes(1000));
    await writeFile(join(dir, 'debian-12-standard_12.2-1_amd64.tar.zst'), randomBytes(1000));
    await writeFile(join(dir, 'hook.pl'), '#!/usr/bin/perl\n');
    const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'debian-12.iso'), join(dir, 'debian-12-standard_12.2-1_amd64.tar.zst'), join(dir, 'hook.pl')], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await keys(c, 'template/')).toEqual([
      'template/cache/debian-12-standard_12.2-1_amd64.tar.zst',
      'template/cache/debian-12-standard_12.2-1_amd64.tar.zst.s3manifest',
      'template/iso/debian-12.iso',
      'template/iso/debian-12.iso.s3manifest',
    ]);
    expect(await keys(c, 'snippets/hook.pl')).toEqual(['snippets/hook.pl', 'snippets/hook.pl.s3manifest']);
    const bad = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'hook.pl'), '--content', 'iso'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid volume name 'iso\/hook\.pl'/);
  });
});

describe('maintenance', () => {
  it('check-integrity catches an object corrupted through the S3 API: exit 5, names it; restore refuses it and leaves nothing', async () => {
    const name = 'vzdump-qemu-300-2024_03_03-03_03_03.vma.zst';
    const p = join(dir, name);
    const orig = randomBytes(6 * MiB);
    await writeFile(p, orig);
    expect((await run('pve-s3-backup', ['--storage', 's3a', '--source', p], { env })).code).toBe(0);
    // --progress: a progress line while it reads (a 32 GiB backup reads for minutes), then the verdict
    const g = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--source', name, '--progress'], { env });
    expect(g.code, g.stderr).toBe(0);
    const lines = g.stderr.split('\n');
    const last = lines.findIndex((l) => l.startsWith(`${name} [########################] 100% 6.0 MiB / 6.0 MiB  `));
    expect(last, g.stderr).toBeGreaterThanOrEqual(0);
    expect(lines[last + 1]).toBe(`checked backup/${name}: good`);
    // same size, one byte changed, written behind the manifest's back
    const bad = Buffer.from(orig);
    bad[3 * MiB] = bad[3 * MiB]! ^ 0xff;
    await c.putObject(`dump/${name}`, bad);
    let r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity'], { env });
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(new RegExp(`^CORRUPT\\s+s3a:backup/${name.replaceAll('.', '\\.')}`, 'm'));
    expect(r.stdout).toMatch(new RegExp(`^GOOD\\s+s3a:backup/${ARCH.replaceAll('.', '\\.')}`, 'm'));
    expect(r.stdout).toMatch(/integrity: \d+ good, 1 corrupt/);
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--source', ARCH, '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).summary).toMatchObject({ good: 1, corrupt: 0 });
    const out = await mkdtemp(join(dir, 'restore-corrupt-'));
    r = await run('pve-s3-restore', ['--storage', 's3a', '--source', name, '--destination', join(out, name)], { env });
    expect(r.code).toBe(5);
    expect(await readdir(out)).toEqual([]); // no partial file, no temp file
    await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--source', name], { env }).then((x) => expect(x.code).toBe(5));
    await c.deleteObjects([`dump/${name}`, `dump/${name}.s3manifest`]);
  });

  it('check-integrity reports a backup whose log went missing (exit 5)', async () => {
    const name = 'vzdump-lxc-600-2024_06_06-06_06_06.tar.zst';
    await writeFile(join(dir, name), randomBytes(1000));
    await writeFile(join(dir, 'vzdump-lxc-600-2024_06_06-06_06_06.log'), 'INFO: done\n');
    expect((await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, name)], { env })).code).toBe(0);
    let r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--vmid', '600'], { env });
    expect(r.code, r.stdout).toBe(0);
    await c.deleteObject('dump/vzdump-lxc-600-2024_06_06-06_06_06.log');
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--vmid', '600'], { env });
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(new RegExp(`^MISSING-SIDECAR\\s+s3a:backup/${name.replaceAll('.', '\\.')}.*log`, 'm'));
    expect(r.stdout).toMatch(/^integrity: 0 good, 0 corrupt, 1 missing sidecar$/m);
    // the advice works as written, --dry-run first: the log alone
    expect(r.stderr).toContain('re-upload the log if you still have it (pve-s3-backup --source FILE.log)');
    const log = join(dir, 'vzdump-lxc-600-2024_06_06-06_06_06.log');
    const dry = await run('pve-s3-backup', ['--storage', 's3a', '--source', log, '--dry-run'], { env });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trimEnd()).toBe(`would upload ${log} -> s3a:backup/vzdump-lxc-600-2024_06_06-06_06_06.log (s3://${c.bucket}/dump/vzdump-lxc-600-2024_06_06-06_06_06.log, 11 B)`);
    const again = await run('pve-s3-backup', ['--storage', 's3a', '--source', log], { env });
    expect(again.code, again.stderr).toBe(0);
    expect((await body(c, 'dump/vzdump-lxc-600-2024_06_06-06_06_06.log')).toString()).toBe('INFO: done\n');
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--vmid', '600'], { env });
    expect(r.code, r.stdout).toBe(0);
    await c.deleteObjects([`dump/${name}`, `dump/${name}.s3manifest`, 'dump/vzdump-lxc-600-2024_06_06-06_06_06.log', 'dump/vzdump-lxc-600-2024_06_06-06_06_06.log.s3manifest']);
  });

  it('cleanup --keep-last keeps the newest per guest; --dry-run deletes nothing; prune with --keep-last', async () => {
    const names = ['2024_01_01-00_00_00', '2024_01_02-00_00_00', '2024_01_03-00_00_00'].map((d) => `vzdump-qemu-400-${d}.vma.zst`);
    for (const n of names) await writeFile(join(dir, n), randomBytes(100));
    expect((await run('pve-s3-backup', ['--storage', 's3a', '--source', ...names.map((n) => join(dir, n))], { env })).code).toBe(0);
    let r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'cleanup', '--older-than', '30d', '--vmid', '400', '--keep-last', '2', '--dry-run'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`s3a:backup/${names[0]}  2024-01-01 00:00:00  would remove`);
    expect(r.stdout).toContain(`s3a:backup/${names[2]}  2024-01-03 00:00:00  kept (keep-last)`);
    expect((await keys(c, 'dump/vzdump-qemu-400')).length).toBe(6);
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'cleanup', '--older-than', '30d', '--vmid', '400', '--keep-last', '2'], { env });
    expect(r.code).toBe(0);
    expect((await keys(c, 'dump/vzdump-qemu-400')).filter((k) => !k.endsWith('.s3manifest'))).toEqual([`dump/${names[1]}`, `dump/${names[2]}`]);
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'prune', '--vmid', '400', '--keep-last', '1', '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ keep: 'keep-last=1', removed: [`backup/${names[1]}`] });
    expect((await keys(c, 'dump/vzdump-qemu-400')).filter((k) => !k.endsWith('.s3manifest'))).toEqual([`dump/${names[2]}`]);
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'prune'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/has no prune-backups setting/);
  });

  it('status --json, lifecycle --show, abort-uploads leave a fresh upload alone', async () => {
    const id = await c.createMultipartUpload('dump/in-progress.vma.zst');
    // one part stored, as a backup killed at 60% leaves hundreds
    const part = randomBytes(5 * 1024 * 1024 + 3);
    await c.uploadPart('dump/in-progress.vma.zst', id, 1, part, createHash('sha256').update(part).digest('hex'));
    let r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'status', '--json'], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ storage: 's3a', bucket: c.bucket, multipart: { count: 1 } });
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'abort-uploads', '--older-than', '1d'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/0 aborted/);
    // what stays is said, with what it holds and how to abort it once it is surely dead
    expect(r.stdout).toMatch(/^dump\/in-progress\.vma\.zst {2}started \d{4}-\d\d-\d\dT[\d:.]+Z {2}kept \(5\.0 MiB stored\)$/m);
    expect(r.stdout).toMatch(/^incomplete uploads younger than 1d: 1 kept, 5\.0 MiB \(each may still be running; --older-than 1h aborts those started more than an hour ago\)$/m);
    expect((await c.listMultipartUploads()).map((u) => u.uploadId)).toContain(id);
    r = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'lifecycle', '--show'], { env });
    expect(r.code).toBe(0);
    await c.abortMultipartUpload('dump/in-progress.vma.zst', id);
  });
});

describe('lifecycle', () => {
  it('applies the storage’s rules next to a foreign rule, which it keeps; --dry-run and --show change nothing', async () => {
    await c.putBucketLifecycle([{ id: 'someone-else', status: 'Enabled', filter: { prefix: 'other/' }, expiration: { days: 30 } }]);
    let r = await run('pve-s3-maintenance', ['--storage', 's3lc', '--action', 'lifecycle', '--dry-run'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^would change: 5 rule\(s\) of this storage, 1 other rule\(s\) kept$/m);
    expect((await c.getBucketLifecycle()).map((x) => x.id)).toEqual(['someone-else']);
    r = await run('pve-s3-maintenance', ['--storage', 's3lc', '--action', 'lifecycle'], { env });
    expect(r.code).toBe(0);
    expect((await c.getBucketLifecycle()).map((x) => x.id).sort()).toEqual([...['dump/', 'template/iso/', 'template/cache/', 'snippets/', '.pve-s3-staging/'].map((f) => `pve-s3-abort-mpu:lc/${f}`), 'someone-else'].sort());
    r = await run('pve-s3-maintenance', ['--storage', 's3lc', '--action', 'lifecycle', '--show'], { env });
    expect(r.stdout).toMatch(/^\* pve-s3-abort-mpu:lc\/dump\/ \[Enabled lc\/dump\/\]: abort incomplete uploads after 7d$/m);
    expect(r.stdout).toMatch(/^  someone-else \[Enabled other\/\]: expire after 30d$/m);
    r = await run('pve-s3-maintenance', ['--storage', 's3lc', '--action', 'lifecycle'], { env });
    expect(r.stdout).toMatch(/^unchanged:/m);
    await c.putBucketLifecycle([]);
  });
});

describe('secrets in debug mode', () => {
  it('PVE_S3_DEBUG=1: traces on stderr and in the log file, never the secret or a signature', async () => {
    const secret = testS3().secretAccessKey;
    const log = join(dir, 'debug.log');
    const denv = { ...env, PVE_S3_DEBUG: '1', PVE_S3_LOG_FILE: log };
    const runs = [
      await run('pve-s3-restore', ['--storage', 's3a', '--list'], { env: denv }),
      await run('pve-s3-restore', ['--storage', 's3a', '--source', ARCH, '--destination', '-'], { env: denv }),
      await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'status'], { env: { ...s3Env(dir, c.bucket), PVE_S3_DEBUG: '1', PVE_S3_LOG_FILE: log } }),
      await run('pve-s3-restore', ['--list'], { env: { ...s3Env(dir, c.bucket, { S3_SECRET_KEY: secret.slice(0, -1) + 'X' }), PVE_S3_DEBUG: '1', PVE_S3_LOG_FILE: log } }),
    ];
    const text = await readFile(log, 'utf8');
    expect(text).toMatch(/DEBUG .* s3 request operation=ListObjectsV2/);
    expect(runs[0]!.stderr).toMatch(/authorization":"\[redacted\]"/);
    expect(runs[3]!.code).toBe(4);
    for (const s of [text, ...runs.map((x) => x.stderr), runs[0]!.stdout, runs[2]!.stdout]) {
      expect(s).not.toContain(secret);
      expect(s).not.toContain(secret.slice(0, -1) + 'X');
      expect(s).not.toMatch(/Signature=[0-9a-f]{64}/);
    }
  });
});
