// A gateway that stops answering in the middle of the work (`kill -STOP` on radosgw, or a Ceph
// cluster that blocks writes when full): the connections stay open and accept bytes, nothing
// answers. Each command gives up after stall_timeout of silence (here request_timeout's minimum,
// 10 s, which stall_timeout follows by default) instead of 6 attempts x 3 tries x request_timeout
// (s3/stall.ts), names the endpoint, and leaves nothing behind once the gateway moves again.
// The gateway is frozen through a relay (test/helpers/freeze-relay.ts) so that the test
// RadosGW other files share keeps running. No clock in the test: that a command gave up after one
// stall shows in what it says (the silence it waited, of stall_timeout 10 s; no request tried a
// third time) and in what the frozen gateway was sent (the connections the relay accepted).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFreezeRelay, type FreezeRelay } from '../helpers/freeze-relay.js';
import { hostOp } from '../helpers/host-op.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { BIN, MiB, directAndProxied, keys, requireBuild, run } from './cli-helpers.js';

/** max_concurrent_uploads, set here: parts in flight at once, ranges a download fetches at once */
const IN_FLIGHT = 4;

let c: S3Client;
let dir: string;
let relay: FreezeRelay;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('stall');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-stall-'));
  relay = await startFreezeRelay(testS3().endpoint);
  // bwlimit: slow enough that the gateway is frozen with the upload half done
  const both = await directAndProxied(dir, c.bucket, relay.url, {
    multipart_chunk_size: '5',
    max_concurrent_uploads: String(IN_FLIGHT),
    request_timeout: '10',
    connection_timeout: '10',
    path: join(dir, 'cache'),
    bwlimit: 'default=8192,restore=8192',
  });
  env = both.env;
  await writeFile(join(dir, 'seed.vma.zst'), randomBytes(48 * MiB));
  const seeded = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'seed.vma.zst'), '--name', 'vzdump-qemu-100-2026_12_01-10_00_00.vma.zst'], { env });
  expect(seeded.code, seeded.stderr).toBe(0);
  await both.shareKey();
});

