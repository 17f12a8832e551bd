/**
 * A VM backup through the Backup Provider while the bucket fails (docs/BACKUP-PROVIDER.md §5,
 * "Faults"): the host op `backup-vm`, as the plugin's backup_vm sends it, reads the guest from
 * qemu-storage-daemon and writes through a fault proxy in front of the real RadosGW that fails
 * the upload at different points — a part refused for good, connections reset mid-part, the
 * completion, the frame index, the manifest. Each time the job must fail
 * with a message that names the backup and what the bucket did, and leave nothing half-visible:
 * no object, no sidecar, no incomplete multipart upload, no file under the storage's path, no
 * process; backup_cleanup's `backup-discard` then finds nothing left to do.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { startFaultProxy, type FaultProxy, type FaultRule } from '../helpers/fault-proxy.js';
import { haveQsd, makeImage, processesIn, servedCopy, startQsd, tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const HOST = join(ROOT, 'host', 'bin', 'pve-s3-host.js');
const PREFIX = 'pve/';
const CONF = 'memory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=40M\n';
/** the run id backup-init would give: backup-discard removes only an archive that carries it */
const RUN = 'a'.repeat(32);
const d = haveQsd() ? describe : describe.skip;

interface Envelope {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

d('provider VM backup when the bucket fails mid-backup', () => {
  const tmp = tempDir('pvbf');
  let c: S3Client;
  let proxy: FaultProxy;
  let storage: Record<string, string>;
  let size: number;
  let img: string;
  let n = 0;

  function host(op: string, args: Record<string, unknown>, st: Record<string, string> = storage): Promise<{ env: Envelope; stderr: string }> {
    return new Promise((res, rej) => {
      const p = spawn(process.execPath, [HOST], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PVE_S3_LOG_FILE: join(tmp.dir, 'host.log'), PVE_S3_PRIV_DIR: join(tmp.dir, 'priv') } });
      let out = '';
      let err = '';
      p.stdout.on('data', (x) => (out += x));
      p.stderr.on('data', (x) => (err += x));
      p.on('error', rej);
      p.on('close', () => {
        try {
          res({ env: JSON.parse(out) as Envelope, stderr: err });
        } catch {
          rej(new Error(`no envelope from ${op}: ${out}\n${err}`));
        }
      });
      p.stdin.end(JSON.stringify({ v: 1, op, storage: st, args }));
    });
  }

  async function keys(): Promise<string[]> {
    const out: string[] = [];
    for await (const o of c.listAll({ prefix: PREFIX })) out.push(o.key);
    return out.sort();
  }

