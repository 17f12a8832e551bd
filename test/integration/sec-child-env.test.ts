// Issue 10 §13: `pve-s3-backup --from-command CMD` runs CMD (typically vzdump, which runs its own
// hookscripts) in an environment without the secrets the command itself was given: the S3 secret
// key and any PVE_S3_* secret. The rest of the environment (PATH, LANG, the S3_* that are not
// secret) still reaches it, and the upload still works.
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv } from '../../host/src/config/child-env.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { keys, requireBuild, run, s3Env } from './cli-helpers.js';

let c: S3Client;
let dir: string;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-child-env');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-env-'));
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('children never inherit secrets', () => {
  it('--from-command: the producer sees no S3_SECRET_KEY and no PVE_S3_* secret, and the upload works', async () => {
    const envFile = join(dir, 'child.env');
    const env = s3Env(dir, c.bucket, { PVE_S3_TEST_SECRET: 'pve-s3-side-secret-1234567890' });
    const r = await run(
      'pve-s3-backup',
      ['--vmid', '100', '--type', 'qemu', '--from-command', `env > '${envFile}'; printf 'archive bytes'`],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const seen = await readFile(envFile, 'utf8');
    expect(seen).not.toContain(testS3().secretAccessKey);
    expect(seen).not.toMatch(/^S3_SECRET_KEY=/m);
    expect(seen).not.toContain('pve-s3-side-secret-1234567890');
    // what is not secret is still there: the child runs as it would from the shell
    expect(seen).toMatch(/^PATH=/m);
    expect(seen).toContain(`S3_BUCKET=${c.bucket}`);
    expect((await keys(c)).filter((k) => k.endsWith('.vma'))).toHaveLength(1);
  });

  it('childEnv: the rule', () => {
    const e = childEnv({
      PATH: '/bin',
      S3_SECRET_KEY: 's',
      S3_ACCESS_KEY: 'a',
      AWS_SECRET_ACCESS_KEY: 'the user\'s own',
      PVE_S3_MANIFEST_KEY: 'k',
      PVE_S3_SOME_PASSWORD: 'p',
      PVE_S3_LOG_FILE: '/x',
      PVE_S3_DEBUG: '1',
    });
    // other tools' credentials are the user's: an `aws s3 cp - …` producer needs them
    expect(e).toEqual({ PATH: '/bin', S3_ACCESS_KEY: 'a', AWS_SECRET_ACCESS_KEY: "the user's own", PVE_S3_LOG_FILE: '/x', PVE_S3_DEBUG: '1' });
  });
});
