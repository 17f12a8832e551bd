// Issue 10 §8: a bucket writer or a hostile endpoint chooses how big an answer is. Whatever it
// chooses, the commands and the protocol keep their memory bounded and end with a clear error
// naming the key (or the request) and the limit: a 300 MiB .notes sidecar and an oversized
// manifest planted in the real RadosGW, a 1.5 GiB ListObjects body and a 1.5 GiB error body from
// the fault proxy, a manifest whose part size would size a stream buffer beyond reason. Peak
// RSS of the child process is asserted (test/helpers/max-rss.ts), never a timing.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { rssProbe } from '../helpers/max-rss.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';
import { MiB, ROOT, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

const ARCH = 'vzdump-qemu-100-2024_05_06-07_08_09.vma.zst';
const ARCH2 = 'vzdump-qemu-101-2024_05_06-07_08_09.vma.zst';
const NOTES_LIMIT = 64 * 1024;
// A command that lists or fails here stays far below this; reading any of the hostile bodies
// whole takes several times more (the audit measured 1.27 GB for the notes, 3.2 GB for the
// listing). The margin covers Node's own ~60-90 MiB and a parsed 16 MiB page.
const PEAK_MIB = 256;

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;
let proxy: FaultProxy;
let storage: Record<string, string>;

/** A large object by multipart upload, its first bytes given, the rest one repeated buffer. */
async function putLarge(key: string, head: Buffer, size: number): Promise<void> {
  const part = 30 * MiB;
  const fill = Buffer.alloc(part, 0x78);
  const id = await c.createMultipartUpload(key);
  const parts: { partNumber: number; etag: string }[] = [];
  for (let n = 1, off = 0; off < size; n++, off += part) {
    const len = Math.min(part, size - off);
    const body = n === 1 ? Buffer.concat([head, fill.subarray(0, len - head.length)]) : fill.subarray(0, len);
    const sha = createHash('sha256').update(body).digest('hex');
    parts.push({ partNumber: n, etag: (await c.uploadPart(key, id, n, body, sha)).etag });
  }
  await c.completeMultipartUpload(key, id, parts);
}

/** The protocol host as a subprocess, with the RSS probe. */
function host(request: unknown, extraEnv: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [join(ROOT, 'host', 'bin', 'pve-s3-host.js')], {
      env: { ...process.env, PVE_S3_LOG_FILE: join(dir, 'host.log'), PVE_S3_DEBUG: '', ...extraEnv },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, stdout, stderr }));
    p.stdin.end(JSON.stringify(request));
  });
}

/** 1.5 GiB of body, produced as it is read: a listing page that never ends, or error text. */
function* hugeBody(head: string, unit: string): Iterable<Uint8Array> {
  const total = 1.5 * 1024 * MiB;
  const chunk = Buffer.from(unit.repeat(Math.ceil((64 * 1024) / unit.length)));
  yield Buffer.from(head);
  for (let sent = head.length; sent < total; sent += chunk.length) yield chunk;
}

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('sec-bounds');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-sec-bounds-'));
  proxy = await startFaultProxy(testS3().endpoint);
  const direct = s3Section('s3a', c.bucket);
  env = await cfgEnv(dir, [direct, { ...direct, id: 'viaproxy', props: { ...direct.props, endpoint: proxy.url } }]);
  const t = testS3();
  storage = { id: 's3a', bucket: c.bucket, endpoint: t.endpoint, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey, force_path_style: '1' };
  // a real backup (with its manifest), then a 300 MiB .notes sidecar planted beside it
  await writeFile(join(dir, ARCH), randomBytes(64 * 1024));
  const up = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH)], { env });
  expect(up.code, up.stderr).toBe(0);
  await putLarge(`dump/${ARCH}.notes`, Buffer.from('first line of the notes\n'), 300 * MiB);
});

