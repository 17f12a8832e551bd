// Corruption is caught where a user meets it: pve-s3-restore (the CLI), the protocol's download
// (what the plugin's activate_volume runs) and check-integrity, with the default CRC-64/NVME check
// and with SHA-256 (--verify sha256, --deep, and archives whose manifest predates CRCs). Stored
// bytes are damaged in RADOS under the gateway, so size and ETag stay what the manifest says;
// manifests and truncated objects are written back with a real PUT of the same key.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { crcKeepingMask } from '../helpers/crc64.js';
import { flipStoredByte, xorStoredBytes } from '../helpers/rados.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, body, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';
import { readKeyring } from '../../host/src/config/manifest-key.js';
import { serializeManifest } from '../../host/src/transfer/manifest.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let cache: string;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('integrity');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-integrity-'));
  env = await cfgEnv(dir, [s3Section('s3v', c.bucket, { multipart_chunk_size: '5' })]);
  cache = join(dir, 'cache');
  await mkdir(join(cache, 'dump'), { recursive: true });
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** 12 MiB + 5: three parts of 5 MiB (the storage's multipart_chunk_size). */
async function backup(name: string): Promise<{ key: string; data: Buffer }> {
  const data = randomBytes(12 * MiB + 5);
  await writeFile(join(dir, name), data);
  const r = await run('pve-s3-backup', ['--storage', 's3v', '--source', join(dir, name)], { env });
  expect(r.code, r.stderr).toBe(0);
  return { key: `dump/${name}`, data };
}

/** pve-s3-restore into an empty directory of its own; what it left there. */
async function restore(name: string, extra: string[] = []): Promise<{ code: number | null; stderr: string; stdout: string; left: string[]; out: string }> {
  const d = await mkdtemp(join(dir, 'restore-'));
  const out = join(d, name);
  const r = await run('pve-s3-restore', ['--storage', 's3v', '--source', name, '--destination', out, ...extra], { env });
  return { ...r, left: await readdir(d), out };
}

/** The protocol's download into the storage's cache directory, as activate_volume asks for it. */
async function activate(name: string): Promise<{ ok: boolean; code?: string; message?: string; left: string[] }> {
  const t = testS3();
  const storage = {
    id: 's3v',
    bucket: c.bucket,
    endpoint: t.endpoint,
    region: t.region,
    access_key: t.accessKeyId,
    secret_key: t.secretAccessKey,
    path: cache,
    content: 'backup',
    multipart_chunk_size: '5',
  };
  const dest = join(cache, 'dump', name);
  const r = await run('pve-s3-host', [], { env, input: Buffer.from(JSON.stringify({ v: 1, op: 'download', storage, args: { volname: `backup/${name}`, dest } })) });
  const e = JSON.parse(r.stdout) as { ok: boolean; error?: { code: string; message: string } };
  const left = (await readdir(join(cache, 'dump'))).filter((n) => n.includes(name));
  return { ok: e.ok, code: e.error?.code, message: e.error?.message, left };
}

async function check(name: string, deep = false): Promise<{ code: number | null; status: string; message?: string; checks?: string[] }> {
  const r = await run('pve-s3-maintenance', ['--storage', 's3v', '--action', 'check-integrity', '--source', name, '--json', ...(deep ? ['--deep'] : [])], { env });
  const item = (JSON.parse(r.stdout) as { items: Array<{ status: string; message?: string; checks?: string[] }> }).items[0]!;
  return { code: r.code, ...item };
}

/** What an archive uploaded before manifests carried CRCs has: version 1, SHA-256 only; signed
 *  with the storage's manifest key, as `pve-s3-maintenance --action adopt` leaves it. */
async function downgradeManifest(key: string): Promise<void> {
  const m = JSON.parse((await body(c, `${key}.s3manifest`)).toString('utf8').replace(/,"mac":"[^"]*"\}$/, '}'));
  m.version = 1;
  delete m.crc64;
  for (const p of m.parts) delete p.crc64;
  const ring = readKeyring(join(dir, 'priv', 's3v.manifest-key'))!;
  await c.putObject(`${key}.s3manifest`, serializeManifest(m, ring.current));
}

describe('one byte of a stored part, changed in RADOS (size and ETag stay)', () => {
  it('CRC-64/NVME (default) and SHA-256 both refuse it: restore, activate_volume, check-integrity', async () => {
    const name = 'vzdump-qemu-701-2025_01_01-00_00_00.vma.zst';
    const { key } = await backup(name);
    const before = await c.headObject(key);
    await flipStoredByte(c.bucket, key, 7 * MiB + 3);
    const after = await c.headObject(key);
    expect([after.size, after.etag]).toEqual([before.size, before.etag]);

    let r = await restore(name);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/part 2 \(bytes 5242880\.\.10485759\) does not match its CRC-64\/NVME in the manifest/);
    expect(r.left).toEqual([]); // neither the file nor a temporary one
    r = await restore(name, ['--verify', 'sha256']);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/part 2 .* does not match its (CRC-64\/NVME|SHA-256)/);
    expect(r.left).toEqual([]);

    const a = await activate(name);
    expect(a).toMatchObject({ ok: false, code: 'IntegrityError' });
    expect(a.message).toMatch(/part 2 .*CRC-64\/NVME/);
    expect(a.left).toEqual([]);

    expect(await check(name)).toMatchObject({ code: 5, status: 'corrupt' });
    expect(await check(name, true)).toMatchObject({ code: 5, status: 'corrupt' });
  });

  it('in an archive whose manifest predates CRCs (version 1), SHA-256 refuses it', async () => {
    const name = 'vzdump-qemu-702-2025_01_01-00_00_00.vma.zst';
    const { key, data } = await backup(name);
    await downgradeManifest(key);
    // intact, it restores, checked by SHA-256
    let r = await restore(name, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, checks: ['sha256'] });
    expect((await readFile(r.out)).equals(data)).toBe(true);
    expect(await check(name)).toMatchObject({ code: 0, status: 'good', checks: ['sha256'] });

    await flipStoredByte(c.bucket, key, 11 * MiB);
    r = await restore(name);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/part 3 \(bytes 10485760\.\.12582916\) does not match its SHA-256 in the manifest/);
    expect(r.left).toEqual([]);
    const a = await activate(name);
    expect(a).toMatchObject({ ok: false, code: 'IntegrityError' });
    expect(a.message).toMatch(/part 3 .*SHA-256/);
    expect(a.left).toEqual([]);
    expect(await check(name)).toMatchObject({ code: 5, status: 'corrupt' });
  });
});