afterAll(async () => {
  relay?.thaw();
  await relay?.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

async function until(what: string, ok: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function partsStored(): Promise<boolean> {
  const ups = await c.listMultipartUploads();
  return ups.length === 1 && (await c.listParts(ups[0]!.key, ups[0]!.uploadId)).length > 0;
}

/**
 * What a stalled command must say: the endpoint, the request, the silence it waited, what happened
 * and what to do; never the secret; and no request tried a third time. The silence is the host's
 * own count, and in a freeze nothing resets it: 1x s is one stall_timeout (10 s) and what was
 * silent before the freeze or left of a short retry, where 6 attempts of request_timeout would
 * have been 60 s and more.
 */
function saysStalled(stderr: string, command: string, request: string): void {
  const last = stderr.trimEnd().split('\n').at(-1)!;
  expect(last).toMatch(new RegExp(`^${command}: no answer from ${relay.url.replace(/[.:/]/g, '\\$&')} for 1\\d s during ${request}\\b`));
  // an upload's abort had one last try, which a frozen gateway does not answer either
  expect(last).toMatch(
    /it accepts connections but does not respond .*check the gateway, then run this again \(stall_timeout 10 s\)(; its incomplete multipart upload could not be aborted now: .*)? \[Stalled\]$/,
  );
  expect(stderr).not.toContain(testS3().secretAccessKey);
  expect(attemptsSaid(stderr).filter((n) => n > 2), 'no request tried a third time').toEqual([]);
}

/** The attempt numbers of the retries the command said (`retrying ...: attempt N of 6 in ...`). */
function attemptsSaid(stderr: string): number[] {
  return [...stderr.matchAll(/\bretrying .*: attempt (\d+) of \d+ in /g)].map((m) => Number(m[1]));
}

/**
 * What the frozen gateway was sent, counted from outside. It still accepts connections, and an
 * attempt that times out closes its own, so each attempt into the freeze is a connection the relay
 * accepted since `frozenAt` (or one opened before, reused). Giving up after one stall, each of
 * `requests` is tried once, twice when its first attempt timed out a hair before the limit
 * (stall.ts attemptMs), and an upload's abort once more (`lastTries`, LAST_TRY_MS); retrying as
 * before, each request would be tried 6 times, a part or a range 3 x 6.
 */
function sentOnceEach(frozenAt: number, requests: number, lastTries = 0): void {
  expect(relay.accepted - frozenAt, 'connections the frozen gateway accepted').toBeLessThanOrEqual(2 * requests + lastTries);
}

/** Thaws the gateway and waits for what the frozen gateway still had queued (the upload's abort). */
async function thawAndSettle(): Promise<void> {
  relay.thaw();
  await until('no incomplete upload left', async () => (await c.listMultipartUploads()).length === 0);
}

describe('a gateway frozen in the middle of the work', () => {
  it('pve-s3-backup of a file: gives up, names the endpoint; thawed: no object, no upload, and the next backup works', async () => {
    const name = 'vzdump-qemu-101-2026_12_06-10_00_00.vma.zst';
    await writeFile(join(dir, name), randomBytes(40 * MiB));
    const done = run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, name)], { env });
    await until('a part stored', partsStored);
    relay.freeze();
    const frozenAt = relay.accepted;
    const r = await done;
    expect(r.code).toBe(1);
    saysStalled(r.stderr, 'pve-s3-backup', 'UploadPart');
    sentOnceEach(frozenAt, IN_FLIGHT, 1);
    await thawAndSettle();
    expect((await keys(c, 'dump/')).filter((k) => k.includes('-101-'))).toEqual([]);
    expect(existsSync(join(dir, name))).toBe(true); // the source is never touched by a failure
    expect(await readdir(join(dir, 'cache', '.pve-s3', 'upload-journal'))).toEqual([]);
    const again = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, name)], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(await keys(c, `dump/${name}`)).toEqual([`dump/${name}`, `dump/${name}.s3manifest`]);
  });

  it('pve-s3-backup of a stream: gives up with parts in flight; thawed: nothing stored', async () => {
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', 'viaproxy', '--source', '-', '--vmid', '102', '--type', 'qemu', '--compress', 'zstd', '--max-size', '1G'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.on('error', () => undefined);
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    // ends a hung command before vitest's test timeout would leave it running: no assertion on time
    const kill = setTimeout(() => p.kill('SIGKILL'), 240_000);
    p.stdin.write(randomBytes(12 * MiB));
    await until('a part stored', partsStored);
    relay.freeze();
    const frozenAt = relay.accepted;
    p.stdin.write(randomBytes(12 * MiB)); // parts go out into the frozen gateway; stdin stays open
    const code = await exited;
    clearTimeout(kill);
    expect(code).toBe(1);
    saysStalled(stderr, 'pve-s3-backup', 'UploadPart');
    sentOnceEach(frozenAt, IN_FLIGHT, 1);
    await thawAndSettle();
    expect((await keys(c, 'dump/')).filter((k) => k.includes('-102-'))).toEqual([]);
  });

  it('pve-s3-restore: gives up mid-download; no file, no temporary file; thawed, the same restore works', async () => {
    const dest = join(dir, 'restored');
    await mkdir(dest);
    const args = ['--storage', 'viaproxy', '--source', 'vzdump-qemu-100-2026_12_01-10_00_00.vma.zst', '--destination', `${dest}/`];
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    const kill = setTimeout(() => p.kill('SIGKILL'), 240_000); // as above: a hung run ends
    // bytes have come (the temporary file grew): freeze
    const grown = async (): Promise<boolean> => {
      for (const f of await readdir(dest)) if (((await stat(join(dest, f)).catch(() => null))?.size ?? 0) > 0) return true;
      return false;
    };
    await until('bytes downloaded', grown);
    relay.freeze();
    const frozenAt = relay.accepted;
    const code = await exited;
    clearTimeout(kill);
    expect(code).toBe(1);
    saysStalled(stderr, 'pve-s3-restore', 'GetObject');
    sentOnceEach(frozenAt, IN_FLIGHT);
    expect(await readdir(dest)).toEqual([]);
    relay.thaw();
    const again = await run('pve-s3-restore', args, { env });
    expect(again.code, again.stderr).toBe(0);
    expect(await readdir(dest)).toEqual(['vzdump-qemu-100-2026_12_01-10_00_00.vma.zst']);
  });
});