afterAll(async () => {
  await proxy.close();
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('a 300 MiB .notes sidecar (real RadosGW)', () => {
  it('restore --list shows its first line in bounded memory', async () => {
    const probe = await rssProbe(dir, 'list-notes');
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--list'], { env: { ...env, ...probe.env } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`${ARCH.replace(/\./g, '\\.')}.*first line of the notes`));
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it('the protocol lists it (first line) in bounded memory, and get-attr refuses it naming key and limit', async () => {
    const probe = await rssProbe(dir, 'proto-list');
    const l = await host({ v: 1, op: 'list', storage, args: {} }, probe.env);
    expect(l.code, l.stderr).toBe(0);
    const vols = (JSON.parse(l.stdout) as { result: { volumes: Array<{ volname: string; notes?: string }> } }).result.volumes;
    expect(vols.find((v) => v.volname === `backup/${ARCH}`)?.notes).toBe('first line of the notes');
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);

    const g = await host({ v: 1, op: 'get-attr', storage, args: { volname: `backup/${ARCH}`, attr: 'notes' } }, probe.env);
    expect(g.code).not.toBe(0);
    const e = (JSON.parse(g.stdout) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('NotesTooLarge');
    expect(e.message).toContain(`dump/${ARCH}.notes`);
    expect(e.message).toContain(String(NOTES_LIMIT));
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it('notes over 64 KiB are refused when written (set-attr, backup --notes); 64 KiB exactly is fine', async () => {
    const over = await host({ v: 1, op: 'set-attr', storage, args: { volname: `backup/${ARCH}`, attr: 'notes', value: 'n'.repeat(NOTES_LIMIT + 1) } }, {});
    const e = (JSON.parse(over.stdout) as { error: { code: string; message: string } }).error;
    expect(e.code).toBe('NotesTooLarge');
    expect(e.message).toMatch(/65537 bytes.*65536/);
    await writeFile(join(dir, ARCH2), randomBytes(1024));
    const b = await run('pve-s3-backup', ['--storage', 's3a', '--source', join(dir, ARCH2), '--notes', 'é'.repeat(NOTES_LIMIT / 2 + 1)], { env });
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/notes .*65538 bytes.*65536.*\[NotesTooLarge\]/);
    expect((await c.listObjects({ prefix: `dump/${ARCH2}` })).objects).toHaveLength(0);
    const ok = await host({ v: 1, op: 'set-attr', storage, args: { volname: `backup/${ARCH}`, attr: 'notes', value: 'n'.repeat(NOTES_LIMIT) } }, {});
    expect(ok.code, ok.stdout).toBe(0);
  });
});

describe('an oversized manifest (real RadosGW)', () => {
  it('restore and check-integrity refuse it naming key and limit, in bounded memory', async () => {
    const name = 'vzdump-qemu-102-2024_05_06-07_08_09.vma.zst';
    await c.putObject(`dump/${name}`, Buffer.from('x'));
    // 20 MiB of tiny JSON objects: parsed whole, millions of them would take gigabytes
    await putLarge(`dump/${name}.s3manifest`, Buffer.from('{"parts":['), 20 * MiB);
    const probe = await rssProbe(dir, 'manifest');
    const r = await run('pve-s3-restore', ['--storage', 's3a', '--source', name, '--destination', join(dir, 'out.vma.zst')], { env: { ...env, ...probe.env } });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(new RegExp(`manifest 'dump/${name.replace(/\./g, '\\.')}\\.s3manifest' is invalid: larger than 4194304 bytes.*\\[ManifestInvalid\\]`));
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
    const ci = await run('pve-s3-maintenance', ['--storage', 's3a', '--action', 'check-integrity', '--source', name], { env: { ...env, ...probe.env } });
    expect(ci.code).toBe(5);
    expect(ci.stdout).toMatch(/MISSING-MANIFEST .*larger than 4194304 bytes/);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });
});

describe('hostile endpoint bodies (fault proxy)', () => {
  it('a 1.5 GiB ListObjects body ends in ResponseTooLarge, not a V8 crash', async () => {
    const head = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${c.bucket}</Name><Prefix>dump/</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>`;
    const unit = `<Contents><Key>dump/${ARCH}</Key><LastModified>2024-05-06T07:08:09.000Z</LastModified><ETag>"0"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>`;
    proxy.plan([{ match: { method: 'GET', pathIncludes: 'list-type=2' }, fault: { kind: 'respond', body: () => hugeBody(head, unit) }, times: Infinity }]);
    const probe = await rssProbe(dir, 'huge-list');
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env: { ...env, ...probe.env } });
    proxy.plan([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ListObjectsV2 .*larger than 16777216 bytes.*\[ResponseTooLarge\]/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it('a listing page just under the limit that only the general XML parser reads (namespaced, a new element name per entry)', async () => {
    // the flat scanner (s3/list-xml.ts) reads S3's own pages; anything else goes to the general
    // parser, whose tree of a 15 MiB page of distinct element names took 900 MiB
    const head = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns:x="urn:x"><Name>${c.bucket}</Name><Prefix>dump/</Prefix><IsTruncated>false</IsTruncated>`;
    const parts: string[] = [head];
    let size = head.length;
    for (let i = 0; size < 15 * MiB; i++) {
      const unit = `<Contents><Key>dump/${ARCH}</Key><Size>1</Size><ETag>"0"</ETag><LastModified>2024-05-06T07:08:09.000Z</LastModified><x:T${i}>v</x:T${i}></Contents>`;
      parts.push(unit);
      size += unit.length;
    }
    parts.push('</ListBucketResult>');
    const body = Buffer.from(parts.join(''));
    proxy.plan([{ match: { method: 'GET', pathIncludes: 'list-type=2' }, fault: { kind: 'respond', body }, times: Infinity }]);
    const probe = await rssProbe(dir, 'wide-list');
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env: { ...env, ...probe.env } });
    proxy.plan([]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd()).toMatch(/^pve-s3-restore: ListObjectsV2 answer from http:\/\/127\.0\.0\.1:\d+ is \d+ bytes of XML in a form S3 does not write \(only the general parser reads it\), more than the 4194304 bytes it is given: not parsed .*\[ResponseTooLarge\]$/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it('a listing that never ends (every page truncated, a fresh token, the same keys) stops at the first page that does not advance', async () => {
    let served = 0;
    const page = (): Uint8Array => {
      served++;
      const names = Array.from({ length: 1000 }, (_, i) => `dump/vzdump-qemu-${100 + i}-2024_05_06-07_08_09.vma.zst`).sort();
      const keys = names.map((k) => `<Contents><Key>${k}</Key><LastModified>2024-05-06T07:08:09.000Z</LastModified><ETag>"0"</ETag><Size>1</Size></Contents>`);
      return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${c.bucket}</Name><Prefix>dump/</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>t${served}</NextContinuationToken>${keys.join('')}</ListBucketResult>`);
    };
    proxy.plan([{ match: { method: 'GET', pathIncludes: 'list-type=2' }, fault: { kind: 'respond', body: () => [page()] }, times: Infinity }]);
    const probe = await rssProbe(dir, 'endless-list');
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env: { ...env, ...probe.env } });
    proxy.plan([]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd()).toMatch(/^pve-s3-restore: .*returned a listing page that does not advance \(key 'dump\/vzdump-qemu-100-2024_05_06-07_08_09\.vma\.zst' after 'dump\/vzdump-qemu-999-2024_05_06-07_08_09\.vma\.zst'\): listing stopped .*\[InvalidResponse\]$/);
    // the second page of each folder's listing is its last
    expect(served).toBeLessThanOrEqual(8);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it('ListMultipartUploads pages whose markers cycle stop at the first repeat', async () => {
    let served = 0;
    const page = (): Uint8Array => {
      const k = `dump/vzdump-qemu-10${served++ % 2}-2024_05_06-07_08_09.vma.zst`;
      return Buffer.from(`<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>${c.bucket}</Bucket><IsTruncated>true</IsTruncated><NextKeyMarker>${k}</NextKeyMarker><NextUploadIdMarker>u1</NextUploadIdMarker><Upload><Key>${k}</Key><UploadId>u1</UploadId><Initiated>2024-05-06T07:08:09.000Z</Initiated></Upload></ListMultipartUploadsResult>`);
    };
    proxy.plan([{ match: { method: 'GET', pathIncludes: 'uploads' }, fault: { kind: 'respond', body: () => [page()] }, times: Infinity }]);
    const r = await run('pve-s3-maintenance', ['--storage', 'viaproxy', '--action', 'abort-uploads'], { env });
    proxy.plan([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/returned ListMultipartUploads pages that do not advance \(key marker 'dump\/vzdump-qemu-100-2024_05_06-07_08_09\.vma\.zst' after 'dump\/vzdump-qemu-101-2024_05_06-07_08_09\.vma\.zst'\): listing stopped/);
    expect(served).toBeLessThanOrEqual(4);
  });

  it('a 1.5 GiB error body is read only as far as an error body can go', async () => {
    proxy.plan([
      {
        match: { method: 'GET', pathIncludes: 'list-type=2' },
        fault: { kind: 'respond', status: 403, body: () => hugeBody('<?xml version="1.0"?><Error><Code>AccessDenied</Code><Message>', 'no ') },
        times: Infinity,
      },
    ]);
    const probe = await rssProbe(dir, 'huge-error');
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--list'], { env: { ...env, ...probe.env } });
    proxy.plan([]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/access denied/);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });

  it("a manifest whose part size would size a stream restore's buffer is refused before any buffer", async () => {
    // the endpoint claims a 5 GiB object; the manifest, consistent with it, is one 5 GiB part
    const name = 'vzdump-qemu-103-2024_05_06-07_08_09.vma.zst';
    const size = 5 * 1024 * MiB;
    const sha = 'a'.repeat(64);
    const composite = createHash('sha256').update(Buffer.from(sha, 'hex')).digest('hex') + '-1';
    const manifest = { format: 'pve-s3-manifest', version: 1, key: `dump/${name}`, size, partSize: size, multipart: false, parts: [{ n: 1, size, sha256: sha }], compositeSha256: composite, sha256: sha, etag: '"0"', uploadedAt: '', tool: 'x', meta: {} };
    await c.putObject(`dump/${name}`, Buffer.from('x'));
    await c.putObject(`dump/${name}.s3manifest`, Buffer.from(JSON.stringify(manifest)));
    proxy.plan([
      {
        match: { method: 'HEAD', path: new RegExp(`${name.replace(/\./g, '\\.')}$`) },
        fault: { kind: 'respond', body: '', headers: { 'Content-Length': String(size), ETag: '"0"', 'Last-Modified': new Date().toUTCString() } },
        times: Infinity,
      },
    ]);
    const probe = await rssProbe(dir, 'stream-part');
    // a manifest of the writer's own making, unsigned: only --allow-unverified lets it size anything
    const r = await run('pve-s3-restore', ['--storage', 'viaproxy', '--source', name, '--destination', '-', '--allow-unverified'], { env: { ...env, ...probe.env } });
    proxy.plan([]);
    expect(r.code).toBe(1);
    expect(r.out.length).toBe(0);
    expect(r.stderr).toMatch(/part size 5368709120 .*1073741824.*restore to a file.*\[StreamPartTooLarge\]/);
    expect(await probe.peakMiB()).toBeLessThan(PEAK_MIB);
  });
});
