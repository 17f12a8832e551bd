// Ctrl-C during `vzdump --stdout | pve-s3-backup --source -`: the multipart upload already under
// way is aborted (no orphaned parts, no object), the command says so and fails, even though its
// stdin is still open and silent.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { BIN, MiB, cfgEnv, keys, requireBuild, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-int');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-cli-int-'));
  env = await cfgEnv(dir, [s3Section('s3i', c.bucket, { multipart_chunk_size: '5' })]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

it('SIGINT while streaming from stdin aborts the multipart upload and exits non-zero', async () => {
  const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', 's3i', '--source', '-', '--vmid', '100', '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  p.stdin.on('error', () => undefined); // the command closes its stdin when interrupted
  const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
  const kill = setTimeout(() => p.kill('SIGKILL'), 120_000); // safety net only
  // --max-size 1G keeps the parts at the storage's 5 MiB (1 TiB by default would need ~105 MiB parts)
  p.stdin.write(randomBytes(12 * MiB)); // two full parts and some; stdin stays open
  // wait (by polling the bucket, not the clock) until a part of the upload is stored
  let uploads = await c.listMultipartUploads();
  for (let i = 0; i < 600 && !(uploads.length === 1 && (await c.listParts(uploads[0]!.key, uploads[0]!.uploadId)).length > 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    uploads = await c.listMultipartUploads();
  }
  expect(uploads).toHaveLength(1);
  expect(uploads[0]!.key).toMatch(/^dump\/vzdump-qemu-100-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.vma\.zst$/);
  p.kill('SIGINT');
  const code = await exited;
  clearTimeout(kill);
  expect(code).toBe(1);
  expect(stderr).toMatch(/interrupted \(SIGINT\): cleaning up/);
  expect(stderr.trimEnd().split('\n').at(-1)).toMatch(/^pve-s3-backup: upload of 'dump\/vzdump-qemu-100-\S+' cancelled: interrupted by SIGINT; nothing was left behind/);
  expect(await c.listMultipartUploads()).toEqual([]);
  expect(await keys(c)).toEqual([]);
});
