// Issue 10 §12: a volume name is only usable if every local name made from it fits Linux's
// 255-byte file names (the download's `.<name>.pve-s3-tmp-<12 hex>` is the longest: 230 bytes
// are left). Longer names are refused at upload with the limit named; one that another tool
// stored is listed as unusable with the reason, refused for a restore to a file with the same
// reason (before any download), and still restorable to a pipe and deletable.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_NAME_BYTES } from '../../host/src/pve/volname.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { ROOT, cfgEnv, keys, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
const iso = (bytes: number) => 'i'.repeat(bytes - 4) + '.iso';
const LONGEST = iso(MAX_NAME_BYTES);
const TOO_LONG = iso(MAX_NAME_BYTES + 1);
const FOREIGN = iso(250);

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-long-names');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-names-'));
  env = await cfgEnv(dir, [s3Section('s3a', c.bucket)]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('volume names and the 255-byte file name limit', () => {
  it('the limit is 230 bytes, and a name of exactly that goes up and comes back as a file', async () => {
    expect(MAX_NAME_BYTES).toBe(230);
    const data = randomBytes(4096);
    const src = await mkdtemp(join(dir, 'src-'));
    await writeFile(join(src, LONGEST), data);
    const up = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(src, LONGEST)], { env });
    expect(up.code, up.stderr).toBe(0);
    const out = await mkdtemp(join(dir, 'out-'));
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', `iso/${LONGEST}`, '--destination', out], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(join(out, LONGEST))).equals(data)).toBe(true);
  });

  it('one byte more is refused at upload, naming the limit and why; nothing is stored', async () => {
    const src = await mkdtemp(join(dir, 'src-'));
    await writeFile(join(src, TOO_LONG), 'x');
    const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(src, TOO_LONG)], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/name is 231 bytes, at most 230 are usable: its local \.<name>\.pve-s3-tmp-<12 hex> .* 255-byte file name limit.*\[NameTooLong\]/);
    expect((await keys(c)).filter((k) => k.includes(TOO_LONG))).toEqual([]);
  });

  it("a longer name another tool stored is listed as unusable with the reason", async () => {
    await c.putObject(`template/iso/${FOREIGN}`, Buffer.from('foreign bytes'));
    const l = await run('pve-s3-restore', ['--storage', 's3a', '--list', '--content', 'iso'], { env });
    expect(l.code, l.stderr).toBe(0);
    const line = l.stdout.split('\n').find((x) => x.includes(FOREIGN));
    expect(line).toMatch(/unusable: name is 250 bytes, at most 230 are usable/);
    const j = await run('pve-s3-restore', ['--storage', 's3a', '--list', '--content', 'iso', '--json'], { env });
    const vols = JSON.parse(j.stdout) as Array<{ name: string; unusable?: string }>;
    expect(vols.find((v) => v.name === FOREIGN)?.unusable).toMatch(/250 bytes, at most 230/);
    expect(vols.find((v) => v.name === LONGEST)?.unusable).toBeUndefined();
    // the plugin gets the reason too
    const t = testS3();
    const storage = { id: 's3a', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey, force_path_style: '1' };
    const p = spawnSync(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], {
      input: JSON.stringify({ v: 1, op: 'list', storage, args: { content: 'iso' } }),
      encoding: 'utf8',
      env: { ...process.env, PVE_S3_LOG_FILE: join(dir, 'host.log') },
    });
    const pv = (JSON.parse(p.stdout) as { result: { volumes: Array<{ volname: string; unusable?: string }> } }).result.volumes;
    expect(pv.find((v) => v.volname === `iso/${FOREIGN}`)?.unusable).toMatch(/250 bytes/);
  });

  it('restoring it under its own name is refused before any download with that reason; under a shorter name or to a pipe it works; it can be deleted', async () => {
    const out = await mkdtemp(join(dir, 'out-'));
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', `iso/${FOREIGN}`, '--destination', out], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/name is 250 bytes, at most 230 are usable.*\[NameTooLong\]/);
    expect(await readdir(out)).toEqual([]);
    // another tool stored it, without a manifest signed with the storage's key (issue 10 §7)
    const named = await run('pve-s3-restore', ['--storage', 's3a', '--source', `iso/${FOREIGN}`, '--destination', join(out, 'short.iso'), '--allow-unverified'], { env });
    expect(named.code, named.stderr).toBe(0);
    expect(await readFile(join(out, 'short.iso'), 'utf8')).toBe('foreign bytes');
    const s = await run('pve-s3-restore', ['--storage', 's3a', '--source', `iso/${FOREIGN}`, '--destination', '-', '--allow-unverified'], { env });
    expect(s.code, s.stderr).toBe(0);
    expect(s.out.toString()).toBe('foreign bytes');
    const t = testS3();
    const storage = { id: 's3a', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey, force_path_style: '1' };
    const d = spawnSync(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], {
      input: JSON.stringify({ v: 1, op: 'delete', storage, args: { volnames: [`iso/${FOREIGN}`] } }),
      encoding: 'utf8',
      env: { ...process.env, PVE_S3_LOG_FILE: join(dir, 'host.log') },
    });
    expect(d.status, d.stdout).toBe(0);
    expect((await keys(c)).filter((k) => k.includes(FOREIGN))).toEqual([]);
  });
});
