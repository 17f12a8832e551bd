// Issue 10 §14: with value matching limited to long secrets (util/logger.ts MIN_VALUE_REDACTION),
// a short secret must still never be printed: nothing prints it in the first place. A command in
// debug mode with a short (wrong) secret: neither its output, nor its log file, nor the protocol's
// envelope and log hold it.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { ROOT, requireBuild, run, s3Env } from './cli-helpers.js';

const SHORT = 'Zq9xT7';
let c: S3Client;
let dir: string;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-short-secret');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-short-'));
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('a short secret', () => {
  it('never reaches the output or the log of a command in debug mode', async () => {
    const env = s3Env(dir, c.bucket, { S3_SECRET_KEY: SHORT, PVE_S3_DEBUG: '1' });
    const r = await run('pve-s3-restore', ['--list'], { env });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/SignatureDoesNotMatch/);
    expect(r.stdout + r.stderr).not.toContain(SHORT);
    expect(await readFile(env.PVE_S3_LOG_FILE!, 'utf8')).not.toContain(SHORT);
  });

  it('never reaches the envelope, the message line or the log of the protocol host', async () => {
    const t = testS3();
    const log = join(dir, 'host.log');
    const storage = { id: 's3a', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, secret_key: SHORT, force_path_style: '1' };
    const p = spawnSync(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], {
      input: JSON.stringify({ v: 1, op: 'list', storage, args: {} }),
      encoding: 'utf8',
      env: { ...process.env, PVE_S3_LOG_FILE: log, PVE_S3_DEBUG: '1', PVE_S3_LOG_LEVEL: 'DEBUG' },
    });
    expect(p.status).not.toBe(0);
    expect(p.stdout + p.stderr).not.toContain(SHORT);
    expect(await readFile(log, 'utf8').catch(() => '')).not.toContain(SHORT);
  });
});
