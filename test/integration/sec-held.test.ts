// Issue 10: attacks the audit tried that held. Each is kept here (or in the test named in
// docs/SECURITY.md) so that it stays held: hostile keys planted in the bucket never reach the file
// system, an endpoint's redirect is never followed (neither credentials nor data go elsewhere),
// and kill -9 in the middle of an upload or a restore leaves nothing visible under a final name.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { BIN, MiB, ROOT, cfgEnv, keys, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let storage: Record<string, string>;

const HOSTILE = ['dump/../../../tmp/pve-s3-held-pwn.vma', 'dump/a/../b.vma', 'dump/x\n.vma', 'dump/\x1b[2J.vma', 'template/iso/..', 'snippets/../../etc/cron.d/pve-s3-held', 'snippets/.hidden'];

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-held');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-held-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const direct = s3Section('s3a', c.bucket, { multipart_chunk_size: '5', path: join(dir, 'cache') });
  env = await cfgEnv(dir, [direct, { ...direct, id: 'viaproxy', props: { ...direct.props, endpoint: proxy.url } }]);
  // two storages on one bucket and prefix share the manifest key (docs/ARCHITECTURE.md "Manifest key")
  testManifestKey(join(dir, 'priv'), 's3a');
  await copyFile(join(dir, 'priv', 's3a.manifest-key'), join(dir, 'priv', 'viaproxy.manifest-key'));
  const t = testS3();
  storage = { id: 's3a', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey, force_path_style: '1', path: join(dir, 'cache') };
});

afterAll(async () => {
  await proxy.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

function host(request: unknown): Promise<{ code: number | null; stdout: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], { env: { ...process.env, PVE_S3_LOG_FILE: join(dir, 'host.log') }, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.on('close', (code) => res({ code, stdout }));
    p.stdin.end(JSON.stringify(request));
  });
}

async function tree(d: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(d, { withFileTypes: true, recursive: true })) out.push(join(e.parentPath, e.name));
  return out.sort();
}

describe('hostile keys planted in the bucket', () => {
  it('are never listed as volumes, never downloaded, never written anywhere', async () => {
    for (const k of HOSTILE) await c.putObject(k, Buffer.from('planted'));
    await writeFile(join(dir, 'hook.pl'), '#!/bin/sh\n');
    expect((await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, 'hook.pl')], { env })).code).toBe(0);
    const before = await tree(dir);

    const l = await run('pve-s3-restore', ['--storage', 's3a', '--list', '--json'], { env });
    expect(l.code, l.stderr).toBe(0);
    expect((JSON.parse(l.stdout) as Array<{ volname: string }>).map((v) => v.volname)).toEqual(['snippets/hook.pl']);
    const p = await host({ v: 1, op: 'list', storage, args: {} });
    expect((JSON.parse(p.stdout) as { result: { volumes: Array<{ volname: string }> } }).result.volumes.map((v) => v.volname)).toEqual(['snippets/hook.pl']);

    // asked for by name anyway (a crafted request): refused before any request
    for (const volname of ['backup/../../../tmp/pve-s3-held-pwn.vma', 'snippets/../../etc/cron.d/pve-s3-held', 'backup/x\n.vma', 'snippets/.hidden', 'iso/..']) {
      const d = await host({ v: 1, op: 'download', storage, args: { volname, dest: join(dir, 'cache', 'x') } });
      expect(d.code).toBe(2);
      expect((JSON.parse(d.stdout) as { error: { code: string } }).error.code).toBe('InvalidVolname');
      const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', volname, '--destination', join(dir, 'out')], { env });
      expect(r.code).toBe(2);
    }
    const added = (await tree(dir)).filter((x) => !before.includes(x));
    // (the listing records its usage figure in the state dir: that is all)
    expect(added.filter((x) => !x.endsWith('.log') && !x.startsWith(join(dir, 'cache', '.pve-s3')) && x !== join(dir, 'cache'))).toEqual([]);
    expect(existsSync('/tmp/pve-s3-held-pwn.vma')).toBe(false);
    expect(existsSync('/etc/cron.d/pve-s3-held')).toBe(false);
  });
});

