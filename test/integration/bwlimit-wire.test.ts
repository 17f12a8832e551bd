// Issue 10 §10: a storage's bwlimit must hold on the wire, not only on average. A backup and a
// restore (the commands, as a user runs them, with `bwlimit default=…,restore=…` in storage.cfg)
// go through a relay that notes when bytes pass (test/helpers/byte-clock.ts). No 4-second window
// may carry more than the limit allows plus a quarter: the token bucket's burst of an eighth of a
// second, one 64 KiB slice or download step, and the relay itself catching up after the machine
// paused it, which a long window absorbs. Before the fix a whole 5 MiB part (ten seconds' worth)
// went at line rate after ten seconds of silence. A bound on burstiness, not a speed test: the
// transfers must also complete intact.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { maxInWindow, startByteClock, type ByteClock } from '../helpers/byte-clock.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

const LIMIT_KIB = 512;
const WINDOW_MS = 4000;
const TOLERANCE = 0.25;
const BOUND = LIMIT_KIB * 1024 * (WINDOW_MS / 1000) * (1 + TOLERANCE);
const NAME = 'vzdump-qemu-810-2025_02_03-04_05_06.vma.zst';

let c: S3Client;
let dir: string;
let clock: ByteClock;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('bwlimit');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-bwlimit-'));
  clock = await startByteClock(testS3().endpoint);
  env = await cfgEnv(dir, [s3Section('s3bw', c.bucket, { endpoint: clock.url, multipart_chunk_size: '5', bwlimit: `default=${LIMIT_KIB},restore=${LIMIT_KIB}` })]);
});
afterAll(async () => {
  await clock?.close();
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('bwlimit holds on the wire', () => {
  const data = randomBytes(5 * MiB + 3); // two parts (5 MiB and 3 bytes): the first alone is 2.5 windows' worth

  it('upload: no 4 s window carries more than 1.25 × the limit, and the backup completes', async () => {
    await writeFile(join(dir, NAME), data);
    clock.reset();
    const r = await run('pve-s3-backup', ['--storage', 's3bw', '--source', join(dir, NAME)], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(clock.up.total).toBeGreaterThan(data.length);
    expect(maxInWindow(clock.up, WINDOW_MS), 'bytes sent in the busiest 4 s').toBeLessThanOrEqual(BOUND);
  });

  it('download: no 4 s window carries more than 1.25 × the limit, and the restore is intact', async () => {
    clock.reset();
    const out = join(dir, 'restored.vma.zst');
    const r = await run('pve-s3-restore', ['--storage', 's3bw', '--source', NAME, '--destination', out], { env });
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(out)).equals(data)).toBe(true);
    expect(clock.down.total).toBeGreaterThan(data.length);
    expect(maxInWindow(clock.down, WINDOW_MS), 'bytes received in the busiest 4 s').toBeLessThanOrEqual(BOUND);
  });
});
