// A writer killed with SIGKILL (OOM killer, node reset, `kill -9` of a hung job) cannot abort its
// multipart upload. A stream's upload cannot be resumed either (the next run gets a new name), so
// the node remembers it with its writer's volume lock (store/abandoned-uploads.ts), and the next
// multipart upload of the storage from the node, or `abort-uploads`, aborts it once that lock is
// free: its parts do not wait an hour for abort-uploads or 7 days for the lifecycle rule. A live
// upload is never touched, and a file's upload stays resumable through its journal. Against the
// real RadosGW, with the commands run as processes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MANIFEST_SUFFIX } from '../../host/src/pve/volname.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { BIN, MiB, cfgEnv, keys, requireBuild, run, s3Section } from './cli-helpers.js';
import { journaledPartsIn } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
const cache = (): string => join(dir, 'cache');
const stateEntries = async (sub: string): Promise<string[]> => (await readdir(join(cache(), '.pve-s3', sub)).catch(() => [] as string[])).sort();

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('killed');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-killed-'));
  const k = s3Section('s3k', c.bucket, { multipart_chunk_size: '5', path: cache(), prefix: 'k/' });
  // the same storage's path with a slow upload, to kill a file's upload part way
  const slow = s3Section('s3slow', c.bucket, { multipart_chunk_size: '5', max_concurrent_uploads: '1', path: join(dir, 'slow'), prefix: 'slow/', bwlimit: 'default=2048' });
  env = await cfgEnv(dir, [k, slow]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** `pve-s3-backup --source -` for a VM, as a process whose stdin the test writes. */
function streamBackup(storage: string, vmid: number): { p: ChildProcessWithoutNullStreams; exited: Promise<{ code: number | null; stderr: string }> } {
  const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', storage, '--source', '-', '--vmid', String(vmid), '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  p.stdout.resume();
  p.stdin.on('error', () => undefined);
  const exited = new Promise<{ code: number | null; stderr: string }>((r) => p.on('close', (code) => r({ code, stderr })));
  return { p, exited };
}

/** Waits (polling the bucket, not the clock) until the upload of `vmid`'s archive has a part stored. */
async function uploadWithParts(prefix: string, vmid: number): Promise<{ key: string; uploadId: string }> {
  const re = new RegExp(`^${prefix}dump/vzdump-qemu-${vmid}-`);
  for (let i = 0; i < 1200; i++) {
    const u = (await c.listMultipartUploads({ prefix })).find((x) => re.test(x.key));
    if (u && (await c.listParts(u.key, u.uploadId)).length > 0) return { key: u.key, uploadId: u.uploadId };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no upload with parts for VM ${vmid}`);
}

const uploadIds = async (prefix: string): Promise<string[]> => (await c.listMultipartUploads({ prefix })).map((u) => u.uploadId).sort();

/** SIGKILL, then wait until its volume lock is let go (the lock's shell sees the pipe close and
 *  removes the file: `locks` are the ones still held then). */
async function killed(b: ReturnType<typeof streamBackup>, locks: number): Promise<void> {
  b.p.kill('SIGKILL');
  expect((await b.exited).code).toBe(null);
  for (let i = 0; i < 600 && (await stateEntries('upload-locks')).length > locks; i++) await new Promise((r) => setTimeout(r, 50));
  expect(await stateEntries('upload-locks')).toHaveLength(locks);
}

describe('a stream upload killed with SIGKILL', () => {
  it('is aborted by the next upload of the storage from the node; a live one is untouched', async () => {
    const dead = streamBackup('s3k', 100);
    dead.p.stdin.write(randomBytes(12 * MiB)); // two parts and some; stdin stays open
    const deadUpload = await uploadWithParts('k/', 100);
    const live = streamBackup('s3k', 101);
    live.p.stdin.write(randomBytes(12 * MiB));
    const liveUpload = await uploadWithParts('k/', 101);
    // both remembered while they run, each with its writer's lock, which each holds
    expect(await stateEntries('multipart-uploads')).toHaveLength(2);
    expect(await stateEntries('upload-locks')).toHaveLength(2);

    await killed(dead, 1);
    expect(await uploadIds('k/')).toEqual([deadUpload.uploadId, liveUpload.uploadId].sort());

    const next = await run('pve-s3-backup', ['--storage', 's3k', '--source', '-', '--vmid', '102', '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], { env, input: randomBytes(11 * MiB) });
    expect(next.code, next.stderr).toBe(0);
    // the killed upload is gone, the live one is still there, and the new backup landed
    expect(await uploadIds('k/')).toEqual([liveUpload.uploadId]);
    const stored = await keys(c, 'k/');
    expect(stored.filter((k) => /^k\/dump\/vzdump-qemu-102-.*\.vma\.zst$/.test(k))).toHaveLength(1);
    expect(stored.some((k) => k === deadUpload.key)).toBe(false);

    // the live upload goes on to the end: nothing of either is left on the node or in the bucket
    live.p.stdin.end(randomBytes(MiB));
    const l = await live.exited;
    expect(l.code, l.stderr).toBe(0);
    expect((await keys(c, 'k/')).filter((k) => k.startsWith(liveUpload.key))).toEqual([liveUpload.key, liveUpload.key + MANIFEST_SUFFIX]);
    expect(await uploadIds('k/')).toEqual([]);
    expect(await stateEntries('multipart-uploads')).toEqual([]);
  });

  it('is aborted by abort-uploads at once, though it is younger than an hour', async () => {
    const dead = streamBackup('s3k', 110);
    dead.p.stdin.write(randomBytes(12 * MiB));
    const deadUpload = await uploadWithParts('k/', 110);
    await killed(dead, 0);
    const m = await run('pve-s3-maintenance', ['--storage', 's3k', '--action', 'abort-uploads', '--json'], { env });
    expect(m.code, m.stderr).toBe(0);
    expect(await uploadIds('k/')).toEqual([]);
    expect((JSON.parse(m.stdout) as { aborted: number }).aborted).toBe(1);
    expect(await stateEntries('multipart-uploads')).toEqual([]);
    expect((await keys(c, 'k/')).includes(deadUpload.key)).toBe(false);
  });

  it('leaves no lock file per volume behind on the node', async () => {
    // every upload above took its volume's lock; a lock file exists only while it is held
    expect(await stateEntries('upload-locks')).toEqual([]);
  });

  it('abort-uploads removes a lock file its holder left (killed with its flock), never a held one', async () => {
    const locks = join(cache(), '.pve-s3', 'upload-locks');
    await writeFile(join(locks, 'backup.vzdump-qemu-140-2024_01_02-03_04_05.vma.zst.lock'), 'pid 1, gone\n');
    const heldFile = join(locks, 'backup.vzdump-qemu-141-2024_01_02-03_04_05.vma.zst.lock');
    const holder = spawn('flock', [heldFile, 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise<void>((r) => holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && r()));
    const m = await run('pve-s3-maintenance', ['--storage', 's3k', '--action', 'abort-uploads'], { env });
    expect(m.code, m.stderr).toBe(0);
    expect(await stateEntries('upload-locks')).toEqual(['backup.vzdump-qemu-141-2024_01_02-03_04_05.vma.zst.lock']);
    const exited = new Promise((r) => holder.once('close', r));
    holder.stdin.end();
    await exited;
    await rm(heldFile);
  });
});

describe('a file upload killed with SIGKILL', () => {
  it('is not aborted by the next upload, and the next run of it resumes it', async () => {
    const src = join(dir, 'vzdump-qemu-120-2024_01_02-03_04_05.vma.zst');
    await writeFile(src, randomBytes(16 * MiB + 1)); // 4 parts of 5 MiB at 2 MiB/s
    const journal = join(dir, 'slow', '.pve-s3', 'upload-journal');
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', 's3slow', '--source', src], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise((r) => p.once('close', r));
    for (let i = 0; i < 1200 && (await journaledPartsIn(journal)) < 1; i++) await new Promise((r) => setTimeout(r, 50));
    p.kill('SIGKILL');
    await exited;
    expect(await journaledPartsIn(journal)).toBeGreaterThanOrEqual(1);
    const [fileUpload] = await c.listMultipartUploads({ prefix: 'slow/' });
    expect(fileUpload?.key).toBe('slow/dump/vzdump-qemu-120-2024_01_02-03_04_05.vma.zst');

    // a stream's multipart upload of the same storage sweeps what is abandoned: not this one
    const next = await run('pve-s3-backup', ['--storage', 's3slow', '--source', '-', '--vmid', '121', '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], { env, input: randomBytes(6 * MiB) });
    expect(next.code, next.stderr).toBe(0);
    expect(await uploadIds('slow/')).toEqual([fileUpload!.uploadId]);
    // and abort-uploads (its default cutoff is a day) keeps it too
    const m = await run('pve-s3-maintenance', ['--storage', 's3slow', '--action', 'abort-uploads'], { env });
    expect(m.code, m.stderr).toBe(0);
    expect(await uploadIds('slow/')).toEqual([fileUpload!.uploadId]);

    const again = await run('pve-s3-backup', ['--storage', 's3slow', '--source', src, '--json'], { env });
    expect(again.code, again.stderr).toBe(0);
    const [out] = JSON.parse(again.stdout) as Array<{ resumedBytes?: number; verified: boolean; size: number }>;
    expect(out!.resumedBytes).toBeGreaterThanOrEqual(5 * MiB);
    expect(out!.verified).toBe(true);
    expect(out!.size).toBe(16 * MiB + 1);
    expect(await uploadIds('slow/')).toEqual([]);
    expect(await readdir(join(dir, 'slow', '.pve-s3', 'upload-locks'))).toEqual([]);
  });
});

describe('the list of an earlier version', () => {
  it('abandoned-uploads.json is taken over: abort-uploads aborts what it names and removes it', async () => {
    const key = 'k/dump/vzdump-qemu-130-2024_01_02-03_04_05.vma.zst';
    const uploadId = await c.createMultipartUpload(key);
    const part = randomBytes(5 * MiB);
    await c.uploadPart(key, uploadId, 1, part, createHash('sha256').update(part).digest('hex'));
    const old = join(cache(), '.pve-s3', 'abandoned-uploads.json');
    await writeFile(old, JSON.stringify([{ key, uploadId, at: 1 }]) + '\n', { mode: 0o600 });
    const m = await run('pve-s3-maintenance', ['--storage', 's3k', '--action', 'abort-uploads'], { env });
    expect(m.code, m.stderr).toBe(0);
    expect(await uploadIds('k/')).toEqual([]);
    expect(existsSync(old)).toBe(false);
    expect(await stateEntries('multipart-uploads')).toEqual([]);
  });
});
