// Issue 10 §7, against the real RadosGW: someone who can write to the bucket must not get root on
// the nodes. Objects with manifests of their own making (unsigned, or signed with their own key)
// are listed unverified and refused without an explicit flag; ours, signed with the storage's
// manifest key, are good; a manifest edited after signing is unverified; the upgrade from
// unsigned manifests goes through `adopt`; a lost or rotated key; the key never shows anywhere.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManifestKeyLocation } from '../../host/src/config/manifest-key-location.js';
import { readKeyring } from '../../host/src/config/manifest-key.js';
import { formatBackupTime } from '../../host/src/pve/backup-time.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { cleanupByAge } from '../../host/src/store/cleanup.js';
import { checkIntegrity } from '../../host/src/store/integrity.js';
import { prune } from '../../host/src/store/prune.js';
import { listVolumes } from '../../host/src/store/list.js';
import { getVolume, putVolume, streamVolume } from '../../host/src/store/transfer.js';
import type { StoreContext, StoreSettings } from '../../host/src/store/types.js';
import { statVolume } from '../../host/src/store/volumes.js';
import { nullLogger } from '../../host/src/util/log.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { keys, requireBuild, run, s3Env } from './cli-helpers.js';

const MiB = 1024 * 1024;
let c: S3Client;
let dir: string;
let ours: ManifestKeyLocation;
let theirs: ManifestKeyLocation;

function context(prefix: string, key: ManifestKeyLocation | undefined, extra: Partial<StoreSettings> = {}): StoreContext {
  const settings: StoreSettings = { storageId: 'trust', bucket: c.bucket, prefix, chunkSizeMB: 5, concurrency: 2, ...extra };
  if (key) settings.manifestKey = key;
  return { client: c, settings, logger: nullLogger };
}

async function put(ctx: StoreContext, volname: string, data: Buffer): Promise<void> {
  const p = join(dir, `src-${randomBytes(4).toString('hex')}`);
  await writeFile(p, data);
  await putVolume(ctx, volname, { src: { path: p } });
  await rm(p);
}

const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
const SNIPPET = 'snippets/hook.pl';
const BACKUP = 'backup/vzdump-qemu-100-2024_03_01-00_00_00.vma.zst';
const ISO = 'iso/installer.iso';

