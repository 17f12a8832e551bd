// Every command the README shows is exercised here. Its fenced blocks carry a tag after the
// language, which says how:
//   ```sh run          each line runs, unchanged but for two path prefixes, in a sandbox: the commands
//                      (host/bin), a storage.cfg whose `my-s3` is the README's example pointed at the
//                      test RadosGW, stub `vzdump`/`qmrestore`; every line must exit 0, and the
//                      bytes that come back must be the bytes that went in
//   ```sh check        cannot run here (apt, make install into /, pvesm, systemctl): each line is
//                      checked against what it relies on (pvesm options through the plugin's own
//                      check_config under perl/t's PVE double, package name, unit names…)
//   ```sh dev          the two developer commands: exactly those, and the scripts they call exist
//   ```sh try          "Try it" from a checkout: the block runs as one bash script in the checkout,
//                      with the test gateway's settings as s3.env, a fresh bucket, /tmp/ a sandbox
//   ```text error      troubleshooting messages: each is reproduced against the gateway, byte for byte
//   ```text storage.cfg / vzdump.conf   parsed and validated by the code that reads them
// Flags of pve-s3-* commands anywhere in the README must appear in that command's --help.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStorageCfg, storageConfigFromSection } from '../../host/src/config/index.js';
import { OWN_KEYS, PVE_GLOBAL_KEYS, SCHEMA } from '../../host/src/config/schema.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFreezeRelay } from '../helpers/freeze-relay.js';
import { runRgwAdmin } from '../helpers/rgw.js';
import { closeTestClients, dropBucket, freshBucket, testClient, testS3 } from '../helpers/s3.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const COMMANDS = ['pve-s3-backup', 'pve-s3-restore', 'pve-s3-maintenance', 'pve-s3-vzdump-hook'];
const SHOWN_ENDPOINT = 'https://s3.example.com'; // what the README's messages show for the gateway

