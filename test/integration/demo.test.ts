// The README's main job, `npm run demo` (host/dist/cli/demo.js), run as a subprocess: against an
// S3_* endpoint (the test gateway, one bucket) it must clean up its own objects; without S3_* it
// reuses the running test gateway (same PVE_S3_RGW_DIR) and must leave it running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { ROOT, keys, requireBuild } from './cli-helpers.js';

const DEMO = join(ROOT, 'host', 'dist', 'cli', 'demo.js');
let c: S3Client;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('demo');
  await c.putObject('someone-else/keep-me.txt', Buffer.from('not the demo’s'));
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
});

function demoEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const k of ['PATH', 'HOME', 'LANG', 'TMPDIR']) if (process.env[k] !== undefined) env[k] = process.env[k];
  return { ...env, PVE_S3_DEMO_MIB: '12', ...extra };
}

/** `[n/7] …` step lines of the demo's report, in order. */
const steps = (out: string) => [...out.matchAll(/^\[(\d)\/7\]/gm)].map((m) => Number(m[1]));

describe('npm run demo', () => {
  it('with S3_* set: full cycle against that endpoint, figures printed, only its own objects touched and removed', async () => {
    const t = testS3();
    const d = await runDemo({ S3_ENDPOINT: t.endpoint, S3_BUCKET: c.bucket, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_PREFIX: 'team/', S3_FORCE_PATH_STYLE: '1' });
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(steps(d.stdout)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(d.stdout).toMatch(/uploaded demo-s3:backup\/vzdump-qemu-100-\S+\.vma\.zst: 12\.0 MiB in [\d.]+ s = [\d.]+ MiB\/s/);
    expect(d.stdout).toMatch(/multipart, 2 parts of 8 MiB, manifest written, verified/);
    expect(d.stdout).toMatch(/sha256 restored [0-9a-f]{64}  MATCH/);
    expect(d.stdout).toMatch(/^\s+GOOD\s+demo-s3:backup\/vzdump-qemu-100-/m);
    // archive, manifest, notes
    expect(d.stdout).toMatch(/removed 3 object\(s\) under team\/pve-s3-demo-/);
    expect(d.stdout).toMatch(/^demo OK in [\d.]+ s$/m);
    expect(d.stdout + d.stderr).not.toContain(t.secretAccessKey);
    expect(await keys(c)).toEqual(['someone-else/keep-me.txt']);
  });

  it('without S3_*: reuses the running local gateway, creates and removes its own bucket, leaves the gateway running', async () => {
    const d = await runDemo(process.env.PVE_S3_RGW_DIR ? { PVE_S3_RGW_DIR: process.env.PVE_S3_RGW_DIR } : {});
    expect(d.code, d.stdout + d.stderr).toBe(0);
    expect(d.stdout).toMatch(/no S3_ENDPOINT set: starting the local Ceph RadosGW/);
    expect(d.stdout).toMatch(/gateway http:\/\/127\.0\.0\.1:\d+ already running, reused/);
    const bucket = /bucket (pve-s3-demo-\S+) created/.exec(d.stdout)?.[1];
    expect(bucket).toBeDefined();
    expect(d.stdout).toContain(`and bucket ${bucket}`);
    expect(d.stdout).toMatch(/gateway left running/);
    const { testClient } = await import('../helpers/s3.js');
    await expect(testClient({ bucket }).headBucket()).rejects.toMatchObject({ code: expect.stringMatching(/NoSuchBucket|NotFound/) });
    await expect(c.headBucket()).resolves.toBeDefined(); // the gateway still answers
  });
});

describe('npm run demo, interrupted', () => {
  it('a TERM during the backup step still removes everything the demo wrote (exit 1)', async () => {
    const t = testS3();
    const env = { S3_ENDPOINT: t.endpoint, S3_BUCKET: c.bucket, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_PREFIX: 'int/', S3_FORCE_PATH_STYLE: '1' };
    const d = await runDemo(env, { signalAfter: /^\[3\/7\]/m });
    expect(d.code).toBe(1);
    expect(d.stdout).toMatch(/interrupted \(SIGTERM\): finishing the current step, then cleaning up/);
    expect(d.stdout).toMatch(/demo FAILED: interrupted by SIGTERM/);
    expect(steps(d.stdout)).not.toContain(4);
    expect(d.stdout).toMatch(/removed \d+ object\(s\) under int\/pve-s3-demo-/);
    expect(await keys(c, 'int/')).toEqual([]);
    expect(await c.listMultipartUploads({ prefix: 'int/' })).toEqual([]);
  });
});

function runDemo(extra: NodeJS.ProcessEnv, o: { signalAfter?: RegExp } = {}) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((res, rej) => {
    import('node:child_process').then(({ spawn }) => {
      const p = spawn(process.execPath, [DEMO], { env: demoEnv(extra), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let signalled = false;
      p.stdout.on('data', (d) => {
        stdout += d;
        // the step line is printed just before its command starts: signal the demo alone
        if (o.signalAfter && !signalled && o.signalAfter.test(stdout)) {
          signalled = true;
          p.kill('SIGTERM');
        }
      });
      p.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => p.kill('SIGKILL'), 280_000);
      p.on('error', rej);
      p.on('close', (code) => {
        clearTimeout(t);
        res({ code, stdout, stderr });
      });
    }, rej);
  });
}