beforeAll(async () => {
  c = await freshBucket('trust');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-trust-'));
  ours = testManifestKey(dir, 'ours');
  theirs = testManifestKey(dir, 'attacker');
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('planted objects with self-made manifests', () => {
  const P = 'planted/';
  beforeAll(async () => {
    // the attacker runs our own tool against the bucket: once without a key, once with theirs
    await put(context(P, undefined), SNIPPET, Buffer.from('#!/usr/bin/perl\nsystem("id > /tmp/pwned");\n'));
    await put(context(P, theirs), BACKUP, randomBytes(6 * MiB + 5));
    await put(context(P, theirs), ISO, randomBytes(1000));
  });

  it('are listed and stat-ed unverified, with the reason', async () => {
    const vols = await listVolumes(context(P, ours), { pending: false });
    expect(Object.fromEntries(vols.map((v) => [v.volname, [v.verified, v.trust]]))).toEqual({
      [SNIPPET]: [false, 'unverified'],
      [BACKUP]: [false, 'unverified'],
      [ISO]: [false, 'unverified'],
    });
    const key = readKeyring(theirs.file)!.current.keyId;
    expect((await statVolume(context(P, ours), BACKUP)).trustNote).toBe(`its manifest is signed with key ${key}, which this storage does not hold`);
    expect((await statVolume(context(P, ours), SNIPPET)).trustNote).toMatch(/not signed/);
  });

  it('are refused by downloads and restore pipes, naming adopt and --allow-unverified; nothing is written', async () => {
    for (const volname of [SNIPPET, BACKUP, ISO]) {
      const dest = join(dir, `refused-${volname.replace('/', '-')}`);
      const err = await getVolume(context(P, ours), volname, dest).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'Unverified', exitCode: 5 });
      expect((err as Error).message).toContain(`pve-s3-maintenance --storage trust --action adopt --source ${volname}`);
      expect((err as Error).message).toContain(`pve-s3-restore --storage trust --source ${volname} --allow-unverified`);
      await expect(stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await expect(streamVolume(context(P, ours), BACKUP, sink())).rejects.toMatchObject({ code: 'Unverified' });
  });

  it('with the explicit flag a planted snippet is restored, but never made executable', async () => {
    const dest = join(dir, 'hook.pl');
    const r = await getVolume(context(P, ours), SNIPPET, dest, { allowUnverified: true });
    expect(r).toMatchObject({ verified: false, downloaded: true, trustNote: expect.stringMatching(/not signed/) });
    expect((await stat(dest)).mode & 0o111).toBe(0);
  });

  it('check-integrity calls intact but unsigned bytes unverified, never good', async () => {
    const r = await checkIntegrity(context(P, ours), { volnames: [BACKUP, ISO] });
    expect(r.items.map((i) => i.status)).toEqual(['unverified', 'unverified']);
    expect(r.ok).toBe(false);
  });
});

describe('a forged manifest: valid JSON beside the object, with no mac or a wrong one', () => {
  // What someone who can write to the bucket (and read it) makes: an object and a manifest that
  // describes it exactly (sizes, part digests, ETag), as our tool writes them, then no mac, a mac
  // under our key id with a made-up HMAC, or a mac copied from one of our own manifests.
  const P = 'forged/';
  const DAY = 86_400_000;
  const backupName = (daysAgo: number) => `backup/vzdump-qemu-500-${formatBackupTime(new Date(Date.now() - daysAgo * DAY))}.vma.zst`;
  const good = backupName(40); // ours, verified, old
  const forged = { none: backupName(3), ourId: backupName(2), copied: backupName(1) };
  let ourId: string;

  const manifestOf = async (volname: string) => (await readAll((await c.getObject(`${P}dump/${volname.slice(7)}.s3manifest`)).body)).toString('utf8');
  const setManifest = (volname: string, text: string) => c.putObject(`${P}dump/${volname.slice(7)}.s3manifest`, Buffer.from(text));

  beforeAll(async () => {
    ourId = readKeyring(ours.file)!.current.keyId;
    await put(context(P, ours), good, randomBytes(3000));
    const ourMac = /,"mac":"[0-9a-f]{16}:[0-9a-f]{64}"}$/.exec(await manifestOf(good))![0];
    for (const [how, volname] of Object.entries(forged)) {
      // our own tool without the key writes the exact manifest; the mac is the forger's
      await put(context(P, undefined), volname, randomBytes(2000));
      const body = await manifestOf(volname);
      expect(body.endsWith('}') && !body.includes('"mac"')).toBe(true);
      if (how === 'ourId') await setManifest(volname, `${body.slice(0, -1)},"mac":"${ourId}:${randomBytes(32).toString('hex')}"}`);
      if (how === 'copied') await setManifest(volname, body.slice(0, -1) + ourMac);
    }
  });

  it('is unverified, and says why', async () => {
    const notes = Object.fromEntries(await Promise.all(Object.entries(forged).map(async ([how, n]) => [how, await statVolume(context(P, ours), n)] as const)));
    for (const v of Object.values(notes)) expect(v).toMatchObject({ verified: false, trust: 'unverified', manifest: true });
    expect(notes.none!.trustNote).toMatch(/its manifest is not signed/);
    expect(notes.ourId!.trustNote).toBe('its manifest signature does not match (edited after signing, or forged)');
    expect(notes.copied!.trustNote).toBe('its manifest signature does not match (edited after signing, or forged)');
    const listed = await listVolumes(context(P, ours), { pending: false });
    expect(Object.fromEntries(listed.map((v) => [v.volname, v.trust]))).toEqual({ [good]: 'verified', [forged.none]: 'unverified', [forged.ourId]: 'unverified', [forged.copied]: 'unverified' });
    const r = await checkIntegrity(context(P, ours), { vmid: 500 });
    expect(Object.fromEntries(r.items.map((i) => [i.volname, i.status]))).toEqual({ [good]: 'good', [forged.none]: 'unverified', [forged.ourId]: 'unverified', [forged.copied]: 'unverified' });
  });

  it('is not counted by retention: prune --keep-last 1 and cleanup keep our older backup and remove nothing', async () => {
    const pr = await prune(context(P, ours), { 'keep-last': 1 });
    expect(Object.fromEntries(pr.entries.map((e) => [e.volname, e.mark]))).toEqual({ [good]: 'keep', [forged.none]: 'unverified', [forged.ourId]: 'unverified', [forged.copied]: 'unverified' });
    expect(pr.removed).toEqual([]);
    const cl = await cleanupByAge(context(P, ours), { olderThan: '30d', keepLast: 1 });
    expect(Object.fromEntries(cl.items.map((i) => [i.volname, [i.action, i.reason]]))).toEqual({
      [good]: ['keep', 'keep-last'],
      [forged.none]: ['keep', 'unverified'],
      [forged.ourId]: ['keep', 'unverified'],
      [forged.copied]: ['keep', 'unverified'],
    });
    expect(cl.removed).toEqual([]);
    expect((await keys(c, `${P}dump/`)).filter((k) => !k.endsWith('.s3manifest'))).toHaveLength(4);
  });

  it('is not trusted by restore: pve-s3-restore exits 5 naming both ways on, writes nothing; --allow-unverified says UNVERIFIED', async () => {
    requireBuild();
    const env = s3Env(dir, c.bucket, { S3_PREFIX: P, PVE_S3_MANIFEST_KEY_FILE: ours.file });
    const dest = join(dir, 'forged-restore');
    const r = await run('pve-s3-restore', ['--storage', 'trust', '--source', forged.ourId, '--destination', dest], { env });
    expect(r.code).toBe(5);
    expect(r.stderr).toContain(`is unverified (its manifest signature does not match (edited after signing, or forged)): refused, nothing downloaded.`);
    expect(r.stderr).toContain(`pve-s3-maintenance --storage trust --action adopt --source ${forged.ourId}`);
    expect(r.stderr).toContain(`pve-s3-restore --storage trust --source ${forged.ourId} --allow-unverified`);
    expect(r.stderr).toMatch(/\[Unverified\]/);
    await expect(stat(dest)).rejects.toMatchObject({ code: 'ENOENT' });
    const list = await run('pve-s3-restore', ['--storage', 'trust', '--list'], { env });
    expect(list.stdout).toMatch(new RegExp(`${forged.ourId.slice(7).replace(/\./g, '\\.')}.*\\bunverified\\b`));
    const ok = await run('pve-s3-restore', ['--storage', 'trust', '--source', forged.ourId, '--destination', dest, '--allow-unverified'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/UNVERIFIED \(its manifest signature does not match/);
  });

  it('the manifest key is never in any process\'s argv or a child\'s environment during an upload', async () => {
    requireBuild();
    const hex = Buffer.from(readKeyring(ours.file)!.current.key).toString('hex');
    const env = s3Env(dir, c.bucket, { S3_PREFIX: P, PVE_S3_MANIFEST_KEY_FILE: ours.file, PVE_S3_DEBUG: '1', PVE_S3_LOG_FILE: join(dir, 'argv.log') });
    const seen = join(dir, 'argv-seen');
    // the producer runs while the upload is under way: every process's argv and its own environment
    const cmd = `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' > ${seen}; env >> ${seen}; head -c 100000 /dev/urandom`;
    const r = await run('pve-s3-backup', ['--storage', 'trust', '--vmid', '501', '--type', 'qemu', '--from-command', cmd], { env });
    expect(r.code, r.stderr).toBe(0);
    const all = (await readFile(seen, 'utf8')) + r.stdout + r.stderr + (await readFile(join(dir, 'argv.log'), 'utf8'));
    expect(all).toContain('pve-s3-backup');
    expect(all).not.toContain(hex);
    expect(all).not.toContain(hex.slice(0, 16));
  });
});

describe('our own uploads', () => {
  const P = 'ours/';
  it('are signed, verified, restored byte for byte, and a snippet is executable', async () => {
    const data = randomBytes(6 * MiB + 1);
    await put(context(P, ours), BACKUP, data);
    await put(context(P, ours), SNIPPET, Buffer.from('#!/bin/sh\nexit 0\n'));
    const text = (await readAll((await c.getObject(`${P}dump/${BACKUP.slice(7)}.s3manifest`)).body)).toString('utf8');
    expect(text).toMatch(new RegExp(`,"mac":"${readKeyring(ours.file)!.current.keyId}:[0-9a-f]{64}"}$`));
    expect((await statVolume(context(P, ours), BACKUP)).trust).toBe('verified');
    const dest = join(dir, 'restored.vma.zst');
    expect((await getVolume(context(P, ours), BACKUP, dest)).verified).toBe(true);
    expect((await readFile(dest)).equals(data)).toBe(true);
    const hook = join(dir, 'ours-hook.sh');
    await getVolume(context(P, ours), SNIPPET, hook);
    expect((await stat(hook)).mode & 0o777).toBe(0o755);
    expect((await checkIntegrity(context(P, ours), { volnames: [BACKUP] })).items[0]!.status).toBe('good');
  });

  it('a manifest edited after signing is unverified (and the listing cache notices)', async () => {
    const P2 = 'edited/';
    const data = randomBytes(2000);
    await put(context(P2, ours), BACKUP, data);
    const cacheDir = join(dir, 'edited-cache');
    const ctx = () => context(P2, ours, { cacheDir });
    expect((await listVolumes(ctx(), { pending: false }))[0]!.trust).toBe('verified');
    const mkey = `${P2}dump/${BACKUP.slice(7)}.s3manifest`;
    const text = (await readAll((await c.getObject(mkey)).body)).toString('utf8');
    // the attacker changes what the manifest says about the object and keeps the old mac
    await c.putObject(mkey, Buffer.from(text.replace('"vmid":"100"', '"vmid":"101"')));
    const after = (await listVolumes(ctx(), { pending: false }))[0]!;
    expect(after).toMatchObject({ verified: false, trust: 'unverified', trustNote: expect.stringMatching(/signature does not match/) });
    await expect(getVolume(ctx(), BACKUP, join(dir, 'edited.vma.zst'))).rejects.toMatchObject({ code: 'Unverified' });
  });

  it('a listing reads each manifest once per node, then from the cache until something changes', async () => {
    const P3 = 'cached/';
    for (let i = 1; i <= 3; i++) await put(context(P3, ours), `backup/vzdump-qemu-10${i}-2024_03_01-00_00_00.vma.zst`, randomBytes(100));
    const cacheDir = join(dir, 'list-cache');
    let gets = 0;
    const counting = new Proxy(c, {
      get(t, p, r) {
        // manifests are read through the lean path (getObjectInto); any GET of one counts
        if (p === 'getObject') return (...a: Parameters<S3Client['getObject']>) => ((gets += String(a[0]).endsWith('.s3manifest') ? 1 : 0), t.getObject(...a));
        if (p === 'getObjectInto') return (...a: Parameters<S3Client['getObjectInto']>) => ((gets += String(a[0]).endsWith('.s3manifest') ? 1 : 0), t.getObjectInto(...a));
        const v = Reflect.get(t, p, r) as unknown;
        return typeof v === 'function' ? (v as (...x: unknown[]) => unknown).bind(t) : v;
      },
    });
    const ctx = (): StoreContext => ({ ...context(P3, ours, { cacheDir }), client: counting as unknown as StoreContext['client'] });
    expect((await listVolumes(ctx(), { pending: false })).every((v) => v.verified)).toBe(true);
    expect(gets).toBe(3);
    expect((await listVolumes(ctx(), { pending: false })).every((v) => v.verified)).toBe(true);
    expect(gets).toBe(3);
    await put(context(P3, ours), 'backup/vzdump-qemu-104-2024_03_01-00_00_00.vma.zst', randomBytes(100));
    await listVolumes(ctx(), { pending: false });
    expect(gets).toBe(4);
  });
});

describe('upgrade, lost key and rotation (pve-s3-maintenance --action adopt / manifest-key)', () => {
  const P = 'upgrade/';
  const names = [1, 2, 3].map((d) => `backup/vzdump-qemu-200-2024_02_0${d}-00_00_00.vma.zst`);
  let keyFile: string;
  let env: NodeJS.ProcessEnv;
  const maint = (...args: string[]) => run('pve-s3-maintenance', ['--storage', 'up', ...args], { env });

  beforeAll(async () => {
    requireBuild();
    // the state before signing existed: every manifest unsigned, and one object without any
    for (const n of names) await put(context(P, undefined), n, randomBytes(3 * MiB + 7));
    await c.putObject(`${P}dump/vzdump-qemu-200-2024_02_04-00_00_00.vma.zst`, Buffer.from('no manifest'));
    // and one whose bytes were damaged since
    await put(context(P, undefined), 'backup/vzdump-qemu-200-2024_02_05-00_00_00.vma.zst', Buffer.alloc(1000, 1));
    await c.putObject(`${P}dump/vzdump-qemu-200-2024_02_05-00_00_00.vma.zst`, Buffer.alloc(1000, 2));
    env = s3Env(dir, c.bucket, { S3_PREFIX: P, PVE_S3_PRIV_DIR: join(dir, 'priv-up') });
    keyFile = join(dir, 'priv-up', 'up.manifest-key');
  });

  it('after the upgrade everything is unverified: a restore refuses it without the flag', async () => {
    const r = await run('pve-s3-restore', ['--storage', 'up', '--source', names[0]!, '--destination', join(dir, 'up0')], { env });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/is unverified .*--action adopt --source backup\/vzdump-qemu-200-2024_02_01.*--allow-unverified/);
    const ok = await run('pve-s3-restore', ['--storage', 'up', '--source', names[0]!, '--destination', join(dir, 'up0'), '--allow-unverified'], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/UNVERIFIED \(its manifest is not signed/);
  });

  it('adopt --dry-run lists what it would sign and changes nothing', async () => {
    const r = await maint('--action', 'adopt', '--dry-run');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/up:backup\/vzdump-qemu-200-2024_02_01-00_00_00\.vma\.zst {2}would be signed/);
    expect(r.stdout).toMatch(/2024_02_04-00_00_00\.vma\.zst {2}NOT SIGNED: no manifest/);
    expect(r.stdout).toMatch(/dry run\)$/m);
    const text = (await readAll((await c.getObject(`${P}dump/${names[0]!.slice(7)}.s3manifest`)).body)).toString('utf8');
    expect(text).not.toContain('"mac"');
  });

  it('adopt checks every byte, signs what matches, and leaves the rest unverified', async () => {
    const r = await maint('--action', 'adopt');
    expect(r.code).toBe(5); // two could not be adopted
    for (const n of names) expect(r.stdout).toContain(`up:${n}  checked and signed`);
    expect(r.stdout).toMatch(/2024_02_05-00_00_00\.vma\.zst {2}NOT SIGNED: corrupt/);
    expect(r.stdout).toMatch(/adopt \(key [0-9a-f]{16}\): 0 already verified, 3 checked and signed, 0 re-signed, 2 not signed/);
    const ctx = context(P, { file: keyFile, mayCreate: false });
    const vols = await listVolumes(ctx, { pending: false });
    expect(vols.filter((v) => v.verified).map((v) => v.volname).sort()).toEqual([...names].sort());
    const again = await maint('--action', 'adopt', '--source', names[0]!);
    expect(again.stdout).toMatch(/0 checked and signed, 0 re-signed, 0 not signed/);
  });

  it('rotation: old signatures keep verifying, adopt re-signs them without reading, retire drops the old key', async () => {
    const before = readKeyring(keyFile)!.current.keyId;
    const rot = await maint('--action', 'manifest-key', '--rotate');
    expect(rot.code, rot.stderr).toBe(0);
    const after = readKeyring(keyFile)!.current.keyId;
    expect(rot.stdout).toContain(`signing  ${after}`);
    expect(rot.stdout).toContain(`verifies ${before}`);
    const ctx = () => context(P, { file: keyFile, mayCreate: false });
    expect((await statVolume(ctx(), names[1]!)).verified).toBe(true);
    const re = await maint('--action', 'adopt', '--source', names[1]!);
    expect(re.stdout).toContain(`up:${names[1]}  re-signed`);
    const ret = await maint('--action', 'manifest-key', '--retire', before);
    expect(ret.code, ret.stderr).toBe(0);
    expect((await statVolume(ctx(), names[1]!)).verified).toBe(true); // re-signed with the new key
    expect((await statVolume(ctx(), names[2]!)).trustNote).toBe(`its manifest is signed with key ${before}, which this storage does not hold`);
  });

  it('a lost key: the objects stay restorable with the flag, a new key is made, adopt brings them back', async () => {
    await unlink(keyFile);
    const up = await run('pve-s3-backup', ['--storage', 'up', '--source', await writeTmp('vzdump-qemu-300-2024_02_06-00_00_00.vma.zst', randomBytes(500))], { env });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/created the manifest key [0-9a-f]{16} of storage 'up'/);
    const r = await run('pve-s3-restore', ['--storage', 'up', '--source', names[2]!, '--destination', join(dir, 'lost'), '--allow-unverified'], { env });
    expect(r.code, r.stderr).toBe(0);
    const ad = await maint('--action', 'adopt', '--source', names[2]!);
    expect(ad.stdout).toContain(`up:${names[2]}  checked and signed`);
  });

  it('the key never shows in output, errors or logs, even with debug logging', async () => {
    const hex = Buffer.from(readKeyring(keyFile)!.current.key).toString('hex');
    const dbg = { ...env, PVE_S3_DEBUG: '1', PVE_S3_LOG_FILE: join(dir, 'debug.log') };
    const outs = [
      await run('pve-s3-maintenance', ['--storage', 'up', '--action', 'manifest-key', '--json'], { env: dbg }),
      await run('pve-s3-maintenance', ['--storage', 'up', '--action', 'adopt', '--dry-run', '--json'], { env: dbg }),
      await run('pve-s3-restore', ['--storage', 'up', '--list', '--json'], { env: dbg }),
      await run('pve-s3-maintenance', ['--storage', 'up', '--action', 'manifest-key', '--retire', 'zz'], { env: dbg }),
    ];
    const all = outs.map((o) => o.stdout + o.stderr).join('\n') + (await readFile(join(dir, 'debug.log'), 'utf8'));
    expect(all.length).toBeGreaterThan(100);
    expect(all).not.toContain(hex);
    expect(all).not.toContain(hex.slice(0, 16));
    for (const k of await keys(c, '')) expect(k).not.toContain('manifest-key');
  });

  async function writeTmp(name: string, data: Buffer): Promise<string> {
    const p = join(dir, name);
    await writeFile(p, data);
    return p;
  }
});

