// An endpoint written with credentials (http://user:password@host): refused by every entry point,
// and the refusal - which goes to the terminal, the task log and the log file - never repeats the
// password, also when something else about the endpoint is wrong too (a port out of range, a
// path), which used to show the endpoint whole (docs/SECURITY.md).
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testS3 } from '../helpers/s3.js';
import { ROOT, cfgEnv, requireBuild, run, s3Env, s3Section } from './cli-helpers.js';

const PASSWORD = 'Gw4dmin';
let dir: string;
let hostPort: string;

beforeAll(async () => {
  requireBuild();
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-userinfo-'));
  hostPort = testS3().endpoint.replace(/^https?:\/\//, '');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const forms = () => [
  `http://admin:${PASSWORD}@${hostPort}`,
  `http://admin:${PASSWORD}@127.0.0.1:99999`,
  `https://admin:${PASSWORD}@${hostPort}/bucket`,
  `http://admin:${PASSWORD}/x@${hostPort}`,
  `admin:${PASSWORD}@${hostPort}`,
];

async function logOf(env: NodeJS.ProcessEnv): Promise<string> {
  return readFile(env.PVE_S3_LOG_FILE!, 'utf8').catch(() => '');
}

describe('an endpoint holding user:password@', () => {
  it('--endpoint and S3_ENDPOINT: exit 2 saying why, the password nowhere', async () => {
    for (const endpoint of forms()) {
      const env = s3Env(dir, 'userinfo-bucket', { PVE_S3_DEBUG: '1' });
      for (const r of [
        await run('pve-s3-restore', ['--list', '--endpoint', endpoint], { env }),
        await run('pve-s3-maintenance', ['--action', 'status'], { env: { ...env, S3_ENDPOINT: endpoint } }),
      ]) {
        expect(r.code, endpoint).toBe(2);
        expect(r.stderr).toMatch(/invalid endpoint '(https?:\/\/)?\[user information hidden\]@[^']*': user information \(user:password@\) is not allowed/);
        expect(r.stdout + r.stderr).not.toContain(PASSWORD);
      }
      expect(await logOf(env)).not.toContain(PASSWORD);
    }
  });

  it('in storage.cfg (--storage, and the protocol host the plugin runs): refused, the password nowhere', async () => {
    for (const endpoint of forms()) {
      const env = await cfgEnv(dir, [s3Section('s3a', 'userinfo-bucket', { endpoint })], { PVE_S3_DEBUG: '1' });
      const r = await run('pve-s3-backup', ['--storage', 's3a', '--source', '/dev/null', '--name', 'vzdump-qemu-100-2026_01_01-00_00_00.vma'], { env });
      expect(r.code, endpoint).toBe(2);
      expect(r.stderr).toMatch(/user information \(user:password@\) is not allowed/);
      expect(r.stdout + r.stderr).not.toContain(PASSWORD);

      const t = testS3();
      const storage = { id: 's3a', bucket: 'userinfo-bucket', endpoint, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey, force_path_style: '1' };
      const p = spawnSync(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], {
        input: JSON.stringify({ v: 1, op: 'list', storage, args: {} }),
        encoding: 'utf8',
        env: { ...process.env, PVE_S3_LOG_FILE: env.PVE_S3_LOG_FILE, PVE_S3_DEBUG: '1', PVE_S3_LOG_LEVEL: 'DEBUG' },
      });
      expect(p.status).not.toBe(0);
      expect(p.stdout + p.stderr).toMatch(/user information/);
      expect(p.stdout + p.stderr).not.toContain(PASSWORD);
      expect(await logOf(env)).not.toContain(PASSWORD);
    }
  });
});
