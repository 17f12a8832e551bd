// The Debian package as an administrator gets it: `make deb` builds it from this tree (using the
// host/dist and core.wasm that `npm test` has just built), `dpkg -x` unpacks it into a scratch
// root outside the repository, and the installed commands and host run from there — with no
// node_modules anywhere above them, so everything they need must be inside the package. Then a
// round trip against the test RadosGW: pve-s3-backup uploads, pve-s3-restore lists and restores,
// pve-s3-maintenance checks, the installed host answers `status`, and the installed Perl plugin
// (under perl/t's PVE test double) reaches the gateway through the installed host. The package
// carries native code (the zstd addon of the Backup Provider), so it is built for this machine's
// architecture; the installed host makes a provider VM backup from qemu-storage-daemon with it.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { readVma } from '../../host/src/vma/reader.js';
import { haveQsd, makeImage, startQsd } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const MiB = 1024 * 1024;
/** the architecture the package is built for: this machine's (dpkg's name for it) */
const ARCH = spawnSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).stdout.trim();
/** ELF e_machine of each Debian architecture the addon may be built on */
const ELF_MACHINE: Record<string, number> = { amd64: 62, arm64: 183, i386: 3, armhf: 40, ppc64el: 21, s390x: 22, riscv64: 243 };

let work: string;
let deb: string;
let root: string;
let c: S3Client;

