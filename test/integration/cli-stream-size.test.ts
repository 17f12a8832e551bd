// What sizes a stream's parts (and so its memory: part size × (max_concurrent_uploads + 1)): an
// expected size from --size or from the guest's disks in its PVE config picks small parts, the
// default maximum (1 TiB) needs 105 MiB ones, --max-size is a hard limit. The part size a run
// chose is the one its manifest records; a stream longer than expected still goes up whole.
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, body, cfgEnv, keys, requireBuild, run, s3Env, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-size');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-cli-size-'));
  env = s3Env(dir, c.bucket, { PVE_S3_GUEST_CONF_DIR: join(dir, 'pve') });
  await mkdir(join(dir, 'pve', 'qemu-server'), { recursive: true });
  // 500 GiB of disks: parts for 625 GiB in 10,000 → 64 MiB
  await writeFile(join(dir, 'pve', 'qemu-server', '300.conf'), 'scsi0: local-lvm:vm-300-disk-0,size=400G\nscsi1: local-lvm:vm-300-disk-1,size=100G\nide2: none,media=cdrom\n');
  await writeFile(join(dir, 'pve', 'qemu-server', '301.conf'), 'scsi0: local-lvm:vm-301-disk-0,size=8G\n');
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

async function manifestOf(key: string): Promise<{ partSize: number; size: number; parts: unknown[] }> {
  return JSON.parse((await body(c, `${key}.s3manifest`)).toString('utf8'));
}

describe('pve-s3-backup --source -: part size', () => {
  const data = randomBytes(MiB + 17);

  it.each([
    ['no size known: the 1 TiB default', 'vzdump-qemu-200-2024_01_01-00_00_01.vma', [], 105 * MiB],
    ['--size', 'vzdump-qemu-200-2024_01_01-00_00_02.vma', ['--size', '40G'], 32 * MiB],
    ['--max-size', 'vzdump-qemu-200-2024_01_01-00_00_03.vma', ['--max-size', '2T'], 210 * MiB],
    ["the guest's disks (--vmid/--type)", 'vzdump-qemu-300-', ['--vmid', '300', '--type', 'qemu'], 64 * MiB],
    ['a guest without a config here: the default', 'vzdump-qemu-302-', ['--vmid', '302', '--type', 'qemu'], 105 * MiB],
  ])('%s', async (_what, name, args, partSize) => {
    const r = await run('pve-s3-backup', ['--source', '-', ...(name.endsWith('.vma') ? ['--name', name] : []), ...args], { env, input: data });
    expect(r.code, r.stderr).toBe(0);
    const [key] = (await keys(c, `dump/${name}`)).filter((k) => !k.endsWith('.s3manifest'));
    const m = await manifestOf(key!);
    expect(m.size).toBe(data.length);
    expect(m.partSize).toBe(partSize);
    expect((await body(c, key!)).equals(data)).toBe(true);
  });

  it('a stream longer than its expected size still goes up whole, in parts sized for the estimate', async () => {
    const env5 = await cfgEnv(join(dir, 'cfg5'), [s3Section('s5', c.bucket, { multipart_chunk_size: '5' })]);
    const big = randomBytes(12 * MiB + 5);
    const r = await run('pve-s3-backup', ['--storage', 's5', '--source', '-', '--name', 'vzdump-qemu-201-2024_01_01-00_00_00.vma', '--size', '1M', '--progress'], { env: env5, input: big });
    expect(r.code, r.stderr).toBe(0);
    // past its estimate, the progress line has no bar and no ETA any more
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('vzdump-qemu-201-'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^vzdump-qemu-201-2024_01_01-00_00_00\.vma [\d.]+ MiB {2}[\d.]+ MiB\/s {2}ETA --:--$/);
    const m = await manifestOf('dump/vzdump-qemu-201-2024_01_01-00_00_00.vma');
    expect(m.size).toBe(big.length);
    expect(m.partSize).toBe(5 * MiB);
    expect(m.parts).toHaveLength(3);
    expect((await body(c, 'dump/vzdump-qemu-201-2024_01_01-00_00_00.vma')).equals(big)).toBe(true);
  });

  it('with --size, the progress line has a bar and an ETA against the estimate, marked ~', async () => {
    const env5 = await cfgEnv(join(dir, 'cfg5b'), [s3Section('s5', c.bucket, { multipart_chunk_size: '5' })]);
    const data12 = randomBytes(12 * MiB + 5);
    const r = await run('pve-s3-backup', ['--storage', 's5', '--source', '-', '--name', 'vzdump-qemu-203-2024_01_01-00_00_00.vma', '--size', '20M', '--progress'], { env: env5, input: data12 });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('vzdump-qemu-203-'));
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(l).toMatch(/^vzdump-qemu-203-2024_01_01-00_00_00\.vma \[[#.]{24}\] ~ *\d+% [\d.]+ MiB \/ ~20\.0 MiB {2}[\d.]+ MiB\/s {2}ETA (~\d\d:\d\d|--:--)$/);
    expect(lines.at(-1)).toContain(' ~ 60% 12.0 MiB / ~20.0 MiB ');
  });

  it('--size with --max-size, or with files, is a usage error before anything is read', async () => {
    const a = await run('pve-s3-backup', ['--source', '-', '--name', 'x.vma', '--size', '1G', '--max-size', '2G'], { env, input: data });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--size \(the stream's expected size\) and --max-size \(the most it may be\) cannot be combined/);
    const f = join(dir, 'f.txt');
    await writeFile(f, 'x');
    const b = await run('pve-s3-backup', ['--source', f, '--size', '1G'], { env });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--size applies to --source - \(stdin\) only; a file's size is known; usage: /);
  });

  it('a stream longer than --max-size fails naming the limit and the way out, and stores nothing', async () => {
    const before = await keys(c);
    const r = await run('pve-s3-backup', ['--source', '-', '--name', 'vzdump-qemu-202-2024_01_01-00_00_00.vma', '--max-size', '1M'], { env, input: data });
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n').pop()).toBe(
      'pve-s3-backup: the stream is longer than 1.0 MiB (--max-size): nothing was stored; give its size with --size, or a larger --max-size (e.g. --max-size 3T) [EntityTooLarge]',
    );
    expect(await keys(c)).toEqual(before);
    expect(await c.listMultipartUploads({})).toEqual([]);
  });
});