interface Block {
  lang: string;
  tag: string;
  lines: string[];
}
const blocks: Block[] = [...README.matchAll(/^```(\S*)[ \t]*(\S*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)].map((m) => ({
  lang: m[1]!,
  tag: m[2]!,
  lines: m[3]!.split('\n').filter((l) => l.trim() !== ''),
}));
const tagged = (lang: string, tag: string) => blocks.filter((b) => b.lang === lang && b.tag === tag);
const linesOf = (lang: string, tag: string) => tagged(lang, tag).flatMap((b) => b.lines);

/** Shell words of a line, quotes removed ("$VAR" stays as the literal $VAR). */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

function helpOf(cmd: string): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'host/bin', `${cmd}.js`), '--help'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} --help exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

describe('README blocks', () => {
  it('every shell block says how it is tested, and the expected blocks exist', () => {
    for (const b of blocks.filter((b) => b.lang === 'sh')) expect(['run', 'check', 'dev', 'try'], b.lines.join('\n')).toContain(b.tag);
    for (const b of blocks.filter((b) => b.lang === 'text')) expect(['storage.cfg', 'vzdump.conf', 'error'], b.lines.join('\n')).toContain(b.tag);
    expect(blocks.every((b) => b.lang === 'sh' || b.lang === 'text')).toBe(true);
    expect(linesOf('sh', 'run').length).toBeGreaterThanOrEqual(10);
    expect(tagged('text', 'storage.cfg')).toHaveLength(1);
    expect(linesOf('text', 'error').length).toBe(7);
  });

  it('every pve-s3-* flag and action shown exists in that command\'s --help', () => {
    const helps = new Map(COMMANDS.map((c) => [c, helpOf(c)]));
    let checked = 0;
    for (const b of blocks.filter((b) => b.lang === 'sh')) {
      for (const line of b.lines) {
        for (const part of line.split('|')) {
          const w = words(part.trim());
          const cmd = w[0];
          if (!cmd || !helps.has(cmd)) continue;
          const help = helps.get(cmd)!;
          for (let i = 1; i < w.length; i++) {
            if (!w[i]!.startsWith('--')) continue;
            expect(help, `${cmd} ${w[i]}`).toMatch(new RegExp(`(^|[\\s\\[|(,])${w[i]!.replace(/[-]/g, '\\-')}(?![\\w-])`, 'm'));
            if (w[i] === '--action') expect(help, `${cmd} --action ${w[i + 1]}`).toMatch(new RegExp(`^\\s+${w[i + 1]}\\s`, 'm'));
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('every pve-s3-* command quoted in the prose (`…` spans) uses flags and actions its --help lists', () => {
    const helps = new Map(COMMANDS.map((c) => [c, helpOf(c)]));
    const prose = README.replace(/^```[\s\S]*?^```[ \t]*$/gm, '');
    const spans = [...prose.matchAll(/`([^`]+)`/g)].map((m) => m[1]!.replace(/\s+/g, ' ').trim());
    let checked = 0;
    for (const span of spans) {
      const w = words(span);
      const help = helps.get(w[0] ?? '');
      if (!help) continue;
      for (let i = 1; i < w.length; i++) {
        if (!w[i]!.startsWith('--')) continue;
        expect(help, `${span}: ${w[i]}`).toMatch(new RegExp(`(^|[\\s\\[|(,])${w[i]!.replace(/[-]/g, '\\-')}(?![\\w-])`, 'm'));
        // `--action prune|cleanup` names two
        if (w[i] === '--action') for (const a of w[i + 1]!.split('|')) expect(help, `${span}: --action ${a}`).toMatch(new RegExp(`^\\s+${a}\\s`, 'm'));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(15);
  });

  it('the key table lists exactly the schema\'s keys, with its ranges and defaults', () => {
    const rows = new Map(
      README.split('\n')
        .filter((l) => /^\| `[a-z_-]+`( \(PVE\))? \|/.test(l))
        .map((l) => [/^\| `([^`]+)`/.exec(l)![1]!, l.split('|').map((c) => c.trim())]),
    );
    expect([...rows.keys()].sort()).toEqual([...OWN_KEYS, ...PVE_GLOBAL_KEYS].sort());
    for (const [key, cells] of rows) {
      const d = SCHEMA.get(key)!;
      const [, name, def, allowed] = cells;
      expect(name!.includes('(PVE)'), key).toBe(d.pveGlobal === true);
      if (d.type === 'integer' && d.max !== undefined && d.max !== Number.MAX_SAFE_INTEGER) expect(allowed, key).toContain(`${d.min}–${d.max}`);
      if (typeof d.default === 'boolean') expect(def, key).toContain(`\`${d.default ? 1 : 0}\``);
      else if (typeof d.default === 'number' || (typeof d.default === 'string' && d.default !== '')) expect(def, key).toContain(`\`${d.default}\``);
    }
  });

  it('the storage.cfg example parses and validates, and each of its keys is explained', () => {
    const text = tagged('text', 'storage.cfg')[0]!.lines.join('\n') + '\n';
    const cfg = parseStorageCfg(text);
    const s = cfg.get('my-s3');
    expect(s?.type).toBe('s3');
    const c = storageConfigFromSection('my-s3', s!.props, { secret: 'not-a-real-secret' });
    expect(c.bucket).toBe('my-bucket-proxmox');
    expect(c.multipartChunkSizeMB).toBe(100);
    expect(c.lifecycle.enabled).toBe(true);
    for (const k of Object.keys(s!.props)) expect(README, k).toContain(`| \`${k}\``);
  });

  it('the vzdump.conf line names the hook the package installs, as its --help says', () => {
    expect(linesOf('text', 'vzdump.conf')).toEqual(['script: /usr/bin/pve-s3-vzdump-hook']);
    expect(helpOf('pve-s3-vzdump-hook')).toContain('script: /usr/bin/pve-s3-vzdump-hook');
    expect(readFileSync(join(ROOT, 'Makefile'), 'utf8')).toMatch(/^COMMANDS\s*:=.*\bpve-s3-vzdump-hook\b/m);
  });

  it('the developer commands are exactly the two, and CI runs the second', () => {
    expect([...new Set(linesOf('sh', 'dev'))]).toEqual(['npm ci && npm run demo', 'npm ci && npm test']);
    const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.demo).toBeTruthy();
    expect(scripts.test).toMatch(/vitest run/);
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    expect(ci).toMatch(/^npm ci\b/m);
    expect(ci).toMatch(/^npm test\b/m);
  });
});