  /** every file under the storage's path (the run record lives there while a backup runs) */
  function localFiles(): string[] {
    try {
      return (readdirSync(storage.path!, { recursive: true, withFileTypes: true }) as Array<{ isFile(): boolean; parentPath: string; name: string }>)
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name));
    } catch {
      return [];
    }
  }

  /** runs backup-vm of a fresh archive name under `rules`; returns the failure */
  async function failingBackup(rules: FaultRule[], st: Record<string, string> = storage): Promise<{ volname: string; error: { code: string; message: string }; stderr: string }> {
    const volname = `backup/vzdump-qemu-${200 + n++}-2025_01_02-03_04_05.vma.zst`;
    proxy.plan(rules);
    const { env, stderr } = await backup(volname, st);
    proxy.plan([]);
    expect(env.ok, JSON.stringify(env)).toBe(false);
    if (process.env.SHOW_ERRORS) console.log(`${volname}: ${env.error!.code}: ${env.error!.message}`);
    return { volname, error: env.error!, stderr };
  }

  /** backup-vm from a fresh export: what was stored is discarded on the export (Base.pm asks
   *  it of a fleecing image), so each job gets its own copy, as each vzdump run its own snapshot */
  async function backup(volname: string, st: Record<string, string> = storage): Promise<{ env: Envelope; stderr: string }> {
    const served = servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir);
    const qsd = await startQsd(tmp.dir, [served]);
    try {
      return await host('backup-vm', {
        volname, run: RUN, time: 1735787045, config_b64: Buffer.from(CONF).toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }],
      }, st);
    } finally {
      await qsd.stop();
    }
  }

  /** nothing of the backup is visible or left, and backup_cleanup's discard has nothing to do */
  async function nothingLeft(volname: string): Promise<void> {
    const name = volname.slice('backup/'.length);
    expect((await keys()).filter((k) => k.includes(name))).toEqual([]);
    expect(await c.listMultipartUploads({ prefix: PREFIX })).toEqual([]);
    expect(localFiles()).toEqual([]);
    expect(processesIn(tmp.dir)).toEqual([]);
    const discard = await host('backup-discard', { volname, run: RUN });
    expect(discard.env).toMatchObject({ ok: true, result: { removed: [], aborted: 0 } });
  }

  beforeAll(async () => {
    c = await freshBucket('pvbf');
    proxy = await startFaultProxy(testS3().endpoint);
    const t = testS3();
    storage = {
      id: 'pvbf', bucket: c.bucket, endpoint: proxy.url, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey,
      force_path_style: '1', prefix: PREFIX, path: join(tmp.dir, 'cache'), multipart_chunk_size: '5', connection_timeout: '10', request_timeout: '30',
    };
    mkdirSync(join(tmp.dir, 'priv'), { mode: 0o700 });
    testManifestKey(join(tmp.dir, 'priv'), 'pvbf'); // as pvesm add makes it (issue 10 §7)
    // random data compresses to itself: about 5 parts of 5 MiB
    img = join(tmp.dir, 'disk.raw');
    size = makeImage(img, [{ kind: 'data', length: 24 << 20 }, { kind: 'hole', length: 8 << 20 }, { kind: 'data', length: 300 << 10 }], 17);
  });

  afterAll(async () => {
    await proxy?.close();
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  it('a part the bucket refuses for good (503 on every try of part 3)', async () => {
    const { volname, error } = await failingBackup([{ match: { method: 'PUT', path: /[?&]partNumber=3(&|$)/ }, fault: { kind: 'status', status: 503 }, times: Infinity }]);
    expect(error.code).toBe('SlowDown');
    expect(error.message).toContain(volname.slice(7));
    expect(error.message).toMatch(/SlowDown|503/);
    await nothingLeft(volname);
  });

  it('connections reset mid-part, every time', async () => {
    const { volname, error } = await failingBackup([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, fault: { kind: 'reset' }, skip: 1, times: Infinity }]);
    expect(error.message).toContain(volname.slice(7));
    expect(error.message).toMatch(/reset|socket|ECONNRESET|closed/i);
    await nothingLeft(volname);
  });

  it('the completion of the multipart upload fails (200 with an <Error> body)', async () => {
    const { volname, error } = await failingBackup([{ match: { method: 'POST', pathIncludes: 'uploadId=' }, fault: { kind: 'error200', code: 'InternalError', message: 'We encountered an internal error' }, times: Infinity }]);
    expect(error.message).toContain(volname.slice(7));
    expect(error.message).toContain('InternalError');
    await nothingLeft(volname);
  });

  it('the frame index cannot be stored (after the archive was complete)', async () => {
    const { volname, error } = await failingBackup([{ match: { method: 'PUT', pathIncludes: '.s3index' }, fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' }, times: Infinity }]);
    expect(error.message).toContain(volname.slice(7));
    expect(error.message).toContain('AccessDenied');
    await nothingLeft(volname);
  });

  it('the manifest cannot be stored (after archive and index were complete)', async () => {
    const { volname, error } = await failingBackup([{ match: { method: 'PUT', pathIncludes: '.s3manifest' }, fault: { kind: 'status', status: 500 }, times: Infinity }]);
    expect(error.message).toContain(volname.slice(7));
    expect(error.message).toMatch(/InternalError|500/);
    await nothingLeft(volname);
  });

  describe('the bucket stops answering (stall_timeout 10 s)', () => {
    const stalling = (): Record<string, string> => ({ ...storage, request_timeout: '10' });
    const says = (error: { code: string; message: string }, during: RegExp): void => {
      expect(error.code).toBe('Timeout');
      expect(error.message).toMatch(new RegExp(`^(storing backup '[^']+' failed: )?no answer from ${proxy.url.replace(/[.:/]/g, '\\$&')} for \\d+ s during `));
      expect(error.message).toMatch(during);
      expect(error.message).not.toContain(testS3().secretAccessKey);
    };

    it('before the backup: nothing sent, nothing left', async () => {
      const { volname, error, stderr } = await failingBackup([{ match: {}, fault: { kind: 'hang' }, times: Infinity }], stalling());
      if (process.env.SHOW_ERRORS) console.log(stderr);
      says(error, /during (HeadObject|ListObjects|CreateMultipartUpload)/);
      await nothingLeft(volname);
    });

    /** the uploads this node remembers to abort (store/abandoned-uploads.ts) */
    const remembered = (): string[] => {
      const d = join(storage.path!, '.pve-s3', 'multipart-uploads');
      return existsSync(d) ? readdirSync(d) : [];
    };
    // the abort, and no DELETE of an archive that cannot exist yet (each a last try of a silent gateway)
    const deletes = (from: number): number => proxy.requests.slice(from).filter((q) => q.method === 'DELETE').length;

    it('in the middle of the upload (parts after the second hang), the abort answered: nothing left', async () => {
      const seen = proxy.requests.length;
      const { volname, error, stderr } = await failingBackup([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, fault: { kind: 'hang' }, skip: 2, times: Infinity }], stalling());
      if (process.env.SHOW_ERRORS) console.log(stderr);
      says(error, /during UploadPart of 'pve\/dump\/vzdump-qemu-\d+-[^']+'/);
      expect(deletes(seen)).toBe(1);
      await nothingLeft(volname);
    });

    it('in the middle of the upload with everything hanging (the abort too): the upload is remembered, and the next backup aborts it', async () => {
      const seen = proxy.requests.length;
      const { volname, error, stderr } = await failingBackup([{ match: { method: 'PUT', pathIncludes: 'partNumber=' }, fault: { kind: 'hang' }, skip: 2, times: Infinity }, { match: { method: 'DELETE' }, fault: { kind: 'hang' }, times: Infinity }], stalling());
      if (process.env.SHOW_ERRORS) console.log(stderr);
      says(error, /its incomplete multipart upload could not be aborted now: the next upload to this storage from this node aborts it/);
      expect(deletes(seen)).toBe(1);
      expect(processesIn(tmp.dir)).toEqual([]);
      expect(remembered()).toHaveLength(1);
      expect((await c.listMultipartUploads({ prefix: PREFIX })).length).toBe(1);
      const next = `backup/vzdump-qemu-${200 + n++}-2025_01_02-03_04_05.vma.zst`;
      const { env } = await backup(next);
      expect(env.ok, JSON.stringify(env.error)).toBe(true);
      expect(await c.listMultipartUploads({ prefix: PREFIX })).toEqual([]);
      expect(remembered()).toEqual([]);
      expect((await keys()).filter((k) => k.includes(volname.slice(7)))).toEqual([]);
      const discard = await host('backup-discard', { volname: next, run: RUN });
      expect(discard.env.ok).toBe(true);
    });

    // (a CompleteMultipartUpload whose answer is lost meets the same rule, after the 300 s the
    // client allows a Complete's answer: too long a wait for this file)
    it('the frame index unanswered once the archive is complete: one last try to remove the archive, not two; the message names what may stay and how to remove it', async () => {
      const seen = proxy.requests.length;
      const { volname, error, stderr } = await failingBackup([{ match: { method: 'PUT', pathIncludes: '.s3index' }, fault: { kind: 'hang' }, times: Infinity }, { match: { method: 'DELETE' }, fault: { kind: 'hang' }, times: Infinity }], stalling());
      if (process.env.SHOW_ERRORS) console.log(stderr);
      says(error, /during PutObject of 'pve\/dump\/vzdump-qemu-\d+-[^']+\.s3index'/);
      // the upload's own removal of the archive it completed (a frozen gateway carries it out when
      // it moves again); a second DELETE of it would have waited another 10 s for nothing
      expect(deletes(seen)).toBe(1);
      expect(error.message).toMatch(
        new RegExp(`; '${volname}' may be stored all the same and was not removed while the gateway is silent: the job's cleanup removes it if the gateway answers by then, else pvesm free pvbf:${volname} once it answers$`),
      );
      // it is (the proxy never passed the DELETE on): what the message warns of
      const name = volname.slice('backup/'.length);
      expect((await keys()).filter((k) => k.includes(name))).toEqual([`${PREFIX}dump/${name}`]);
      // the way it names (free_image's host op) removes it
      const freed = await host('delete', { volnames: [volname] });
      expect(freed.env.ok, JSON.stringify(freed.env.error)).toBe(true);
      await nothingLeft(volname);
    });
  });

  it('the next backup of the same guest through the healthy bucket succeeds (nothing in the way)', async () => {
    const volname = `backup/vzdump-qemu-${200 + n - 1}-2025_01_02-03_04_05.vma.zst`;
    const { env, stderr } = await backup(volname);
    expect(env, stderr).toMatchObject({ ok: true, result: { volume: { verified: true } } });
    // the whole guest was read: its data is all there
    expect(env.result!.read_bytes as number).toBeGreaterThanOrEqual((24 << 20) + (300 << 10));
    const name = volname.slice(7);
    expect((await keys()).filter((k) => k.includes(name))).toEqual([`${PREFIX}dump/${name}`, `${PREFIX}dump/${name}.s3index`, `${PREFIX}dump/${name}.s3manifest`]);
    expect(localFiles()).toEqual([]);
  });
});