describe('a gateway killed in the middle of an upload', () => {
  it('the upload fails saying its parts stay; the next backup to the storage, once the gateway is back, aborts them first', async () => {
    const name = 'vzdump-qemu-103-2026_12_06-10_00_00.vma.zst';
    await writeFile(join(dir, name), randomBytes(40 * MiB));
    const done = run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, name)], { env });
    await until('a part stored', partsStored);
    await relay.down();
    const r = await done;
    expect(r.code).toBe(1);
    const last = r.stderr.trimEnd().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^pve-s3-backup: cannot reach ${relay.url.replace(/[.:/]/g, '\\$&')}: `));
    const later = 'the next upload to this storage from this node aborts it once the gateway answers (or pve-s3-maintenance --storage viaproxy --action abort-uploads)';
    expect(last).toMatch(new RegExp(`; its incomplete multipart upload could not be aborted now: ${esc(later)} \\[(ConnectionRefused|NetworkError)\\]$`));
    // the log file says the same
    expect(await logLine(`dump/${name}`)).toMatch(new RegExp(`its parts stay in bucket ${c.bucket}; ${esc(later)}$`));
    const left = await c.listMultipartUploads();
    expect(left.map((u) => u.key)).toEqual([`dump/${name}`]);
    expect(await readdir(join(dir, 'cache', '.pve-s3', 'multipart-uploads'))).toHaveLength(1);

    await relay.up();
    const next = 'vzdump-qemu-104-2026_12_06-10_00_00.vma.zst';
    await writeFile(join(dir, next), randomBytes(6 * MiB)); // two parts: a multipart upload
    const again = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, next)], { env });
    expect(again.code, again.stderr).toBe(0);
    expect(await c.listMultipartUploads()).toEqual([]);
    expect(await readdir(join(dir, 'cache', '.pve-s3', 'multipart-uploads'))).toEqual([]);
    expect((await keys(c, 'dump/')).filter((k) => k.includes('-103-'))).toEqual([]);
  });

  it('with S3_* alone (no path to remember it in): the message and the log file name the abort-uploads that takes it', async () => {
    const name = 'vzdump-qemu-105-2026_12_06-10_00_00.vma.zst';
    const t = testS3();
    const alone = { ...env, PVE_S3_STORAGE_CFG: join(dir, 'no-storage.cfg'), S3_ENDPOINT: relay.url, S3_BUCKET: c.bucket, S3_REGION: t.region, S3_ACCESS_KEY: t.accessKeyId, S3_SECRET_KEY: t.secretAccessKey, S3_FORCE_PATH_STYLE: '1' };
    // a stream, held open: its first part is stored, the rest waits for stdin's end
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--source', '-', '--name', name, '--max-size', '1G'], { env: alone, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.stdin.on('error', () => undefined);
    const exited = new Promise<number | null>((res) => p.on('close', (code) => res(code)));
    const kill = setTimeout(() => p.kill('SIGKILL'), 240_000); // safety net only
    p.stdin.write(randomBytes(40 * MiB));
    await until('a part stored', partsStored);
    await relay.down();
    p.stdin.end();
    const r = { code: await exited, stderr };
    clearTimeout(kill);
    await relay.up();
    expect(r.code).toBe(1);
    // nothing remembers it, so only abort-uploads takes it, and only once it may no longer be running
    const later = 'pve-s3-maintenance --storage env --action abort-uploads --older-than 1h aborts it once the gateway answers and the upload is an hour old';
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`; its incomplete multipart upload could not be aborted now: ${esc(later)} \\[(ConnectionRefused|NetworkError)\\]$`));
    expect(await logLine(`dump/${name}`)).toMatch(new RegExp(`its parts stay in bucket ${c.bucket}; ${esc(later)}$`));
    const [left] = await c.listMultipartUploads();
    expect(left?.key).toBe(`dump/${name}`);
    // the hour is what it says: abort-uploads keeps it now (it may still be running for all it knows)
    const kept = await run('pve-s3-maintenance', ['--storage', 'env', '--action', 'abort-uploads', '--older-than', '1h'], { env: { ...alone, S3_ENDPOINT: t.endpoint } });
    expect(kept.code, kept.stderr).toBe(0);
    expect(kept.stdout).toMatch(/0 aborted/);
    expect((await c.listMultipartUploads()).map((u) => u.uploadId)).toEqual([left!.uploadId]);
    await c.abortMultipartUpload(left!.key, left!.uploadId);
  });
});

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The log file's warning about the upload of `key` whose abort failed. */
async function logLine(key: string): Promise<string | undefined> {
  const log = await readFile(env.PVE_S3_LOG_FILE!, 'utf8');
  return log.split('\n').find((l) => l.includes(`WARN`) && l.includes(`the incomplete multipart upload of '${key}' could not be aborted`));
}

describe('a gateway frozen before the operation', () => {
  it('pve-s3-restore --list and pve-s3-maintenance --action prune give up after one stall, naming the endpoint', async () => {
    relay.freeze();
    try {
      const frozenAt = relay.accepted;
      const [list, prune] = await Promise.all([
        run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env }),
        run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'prune', '--keep-last', '1', '--dry-run'], { env }),
      ]);
      expect(list.code).toBe(1);
      saysStalled(list.stderr, 'pve-s3-restore', 'ListObjectsV2');
      expect(prune.code).toBe(1);
      saysStalled(prune.stderr, 'pve-s3-maintenance', 'ListObjectsV2');
      // new processes: every request opened its own connection. --list lists dump/, template/iso/,
      // template/cache/ and snippets/ at once; prune lists dump/
      expect(relay.accepted - frozenAt).toBeGreaterThanOrEqual(2);
      sentOnceEach(frozenAt, 5);
    } finally {
      relay.thaw();
    }
  });

  it("the plugin's download (activate_volume): Timeout, retryable (an outage for the plugin), naming the endpoint", async () => {
    const storage = {
      id: 'viaproxy',
      bucket: c.bucket,
      endpoint: relay.url,
      region: testS3().region,
      access_key: testS3().accessKeyId,
      secret_key: testS3().secretAccessKey,
      force_path_style: '1',
      path: join(dir, 'plugin-cache'),
      request_timeout: '10',
    };
    relay.freeze();
    try {
      const frozenAt = relay.accepted;
      const dest = join(dir, 'plugin-cache', 'dump', 'vzdump-qemu-100-2026_12_01-10_00_00.vma.zst');
      await mkdir(join(dir, 'plugin-cache', 'dump'), { recursive: true });
      const r = await hostOp('download', storage, { volname: 'backup/vzdump-qemu-100-2026_12_01-10_00_00.vma.zst', dest }, { env: { PVE_S3_PRIV_DIR: join(dir, 'priv'), PVE_S3_LOG_FILE: join(dir, 'host.log') } });
      expect(r.ok).toBe(false);
      expect(r.error).toMatchObject({ code: 'Timeout', retryable: true });
      // the first of its requests (store/volume-look.ts): the archive's HEAD
      expect(r.error!.message).toMatch(
        new RegExp(`^no answer from ${relay.url.replace(/[.:/]/g, '\\$&')} for 1\\d s during HeadObject of 'dump/vzdump-qemu-100-2026_12_01-10_00_00\\.vma\\.zst':.*\\(stall_timeout 10 s\\)$`),
      );
      expect(r.stderr + JSON.stringify(r.error)).not.toContain(testS3().secretAccessKey);
      expect(attemptsSaid(r.stderr).filter((n) => n > 2), 'no request tried a third time').toEqual([]);
      // the archive's HEAD, its manifest and its index's HEAD, at once, each on a connection of its
      // own (a new process)
      expect(relay.accepted - frozenAt).toBeGreaterThanOrEqual(1);
      sentOnceEach(frozenAt, 3);
    } finally {
      relay.thaw();
    }
    expect(await readdir(join(dir, 'plugin-cache', 'dump'))).toEqual([]);
  });
});
