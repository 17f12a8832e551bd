// --delete-source (and the hook's and the background sync's keep_local 0) removes the local file
// once its upload is verified. A file that changes while it is being uploaded - still written by
// whatever produces it, or replaced under its name - is not the file that was verified: removing
// it loses the bytes the bucket never got (docs/SECURITY.md).
import { appendFileSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { MiB, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-delsrc');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-delsrc-'));
  // 10 MiB/s: a 30 MiB file takes about 3 s, time for the file to change under the upload
  env = await cfgEnv(dir, [s3Section('s3a', c.bucket, { prefix: 'pve/', path: join(dir, 'cache'), bwlimit: 'default=10240', multipart_chunk_size: '5' })]);
  testManifestKey(join(dir, 'priv'), 's3a');
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** resolves once the upload has started sending parts */
async function uploading(): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await c.listMultipartUploads({ prefix: 'pve/' })).length > 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the upload never started');
}

describe('--delete-source and a file that changes during its upload', () => {
  const esc = (x: string) => x.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

  it('keeps the local file when it grows (its writer is still at it): nothing is stored', async () => {
    const src = join(dir, 'vzdump-qemu-100-2025_01_02-03_04_05.vma.zst');
    writeFileSync(src, Buffer.alloc(30 * MiB, 3));
    const p = run('pve-s3-backup', ['--storage', 's3a', '--source', src, '--delete-source'], { env });
    await uploading();
    appendFileSync(src, Buffer.alloc(MiB, 7));
    const r = await p;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(new RegExp(`upload source '${esc(src)}' changed while being uploaded \\(size 31457280 → 32505856\\); nothing was stored`));
    expect(statSync(src).size).toBe(31 * MiB);
  }, 120_000);

  it('keeps the local file when another file is renamed over it (same size): what the bucket got is not what is there now', async () => {
    const src = join(dir, 'vzdump-qemu-101-2025_01_02-03_04_05.vma.zst');
    writeFileSync(src, Buffer.alloc(30 * MiB, 3));
    const p = run('pve-s3-backup', ['--storage', 's3a', '--source', src, '--delete-source'], { env });
    await uploading();
    writeFileSync(`${src}.new`, Buffer.alloc(30 * MiB, 9));
    renameSync(`${src}.new`, src);
    const r = await p;
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd()).toMatch(
      new RegExp(`^pve-s3-backup: '${esc(src)}' changed while it was uploaded \\(another file now has its name\\): the bucket holds 's3a:backup/vzdump-qemu-101-2025_01_02-03_04_05\\.vma\\.zst' as it was when the upload began; the local file is kept, not removed \\[SourceChanged\\]$`, 'm'),
    );
    // the newer bytes are still on disk, the older ones in the bucket
    expect(existsSync(src)).toBe(true);
    const local = readFileSync(src);
    expect(local.length).toBe(30 * MiB);
    expect(local[0]).toBe(9);
    const first: number[] = [];
    await c.getObjectInto('pve/dump/vzdump-qemu-101-2025_01_02-03_04_05.vma.zst', { range: [0, 0] }, (d) => first.push(...d));
    expect(first).toEqual([3]);
  }, 120_000);
});
