/**
 * Containers through the Backup Provider (docs/BACKUP-PROVIDER.md §7), host side, against the
 * real RadosGW: `backup-container-prepare` as root, `backup-container` as an unprivileged
 * container's root — a process in a user namespace mapping 0 → 100000, as pve-container's
 * run_in_userns runs Base.pm backup_container (test/helpers/userns.ts), with no secret file and
 * no access to the storage's path — then `backup-container-end`; `restore-container-init`,
 * whose file is checked and extracted exactly as pve-container's Create.pm restore_tar_archive
 * does (tar -tvf for check_tar_archive; tar xpf in the user namespace with PVE's flags), and
 * `restore-container-cleanup`. The trees must come out the same (owners, modes, xattrs, ACLs,
 * capabilities, links, hard links, sparse allocation, contents), less what vzdump excludes.
 * Faults: the bucket failing mid-backup and mid-restore leaves nothing behind.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { refusingEndpoint, startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { HOST, hostOp, storageSection, type Envelope } from '../helpers/host-op.js';
import { tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testS3 } from '../helpers/s3.js';
import { CT_UID_BASE, haveUserns, spawnInUserns, spawnSyncInUserns } from '../helpers/userns.js';
import { ctTarArgs } from '../../host/src/pve/ct-tar.js';
import { pidAlive, processStart } from '../../host/src/util/process.js';
import { testManifestKey } from '../helpers/manifest-key.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const TREE = join(ROOT, 'test', 'helpers', 'ct-tree.pl');
const PREFIX = 'pve/';
// PVE::Storage::Plugin::COMMON_TAR_FLAGS (pve-storage, 8.4 and 9): the plugin sends the running PVE's
const TAR_FLAGS = ['--one-file-system', '-p', '--sparse', '--numeric-owner', '--acls', '--xattrs', '--xattrs-include=user.*', '--xattrs-include=security.capability', '--warning=no-file-ignored', '--warning=no-xattr-write'];
const CONF = 'arch: amd64\nhostname: ct100 – ünïcode\nmemory: 512\nostype: debian\nrootfs: local:100/vm-100-disk-0.raw,size=8G\nunprivileged: 1\n';
const FW = '[OPTIONS]\nenable: 1\n';
const tool = (t: string): boolean => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status === 0;
const have = haveUserns() && ['tar', 'zstd', 'cstream', 'setfacl', 'setfattr', 'getfattr', 'setcap'].every(tool);
const d = have ? describe : describe.skip;

type RunRecord = { pid: number; run?: string; uploads?: Array<{ key: string; uploadId: string }> };

/** A container backup's run record, in its work directory `dir` (null: none, or not written whole yet). */
function readRunRecord(dir: string): RunRecord | null {
  try {
    return JSON.parse(readFileSync(join(dir, 'run'), 'utf8')) as RunRecord;
  } catch {
    return null;
  }
}

/** A running container backup's run record, once it names an upload. */
async function recordedUpload(dir: string): Promise<RunRecord> {
  for (let i = 0; i < 300 && !readRunRecord(dir)?.uploads?.length; i++) await new Promise((r) => setTimeout(r, 100));
  return readRunRecord(dir)!;
}