// A machine that is not a PVE node, with the S3_* variables alone: no /etc/pve/priv to keep a key
// in, so its uploads are unsigned, and adopt needs the storage's key file named. The advice after
// such an upload must be one that works there.
const notANode = existsSync('/etc/pve/priv') ? describe.skip : describe;
notANode('S3_* alone on a machine that is not a PVE node', () => {
  const P = 'alone/';
  const name = 'vzdump-qemu-300-2024_04_01-00_00_00.vma.zst';
  const data = randomBytes(2 * MiB + 3);
  let env: NodeJS.ProcessEnv;
  const restore = (extra: NodeJS.ProcessEnv = {}) =>
    run('pve-s3-restore', ['--storage', 'env', '--source', `backup/${name}`, '--destination', join(dir, 'alone-out'), '--force'], { env: { ...env, ...extra } });

  beforeAll(async () => {
    requireBuild();
    env = s3Env(dir, c.bucket, { S3_PREFIX: P });
    delete env.PVE_S3_PRIV_DIR; // the default place, /etc/pve/priv/storage, which this machine has not
    await writeFile(join(dir, name), data);
    const up = await run('pve-s3-backup', ['--source', join(dir, name)], { env });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toContain("no manifest key for storage 'env': this upload is unsigned");
  });

  it('the refusal names what adopt needs here (PVE_S3_MANIFEST_KEY_FILE), and following it signs the backup', async () => {
    const refused = await restore();
    expect(refused.code).toBe(5);
    expect(refused.stderr).toContain(
      `sign it after checking its bytes: PVE_S3_MANIFEST_KEY_FILE=FILE pve-s3-maintenance --storage env --action adopt --source backup/${name}, FILE being the storage's manifest key (a copy of /etc/pve/priv/storage/<storage>.manifest-key from a node of its cluster; commands here see what it signs as verified only with it set too); or restore it once as it is`,
    );
    // adopt without it cannot sign, and makes no /etc/pve on a machine that has none
    const without = await run('pve-s3-maintenance', ['--storage', 'env', '--action', 'adopt', '--source', `backup/${name}`], { env });
    expect(without.code).toBe(2);
    expect(without.stderr).toContain(
      "storage 'env' has no manifest key here ('/etc/pve/priv/storage/env.manifest-key' does not exist, and this is not a PVE node to make it on): use --storage with a storage of this node, or set PVE_S3_MANIFEST_KEY_FILE to its key file [ConfigMissing]",
    );
    expect(existsSync('/etc/pve')).toBe(false);
    // with the node's key, as the message says
    const withKey = { PVE_S3_MANIFEST_KEY_FILE: ours.file };
    const adopted = await run('pve-s3-maintenance', ['--storage', 'env', '--action', 'adopt', '--source', `backup/${name}`], { env: { ...env, ...withKey } });
    expect(adopted.code, adopted.stderr).toBe(0);
    expect(adopted.stdout).toContain(`env:backup/${name}  checked and signed`);
    // signed with that key: the nodes holding it see it verified; here only with it set
    expect((await statVolume(context(P, ours), `backup/${name}`)).verified).toBe(true);
    expect((await restore()).code).toBe(5);
    const restored = await restore(withKey);
    expect(restored.code, restored.stderr).toBe(0);
    expect((await readFile(join(dir, 'alone-out'))).equals(data)).toBe(true);
  });

  it("check-integrity's advice and manifest-key say the same", async () => {
    await run('pve-s3-backup', ['--source', join(dir, name), '--name', name.replace('300', '301')], { env });
    const checked = await run('pve-s3-maintenance', ['--storage', 'env', '--action', 'check-integrity', '--vmid', '301'], { env });
    expect(checked.code).toBe(5);
    expect(checked.stderr).toContain('if you know they are yours, sign them: PVE_S3_MANIFEST_KEY_FILE=FILE pve-s3-maintenance --storage env --action adopt, FILE being');
    const shown = await run('pve-s3-maintenance', ['--storage', 'env', '--action', 'manifest-key'], { env });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain("storage 'env': no manifest key yet (/etc/pve/priv/storage/env.manifest-key); nothing makes it here (not a PVE node): use --storage with a storage of this node, or set PVE_S3_MANIFEST_KEY_FILE to its key file");
  });
});
