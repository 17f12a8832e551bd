// The commands run from a checkout (host/bin, what peer-bench and the developer commands run) set
// undici's HTTP parser's tiering budget as the installed bundle does (scripts/wasm-budget.mjs):
// without it, V8 compiled llhttp's one huge function with TurboFan after the fifth response
// through undici, in every upload (a 1 KB upload: ~0.3 CPU-s and ~10,000 page faults of its
// ~0.8 CPU-s and 18,700 faults, measured). The host from a checkout (what the Perl tests start)
// likewise: without it, the first signature of a status sent the core's SHA-256 block function to
// TurboFan (3 ms and 1.4 MB of compile zone). V8's own trace says which functions it optimised.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, body, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-wasm-budget');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-wasm-budget-'));
  env = await cfgEnv(dir, [s3Section('s3w', c.bucket)]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

/** Body sizes of the WebAssembly functions V8 compiled with TurboFan during the command. */
function optimised(trace: string): number[] {
  return [...trace.matchAll(/^Compiled function \S+ using TurboFan\b.*\bbodysize (\d+)/gm)].map((m) => Number(m[1]));
}

describe('commands from a checkout', () => {
  it('an upload and its restore never optimise undici\'s HTTP parser (the one function of 30,000+ bytes)', async () => {
    const name = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
    const data = randomBytes(2000);
    await writeFile(join(dir, name), data);
    const node = `${process.execPath} --trace-wasm-compilation-times`;
    // a first upload, then the same file again (recognised: more requests through undici), then a restore
    for (const cmd of [
      `${node} ${join(BIN, 'pve-s3-backup.js')} --storage s3w --source ${join(dir, name)}`,
      `${node} ${join(BIN, 'pve-s3-backup.js')} --storage s3w --source ${join(dir, name)}`,
      `${node} ${join(BIN, 'pve-s3-restore.js')} --storage s3w --source ${name} --destination ${join(dir, 'back')}`,
    ]) {
      const r = await run(cmd, [], { env, shell: true });
      expect(r.code, r.stderr).toBe(0);
      // the trace is there (V8 writes it to stdout), and undici's parser is compiled, by the baseline compiler only
      expect(r.stdout).toMatch(/^Compiled function \S+ using Liftoff/m);
      expect(optimised(r.stdout).filter((size) => size >= 30_000)).toEqual([]);
    }
    expect((await body(c, `dump/${name}`)).equals(data)).toBe(true);
  });

  it('the host answers a status without optimising any WebAssembly function', async () => {
    const t = testS3();
    const storage = {
      id: 's3w', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId,
      secret_key: t.secretAccessKey, force_path_style: '1', path: join(dir, 'host-cache'),
    };
    const input = Buffer.from(JSON.stringify({ v: 1, op: 'status', deadline_ms: 4000, storage }));
    const r = await run(`${process.execPath} --trace-wasm-compilation-times ${join(BIN, 'pve-s3-host.js')}`, [], { env, shell: true, input });
    expect(r.code, r.stderr).toBe(0);
    // V8's trace and the reply share stdout; the reply is the one JSON line
    const reply = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!) as { ok: boolean; result: { active: boolean } };
    expect(reply).toMatchObject({ ok: true, result: { active: true } });
    expect(r.stdout).toMatch(/^Compiled function \S+ using Liftoff/m);
    expect(optimised(r.stdout)).toEqual([]);
  });
});