d('provider container backup (directory) and restore (tar) as the container root', () => {
  const tmp = tempDir('pct');
  // a storage id of this run's own: its work directories under /run never meet another run's
  const SID = `pct-${randomBytes(4).toString('hex')}`;
  let c: S3Client;
  let storage: Record<string, string>;
  let tree: { exclude: string[]; absent: string[] };
  const src = join(tmp.dir, 'root');
  const volname = 'backup/vzdump-lxc-100-2025_01_02-03_04_05.tar.zst';
  const key = `${PREFIX}dump/${volname.slice(7)}`;

  /** one host operation; `userns`: run as the container's root */
  function host(op: string, args: Record<string, unknown>, o: { userns?: boolean; storage?: Record<string, string> } = {}): Promise<Envelope & { stderr: string }> {
    return hostOp(op, o.storage ?? storage, args, {
      env: { PVE_S3_LOG_FILE: join(tmp.dir, 'host.log') },
      ...(o.userns ? { start: (cmd: string, argv: string[], env: NodeJS.ProcessEnv) => spawnInUserns(cmd, argv, { env }) } : {}),
    });
  }

  function backupArgs(vn: string, directory: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return {
      volname: vn,
      directory,
      sources: ['.'],
      exclude: tree.exclude,
      tar_flags: TAR_FLAGS,
      user_id: CT_UID_BASE,
      config_b64: Buffer.from(CONF).toString('base64'),
      firewall_b64: Buffer.from(FW).toString('base64'),
      ...extra,
    };
  }

  /** prepare (root) → backup (container root) → end (root), as the provider's methods run them */
  async function backup(vn: string, directory: string, o: { storage?: Record<string, string>; extra?: Record<string, unknown> } = {}) {
    const prep = await host('backup-container-prepare', { volname: vn, user_id: CT_UID_BASE }, o);
    expect(prep.ok, prep.error?.message).toBe(true);
    return { prep, run: await host('backup-container', backupArgs(vn, directory, o.extra), { ...o, userns: true }) };
  }

  /** pve-container Create.pm restore_tar_archive on `file` into a new rootfs owned by the container's root */
  async function pctRestore(file: string, into: string): Promise<void> {
    // check_tar_archive: the listing (sbin found, ≥ 10 members)
    const list = spawnSync('tar', ['-tvf', file, '--zstd', '--numeric-owner'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^d\S+\s+0\/0\s+0 \S+ \S+ \.\/sbin\/$/m);
    expect(list.stdout.split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(10);
    mkdirSync(into);
    chownSync(into, CT_UID_BASE, CT_UID_BASE);
    // restore_tar_archive_command: lxc-usernsexec … tar xpf - --zstd --totals COMMON_TAR_FLAGS -C
    // rootdir --skip-old-files --anchored --exclude ./dev/*, the archive's descriptor as stdin
    const args = ['xpf', '-', '--zstd', '--totals', ...TAR_FLAGS, '-C', into, '--skip-old-files', '--anchored', '--exclude', './dev/*'];
    const fd = openSync(file, 'r');
    try {
      const p = spawnInUserns('tar', args, { stdio: [fd, 'pipe', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (x) => (err += x));
      const code = await new Promise<number | null>((res) => p.on('close', res));
      expect(code, err).toBe(0);
      expect(err).toMatch(/Total bytes read: \d+/);
    } finally {
      closeSync(fd);
    }
  }

  function listing(dir: string, without: string[] = [], anyMtime: string[] = []): string {
    const args = [...without.flatMap((w) => ['--without', w]), ...anyMtime.flatMap((w) => ['--any-mtime', w])];
    const r = spawnSync('perl', [TREE, 'list', dir, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
    expect(r.status, r.stderr).toBe(0);
    return r.stdout;
  }

  async function bucketKeys(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of c.listAll({ prefix: PREFIX })) out.push(o.key);
    return out.sort();
  }

  // this test's processes: named by its directory, or the container root's tar, cstream and zstd
  // whose environment names its log (other runs of these tests may work on the machine meanwhile)
  const ctProcesses = (): string[] =>
    spawnSync('ps', ['-eo', 'pid=,uid=,args='], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => {
        const [pid, uid] = l.trim().split(/\s+/);
        if (l.includes(tmp.dir)) return true;
        if (uid !== String(CT_UID_BASE) || !/\b(tar|zstd|cstream)\b/.test(l)) return false;
        try {
          return readFileSync(`/proc/${pid}/environ`, 'latin1').includes(`PVE_S3_LOG_FILE=${join(tmp.dir, 'host.log')}\0`);
        } catch {
          return false;
        }
      });
  const restoreRoot = (): string => join(tmp.dir, 'cache', '.pve-s3', 'restore');

  beforeAll(async () => {
    // the storage's manifest key for the host ops and pve-s3-backup: a restore uses only what it signed
    process.env.PVE_S3_MANIFEST_KEY_FILE = testManifestKey(tmp.dir).file;
    // the snapshot directory's parents are the host's: the container's root may pass, not write
    chmodSync(tmp.dir, 0o755);
    const made = spawnSync('perl', [TREE, 'make', src], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    tree = JSON.parse(made.stdout) as typeof tree;
    c = await freshBucket('pct');
    storage = storageSection(SID, c.bucket, { prefix: PREFIX, path: join(tmp.dir, 'cache'), extra: { max_concurrent_uploads: '2' } });
    mkdirSync(join(tmp.dir, 'cache', '.pve-s3'), { recursive: true, mode: 0o700 });
  }, 120_000);

  afterAll(async () => {
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
    rmSync(`/run/pve-s3/ct-backup/${SID}`, { recursive: true, force: true });
  });

  it('backs up the container as its root: vzdump member order and exclusions, guest texts in the manifest, verified', async () => {
    const { prep, run } = await backup(volname, src);
    const dir = (prep.result as { dir: string }).dir;
    expect(dir).toBe(`/run/pve-s3/ct-backup/${SID}/${volname.slice(7)}`);
    expect(run.ok, `${run.error?.message}\n${run.stderr}`).toBe(true);
    const r = run.result as { size: number; tar_bytes: number; volume: { verified: boolean; trust: string } };
    // stored whole, but unsigned: the container's uid cannot read the manifest key (issue 10 §7);
    // backup-container-end, as root, signs it below
    expect(r.volume).toMatchObject({ verified: false, trust: 'unverified' });
    expect(r.tar_bytes).toBeGreaterThan(r.size);
    // tar's own --totals and the warning vzdump gives too reached the task log's stream
    expect(run.stderr).toMatch(/^Total bytes written: \d+/m);
    expect(await bucketKeys()).toEqual([key, `${key}.s3manifest`]);

    const obj = await readAll((await c.getObject(key)).body);
    const tv = spawnSync('tar', ['-tv', '--zstd', '--numeric-owner'], { input: obj, encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(tv.status, tv.stderr).toBe(0);
    const names = tv.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/^.*? \d\d:\d\d /, '').replace(/ -> .*$| link to .*$/, '').replace(/(.)\/$/, '$1'));
    expect(names.slice(0, 3)).toEqual(['./etc/vzdump/pct.conf', './etc/vzdump/pct.fw', '.']);
    // owners as the container sees them: its root is 0, uid 33 is 33
    expect(tv.stdout).toMatch(/^-rw-r----- 33\/42 .* \.\/etc\/shadow$/m);
    // vzdump's exclusions and the unreadable lost+found; ./dev is excluded by pct restore only
    for (const gone of tree.absent.filter((p) => p !== './dev/null')) expect(names, gone).not.toContain(gone);
    expect(names).toContain('./dev/null');

    const m = JSON.parse((await readAll((await c.getObject(`${key}.s3manifest`)).body)).toString()) as { guest: unknown };
    expect(m.guest).toEqual({ type: 'lxc', config: CONF, firewall: FW });

    // the backup process wrote its run record and configs only into its own directory, and left it empty
    expect(readdirSync(dir)).toEqual([]);
    const end = await host('backup-container-end', { volname });
    expect(end.ok, end.error?.message).toBe(true);
    expect((end.result as { size: number }).size).toBe(obj.length);
    expect((end.result as { volume: { verified: boolean } }).volume.verified).toBe(true);
    expect((await readAll((await c.getObject(`${key}.s3manifest`)).body)).toString()).toMatch(/,"mac":"[0-9a-f]{16}:[0-9a-f]{64}"}$/);
    // signed: Show Configuration reads the manifest's guest texts, nothing of the archive
    const cfg = await host('archive-config', { volname, which: 'guest' });
    expect(cfg.result).toMatchObject({ source: 'manifest', bytes_read: 0 });
    expect(Buffer.from((cfg.result as { text_b64: string }).text_b64, 'base64').toString()).toBe(CONF);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`${dir}.owner`)).toBe(false);
  }, 240_000);

  it('restores through restore-container-init to the same tree; cleanup leaves nothing', async () => {
    const init = await host('restore-container-init', { volname });
    expect(init.ok, init.error?.message).toBe(true);
    const { dir, path } = init.result as { dir: string; path: string };
    expect(path).toBe(join(dir, volname.slice(7)));
    expect(dir.startsWith(restoreRoot() + '/')).toBe(true);
    expect(init.stderr).toMatch(/downloaded 'vzdump-lxc-100-.*verified \(crc64nvme\)/);
    const into = join(tmp.dir, 'restored');
    await pctRestore(path, into);
    // what restore_configuration_from_etc_vzdump then reads and removes
    expect(readFileSync(join(into, 'etc/vzdump/pct.conf'), 'utf8')).toBe(CONF);
    expect(readFileSync(join(into, 'etc/vzdump/pct.fw'), 'utf8')).toBe(FW);
    // ./etc: extracting ./etc/vzdump/pct.conf, the first member, made it, so --skip-old-files
    // skips the ./etc/ member later (the same with vzdump's own archives): its mtime is the restore's
    const want = listing(src, tree.absent, ['./etc']);
    const got = listing(into, ['./etc/vzdump', './etc/vzdump/pct.conf', './etc/vzdump/pct.fw'], ['./etc']);
    expect(got).toBe(want);
    const clean = await host('restore-container-cleanup', { dir });
    expect(clean.ok, clean.error?.message).toBe(true);
    expect(readdirSync(restoreRoot())).toEqual([]);
  }, 240_000);

  it('restores an archive made before the provider (vzdump tar | zstd, uploaded by pve-s3-backup) through the same path', async () => {
    // vzdump's classic pipeline (LXC.pm archive: its tar line, then `zstd --threads=1`) in the
    // container's user namespace, pct.conf and pct.fw from a host-owned temporary directory
    const confDir = join(tmp.dir, 'classic-conf');
    mkdirSync(join(confDir, 'etc', 'vzdump'), { recursive: true, mode: 0o755 });
    chmodSync(confDir, 0o755);
    writeFileSync(join(confDir, 'etc/vzdump/pct.conf'), CONF);
    writeFileSync(join(confDir, 'etc/vzdump/pct.fw'), FW);
    const { args } = ctTarArgs({ tarFlags: TAR_FLAGS, configDir: confDir, firewall: true, directory: src, sources: ['.'], exclude: tree.exclude, unprivileged: true });
    const file = join(tmp.dir, 'vzdump-lxc-101-2025_01_02-03_04_05.tar.zst');
    const out = openSync(file, 'w');
    let made;
    try {
      made = spawnSyncInUserns('sh', ['-c', 'tar "$@" | zstd --threads=1', 'sh', ...args], { stdio: ['ignore', out, 'pipe'], encoding: 'utf8' });
    } finally {
      closeSync(out);
    }
    expect(made.status, String(made.stderr)).toBe(0);
    const t = testS3();
    const cli = spawnSync(process.execPath, [join(ROOT, 'host/bin/pve-s3-backup.js'), '--source', file], {
      env: { ...process.env, S3_ENDPOINT: t.endpoint, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_BUCKET: c.bucket, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: PREFIX, PVE_S3_STORAGE_CFG: '/nonexistent' },
      encoding: 'utf8',
    });
    expect(cli.status, cli.stderr).toBe(0);
    const classic = 'backup/vzdump-lxc-101-2025_01_02-03_04_05.tar.zst';
    // Show Configuration of such an archive reads its head only
    const cfg = await host('archive-config', { volname: classic, which: 'firewall' });
    expect(cfg.ok, cfg.error?.message).toBe(true);
    expect(cfg.result).toMatchObject({ source: 'archive' });
    expect(Buffer.from((cfg.result as { text_b64: string }).text_b64, 'base64').toString()).toBe(FW);

    const init = await host('restore-container-init', { volname: classic });
    expect(init.ok, init.error?.message).toBe(true);
    const { dir, path } = init.result as { dir: string; path: string };
    expect(readFileSync(path).equals(readFileSync(file))).toBe(true);
    const into = join(tmp.dir, 'restored-classic');
    await pctRestore(path, into);
    expect(readFileSync(join(into, 'etc/vzdump/pct.conf'), 'utf8')).toBe(CONF);
    const got = listing(into, ['./etc/vzdump', './etc/vzdump/pct.conf', './etc/vzdump/pct.fw'], ['./etc']);
    expect(got).toBe(listing(src, tree.absent, ['./etc']));
    expect((await host('restore-container-cleanup', { dir })).ok).toBe(true);
    expect(readdirSync(restoreRoot())).toEqual([]);
  }, 240_000);

  describe('faults', () => {
    let proxy: FaultProxy;
    let viaProxy: Record<string, string>;
    const big = join(tmp.dir, 'big-root');
    const vn = 'backup/vzdump-lxc-102-2025_01_02-03_04_05.tar.zst';
    const bigKey = `${PREFIX}dump/${vn.slice(7)}`;
    beforeAll(async () => {
      proxy = await startFaultProxy(testS3().endpoint);
      viaProxy = { ...storage, endpoint: proxy.url };
      // 24 MiB that zstd cannot shrink: five parts of 5 MiB
      mkdirSync(join(big, 'sbin'), { recursive: true });
      writeFileSync(join(big, 'sbin', 'init'), randomBytes(24 << 20));
      for (const p of [big, join(big, 'sbin'), join(big, 'sbin', 'init')]) chownSync(p, CT_UID_BASE, CT_UID_BASE);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it('the bucket failing mid-backup: a clear error, nothing stored or running, the work directory removed by discard', async () => {
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 2, times: Infinity, fault: { kind: 'status', status: 500, code: 'InternalError', message: 'injected' } }]);
      const { prep, run } = await backup(vn, big, { storage: viaProxy, extra: { exclude: [], bwlimit_kib: 1 << 20 } });
      proxy.plan([]);
      expect(run.ok).toBe(false);
      expect(run.error?.code).toBe('InternalError');
      expect(run.error?.message).toMatch(/^UploadPart on 'pve\/dump\/vzdump-lxc-102-.*\(HTTP 500 InternalError\): injected$/);
      // cstream ran between tar and zstd, and was stopped with them
      expect(run.stderr).toMatch(/reads from the container limited to 1\.0 GiB\/s/);
      expect(ctProcesses()).toEqual([]);
      expect((await bucketKeys()).filter((k) => k.includes('-102-'))).toEqual([]);
      expect((await c.listMultipartUploads({ prefix: bigKey })).length).toBe(0);
      const dir = (prep.result as { dir: string }).dir;
      expect(readdirSync(dir)).toEqual([]);
      // backup_cleanup after a failure
      const disc = await host('backup-discard', { volname: vn });
      expect(disc.ok, disc.error?.message).toBe(true);
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(`${dir}.owner`)).toBe(false);
    }, 240_000);

    it('the bucket stops answering mid-backup (stall_timeout 10 s, the abort unanswered too): the Stalled message; discard, once it answers, leaves nothing', async () => {
      const stalling = { ...viaProxy, request_timeout: '10' };
      proxy.plan([
        { match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 2, times: Infinity, fault: { kind: 'hang' } },
        { match: { method: 'DELETE' }, times: Infinity, fault: { kind: 'hang' } },
      ]);
      const seen = proxy.requests.length;
      // a log file the container's root may append to (PVE's, root's own, it may not: the line is then lost)
      const hostLog = join(tmp.dir, 'host.log');
      writeFileSync(hostLog, '', { flag: 'a' });
      chmodSync(hostLog, 0o666);
      const { prep, run } = await backup(vn, big, { storage: stalling, extra: { exclude: [] } });
      // one last try of the abort: the container's root cannot remember the upload, which once
      // failed the abort with EACCES and had it tried three times, each waiting out the silence
      expect(proxy.requests.slice(seen).filter((q) => q.method === 'DELETE')).toHaveLength(1);
      proxy.plan([]);
      if (process.env.SHOW_ERRORS) console.log(run.stderr);
      expect(run.ok).toBe(false);
      expect(run.error?.code).toBe('Timeout');
      expect(run.error?.message).toMatch(new RegExp(`no answer from ${proxy.url.replace(/[.:/]/g, '\\$&')} for \\d+ s during UploadPart of 'pve/dump/vzdump-lxc-102-`));
      // the container's root cannot write the storage's path to remember it: the message says so
      expect(run.error?.message).toMatch(
        new RegExp(`; its incomplete multipart upload could not be aborted now: pve-s3-maintenance --storage ${SID} --action abort-uploads --older-than 1h aborts it once the gateway answers and the upload is an hour old$`),
      );
      // the log file says the same, never that the next upload aborts it
      const line = readFileSync(hostLog, 'utf8').split('\n').find((l) => l.includes(`the incomplete multipart upload of '${bigKey}' could not be aborted`));
      expect(line).toMatch(new RegExp(`its parts stay in bucket ${c.bucket}; pve-s3-maintenance --storage ${SID} --action abort-uploads --older-than 1h aborts it once the gateway answers and the upload is an hour old$`));
      expect(run.stderr).not.toContain(testS3().secretAccessKey);
      expect(ctProcesses()).toEqual([]);
      expect((await bucketKeys()).filter((k) => k.includes('-102-'))).toEqual([]);
      // backup_cleanup after the failure, as root: aborts what the container's root could not
      const disc = await host('backup-discard', { volname: vn }, { storage: viaProxy });
      expect(disc.ok, disc.error?.message).toBe(true);
      expect(disc.result).toMatchObject({ aborted: 1 });
      expect((await c.listMultipartUploads({ prefix: bigKey })).length).toBe(0);
      const dir = (prep.result as { dir: string }).dir;
      expect(existsSync(dir)).toBe(false);
    }, 240_000);

    it('the bucket stops answering mid-restore (stall_timeout 10 s): the Stalled message naming the backup, no restore directory left', async () => {
      const stored = 'backup/vzdump-lxc-105-2025_01_02-03_04_05.tar.zst';
      const { run } = await backup(stored, big, { extra: { exclude: [] } });
      expect(run.ok, run.error?.message).toBe(true);
      expect((await host('backup-container-end', { volname: stored })).ok).toBe(true);
      proxy.plan([{ match: { method: 'GET', pathIncludes: 'vzdump-lxc-105-2025_01_02-03_04_05.tar.zst', test: (r) => 'range' in r.headers }, skip: 2, times: Infinity, fault: { kind: 'hang' } }]);
      const init = await host('restore-container-init', { volname: stored }, { storage: { ...viaProxy, request_timeout: '10' } });
      proxy.plan([]);
      expect(init.ok).toBe(false);
      expect(init.error?.code).toBe('Timeout');
      expect(init.error?.message).toMatch(new RegExp(`no answer from ${proxy.url.replace(/[.:/]/g, '\\$&')} for \\d+ s during GetObject of 'pve/dump/vzdump-lxc-105-`));
      expect(readdirSync(restoreRoot())).toEqual([]);
      expect(ctProcesses()).toEqual([]);
    }, 240_000);

    it('a backup process still running is stopped by discard before it removes anything', async () => {
      // the upload hangs: vzdump was interrupted and backup_cleanup runs while the host still works
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 1, times: Infinity, fault: { kind: 'hang' } }]);
      const prep = await host('backup-container-prepare', { volname: vn, user_id: CT_UID_BASE }, { storage: viaProxy });
      expect(prep.ok, prep.error?.message).toBe(true);
      const dir = (prep.result as { dir: string }).dir;
      const running = host('backup-container', backupArgs(vn, big, { exclude: [] }), { storage: viaProxy, userns: true });
      for (let i = 0; i < 300 && !existsSync(join(dir, 'run')); i++) await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(join(dir, 'run'))).toBe(true);
      const disc = await host('backup-discard', { volname: vn });
      expect(disc.ok, disc.error?.message).toBe(true);
      const r = await running;
      proxy.plan([]);
      expect(r.ok).toBe(false);
      expect(r.error?.code).toBe('Aborted');
      expect(ctProcesses()).toEqual([]);
      expect(existsSync(dir)).toBe(false);
      expect((await c.listMultipartUploads({ prefix: bigKey })).length).toBe(0);
      expect((await bucketKeys()).filter((k) => k.includes('-102-'))).toEqual([]);
    }, 240_000);

    it('the PVE worker killed mid-backup: the backup process notices, aborts its upload and ends', async () => {
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 1, times: Infinity, fault: { kind: 'hang' } }]);
      const prep = await host('backup-container-prepare', { volname: vn, user_id: CT_UID_BASE }, { storage: viaProxy });
      expect(prep.ok, prep.error?.message).toBe(true);
      const dir = (prep.result as { dir: string }).dir;
      const req = join(tmp.dir, 'request.json');
      writeFileSync(req, JSON.stringify({ v: 1, op: 'backup-container', storage: viaProxy, args: backupArgs(vn, big, { exclude: [] }) }), { mode: 0o644 });
      // the worker: starts the backup process, then dies of SIGKILL without a word to it
      const worker = spawnInUserns('sh', ['-c', `"$@" < '${req}' >/dev/null 2>&1 & while [ ! -s '${join(dir, 'run')}' ]; do sleep 0.1; done; sleep 0.2; kill -9 $$`, 'sh', process.execPath, HOST], { stdio: 'ignore' });
      await new Promise((r) => worker.on('close', r));
      const run = JSON.parse(readFileSync(join(dir, 'run'), 'utf8')) as { pid: number };
      for (let i = 0; i < 300 && pidAlive(run.pid); i++) await new Promise((r) => setTimeout(r, 100));
      proxy.plan([]);
      expect(pidAlive(run.pid)).toBe(false);
      expect(ctProcesses()).toEqual([]);
      expect((await c.listMultipartUploads({ prefix: bigKey })).length).toBe(0);
      expect(readdirSync(dir)).toEqual([]);
      expect((await host('backup-discard', { volname: vn })).ok).toBe(true);
      expect(existsSync(dir)).toBe(false);
    }, 240_000);

    it("the backup process killed (SIGKILL) mid-upload: discard aborts its upload, not another writer's of the same name, which completes", async () => {
      const own = 'backup/vzdump-lxc-106-2025_01_02-03_04_05.tar.zst';
      const key = `${PREFIX}dump/${own.slice(7)}`;
      const RUN = 'c'.repeat(32);
      // another cluster backs up the same guest id in the same second: its upload of that key is under way
      const part = randomBytes(5 << 20);
      const theirs = await c.createMultipartUpload(key);
      const theirPart = await c.uploadPart(key, theirs, 1, part, createHash('sha256').update(part).digest('hex'));
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 1, times: Infinity, fault: { kind: 'hang' } }]);
      const prep = await host('backup-container-prepare', { volname: own, user_id: CT_UID_BASE }, { storage: viaProxy });
      expect(prep.ok, prep.error?.message).toBe(true);
      const dir = (prep.result as { dir: string }).dir;
      const running = host('backup-container', backupArgs(own, big, { exclude: [], run: RUN }), { storage: viaProxy, userns: true });
      // its run record, in the work directory the container's root may write, names its upload
      const rec = await recordedUpload(dir);
      expect(rec.run).toBe(RUN);
      expect(rec.uploads).toHaveLength(1);
      const ours = rec.uploads![0]!;
      process.kill(rec.pid, 'SIGKILL');
      await expect(running).rejects.toThrow(/no envelope from backup-container/);
      proxy.plan([]);
      expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId).sort()).toEqual([ours.uploadId, theirs].sort());

      const disc = await host('backup-discard', { volname: own, run: RUN });
      expect(disc.ok, disc.error?.message).toBe(true);
      expect(disc.result).toMatchObject({ removed: [], aborted: 1, left: 1 });
      expect(disc.stderr).toContain('1 uploads aborted; left 1 incomplete upload(s) of it this run did not make');
      expect(existsSync(dir)).toBe(false);
      expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId)).toEqual([theirs]);
      for (let i = 0; i < 100 && ctProcesses().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(ctProcesses()).toEqual([]);
      // the other writer's backup completes, whole
      await c.completeMultipartUpload(key, theirs, [{ partNumber: 1, ...theirPart }]);
      expect(createHash('sha256').update(await readAll((await c.getObject(key)).body)).digest('hex')).toBe(createHash('sha256').update(part).digest('hex'));
      await c.deleteObject(key);
    }, 240_000);

    it("the vzdump worker and its backup process killed (SIGKILL) mid-upload, no discard: the next backup's sweep aborts its upload, not another writer's of the same name, which completes", async () => {
      const own = 'backup/vzdump-lxc-107-2025_01_02-03_04_05.tar.zst';
      const key = `${PREFIX}dump/${own.slice(7)}`;
      const part = randomBytes(5 << 20);
      const theirs = await c.createMultipartUpload(key);
      const theirPart = await c.uploadPart(key, theirs, 1, part, createHash('sha256').update(part).digest('hex'));
      // the vzdump worker owning the backup: a process of its own, killed with the backup process
      const worker = spawn('sleep', ['600'], { stdio: 'ignore' });
      const workerGone = new Promise((r) => worker.on('close', r));
      proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, skip: 1, times: Infinity, fault: { kind: 'hang' } }]);
      const prep = await host('backup-container-prepare', { volname: own, user_id: CT_UID_BASE, owner_pid: worker.pid }, { storage: viaProxy });
      expect(prep.ok, prep.error?.message).toBe(true);
      const dir = (prep.result as { dir: string }).dir;
      const running = host('backup-container', backupArgs(own, big, { exclude: [], run: 'd'.repeat(32) }), { storage: viaProxy, userns: true });
      const rec = await recordedUpload(dir);
      expect(rec.uploads).toHaveLength(1);
      const ours = rec.uploads![0]!;
      process.kill(rec.pid, 'SIGKILL');
      worker.kill('SIGKILL');
      await expect(running).rejects.toThrow(/no envelope from backup-container/);
      await workerGone;
      proxy.plan([]);
      for (let i = 0; i < 100 && ctProcesses().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(ctProcesses()).toEqual([]);
      expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId).sort()).toEqual([ours.uploadId, theirs].sort());

      // the next container backup on the storage, while the gateway cannot be reached: its sweep
      // keeps the dead run's record, says so in one line, and the new backup is prepared
      const next = 'backup/vzdump-lxc-108-2025_01_02-03_04_05.tar.zst';
      const unreachable = { ...storage, endpoint: await refusingEndpoint() };
      const p1 = await host('backup-container-prepare', { volname: next, user_id: CT_UID_BASE }, { storage: unreachable });
      expect(p1.ok, p1.error?.message).toBe(true);
      // (besides the host's line per retried request)
      const warned = p1.stderr.split('\n').filter((l) => !l.startsWith('retrying AbortMultipartUpload') && l.includes(key));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(
        new RegExp(
          `^warning: the incomplete multipart upload of '${key.replace(/[.]/g, '\\.')}' left by a container backup whose vzdump worker died could not be aborted \\(.+\\): its run record stays in ${dir.replace(/[.]/g, '\\.')}, and the next container backup on storage '${SID}' tries again$`,
        ),
      );
      expect(readRunRecord(dir)?.uploads).toEqual([ours]);
      expect(existsSync(`${dir}.owner`)).toBe(true);

      // the gateway answers again: the next sweep aborts the upload the record names, and only it
      const p2 = await host('backup-container-prepare', { volname: next, user_id: CT_UID_BASE });
      expect(p2.ok, p2.error?.message).toBe(true);
      expect(p2.stderr).not.toContain(key);
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(`${dir}.owner`)).toBe(false);
      expect((await c.listMultipartUploads({ prefix: key })).map((u) => u.uploadId)).toEqual([theirs]);
      // the other writer's backup completes, whole
      await c.completeMultipartUpload(key, theirs, [{ partNumber: 1, ...theirPart }]);
      expect(createHash('sha256').update(await readAll((await c.getObject(key)).body)).digest('hex')).toBe(createHash('sha256').update(part).digest('hex'));
      await c.deleteObject(key);
      expect((await host('backup-discard', { volname: next })).ok).toBe(true);
    }, 240_000);

    it('the bucket failing mid-restore: a clear error, no restore directory left', async () => {
      const stored = 'backup/vzdump-lxc-104-2025_01_02-03_04_05.tar.zst';
      const { run } = await backup(stored, big, { extra: { exclude: [] } });
      expect(run.ok, run.error?.message).toBe(true);
      expect((await host('backup-container-end', { volname: stored })).ok).toBe(true);
      // two of its five ranges arrive, then every read of it is cut off
      proxy.plan([{ match: { method: 'GET', pathIncludes: 'vzdump-lxc-104-2025_01_02-03_04_05.tar.zst', test: (r) => 'range' in r.headers }, skip: 2, times: Infinity, fault: { kind: 'reset', afterBytes: 1000 } }]);
      const init = await host('restore-container-init', { volname: stored }, { storage: viaProxy });
      proxy.plan([]);
      expect(init.ok).toBe(false);
      expect(init.error?.code).toBe('NetworkError');
      expect(init.error?.message).toMatch(/ECONNRESET during GetObject/);
      expect(init.stderr).toMatch(/^reading 'vzdump-lxc-104-.*': \d+% /m);
      expect(readdirSync(restoreRoot())).toEqual([]);
    }, 240_000);
  });

  it("an owner record outlives its worker: a pid reused since is not taken for the owner, a live owner is", async () => {
    const vn = 'backup/vzdump-lxc-105-2025_01_02-03_04_05.tar.zst';
    const owner = `/run/pve-s3/ct-backup/${SID}/${vn.slice(7)}.owner`;
    // pid 1 runs, but it is not the process that wrote the record (another start time)
    const init = processStart(1)!;
    mkdirSync(`/run/pve-s3/ct-backup/${SID}`, { recursive: true, mode: 0o711 });
    writeFileSync(owner, JSON.stringify({ owner: 1, start: init + 1, uid: CT_UID_BASE, created: 0 }), { mode: 0o600 });
    const reused = await host('backup-container-prepare', { volname: vn, user_id: CT_UID_BASE });
    expect(reused.ok, reused.error?.message).toBe(true);
    expect(JSON.parse(readFileSync(owner, 'utf8'))).toMatchObject({ owner: process.pid, start: processStart(process.pid) });
    writeFileSync(owner, JSON.stringify({ owner: 1, start: init, uid: CT_UID_BASE, created: 0 }), { mode: 0o600 });
    const busy = await host('backup-container-prepare', { volname: vn, user_id: CT_UID_BASE });
    expect(busy.error?.code).toBe('VolumeBusy');
    expect(busy.error?.message).toBe(`a backup of '${vn}' is being made by process 1: not started twice`);
    rmSync(owner);
    expect((await host('backup-discard', { volname: vn })).ok).toBe(true);
  }, 120_000);

  it('refuses what it must not do: sources outside the directory, a backup not prepared, a VM archive as a container', async () => {
    const up = await host('backup-container', backupArgs(volname, src, { sources: ['./../etc'] }), { userns: true });
    expect(up.error?.code).toBe('BadRequest');
    expect(up.error?.message).toMatch(/sources '\.\/\.\.\/etc'/);
    const unprepared = await host('backup-container', backupArgs('backup/vzdump-lxc-103-2025_01_02-03_04_05.tar.zst', src), { userns: true });
    expect(unprepared.error?.code).toBe('InvalidArgument');
    expect(unprepared.error?.message).toMatch(/backup_container_prepare/);
    const notRoot = await host('backup-container-prepare', { volname: 'backup/vzdump-lxc-103-2025_01_02-03_04_05.tar.zst', user_id: CT_UID_BASE }, { userns: true });
    expect(notRoot.ok).toBe(false);
    const vm = await host('restore-container-init', { volname: 'backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst' });
    expect(vm.ok).toBe(false);
    expect(readdirSync(restoreRoot())).toEqual([]);
  }, 120_000);
});
