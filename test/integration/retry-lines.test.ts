// A retried request says so when it happens, in one line on stderr, which is where vzdump's
// task log takes the hook's output from: the vzdump hook's upload and pve-s3-backup behind the
// fault proxy (test/helpers/fault-proxy.ts) in front of the real RadosGW, a part answered 503
// once. The line names request, key, part, cause and attempt, and carries no secret, no
// signature and no URL query. (The plugin's delete: delete-stalled.test.ts; the Backup Provider's
// job log: perl/t/36-retry-lines.t.)
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, cfgEnv, keys, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let proxy: FaultProxy;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('retrylines');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-retrylines-'));
  proxy = await startFaultProxy(testS3().endpoint);
  env = await cfgEnv(dir, [s3Section('viaproxy', c.bucket, { endpoint: proxy.url, path: join(dir, 'store'), multipart_chunk_size: '5', max_concurrent_uploads: '1' })]);
});

afterAll(async () => {
  await proxy?.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

const at = (): string => proxy.url.replace(/[.:/]/g, '\\$&');

/** the retry lines of a command's stderr, and that nothing of a signed request is anywhere in it */
function retryLines(stderr: string): string[] {
  expect(stderr).not.toContain(testS3().secretAccessKey);
  expect(stderr).not.toMatch(/Signature|Credential|X-Amz-|authorization/i);
  return stderr.split('\n').filter((l) => l.includes('retrying'));
}

describe('a part answered 503 once', () => {
  it("the vzdump hook's upload: one line on stderr (vzdump's task log), and the backup is stored", async () => {
    const dumpdir = join(dir, 'store', 'dump');
    await mkdir(dumpdir, { recursive: true });
    const name = 'vzdump-qemu-100-2026_12_06-10_00_00.vma.zst';
    await writeFile(join(dumpdir, name), randomBytes(12 * MiB));
    proxy.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=2' }, fault: { kind: 'status', status: 503 }, times: 1 }]);
    const r = await run('pve-s3-vzdump-hook', ['backup-end', 'snapshot', '100'], {
      env: { ...env, STOREID: 'viaproxy', DUMPDIR: dumpdir, TARGET: join(dumpdir, name), VMTYPE: 'qemu', HOSTNAME: 'pve1' },
    });
    proxy.plan([]);
    expect(r.code, r.stderr).toBe(0);
    const lines = retryLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^retrying UploadPart of 'dump/${name.replaceAll('.', '\\.')}' part 2 at ${at()} after 503 SlowDown: attempt 2 of 6 in \\d+\\.\\d s$`));
    expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.s3manifest`]);
  });

  it('pve-s3-backup: the same line on its stderr', async () => {
    const name = 'vzdump-qemu-101-2026_12_06-10_00_00.vma.zst';
    await writeFile(join(dir, name), randomBytes(1 * MiB));
    proxy.plan([{ match: { method: 'PUT', pathIncludes: name }, fault: { kind: 'status', status: 503 }, times: 1 }]);
    const r = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, name)], { env });
    proxy.plan([]);
    expect(r.code, r.stderr).toBe(0);
    const lines = retryLines(r.stderr);
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^retrying PutObject of 'dump/${name.replaceAll('.', '\\.')}' at ${at()} after 503 SlowDown: attempt 2 of 6 in \\d+\\.\\d s$`))]);
  });
});
