// Two writers of one archive on one node (issue 11 §3): the vzdump hook and the background
// sync-local, as the separate processes they are, against the real RadosGW, with an archive big
// enough to go up in parts. Whichever starts first uploads; the other skips (sync-local) or waits
// and finds the work done (the hook). One object, one manifest, no failed backup, no multipart
// upload left. The order is made certain, not left to timing: the fault proxy holds the first
// writer's CompleteMultipartUpload until the second one has shown what it does.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveName } from '../../host/src/pve/volname.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, MiB, body, cfgEnv, keys, requireBuild, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let cache: string;
let sections: Record<string, Record<string, string>>;

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A process whose stderr can be watched while it runs. */
function start(args: string[], o: { env: NodeJS.ProcessEnv; input?: string }): { done: Promise<Proc>; stderr: () => string } {
  const p = spawn(process.execPath, args, { env: o.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.on('data', (d) => (stdout += d));
  p.stderr.on('data', (d) => (stderr += d));
  p.stdin.end(o.input ?? '');
  const done = new Promise<Proc>((res, rej) => {
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
  });
  return { done, stderr: () => stderr };
}

const hook = (storeId: string, target: string) =>
  start([join(BIN, 'pve-s3-vzdump-hook.js'), 'backup-end', 'snapshot', '100'], {
    env: { ...env, STOREID: storeId, TARGET: target, DUMPDIR: join(cache, 'dump'), VMTYPE: 'qemu', HOSTNAME: 'g1' },
  });

/** sync-local through the protocol, as the plugin's background job runs it. */
const syncLocal = (storeId: string) =>
  start([join(BIN, 'pve-s3-host.js')], {
    env: { PATH: process.env.PATH, PVE_S3_LOG_FILE: join(dir, 'host.log'), PVE_S3_MANIFEST_KEY_FILE: join(dir, 'shared.manifest-key') },
    input: JSON.stringify({ v: 1, op: 'sync-local', storage: { id: storeId, ...sections[storeId], secret_key: testS3().secretAccessKey }, args: { quiet_seconds: 0 } }),
  });

async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  // a safety net for a broken build, never the thing the test measures
  for (let i = 0; i < 2400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for: ${what}`);
}

function gate(): { open: Promise<void>; release(): void } {
  let release!: () => void;
  const open = new Promise<void>((r) => (release = r));
  return { open, release };
}

const completeOf = (name: string) => (r: { method: string; target: string }) => r.method === 'POST' && r.target.includes(name) && r.target.includes('uploadId=');

let n = 0;
async function archive(): Promise<{ name: string; target: string; data: Buffer }> {
  const name = archiveName({ vmid: 100, guestType: 'qemu', compression: 'zst', time: new Date(Date.UTC(2024, 2, 3, 4, 5, n++)) });
  const target = join(cache, 'dump', name);
  const data = randomBytes(17 * MiB + 5); // 4 parts of 5 MiB
  await writeFile(target, data);
  return { name, target, data };
}

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('writers');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-writers-'));
  cache = join(dir, 'cache');
  await mkdir(join(cache, 'dump'), { recursive: true });
  proxy = await startFaultProxy(testS3().endpoint);
  // two storage ids for one bucket, prefix and cache path: one reaches the gateway through the
  // proxy. The writers' lock lives in the path, so it is the same lock for both.
  const common = { prefix: 'pve/', path: cache, multipart_chunk_size: '5', max_concurrent_uploads: '2' };
  const viaProxy = s3Section('viaproxy', c.bucket, { ...common, endpoint: proxy.url });
  const direct = s3Section('direct', c.bucket, common);
  sections = { viaproxy: viaProxy.props, direct: direct.props };
  // ... and one manifest key, as two storages sharing a bucket and prefix must (README)
  env = await cfgEnv(dir, [viaProxy, direct], { PVE_S3_MANIFEST_KEY_FILE: join(dir, 'shared.manifest-key') });
});

afterAll(async () => {
  await proxy?.close();
  if (c) await dropBucket(c);
  await closeTestClients();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function oneVerifiedBackup(a: { name: string; data: Buffer }): Promise<void> {
  expect(await keys(c, 'pve/')).toEqual([`pve/dump/${a.name}`, `pve/dump/${a.name}.s3manifest`]);
  expect((await body(c, `pve/dump/${a.name}`)).equals(a.data)).toBe(true);
  expect(await c.listMultipartUploads({ prefix: 'pve/' })).toEqual([]);
  expect(existsSync(join(cache, 'dump', a.name)), 'keep_local 0: the local copy is gone').toBe(false);
}

describe('the vzdump hook and sync-local on one archive', () => {
  it('hook first: sync-local skips the archive while the hook uploads it; the hook succeeds', async () => {
    const a = await archive();
    const g = gate();
    proxy.plan([{ match: { test: completeOf(a.name) }, fault: { kind: 'delay', until: g.open }, times: Infinity }]);
    const h = hook('viaproxy', a.target);
    await until('the hook at CompleteMultipartUpload', () => proxy.requests.some(completeOf(a.name)));

    const s = await syncLocal('direct').done;
    expect(s.code, s.stderr).toBe(0);
    const result = JSON.parse(s.stdout).result;
    expect(result.uploaded).toEqual([]);
    expect(result.errors).toEqual([]);
    expect(result.skipped).toContainEqual({ volname: `backup/${a.name}`, reason: 'being uploaded by another process' });

    g.release();
    const r = await h.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/verified; local copy removed/);
    await oneVerifiedBackup(a);
    await c.deleteObjects([`pve/dump/${a.name}`, `pve/dump/${a.name}.s3manifest`]);
  });

  it('sync-local first: the hook waits for it, finds the archive stored and verified, and succeeds', async () => {
    const a = await archive();
    const g = gate();
    proxy.plan([{ match: { test: completeOf(a.name) }, fault: { kind: 'delay', until: g.open }, times: Infinity }]);
    const s = syncLocal('viaproxy');
    await until('sync-local at CompleteMultipartUpload', () => proxy.requests.some(completeOf(a.name)));

    const h = hook('direct', a.target);
    await until('the hook waiting for the lock', () => /being uploaded by another process on this node \(pid \d+, sync-local\): waiting/.test(h.stderr()));
    g.release();

    const sr = await s.done;
    expect(sr.code, sr.stderr).toBe(0);
    expect(JSON.parse(sr.stdout).result.uploaded).toEqual([`backup/${a.name}`]);
    const r = await h.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/was uploaded and verified by another process meanwhile/);
    await oneVerifiedBackup(a);
  });
});