function run(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB, timeout: 600_000, cwd: o.cwd ?? work, env: o.env ?? process.env, input: o.input });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}, ${r.error?.message ?? ''}):\n${r.stdout}\n${r.stderr}`.slice(0, 4000));
  return r.stdout;
}

/** Environment of an administrator's shell on a machine that is not a PVE node: S3_* only. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const t = testS3();
  const env: NodeJS.ProcessEnv = {
    PATH: `${join(root, 'usr/bin')}:/usr/local/bin:/usr/bin:/bin`,
    HOME: work,
    LANG: 'C.UTF-8',
    S3_ENDPOINT: t.endpoint,
    S3_REGION: t.region,
    S3_ACCESS_KEY: t.accessKeyId,
    S3_SECRET_KEY: t.secretAccessKey,
    S3_BUCKET: c.bucket,
    S3_FORCE_PATH_STYLE: 'true',
    PVE_S3_STORAGE_CFG: join(work, 'no-storage.cfg'),
    PVE_S3_CREDENTIALS: join(work, 'no-credentials'),
    PVE_S3_PRIV_DIR: join(work, 'priv'),
    PVE_S3_LOG_FILE: join(work, 'storage-s3.log'),
    // with S3_* alone nothing is signed unless a key file is named (README "Who can be trusted")
    PVE_S3_MANIFEST_KEY_FILE: join(work, 'pkg.manifest-key'),
    // the commands' V8 code caches: this machine's /var/cache stays untouched
    PVE_S3_CODE_CACHE_DIR: join(work, 'cli-code-cache'),
    ...extra,
  };
  return env;
}

/** A scratch directory with no node_modules in any parent (this machine has /tmp/node_modules). */
function scratchBase(): string {
  for (const base of [tmpdir(), '/var/tmp', '/dev/shm']) {
    let clean = existsSync(base);
    for (let d = base; clean; d = dirname(d)) {
      if (existsSync(join(d, 'node_modules'))) clean = false;
      if (d === dirname(d)) break;
    }
    if (clean && !resolve(base).startsWith(ROOT + '/')) return base;
  }
  throw new Error('no scratch directory without a node_modules above it (tried $TMPDIR, /var/tmp, /dev/shm): set TMPDIR');
}

beforeAll(async () => {
  work = mkdtempSync(join(scratchBase(), 'pve-s3-pkg-'));
  ok(run('make', ['--no-print-directory', '-C', ROOT, 'deb', `BUILDDIR=${join(work, 'build')}`, `DEBDIR=${work}`, 'SKIP_NPM_BUILD=1']), 'make deb');
  deb = join(work, `pve-s3_${VERSION}_${ARCH}.deb`);
  root = join(work, 'root');
  ok(run('dpkg', ['-x', deb, root]), 'dpkg -x');
  c = await freshBucket('pkg');
}, 600_000);

afterAll(async () => {
  if (c) await dropBucket(c).catch(() => {});
  await closeTestClients();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the .deb', () => {
  it("is named pve-s3_<version>_<this machine's arch>.deb and carries the control fields PVE add-ons need", () => {
    expect(existsSync(deb)).toBe(true);
    const field = (f: string) => ok(run('dpkg-deb', ['-f', deb, f]), `dpkg-deb -f ${f}`).trim();
    expect(field('Package')).toBe('pve-s3');
    expect(field('Version')).toBe(VERSION);
    expect(ARCH).toMatch(/^[a-z0-9]+$/);
    expect(field('Architecture')).toBe(ARCH);
    const depends = field('Depends').split(/,\s*/);
    expect(depends).toContain('nodejs (>= 20.18)');
    expect(depends).toContain('perl');
    // what dpkg-shlibdeps finds the zstd addon links
    expect(depends.some((d) => /^libc6 \(>= [0-9.]+\)$/.test(d)), depends.join(', ')).toBe(true);
    expect(depends.some((d) => d.startsWith('libstdc++6')), depends.join(', ')).toBe(true);
    expect(Number(field('Installed-Size'))).toBeGreaterThan(100);
  });

  it('installs the plugin, the host, the commands, the hook, logrotate and docs where PVE and admins look', () => {
    const listing = ok(run('dpkg-deb', ['-c', deb]), 'dpkg-deb -c');
    const paths = new Set(listing.split('\n').filter(Boolean).map((l) => l.replace(/^.*? \.\//, '/').replace(/ -> .*$/, '')));
    for (const p of [
      '/usr/share/perl5/PVE/Storage/Custom/S3Plugin.pm',
      // generated at build time from the host's rules; the plugin loads it (below)
      '/usr/share/perl5/PVE/Storage/Custom/S3Plugin/Rules.pm',
      // what new_backup_provider returns
      '/usr/share/perl5/PVE/Storage/Custom/S3Plugin/BackupProvider.pm',
      // the Backup Provider's zstd (native addon) and its compression threads' script, beside host.cjs
      '/usr/lib/pve-s3/zstd.node',
      '/usr/lib/pve-s3/compress-worker.js',
      '/usr/lib/pve-s3/pve-s3-host',
      '/usr/lib/pve-s3/pve-s3-host.cjs',
      '/usr/lib/pve-s3/host.cjs',
      // the host's first stage: a status answered without reading host.cjs
      '/usr/lib/pve-s3/host-status.cjs',
      '/usr/lib/pve-s3/pve-s3-vzdump-hook',
      // each command: its entry and its code as one script (compiled with a code cache)
      '/usr/lib/pve-s3/pve-s3-restore.cjs',
      '/usr/lib/pve-s3/cli-restore.cjs',
      '/usr/lib/pve-s3/cli-backup.cjs',
      '/usr/lib/pve-s3/cli-maintenance.cjs',
      '/usr/lib/pve-s3/cli-vzdump-hook.cjs',
      '/usr/lib/pve-s3/package.json',
      '/usr/bin/pve-s3-backup',
      '/usr/bin/pve-s3-restore',
      '/usr/bin/pve-s3-maintenance',
      '/usr/bin/pve-s3-vzdump-hook',
      '/etc/logrotate.d/pve-s3',
      '/usr/share/doc/pve-s3/copyright',
      '/usr/share/doc/pve-s3/changelog.gz',
      '/usr/share/doc/pve-s3/README.md',
      '/usr/share/man/man1/pve-s3-backup.1.gz',
    ]) {
      expect(paths, p).toContain(p);
    }
    // the plugin's default host path is what the package installs
    const plugin = readFileSync(join(root, 'usr/share/perl5/PVE/Storage/Custom/S3Plugin.pm'), 'utf8');
    expect(plugin).toMatch(/\$DEFAULT_HOST_BIN = '\/usr\/lib\/pve-s3\/pve-s3-host';/);
    // core.wasm next to the scripts that load it (host and commands alike), exactly the one the
    // build made; no ES module chunks; nothing from npm's tree
    const wasms = [...paths].filter((p) => p.endsWith('/core.wasm')).sort();
    expect(wasms).toEqual(['/usr/lib/pve-s3/core.wasm']);
    expect([...paths].some((p) => p.includes('/chunks'))).toBe(false);
    for (const w of wasms) expect(readFileSync(join(root, w)).equals(readFileSync(join(ROOT, 'build/core.wasm'))), w).toBe(true);
    expect([...paths].some((p) => p.includes('node_modules'))).toBe(false);
    // one zstd addon, for the package's architecture (ELF e_machine), stripped (no .symtab)
    expect([...paths].filter((p) => p.endsWith('.node'))).toEqual(['/usr/lib/pve-s3/zstd.node']);
    const addon = readFileSync(join(root, 'usr/lib/pve-s3/zstd.node'));
    expect(addon.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(addon.readUInt16LE(18), `e_machine of zstd.node for ${ARCH}`).toBe(ELF_MACHINE[ARCH]);
    expect(ok(run('readelf', ['-S', '-W', join(root, 'usr/lib/pve-s3/zstd.node')]), 'readelf')).not.toContain('.symtab');
    // every docs/… file the installed README links is installed beside it, as it is in the checkout
    const readme = readFileSync(join(root, 'usr/share/doc/pve-s3/README.md'), 'utf8');
    const linked = [...new Set([...readme.matchAll(/\]\((docs\/[\w.-]+\.md)(?:#[^)]*)?\)/g)].map((m) => m[1]!))].sort();
    expect(linked.length).toBeGreaterThan(3);
    for (const d of linked) expect(paths, `README links ${d}`).toContain(`/usr/share/doc/pve-s3/${d}`);
    expect(readFileSync(join(root, 'usr/share/doc/pve-s3/docs/INTEGRITY.md'))).toEqual(readFileSync(join(ROOT, 'docs/INTEGRITY.md')));
    expect(readFileSync(join(root, 'etc/logrotate.d/pve-s3'), 'utf8')).toMatch(/^\/var\/log\/pve\/storage-s3\.log \{/);
    expect(ok(run('dpkg-deb', ['-I', deb, 'conffiles']), 'conffiles').trim()).toBe('/etc/logrotate.d/pve-s3');
  });

  it('make install DESTDIR=… installs the same tree as the package (the .deb adds only its changelog)', () => {
    const dest = join(work, 'destdir');
    ok(run('make', ['--no-print-directory', '-C', ROOT, 'install', `DESTDIR=${dest}`, `BUILDDIR=${join(work, 'build-install')}`, 'SKIP_NPM_BUILD=1']), 'make install');
    // type, mode and path of everything
    const tree = (dir: string) =>
      ok(run('find', ['.', '-mindepth', '1', '-printf', '%y %m %P\\n'], { cwd: dir }), 'find')
        .split('\n')
        .filter((l) => l && !l.endsWith(' usr/share/doc/pve-s3/changelog.gz'))
        .sort();
    expect(tree(dest)).toEqual(tree(root));
  });

  it('links commands to executables inside the package', () => {
    for (const c of ['pve-s3-backup', 'pve-s3-restore', 'pve-s3-maintenance', 'pve-s3-vzdump-hook']) {
      const link = join(root, 'usr/bin', c);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(`../lib/pve-s3/${c}.cjs`);
      const target = realpathSync(link);
      expect(target.startsWith(join(root, 'usr/lib/pve-s3/'))).toBe(true);
      expect(statSync(target).mode & 0o111).not.toBe(0);
      // node's path, as the host's: /usr/bin/env's own start would come on top of every run
      expect(readFileSync(target, 'utf8').startsWith('#!/usr/bin/node\n')).toBe(true);
    }
    expect(realpathSync(join(root, 'usr/lib/pve-s3/pve-s3-host'))).toBe(join(root, 'usr/lib/pve-s3/pve-s3-host.cjs'));
    expect(realpathSync(join(root, 'usr/lib/pve-s3/pve-s3-vzdump-hook'))).toBe(join(root, 'usr/lib/pve-s3/pve-s3-vzdump-hook.cjs'));
  });

  it('postinst and postrm are POSIX sh and succeed where PVE is not installed', () => {
    const ctl = join(work, 'control');
    ok(run('dpkg-deb', ['-e', deb, ctl]), 'dpkg-deb -e');
    for (const s of ['postinst', 'postrm']) {
      expect(statSync(join(ctl, s)).mode & 0o755).toBe(0o755);
      ok(run('sh', ['-n', join(ctl, s)]), `sh -n ${s}`);
    }
    // Only meaningful where no PVE daemon exists (this CI machine): nothing may be reloaded.
    const pve = ['pvedaemon', 'pveproxy', 'pvestatd', 'pvescheduler'].some((u) =>
      ['/lib/systemd/system', '/usr/lib/systemd/system'].some((d) => existsSync(join(d, `${u}.service`))),
    );
    if (pve) return;
    const bin = join(work, 'stub-bin');
    const calls = join(work, 'invoke-calls');
    ok(run('mkdir', ['-p', bin]), 'mkdir');
    writeFileSync(join(bin, 'deb-systemd-invoke'), `#!/bin/sh\necho "$@" >> ${calls}\n`, { mode: 0o755 });
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\necho "systemctl $@" >> ${calls}\nexit 1\n`, { mode: 0o755 });
    const env = { PATH: `${bin}:/usr/bin:/bin` };
    ok(run('sh', [join(ctl, 'postinst'), 'configure', ''], { env }), 'postinst configure');
    ok(run('sh', [join(ctl, 'postrm'), 'remove'], { env }), 'postrm remove');
    expect(existsSync(calls)).toBe(false);
  });

  it('dpkg installs and purges it in a scratch root: postinst makes its directories there, purge leaves only dpkg\'s database', () => {
    // chrootless (DPKG_ROOT): the maintainer scripts run with this machine's /bin/sh but must act
    // inside the root; nodejs and perl are not in the scratch database, hence --force-depends
    const r = join(work, 'dpkg-root');
    for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates']) ok(run('mkdir', ['-p', join(r, d)]), 'mkdir');
    writeFileSync(join(r, 'var/lib/dpkg/status'), '');
    const dpkg = (...a: string[]) => run('dpkg', [`--root=${r}`, '--log=/dev/null', '--force-script-chrootless', '--force-not-root', ...a]);
    ok(dpkg('--force-depends', '-i', deb), 'dpkg -i');
    expect(ok(run('dpkg-query', [`--root=${r}`, '-W', '-f', '${Status} ${Version}', 'pve-s3']), 'dpkg-query')).toBe(`install ok installed ${VERSION}`);
    expect(statSync(join(r, 'var/lib/pve-s3/cache')).isDirectory()).toBe(true);
    expect(statSync(join(r, 'var/cache/pve-s3')).isDirectory()).toBe(true);
    const help = run(join(r, 'usr/bin/pve-s3-backup'), ['--help'], { env: cliEnv() });
    expect(help.status, help.stderr).toBe(0);
    writeFileSync(join(r, 'var/log/pve/storage-s3.log'), 'a line\n');
    ok(dpkg('--purge', 'pve-s3'), 'dpkg --purge');
    const left = ok(run('find', ['.', '-mindepth', '1', '-not', '-path', './var/lib/dpkg*', '-printf', '%P\\n'], { cwd: r }), 'find').split('\n').filter(Boolean).sort();
    expect(left).toEqual(['var', 'var/cache', 'var/lib', 'var/log']);
  });

  it('passes lintian without tags (when lintian is installed)', (ctx) => {
    if (run('sh', ['-c', 'command -v lintian']).status !== 0) ctx.skip();
    const r = run('lintian', ['--pedantic', '--info', deb]);
    expect(r.stdout.trim()).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('the installed tree (unpacked outside the repository)', () => {
  it('cannot reach a node_modules directory from where it is installed', () => {
    expect(root.startsWith(ROOT + '/')).toBe(false);
    for (let d = join(root, 'usr/lib/pve-s3'); ; d = dirname(d)) {
      expect(existsSync(join(d, 'node_modules')), `${d}/node_modules`).toBe(false);
      if (d === dirname(d)) break;
    }
  });

  it('pve-s3-backup --help runs from the installed tree', () => {
    const r = run(join(root, 'usr/bin/pve-s3-backup'), ['--help'], { env: cliEnv() });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: pve-s3-backup /);
    expect(r.stdout).toContain('--source -');
    for (const c of ['pve-s3-restore', 'pve-s3-maintenance', 'pve-s3-vzdump-hook']) {
      const h = run(join(root, 'usr/bin', c), ['--help'], { env: cliEnv() });
      expect(h.status, `${c} --help: ${h.stderr}`).toBe(0);
      expect(h.stdout).toContain(`Usage: ${c}`);
    }
  });

  it('round trip: installed pve-s3-backup uploads, pve-s3-restore lists and restores the same bytes, maintenance verifies', () => {
    const env = cliEnv({ S3_PREFIX: 'pkg/' });
    const name = 'vzdump-qemu-4242-2025_01_02-03_04_05.vma.zst';
    const src = join(work, 'src');
    ok(run('mkdir', ['-p', src]), 'mkdir');
    const data = randomBytes(12 * MiB + 12345); // several parts at the 5 MiB minimum
    writeFileSync(join(src, name), data);
    writeFileSync(join(src, `${name}.notes`), 'installed-tree round trip\n');

    const up = JSON.parse(ok(run('pve-s3-backup', ['--source', join(src, name), '--json'], { env }), 'pve-s3-backup'));
    expect(JSON.stringify(up)).toContain(name);

    const list = ok(run('pve-s3-restore', ['--list', '--vmid', '4242', '--json'], { env }), 'pve-s3-restore --list');
    expect(list).toContain(`backup/${name}`);
    expect(list).toContain('installed-tree round trip');

    const dest = join(work, 'restored.vma.zst');
    ok(run('pve-s3-restore', ['--source', name, '--destination', dest], { env }), 'pve-s3-restore --source');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    expect(sha(readFileSync(dest))).toBe(sha(data));

    // streamed from stdin, as `vzdump --stdout | pve-s3-backup --source - …` does
    const streamed = randomBytes(6 * MiB + 7);
    ok(run('pve-s3-backup', ['--source', '-', '--vmid', '4343', '--type', 'lxc', '--compress', 'none', '--json'], { env, input: streamed }), 'pve-s3-backup --source -');
    const lxc = JSON.parse(ok(run('pve-s3-restore', ['--list', '--vmid', '4343', '--json'], { env }), 'list lxc')) as { name: string; size: number }[];
    expect(lxc).toHaveLength(1);
    const lxcName = lxc[0]!.name;
    expect(lxcName).toMatch(/^vzdump-lxc-4343-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar$/);
    expect(lxc[0]!.size).toBe(streamed.length);
    const back = spawnSync('pve-s3-restore', ['--source', lxcName!, '--destination', '-'], { env, cwd: work, maxBuffer: 64 * MiB, timeout: 600_000 });
    expect(back.status, back.stderr.toString()).toBe(0);
    expect(sha(back.stdout)).toBe(sha(streamed));

    const check = run('pve-s3-maintenance', ['--action', 'check-integrity', '--json'], { env });
    expect(check.status, check.stderr).toBe(0);
  });

  it('the installed commands keep a V8 code cache of a run that talked to S3, use it, and survive a corrupt one', () => {
    const cache = join(work, 'cli-cc');
    const env = cliEnv({ S3_PREFIX: 'pkg-cc/', PVE_S3_CODE_CACHE_DIR: cache });
    const files = () => (existsSync(cache) ? ok(run('ls', [cache]), 'ls').split('\n').filter(Boolean).sort() : []);
    const cacheName = (script: string) =>
      `${script.replace(/\.cjs$/, '')}-${createHash('sha256').update(readFileSync(join(root, 'usr/lib/pve-s3', script))).digest('hex').slice(0, 16)}-${process.version}-${process.arch}.v8cache`;
    // --help, a usage error, a hook phase that does nothing: no cache of argument parsing alone
    ok(run('pve-s3-restore', ['--help'], { env }), 'pve-s3-restore --help');
    expect(run('pve-s3-restore', ['--bogus'], { env }).status).toBe(2);
    ok(run('pve-s3-vzdump-hook', ['job-start'], { env }), 'pve-s3-vzdump-hook job-start');
    expect(files()).toEqual([]);
    const src = join(work, 'src-cc');
    ok(run('mkdir', ['-p', src]), 'mkdir');
    const name = 'vzdump-qemu-4244-2025_01_02-03_04_05.vma.zst';
    const data = randomBytes(MiB + 17);
    writeFileSync(join(src, name), data);
    ok(run('pve-s3-backup', ['--source', join(src, name)], { env }), 'pve-s3-backup');
    expect(files()).toEqual([cacheName('cli-backup.cjs')]);
    const dest = join(work, 'restored-cc.vma.zst');
    const restore = () => {
      ok(run('pve-s3-restore', ['--source', name, '--destination', dest, '--force'], { env }), 'pve-s3-restore');
      expect(readFileSync(dest).equals(data)).toBe(true);
    };
    restore();
    const restoreCache = join(cache, cacheName('cli-restore.cjs'));
    expect(files()).toEqual([cacheName('cli-backup.cjs'), cacheName('cli-restore.cjs')]);
    const made = statSync(restoreCache).mtimeMs;
    restore();
    expect(statSync(restoreCache).mtimeMs).toBe(made); // accepted: not written again
    writeFileSync(restoreCache, 'not a code cache');
    restore();
    expect(statSync(restoreCache).size).toBeGreaterThan(100_000); // rejected, replaced
  });

  it('the installed host makes a provider VM backup from QEMU\'s NBD export: zstd addon and compression threads from the installed tree', async (ctx) => {
    if (!haveQsd()) ctx.skip();
    const t = testS3();
    const dir = join(work, 'provider');
    ok(run('mkdir', ['-p', dir]), 'mkdir');
    const img = join(dir, 'drive-scsi0.raw');
    const size = makeImage(img, [{ kind: 'data', length: 6 * MiB + 4096 }, { kind: 'hole', length: 9 * MiB }, { kind: 'data', length: 777 * 1024 + 512 }], 4242);
    const served = join(dir, 'drive-scsi0.served');
    ok(run('cp', ['--sparse=always', img, served]), 'cp');
    const qsd = await startQsd(dir, [{ name: 'drive-scsi0', path: served }]);
    const name = 'vzdump-qemu-4243-2025_01_02-03_04_05.vma.zst';
    const storage = {
      id: 'pkg-s3', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(work, 'provider-cache'), prefix: 'pkg/',
    };
    const conf = 'cores: 1\nscsi0: local:4243/vm-4243-disk-0.raw,size=16M\n';
    let r: SpawnSyncReturns<string>;
    try {
      // asynchronously: qemu-storage-daemon's stderr pipe is read by this process
      r = await new Promise((done) => {
        // the key pve-s3-restore below (S3_* alone) verifies with
        const env = { PATH: '/usr/bin:/bin', PVE_S3_LOG_FILE: join(work, 'provider-host.log'), PVE_S3_CODE_CACHE_DIR: '', PVE_S3_MANIFEST_KEY_FILE: join(work, 'pkg.manifest-key') };
        const p = spawn(join(root, 'usr/lib/pve-s3/pve-s3-host'), [], { cwd: work, env, stdio: ['pipe', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.on('data', (d) => (stdout += String(d)));
        p.stderr.on('data', (d) => (stderr += String(d)));
        p.on('close', (status) => done({ status, stdout, stderr } as SpawnSyncReturns<string>));
        p.stdin.end(JSON.stringify({
          v: 1, op: 'backup-vm', storage,
          args: { volname: `backup/${name}`, time: 1735787045, config_b64: Buffer.from(conf).toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }] },
        }));
      });
    } finally {
      await qsd.stop();
    }
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, result: { volume: { volname: `backup/${name}`, verified: true } } });
    // compressed by the installed compress-worker.js on two threads, not on the main thread
    expect(r.stderr).toMatch(/stored vzdump-qemu-4243-.*, 2 zstd threads/);
    expect(r.stdout + r.stderr).not.toContain(t.secretAccessKey);

    // the installed pve-s3-restore downloads it (verified); zstd -d and the VMA reader give the image back
    const env = cliEnv({ S3_PREFIX: 'pkg/' });
    const got = join(dir, name);
    ok(run('pve-s3-restore', ['--source', name, '--destination', got], { env }), 'pve-s3-restore');
    const z = spawnSync('zstd', ['-d', '-c', '-q', got], { maxBuffer: 256 * MiB });
    expect(z.status, String(z.stderr)).toBe(0);
    const out = Buffer.alloc(size);
    const rd = await readVma([z.stdout], { onData: (_dev, off, data) => void data.copy(out, off) });
    expect(rd.header.configs.map((x) => [x.name, x.data.toString()])).toEqual([['qemu-server.conf', conf]]);
    expect(out.equals(readFileSync(img))).toBe(true);
  });

  it('the installed host answers status and version on stdin (docs/PROTOCOL.md)', () => {
    const t = testS3();
    // '' : no code cache (this machine's /var/cache stays untouched; the cache has its own test)
    const env = { PATH: '/usr/bin:/bin', PVE_S3_LOG_FILE: join(work, 'host.log'), PVE_S3_CODE_CACHE_DIR: '' };
    const host = join(root, 'usr/lib/pve-s3/pve-s3-host');
    // executed straight by the node the package depends on: /usr/bin/env's start would cost every status
    expect(readFileSync(host, 'latin1').split('\n')[0]).toBe('#!/usr/bin/node');
    const v = run(host, [], { env, input: '{"v":1,"op":"version"}' });
    expect(v.status, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, result: { protocol: 1, host_version: VERSION } });
    const storage = {
      id: 'pkg-s3', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(work, 'cache'),
    };
    const s = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage }) });
    expect(s.status, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, result: { active: true } });
    expect(s.stdout + s.stderr).not.toContain(t.secretAccessKey);
  });

  it("a status loads none of the built-in modules it does not need (bench:startup's measured costs)", () => {
    const t = testS3();
    const dump = join(work, 'module-dump.cjs');
    const list = join(work, 'modules.json');
    writeFileSync(dump, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(list)}, JSON.stringify(process.moduleLoadList)));\n`);
    const env = { PATH: '/usr/bin:/bin', PVE_S3_LOG_FILE: join(work, 'host-mods.log'), PVE_S3_CODE_CACHE_DIR: '', NODE_OPTIONS: `--require ${dump}` };
    const storage = {
      id: 'pkg-s3', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(work, 'cache-mods'),
    };
    const s = run(join(root, 'usr/lib/pve-s3/pve-s3-host'), [], { env, input: JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage }) });
    expect(s.status, s.stderr).toBe(0);
    expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, result: { active: true } });
    const loaded = new Set(JSON.parse(readFileSync(list, 'utf8')) as string[]);
    // undici's http and assert, performance (perf_hooks), fs/promises (and its readline), the ESM loader
    for (const m of ['http', 'assert', 'perf_hooks', 'internal/fs/promises', 'internal/readline/interface', 'internal/modules/esm/translators']) {
      expect(loaded.has(`NativeModule ${m}`), m).toBe(false);
    }
    // and what it does need, so that the dump itself is known to work
    expect(loaded.has('NativeModule net')).toBe(true);
  });

  it('the installed host writes its V8 code cache, uses it, and survives a corrupt one', () => {
    const t = testS3();
    const cache = join(work, 'code-cache');
    ok(run('mkdir', ['-p', cache]), 'mkdir');
    const env = { PATH: '/usr/bin:/bin', PVE_S3_LOG_FILE: join(work, 'host-cc.log'), PVE_S3_CODE_CACHE_DIR: cache };
    const host = join(root, 'usr/lib/pve-s3/pve-s3-host');
    const storage = {
      id: 'pkg-s3', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(work, 'cache-cc'),
    };
    const status = () => {
      const s = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage }) });
      expect(s.status, s.stderr).toBe(0);
      expect(JSON.parse(s.stdout)).toMatchObject({ ok: true, result: { active: true } });
    };
    const files = () => ok(run('ls', [cache]), 'ls').split('\n').filter(Boolean).sort();
    // named after the code (V8 itself checks only the source's length) and the node that made it
    const cacheName = (script: string) =>
      `${script.replace(/\.cjs$/, '')}-${createHash('sha256').update(readFileSync(join(root, 'usr/lib/pve-s3', script))).digest('hex').slice(0, 16)}-${process.version}-${process.arch}.v8cache`;
    status();
    // a status is answered by the first stage alone: host.cjs is neither compiled nor cached
    const name = cacheName('host-status.cjs');
    expect(files()).toEqual([name]);
    const made = statSync(join(cache, name)).mtimeMs;
    status();
    expect(statSync(join(cache, name)).mtimeMs).toBe(made); // accepted: not written again
    writeFileSync(join(cache, name), 'not a code cache');
    status();
    expect(statSync(join(cache, name)).size).toBeGreaterThan(100_000); // rejected, replaced
    expect(files()).toEqual([name]);
    // any other request goes to the whole host, whose cache the first run that loads it writes
    const v = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'version' }) });
    expect(v.status, v.stderr).toBe(0);
    expect(JSON.parse(v.stdout).result.ops).toEqual(expect.arrayContaining(['status', 'list', 'upload', 'backup-vm']));
    expect(files()).toEqual([cacheName('host.cjs'), name].sort());
    expect(statSync(join(cache, name)).size).toBeGreaterThan(100_000); // the status cache untouched
  });

  it("the installed host's first stage hands everything but a status to the whole host, and borrows from it when a status goes wrong", () => {
    const t = testS3();
    const env = { PATH: '/usr/bin:/bin', PVE_S3_LOG_FILE: join(work, 'host-stage.log'), PVE_S3_CODE_CACHE_DIR: '' };
    const host = join(root, 'usr/lib/pve-s3/pve-s3-host');
    const storage = {
      id: 'pkg-s3', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(work, 'cache-stage'),
    };
    // an op the whole host knows, with the request the first stage read
    const l = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'list', storage, args: { content: 'backup' } }) });
    expect(l.status, l.stderr).toBe(0);
    expect(JSON.parse(l.stdout)).toMatchObject({ ok: true, result: { volumes: expect.any(Array) } });
    // an unknown op: the whole host's answer, naming every op it has
    const u = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'no-such-op', storage }) });
    expect(u.status).toBe(2);
    expect(JSON.parse(u.stdout).error).toMatchObject({ code: 'UnknownOp', message: expect.stringMatching(/must be one of version, status, activate, .*backup-vm/) });
    // not JSON: the first stage answers as the whole host would
    const b = run(host, [], { env, input: 'not json' });
    expect(b.status).toBe(2);
    expect(JSON.parse(b.stdout).error).toMatchObject({ code: 'BadRequest', message: expect.stringMatching(/^malformed JSON request on stdin/) });
    // a wrong secret: the HeadBucket is refused, the probe lists (the lean path) and reads the
    // gateway's XML error (flat: without fast-xml-parser, s3/flat-xml.ts)
    const w = run(host, [], { env, input: JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage: { ...storage, secret_key: 'x'.repeat(40) } }) });
    expect(w.status).not.toBe(0);
    expect(JSON.parse(w.stdout).error).toMatchObject({ code: 'SignatureDoesNotMatch', status: 403 });
    expect(w.stdout + w.stderr).not.toContain('x'.repeat(40));
  });

  it('the installed Perl plugin reaches the gateway through the installed host', (ctx) => {
    if (run('perl', ['-e', '1']).status !== 0) ctx.skip();
    const t = testS3();
    const script = `
      use strict; use warnings;
      use S3PluginTest;
      S3PluginTest::load_plugin('9');
      print "PLUGIN $INC{'PVE/Storage/Custom/S3Plugin.pm'}\\n";
      print "RULES $INC{'PVE/Storage/Custom/S3Plugin/Rules.pm'}\\n";
      require PVE::Storage::Custom::S3Plugin::BackupProvider;
      print "PROVIDER $INC{'PVE/Storage/Custom/S3Plugin/BackupProvider.pm'}\\n";
      print "PARSES ", join(',', map { my @r = eval { PVE::Storage::Custom::S3Plugin->parse_volname($_) }; @r ? 1 : 0 } 'iso/a.iso', 'snippets/.x'), "\\n";
      my $scfg = { type => 's3', bucket => $ENV{B_BUCKET}, endpoint => $ENV{B_ENDPOINT}, region => $ENV{B_REGION},
        access_key => $ENV{B_AK}, force_path_style => 1, prefix => 'pkg/', path => $ENV{B_PATH},
        content => { backup => 1 }, shared => 1 };
      S3PluginTest::write_file("$ENV{PVE_S3_PRIV_DIR}/pkg-s3.pw", "$ENV{B_SK}\\n");
      my ($st, $err) = PVE::Storage::Custom::S3Plugin::host_try('pkg-s3', $scfg, 'status', {});
      die "status: $err->{message}\\n" if $err;
      print "ACTIVE $st->{active}\\n";
      my ($l, $lerr) = PVE::Storage::Custom::S3Plugin::host_try('pkg-s3', $scfg, 'list', { content => ['backup'] });
      die "list: $lerr->{message}\\n" if $lerr;
      print "VOL $_->{volname}\\n" for @{$l->{volumes}};
    `;
    const r = run('perl', ['-I', join(root, 'usr/share/perl5'), '-I', join(ROOT, 'perl/t/lib'), '-e', script], {
      env: {
        PATH: '/usr/bin:/bin',
        PVE_S3_HOST_BIN: join(root, 'usr/lib/pve-s3/pve-s3-host'),
        PVE_S3_PRIV_DIR: join(work, 'perl-priv'),
        PVE_S3_LOG_FILE: join(work, 'perl-host.log'),
        PVE_S3_CODE_CACHE_DIR: join(work, 'perl-code-cache'),
        PVE_S3_AUTOSYNC: '0',
        B_BUCKET: c.bucket, B_ENDPOINT: t.endpoint, B_REGION: t.region, B_AK: t.accessKeyId, B_SK: t.secretAccessKey,
        B_PATH: join(work, 'perl-cache'),
      },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`PLUGIN ${join(root, 'usr/share/perl5/PVE/Storage/Custom/S3Plugin.pm')}`);
    // the plugin's name rules come from the installed, generated table
    expect(r.stdout).toContain(`RULES ${join(root, 'usr/share/perl5/PVE/Storage/Custom/S3Plugin/Rules.pm')}`);
    // the Backup Provider's module, from the installed tree (its base class is the test double's)
    expect(r.stdout).toContain(`PROVIDER ${join(root, 'usr/share/perl5/PVE/Storage/Custom/S3Plugin/BackupProvider.pm')}`);
    expect(r.stdout).toContain('PARSES 1,0');
    expect(r.stdout).toContain('ACTIVE 1');
    expect(r.stdout).toContain('VOL backup/vzdump-qemu-4242-2025_01_02-03_04_05.vma.zst');
  });
});