describe('README "check" commands', () => {
  const lines = linesOf('sh', 'check');

  it('each is one this test knows how to check', () => {
    for (const l of lines) expect(l, l).toMatch(/^(apt install |make install |systemctl reload-or-restart |read -rs |pvesm (add|set|status) |pvesm remove my-s3$|pvesh get \/storage\/my-s3$)/);
  });

  it('every pvesm set is accepted by the plugin (perl/t PVE double): options valid, --delete only of optional keys', (ctx) => {
    if (spawnSync('perl', ['-e', '1']).status !== 0) ctx.skip();
    const sets = lines.filter((x) => x.startsWith('pvesm set ')).map((l) => {
      const w = words(l);
      expect(w.slice(0, 3), l).toEqual(['pvesm', 'set', 'my-s3']);
      const o: Record<string, string> = {};
      for (let i = 3; i < w.length; i++) {
        expect(w[i], l).toMatch(/^--/);
        o[w[i]!.slice(2)] = w[++i]!.replace('$S3_SECRET', 'secret-from-read');
      }
      return o;
    });
    expect(sets.length).toBeGreaterThan(1);
    const script = `
      use strict; use warnings; use JSON::PP;
      use S3PluginTest;
      S3PluginTest::load_plugin('9');
      my $opts = $PLUGIN->options();
      for my $p (@{ JSON::PP->new->decode($ENV{SETS}) }) {
        for my $k (split(/,/, delete($p->{delete}) // '')) {
          die "--delete $k: not an option\\n" if !$opts->{$k};
          die "--delete $k: required or fixed\\n" if !$opts->{$k}->{optional} || $opts->{$k}->{fixed};
        }
        PVE::Tools::extract_sensitive_params($p, PVE::Storage::Plugin::sensitive_properties('s3'), []);
        $PLUGIN->check_config('my-s3', $p, 0, 0);
      }
      print "ok\\n";
    `;
    const r = spawnSync('perl', ['-I', join(ROOT, 'perl/t/lib'), '-I', join(ROOT, 'perl'), '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, SETS: JSON.stringify(sets) },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('ok\n');
  });

  it('apt install names the package make deb builds for this version', () => {
    const l = lines.find((x) => x.startsWith('apt install '))!;
    // PVE nodes are amd64; make deb builds for the machine it runs on (the zstd addon is native)
    expect(l).toBe(`apt install ./pve-s3_${VERSION}_amd64.deb`);
    const make = readFileSync(join(ROOT, 'Makefile'), 'utf8');
    expect(make).toContain('DEB      := $(DEBDIR)/$(PACKAGE)_$(VERSION)_$(ARCH).deb');
    expect(make).toContain('ARCH     := $(shell dpkg --print-architecture)');
  });

  it('make install DESTDIR is a real target (the package test compares its tree with the .deb)', () => {
    expect(lines).toContain('make install DESTDIR=/');
    const r = spawnSync('make', ['-n', '-C', ROOT, 'install', 'DESTDIR=/nonexistent-root', 'SKIP_NPM_BUILD=1'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('/nonexistent-root/usr/share/perl5/PVE/Storage/Custom');
  });

  it('systemctl reloads exactly the daemons the package reloads', () => {
    const units = words(lines.find((x) => x.startsWith('systemctl '))!).slice(2);
    const postinst = readFileSync(join(ROOT, 'packaging/postinst'), 'utf8');
    expect(/for unit in ([a-z ]+); do/.exec(postinst)?.[1]?.split(' ')).toEqual(units);
  });

  it('pvesm add / set options are accepted by the plugin (perl/t PVE double), the secret goes to the priv file', (ctx) => {
    if (spawnSync('perl', ['-e', '1']).status !== 0) ctx.skip();
    const add = words(lines.find((x) => x.startsWith('pvesm add '))!);
    const set = words(lines.find((x) => x.startsWith('pvesm set '))!);
    const status = words(lines.find((x) => x.startsWith('pvesm status '))!);
    expect(add.slice(0, 4)).toEqual(['pvesm', 'add', 's3', 'my-s3']);
    expect(set.slice(0, 3)).toEqual(['pvesm', 'set', 'my-s3']);
    expect(status).toEqual(['pvesm', 'status', '--storage', 'my-s3']);
    const opts = (w: string[]) => {
      const o: Record<string, string> = {};
      for (let i = 0; i < w.length; i++) if (w[i]!.startsWith('--')) o[w[i]!.slice(2)] = w[++i]!.replace('$S3_SECRET', 'secret-from-read');
      return o;
    };
    const tmp = mkdtempSync(join(tmpdir(), 'pve-s3-readme-pvesm-'));
    try {
      const script = `
        use strict; use warnings; use JSON::PP;
        use S3PluginTest;
        S3PluginTest::load_plugin('9');
        my $in = JSON::PP->new->decode($ENV{OPTS});
        my $p = $in->{add};
        my $sens = PVE::Tools::extract_sensitive_params($p, PVE::Storage::Plugin::sensitive_properties('s3'), []);
        my $scfg = $PLUGIN->check_config('my-s3', $p, 1, 0);
        $PLUGIN->on_add_hook('my-s3', $scfg, %$sens);
        my $upd = $PLUGIN->check_config('my-s3', $in->{set}, 0, 0);
        print JSON::PP->new->canonical->encode({ scfg => $scfg, upd => $upd }), "\\n";
      `;
      const r = spawnSync('perl', ['-I', join(ROOT, 'perl/t/lib'), '-I', join(ROOT, 'perl'), '-e', script], {
        encoding: 'utf8',
        // the checkout's host: on_add_hook asks it its protocol version before writing anything
        env: {
          ...process.env,
          OPTS: JSON.stringify({ add: opts(add), set: opts(set) }),
          PVE_S3_PRIV_DIR: join(tmp, 'priv'),
          PVE_S3_HOST_BIN: `${process.execPath} ${join(ROOT, 'host/bin/pve-s3-host.js')}`,
          PVE_S3_LOG_FILE: join(tmp, 'host.log'),
        },
      });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { scfg: Record<string, unknown>; upd: Record<string, unknown> };
      expect(out.scfg).toMatchObject({ type: 's3', bucket: 'my-bucket-proxmox', endpoint: 's3.eu-central-1.amazonaws.com', prefix: 'proxmox/' });
      expect(out.scfg).not.toHaveProperty('secret_key');
      expect(readFileSync(join(tmp, 'priv', 'my-s3.pw'), 'utf8')).toBe('secret-from-read\n');
      expect(out.upd['prune-backups']).toBeTruthy();
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('README commands against the test RadosGW', () => {
  let c: S3Client;
  let sb: string;
  let env: NodeJS.ProcessEnv;
  const payload = randomBytes(7 * 1024 * 1024 + 99); // the uncompressed "VM backup"
  const iso = randomBytes(1024 * 1024 + 5);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  beforeAll(async () => {
    c = await freshBucket('readme');
    sb = mkdtempSync(join(tmpdir(), 'pve-s3-readme-'));
    for (const d of ['bin', 'cwd', 'vz/dump', 'var-tmp', 'priv', 'cache']) mkdirSync(join(sb, d), { recursive: true });
    for (const cmd of COMMANDS) {
      writeFileSync(join(sb, 'bin', cmd), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'host/bin', `${cmd}.js`)}" "$@"\n`, { mode: 0o755 });
    }
    // zstd frames of the payload, what `vzdump --compress zstd` would produce
    const z = spawnSync('zstd', ['-q', '-c'], { input: payload, maxBuffer: 64 << 20 });
    if (z.status !== 0) throw new Error('zstd is needed by this test (apt-get install zstd)');
    writeFileSync(join(sb, 'payload.zst'), z.stdout);
    writeFileSync(join(sb, 'vz/dump/vzdump-qemu-100-2025_01_31-02_00_00.vma.zst'), z.stdout);
    writeFileSync(join(sb, 'cwd/debian-12.iso'), iso);
    writeFileSync(join(sb, 'bin', 'vzdump'), `#!/bin/sh\ncase " $* " in *" --stdout "*) exec cat "${join(sb, 'payload.zst')}" ;; esac\necho "vzdump stub: only --stdout" >&2; exit 2\n`, { mode: 0o755 });
    writeFileSync(join(sb, 'bin', 'qmrestore'), `#!/bin/sh\n[ "$1" = "-" ] || exit 2\ncat > "${join(sb, 'qmrestore')}-$2.raw"\n`, { mode: 0o755 });

    // the README's storage.cfg example, pointed at the gateway (RadosGW here has no SSE-S3 backend)
    const t = testS3();
    const example = tagged('text', 'storage.cfg')[0]!.lines;
    const cfg = example
      .filter((l) => !/^\s+server_side_encryption /.test(l))
      .map((l) =>
        l
          .replace(/^(\s+bucket ).*/, `$1${c.bucket}`)
          .replace(/^(\s+endpoint ).*/, `$1${t.endpoint}`)
          .replace(/^(\s+region ).*/, `$1${t.region}`)
          .replace(/^(\s+access_key ).*/, `$1${t.accessKeyId}`)
          // 5 MB parts: the 7 MiB test backup still goes up as a multipart upload
          .replace(/^(\s+multipart_chunk_size ).*/, '$15'),
      );
    cfg.push('\tforce_path_style 1', `\tpath ${join(sb, 'cache')}`);
    writeFileSync(join(sb, 'storage.cfg'), cfg.join('\n') + '\n');
    writeFileSync(join(sb, 'priv', 'my-s3.pw'), `${t.secretAccessKey}\n`, { mode: 0o600 });
    env = {
      PATH: `${join(sb, 'bin')}:/usr/local/bin:/usr/bin:/bin`,
      HOME: sb,
      LANG: 'C.UTF-8',
      PVE_S3_STORAGE_CFG: join(sb, 'storage.cfg'),
      PVE_S3_PRIV_DIR: join(sb, 'priv'),
      PVE_S3_CREDENTIALS: join(sb, 'no-credentials'),
      PVE_S3_LOG_FILE: join(sb, 'storage-s3.log'),
    };
  }, 300_000);

  afterAll(async () => {
    if (c) await dropBucket(c).catch(() => {});
    await closeTestClients();
    if (sb) rmSync(sb, { recursive: true, force: true });
  });

  const localise = (line: string) => line.replaceAll('/var/lib/vz/', `${sb}/vz/`).replaceAll('/var/tmp/', `${sb}/var-tmp/`);
  const sh = (line: string, extra: NodeJS.ProcessEnv = {}) =>
    spawnSync('bash', ['-o', 'pipefail', '-c', localise(line)], { cwd: join(sb, 'cwd'), env: { ...env, ...extra }, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000 });

  it.each(linesOf('sh', 'run').map((l, i) => [i + 1, l] as const))('run %i: %s', (_, line) => {
    const r = sh(line);
    expect(r.status, `${line}\n${r.stdout}\n${r.stderr}`).toBe(0);
  });

  it('what came back is what went in', () => {
    expect(sha(readFileSync(join(sb, 'var-tmp/vzdump-qemu-100-2025_01_31-02_00_00.vma.zst')))).toBe(sha(readFileSync(join(sb, 'payload.zst'))));
    expect(sha(readFileSync(join(sb, 'qmrestore-100.raw')))).toBe(sha(payload));
    const list = sh('pve-s3-restore --storage my-s3 --list --vmid 100 --json');
    expect(list.status, list.stderr).toBe(0);
    const vols = JSON.parse(list.stdout) as { name: string; size: number; verified: boolean }[];
    // the file upload and the streamed one (named with the current time)
    expect(vols.map((v) => v.name)).toContain('vzdump-qemu-100-2025_01_31-02_00_00.vma.zst');
    expect(vols.filter((v) => /^vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/.test(v.name))).toHaveLength(2);
    expect(vols.every((v) => v.verified)).toBe(true);
    // --from-command: the producer's stdout, stored under the guest the command line names
    const fromCmd = sh('pve-s3-restore --storage my-s3 --list --vmid 101 --json');
    expect(fromCmd.status, fromCmd.stderr).toBe(0);
    const v101 = JSON.parse(fromCmd.stdout) as { name: string; size: number; verified: boolean }[];
    expect(v101.map((v) => [/^vzdump-qemu-101-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/.test(v.name), v.size, v.verified])).toEqual([
      [true, readFileSync(join(sb, 'payload.zst')).length, true],
    ]);
    const isos = sh('pve-s3-restore --storage my-s3 --list --content iso --json');
    expect((JSON.parse(isos.stdout) as { name: string; size: number }[]).map((v) => [v.name, v.size])).toEqual([['debian-12.iso', iso.length]]);
  });

  it('the troubleshooting messages are what the commands print', async () => {
    const t = testS3();
    // a gateway that takes connections and never answers: the relay, frozen (spawnSync holds this
    // process's event loop too), with stall_timeout 10 as the README's example says
    const relay = await startFreezeRelay(t.endpoint);
    relay.freeze();
    const stalledCfg = join(sb, 'storage-stalled.cfg');
    writeFileSync(stalledCfg, readFileSync(join(sb, 'storage.cfg'), 'utf8').replace(/^(\s+endpoint ).*/m, `$1${relay.url}`) + '\tstall_timeout 10\n');
    // a key of another gateway user: the bucket is not its own
    const other = { access: 'PVES3OTHERUSER000001', secret: 'pveS3OtherUserSecret00000000000000000001' };
    await runRgwAdmin(['user', 'create', '--uid=pve-s3-other', '--display-name=other', `--access-key=${other.access}`, `--secret=${other.secret}`]).catch((e: Error) => {
      if (!/exists/i.test(e.message)) throw e;
    });
    const gw: [string, string] = [t.endpoint, SHOWN_ENDPOINT];
    const cases: Record<string, { cmd: string; env: NodeJS.ProcessEnv; exit: number; shown: [string, string][] }> = {
      SignatureDoesNotMatch: { cmd: 'pve-s3-restore --storage my-s3 --list', env: { S3_SECRET_KEY: 'wrong-secret-key-0123456789' }, exit: 4, shown: [gw] },
      InvalidAccessKeyId: { cmd: 'pve-s3-restore --storage my-s3 --list', env: { S3_ACCESS_KEY: 'NOSUCHACCESSKEY0000' }, exit: 4, shown: [gw] },
      AccessDenied: {
        cmd: 'pve-s3-restore --storage my-s3 --list',
        env: { S3_ACCESS_KEY: other.access, S3_SECRET_KEY: other.secret },
        exit: 4,
        shown: [gw, [c.bucket, 'my-bucket-proxmox']],
      },
      NoSuchBucket: { cmd: 'pve-s3-backup --storage my-s3 --source debian-12.iso', env: { S3_BUCKET: 'my-bucket-proxmox' }, exit: 3, shown: [gw] },
      ConnectionRefused: { cmd: 'pve-s3-restore --storage my-s3 --list', env: { S3_ENDPOINT: 'http://127.0.0.1:1' }, exit: 1, shown: [['http://127.0.0.1:1', SHOWN_ENDPOINT]] },
      NetworkError: { cmd: 'pve-s3-restore --storage my-s3 --list', env: { S3_ENDPOINT: 'https://s3.nonexistent.invalid' }, exit: 1, shown: [] },
      Stalled: { cmd: 'pve-s3-restore --storage my-s3 --list', env: { PVE_S3_STORAGE_CFG: stalledCfg }, exit: 1, shown: [[relay.url, SHOWN_ENDPOINT]] },
    };
    const seen = new Set<string>();
    for (const line of linesOf('text', 'error')) {
      const code = /\[(\w+)\]$/.exec(line)?.[1];
      const k = cases[code ?? ''];
      expect(k, `no reproduction for: ${line}`).toBeDefined();
      expect(line.startsWith(`${k!.cmd.split(' ')[0]}: `), line).toBe(true);
      const r = sh(k!.cmd, k!.env);
      const last = r.stderr.trimEnd().split('\n').pop() ?? '';
      expect(k!.shown.reduce((text, [from, to]) => text.replaceAll(from, to), last)).toBe(line);
      expect(r.status, line).toBe(k!.exit);
      seen.add(code!);
    }
    await relay.close();
    expect(seen.size).toBe(7);
  });
});


describe('README "try" block', () => {
  it('runs from the checkout against the gateway: the restored file is the file backed up, and the secret is never printed', async () => {
    const t = testS3();
    const sb = mkdtempSync(join(tmpdir(), 'pve-s3-readme-try-'));
    const bucket = `readme-try-${randomBytes(4).toString('hex')}`;
    try {
      // the gateway's s3.env as test/s3/rgw-up.sh writes it
      mkdirSync(join(sb, 'pve-s3-rgw'));
      writeFileSync(
        join(sb, 'pve-s3-rgw', 's3.env'),
        `S3_ENDPOINT=${t.endpoint}\nS3_REGION=${t.region}\nS3_ACCESS_KEY=${t.accessKeyId}\nS3_SECRET_KEY=${t.secretAccessKey}\nS3_FORCE_PATH_STYLE=true\n`,
      );
      const script = linesOf('sh', 'try')
        .map((l) => l.replaceAll('/tmp/', `${sb}/`).replaceAll('try-pve-s3', bucket))
        .join('\n');
      expect(script).toContain('make-bucket.mjs');
      // the demo stops a gateway it started: the block starts it again (here: the test gateway,
      // running, so rgw-up.sh only reuses it; PVE_S3_RGW_DIR passes through as a reader's would)
      expect(script.split('\n')[0]).toBe('test/s3/rgw-up.sh > /dev/null');
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('S3_')));
      const r = spawnSync('bash', ['-e', '-o', 'pipefail', '-c', script], { cwd: ROOT, encoding: 'utf8', env: { ...env, PVE_S3_LOG_FILE: join(sb, 'log') } });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^env:backup\/vzdump-qemu-100-2026_12_05-12_00_00\.vma\.zst\s+100\s+qemu\s.*first try$/m);
      expect(readFileSync(join(sb, 'restored', 'vzdump-qemu-100-2026_12_05-12_00_00.vma.zst')).equals(readFileSync(join(sb, 'vzdump-qemu-100-2026_12_05-12_00_00.vma.zst'))),
      ).toBe(true);
      expect(r.stdout + r.stderr).not.toContain(t.secretAccessKey);
    } finally {
      const c = testClient({ bucket });
      await dropBucket(c).catch(() => undefined);
      rmSync(sb, { recursive: true, force: true });
    }
  });
});
