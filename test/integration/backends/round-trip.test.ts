// The core round trip — upload, list, restore, notes, protected, prune, check-integrity, abort —
// as an administrator runs it (the commands, with a storage.cfg) and as PVE runs it (the
// protocol host the Perl plugin starts), once against each real S3 implementation the tests
// start: Ceph RadosGW (provider ceph) and OpenStack Swift with s3api (provider swift). The
// storage names its provider, so whatever pve-s3 does differently per provider is exercised
// against the server it is meant for.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveName } from '../../../host/src/pve/volname.js';
import type { S3Client } from '../../../host/src/s3/client.js';
import { backendSettings, backends } from '../../helpers/backends.js';
import { closeTestClients, dropBucket, freshBucket } from '../../helpers/s3.js';
import { BIN, MiB, body, cfgEnv, keys, requireBuild, run, s3Section } from '../cli-helpers.js';
import { testManifestKey } from '../../helpers/manifest-key.js';

const ID = 'rt';
const OLD = 'vzdump-qemu-100-2024_01_01-00_00_00.vma.zst'; // protected below: prune keeps it
const MID = 'vzdump-qemu-100-2024_06_01-00_00_00.vma.zst'; // pruned by keep-last=1
const HOST = join(BIN, 'pve-s3-host.js');

afterAll(closeTestClients);