describe("an endpoint's redirect", () => {
  it('is never followed: the other server sees no request, the command fails saying so', async () => {
    const seen: string[] = [];
    const other = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      res.end();
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    const elsewhere = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    try {
      for (const status of [301, 302, 307, 308]) {
        proxy.plan([{ fault: { kind: 'respond', status, body: '', headers: { Location: `${elsewhere}/${c.bucket}/`, 'x-amz-bucket-region': 'us-east-1' } }, times: Infinity }]);
        const l = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env });
        expect(l.code, `${status}: ${l.stderr}`).not.toBe(0);
        expect(l.stderr).toMatch(/Redirect|Http30\d|HTTP 30\d/);
        await writeFile(join(dir, 'up.iso'), randomBytes(1024));
        const u = await run('pve-s3-backup', ['--storage', 'viaproxy', '--source', join(dir, 'up.iso')], { env });
        expect(u.code, `${status}: ${u.stderr}`).not.toBe(0);
      }
    } finally {
      proxy.plan([]);
      await new Promise<void>((r) => other.close(() => r()));
    }
    expect(seen).toEqual([]);
  });
});

describe('kill -9', () => {
  it('in the middle of an upload: no object and no manifest under the name; only an incomplete upload, which abort-uploads removes', async () => {
    const name = 'vzdump-qemu-107-2024_05_06-07_08_09.vma.zst';
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-backup.js'), '--storage', 's3a', '--source', '-', '--name', name, '--size', String(64 * MiB)], {
      env,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const gone = new Promise((r) => p.once('close', r));
    p.stdin.on('error', () => undefined);
    p.stdin.write(randomBytes(12 * MiB)); // two parts of 5 MiB go up; the stream stays open
    for (let i = 0; i < 1200; i++) {
      const ups = await c.listMultipartUploads({ prefix: 'dump/' });
      const u = ups.find((x) => x.key === `dump/${name}`);
      if (u && (await c.listParts(u.key, u.uploadId)).length >= 1) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    p.kill('SIGKILL');
    await gone;
    expect((await keys(c, 'dump/')).filter((k) => k.includes(name))).toEqual([]);
    const { abortStaleUploads } = await import('../../host/src/store/multipart.js');
    const { nullLogger } = await import('../../host/src/util/log.js');
    const r = await abortStaleUploads({ client: c, settings: { storageId: 's3a', bucket: c.bucket, prefix: '', chunkSizeMB: 5, concurrency: 2 }, logger: nullLogger }, { olderThanSeconds: 0 });
    expect(r.uploads.map((u) => u.key)).toContain(`dump/${name}`);
    expect((await c.listMultipartUploads()).filter((u) => u.key === `dump/${name}`)).toEqual([]);
  });

  it('in the middle of a restore: nothing under the final name; the next restore removes the hidden leftover', async () => {
    const name = 'vzdump-qemu-108-2024_05_06-07_08_09.vma.zst';
    const data = randomBytes(3 * MiB);
    await writeFile(join(dir, name), data);
    expect((await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, name)], { env })).code).toBe(0);
    const out = await mkdtemp(join(dir, 'restore-'));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    proxy.clearLog();
    proxy.plan([{ match: { method: 'GET', path: new RegExp(`/${name.replace(/\./g, '\\.')}$`) }, fault: { kind: 'delay', until: gate }, times: Infinity }]);
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), '--storage', 'viaproxy', '--source', name, '--destination', out], { env, stdio: 'ignore' });
    const gone = new Promise((r) => p.once('close', r));
    for (let i = 0; i < 6000 && !proxy.requests.some((q) => q.fault === 'delay'); i++) await new Promise((r) => setTimeout(r, 20));
    p.kill('SIGKILL');
    await gone;
    release();
    proxy.plan([]);
    const left = await readdir(out);
    expect(left).not.toContain(name);
    expect(left.filter((n) => n.startsWith(`.${name}.pve-s3-tmp-`))).toHaveLength(1);
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', name, '--destination', out], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(out)).toEqual([name]);
    expect((await readFile(join(out, name))).equals(data)).toBe(true);
    expect((await stat(join(out, name))).size).toBe(data.length);
  });
});