describe('a change crafted to keep every CRC (the CRC is linear)', () => {
  it('passes the default CRC check, and SHA-256 (--verify sha256, --deep) refuses it', async () => {
    const name = 'vzdump-qemu-703-2025_01_01-00_00_00.vma.zst';
    const { key, data } = await backup(name);
    await xorStoredBytes(c.bucket, key, 6 * MiB + 11, crcKeepingMask(0x5a));

    // What the CRC is not for: it was built to catch accidents, and this is deliberate.
    let r = await restore(name, ['--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ checks: ['crc64nvme'] });
    expect((await readFile(r.out)).equals(data)).toBe(false);
    expect(await check(name)).toMatchObject({ code: 0, status: 'good', checks: ['crc64nvme'] });

    r = await restore(name, ['--verify', 'sha256']);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/part 2 \(bytes 5242880\.\.10485759\) does not match its SHA-256 in the manifest/);
    expect(r.left).toEqual([]);
    expect(await check(name, true)).toMatchObject({ code: 5, status: 'corrupt', checks: ['crc64nvme', 'sha256'] });
  });
});

describe('one byte of the manifest, written back with a PUT', () => {
  for (const [what, field] of [
    ['a part CRC', 'crc64'],
    ['a part SHA-256', 'sha256'],
  ] as const) {
    it(`in ${what}: the manifest is refused (restore, activate_volume, check-integrity)`, async () => {
      const name = `vzdump-qemu-71${field === 'crc64' ? 1 : 2}-2025_01_01-00_00_00.vma.zst`;
      const { key } = await backup(name);
      const text = (await body(c, `${key}.s3manifest`)).toString('utf8');
      const m = JSON.parse(text);
      const digit = m.parts[1][field] as string;
      // one byte: the first hex digit of part 2's digest, replaced by another hex digit
      const at = text.indexOf(digit);
      expect(at).toBeGreaterThan(0);
      const bad = Buffer.from(text);
      bad[at] = bad[at] === 0x30 ? 0x31 : 0x30;
      await c.putObject(`${key}.s3manifest`, bad);

      for (const extra of [[], ['--verify', 'sha256']]) {
        const r = await restore(name, extra);
        expect(r.code, r.stderr).toBe(5);
        expect(r.stderr).toMatch(/manifest '.*\.s3manifest' is invalid: .*(does not match the part|compositeSha256)/);
        expect(r.left).toEqual([]);
      }
      const a = await activate(name);
      expect(a).toMatchObject({ ok: false, code: 'ManifestInvalid' });
      expect(a.left).toEqual([]);
      expect(await check(name)).toMatchObject({ code: 5, status: 'missing-manifest' });
      expect(await check(name, true)).toMatchObject({ code: 5, status: 'missing-manifest' });
    });
  }
});

describe('a truncated object (its first bytes PUT back under the same key)', () => {
  it('is refused before a byte is written, whatever the check', async () => {
    const name = 'vzdump-qemu-720-2025_01_01-00_00_00.vma.zst';
    const { key, data } = await backup(name);
    await c.putObject(key, data.subarray(0, 8 * MiB));
    for (const extra of [[], ['--verify', 'sha256']]) {
      const r = await restore(name, extra);
      expect(r.code, r.stderr).toBe(5);
      expect(r.stderr).toMatch(/the object is 8388608 bytes but its manifest says 12582917/);
      expect(r.left).toEqual([]);
    }
    const a = await activate(name);
    expect(a).toMatchObject({ ok: false, code: 'IntegrityError' });
    expect(a.left).toEqual([]);
    expect(existsSync(join(cache, 'dump', name))).toBe(false);
    expect(await check(name)).toMatchObject({ code: 5, status: 'corrupt' });
    expect(await check(name, true)).toMatchObject({ code: 5, status: 'corrupt' });
  });
});