describe.each(backends().map((b) => [b.name, b] as const))('core round trip on %s', (_name, backend) => {
  let c: S3Client;
  let dir: string;
  let dump: string;
  let env: NodeJS.ProcessEnv;
  let section: Record<string, string>;
  let secret: string;
  let NEW: string;
  const data = new Map<string, Buffer>();
  const cli = (cmd: string, ...args: string[]) => run(cmd, ['--storage', ID, ...args], { env });

  /** One protocol request, as the Perl plugin sends it (the secret in the request, never argv);
   *  with a deadline a busy 2-core machine can keep (status's own default is 2 s). */
  const host = (op: string, args: Record<string, unknown> = {}) =>
    new Promise<{ ok: boolean; result?: Record<string, unknown>; error?: { code: string; message: string } }>((res, rej) => {
      const p = spawn(process.execPath, [HOST], { env: { ...env, PVE_S3_DEBUG: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('error', rej);
      p.on('close', () => {
        try {
          res(JSON.parse(out));
        } catch {
          rej(new Error(`no JSON envelope from the host: ${out}`));
        }
      });
      p.stdin.end(JSON.stringify({ v: 1, op, deadline_ms: 120_000, storage: { id: ID, ...section, secret_key: secret, path: join(dir, 'cache') }, args }));
    });

  beforeAll(async () => {
    requireBuild();
    c = await freshBucket(`rt-${backend.name}`, backendSettings(backend));
    dir = await mkdtemp(join(tmpdir(), `pve-s3-rt-${backend.name}-`));
    dump = join(dir, 'dump');
    await mkdir(dump, { recursive: true });
    await mkdir(join(dir, 'cache', 'dump'), { recursive: true });
    NEW = archiveName({ vmid: 100, guestType: 'qemu', compression: 'zst', time: new Date() });
    // 12 MiB + 7 at 5 MiB parts: a three-part multipart upload with a short last part
    for (const [name, size] of [[NEW, 12 * MiB + 7], [MID, 2 * MiB], [OLD, MiB + 3]] as const) {
      data.set(name, randomBytes(size));
      await writeFile(join(dump, name), data.get(name)!);
    }
    const s = s3Section(ID, c.bucket, { multipart_chunk_size: '5', provider: backend.provider, prefix: 'pve/' }, backend.s3);
    section = s.props;
    secret = s.secret;
    env = await cfgEnv(dir, [s]);
    testManifestKey(join(dir, 'priv'), ID); // as pvesm add makes it (issue 10 §7)
  });

  afterAll(async () => {
    if (c) await dropBucket(c);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('upload: three backups, one with notes, one protected; the multipart one in 5 MiB parts', async () => {
    const a = await cli('pve-s3-backup', '--source', join(dump, NEW), '--notes', 'nightly\nsecond line');
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.stdout).toContain(`uploaded ${ID}:backup/${NEW} (`);
    expect(a.stdout).toContain('verified');
    const b = await cli('pve-s3-backup', '--source', join(dump, MID), '--source', join(dump, OLD));
    expect(b.code).toBe(0);
    const manifest = JSON.parse((await body(c, `pve/dump/${NEW}.s3manifest`)).toString()) as { multipart: boolean; parts: unknown[] };
    expect(manifest.multipart).toBe(true);
    expect(manifest.parts).toHaveLength(3);
    expect((await c.headObject(`pve/dump/${NEW}`)).etag).toMatch(/-3"$/);
    expect((await body(c, `pve/dump/${NEW}.notes`)).toString()).toBe('nightly\nsecond line');
  });

  it('list: the commands and the protocol see the same three backups', async () => {
    const r = await cli('pve-s3-restore', '--list', '--vmid', '100', '--json');
    expect(r.code).toBe(0);
    const vols = JSON.parse(r.stdout) as Array<{ volid: string; size: number; notes?: string; protected: boolean }>;
    expect(vols.map((v) => v.volid).sort()).toEqual([MID, NEW, OLD].map((n) => `${ID}:backup/${n}`).sort());
    // the first line of the notes, as PVE lists them; the whole text through get-attr below
    expect(vols.find((v) => v.volid.endsWith(NEW))).toMatchObject({ size: 12 * MiB + 7, notes: 'nightly', protected: false });
    const l = await host('list', { content: ['backup'] });
    expect(l.ok).toBe(true);
    const listed = (l.result!.volumes as Array<{ volname: string; verified: boolean }>).filter((v) => v.volname.startsWith('backup/vzdump-qemu-100-'));
    expect(listed).toHaveLength(3);
    expect(listed.every((v) => v.verified)).toBe(true);
  });

  it('restore: the exact bytes, to a file and through the protocol', async () => {
    const dest = join(dir, 'restored.vma.zst');
    const r = await cli('pve-s3-restore', '--source', NEW, '--destination', dest);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('verified against the manifest');
    expect((await readFile(dest)).equals(data.get(NEW)!)).toBe(true);
    const d = await host('download', { volname: `backup/${MID}`, dest: join(dir, 'cache', 'dump', MID) });
    expect(d.error).toBeUndefined();
    expect(d.ok).toBe(true);
    expect(d.result).toMatchObject({ size: 2 * MiB, verified: true });
    expect((await readFile(join(dir, 'cache', 'dump', MID))).equals(data.get(MID)!)).toBe(true);
  });

  it('notes and protected: set, read back, refused deletion', async () => {
    expect((await host('get-attr', { volname: `backup/${NEW}`, attr: 'notes' })).result).toEqual({ value: 'nightly\nsecond line' });
    expect((await host('set-attr', { volname: `backup/${OLD}`, attr: 'notes', value: 'keep this one' })).ok).toBe(true);
    expect((await host('get-attr', { volname: `backup/${OLD}`, attr: 'notes' })).result).toEqual({ value: 'keep this one' });
    expect((await host('set-attr', { volname: `backup/${OLD}`, attr: 'protected', value: true })).ok).toBe(true);
    expect((await host('get-attr', { volname: `backup/${OLD}`, attr: 'protected' })).result).toEqual({ value: true });
    expect(await keys(c, `pve/dump/${OLD}.`)).toEqual([`pve/dump/${OLD}.notes`, `pve/dump/${OLD}.protected`, `pve/dump/${OLD}.s3manifest`]);
    // a protected backup is never deleted, not even by name
    const del = await host('delete', { volnames: [`backup/${OLD}`] });
    expect(del.ok).toBe(false);
    expect(del.error!.code).toBe('VolumeProtected');
    expect(await keys(c, `pve/dump/${OLD}`)).toContain(`pve/dump/${OLD}`);
  });

  it('prune keep-last=1: the newest and the protected one stay, the other goes with its sidecars', async () => {
    const r = await cli('pve-s3-maintenance', '--action', 'prune', '--prune-backups', 'keep-last=1');
    expect(r.code).toBe(0);
    const k = await keys(c, 'pve/dump/');
    expect(k.filter((x) => x.includes(MID))).toEqual([]);
    expect(k).toContain(`pve/dump/${NEW}`);
    expect(k).toContain(`pve/dump/${NEW}.notes`);
    expect(k).toContain(`pve/dump/${OLD}`);
    expect(k).toContain(`pve/dump/${OLD}.protected`);
  });

  it('check-integrity: good while intact; a changed object is reported corrupt (exit 5)', async () => {
    const ok = await cli('pve-s3-maintenance', '--action', 'check-integrity');
    expect(ok.code).toBe(0);
    for (const n of [NEW, OLD]) expect(ok.stdout).toMatch(new RegExp(`^GOOD\\s+${ID}:backup/${n.replaceAll('.', '\\.')} `, 'm'));
    // same size, other bytes: only the manifest's digests can tell
    const changed = Buffer.from(data.get(OLD)!);
    changed[changed.length - 1] ^= 0xff;
    await c.putObject(`pve/dump/${OLD}`, changed);
    const bad = await cli('pve-s3-maintenance', '--action', 'check-integrity', '--source', OLD);
    expect(bad.code).toBe(5);
    expect(bad.stdout).toMatch(new RegExp(`^CORRUPT\\s+${ID}:backup/${OLD.replaceAll('.', '\\.')}`, 'm'));
  });

  it('abort: Ctrl-C during a multipart upload leaves no upload and no object behind', async () => {
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', ID, '--source', '-', '--vmid', '100', '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.on('error', () => undefined);
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    const kill = setTimeout(() => p.kill('SIGKILL'), 120_000); // safety net only
    p.stdin.write(randomBytes(12 * MiB));
    // wait (by polling the bucket, not the clock) until a part of the upload is stored
    let uploads = await c.listMultipartUploads();
    for (let i = 0; i < 600 && !(uploads.length === 1 && (await c.listParts(uploads[0]!.key, uploads[0]!.uploadId)).length > 0); i++) {
      await new Promise((r) => setTimeout(r, 100));
      uploads = await c.listMultipartUploads();
    }
    expect(uploads).toHaveLength(1);
    const key = uploads[0]!.key;
    p.kill('SIGINT');
    const code = await exited;
    clearTimeout(kill);
    expect(code).toBe(1);
    expect(stderr).toMatch(/nothing was left behind/);
    expect(await c.listMultipartUploads()).toEqual([]);
    expect(await keys(c, key)).toEqual([]);
  });

  it('abort: a stale upload left by a dead process is aborted by the protocol op', async () => {
    const key = `pve/dump/vzdump-qemu-100-2020_01_01-00_00_00.vma.zst`;
    const id = await c.createMultipartUpload(key);
    // "older than 0 hours" is "initiated before now", and Swift's s3api rounds Initiated up to the
    // next whole second: without this wait the upload could still lie in the future (seen in CI)
    await new Promise((r) => setTimeout(r, 1100));
    const r = await host('abort-stale-uploads', { older_than_hours: 0 });
    expect(r.ok).toBe(true);
    expect((r.result!.aborted as Array<{ key: string; upload_id: string }>).map((u) => [u.key, u.upload_id])).toEqual([[key, id]]);
    expect(await c.listMultipartUploads()).toEqual([]);
  });

  it('status names the provider the storage is configured with', async () => {
    const s = await host('status');
    expect(s.ok).toBe(true);
    expect(s.result!.provider).toMatchObject({ id: backend.provider, detected: false });
    const m = await cli('pve-s3-maintenance', '--action', 'status');
    expect(m.code).toBe(0);
    expect(m.stdout).toMatch(new RegExp(`^provider    .*\\(${backend.provider}, set in the configuration\\): up to ${backend.provider === 'swift' ? 1000 : 10000} parts`, 'm'));
    // Swift has no lifecycle: status does not ask (its s3api would answer with a bucket listing)
    if (backend.provider === 'swift') expect(m.stdout).toMatch(/^lifecycle   not offered by OpenStack Swift \(s3api\)$/m);
    else expect(m.stdout).toMatch(/^lifecycle   no rules$/m);
  });
});
