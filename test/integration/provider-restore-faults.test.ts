/**
 * A VM restore through the Backup Provider that goes wrong (docs/BACKUP-PROVIDER.md §6): the
 * bucket failing mid-restore and a frame damaged under an unchanged ETag (fault proxy in front of
 * the real RadosGW, for the detached server too), for an indexed archive and one without an
 * index; stored damage (issue 13): one byte of a stored frame or of the frame index changed in
 * RADOS under the gateway (size and ETag stay), a truncated index or archive — checked by the
 * CRC-64/NVME of a version 2 index and the SHA-256 of a version 1 one; and a PVE worker killed
 * mid-restore. The restore must fail with a message that says what happened, and leave no mount,
 * no process and no temporary image behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readKeyring } from '../../host/src/config/manifest-key.js';
import { serializeManifest } from '../../host/src/transfer/manifest.js';
import { Sha256 } from '../../host/src/wasm/digests.js';
import { crcKeepingMask } from '../helpers/crc64.js';
import { flipStoredByte, xorStoredBytes } from '../helpers/rados.js';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { backupVm } from '../../host/src/store/provider-vm.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';
import { decodeIndex, FrameKind } from '../../host/src/vma/frame-index.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { haveQsd, makeImage, processesIn, servedCopy, startQsd, tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testS3 } from '../helpers/s3.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { putVolume } from '../../host/src/store/transfer.js';
import type { ManifestKeyLocation } from '../../host/src/config/manifest-key-location.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const HOST = join(ROOT, 'host', 'bin', 'pve-s3-host.js');
const PREFIX = 'pve/';
const CONF = 'memory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=40M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n';
const have = haveQsd() && existsSync('/usr/bin/nbdfuse') && existsSync('/dev/fuse') && existsSync('/usr/bin/qemu-img');
const d = have ? describe : describe.skip;

interface Envelope {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

d('provider VM restore when things go wrong', () => {
  const tmp = tempDir('pvrf');
  let c: S3Client;
  let proxy: FaultProxy;
  let storage: Record<string, string>;
  let size: number;
  let manifestKey: ManifestKeyLocation;
  let dataFrames: Array<{ offset: number; clen: number }>;
  /** the indexed archive's index as the backup wrote it (version 2) */
  let indexV2: Buffer;
  let img: string;
  const indexed = 'backup/vzdump-qemu-100-2025_01_02-03_04_05.vma.zst';
  const plain = 'backup/vzdump-qemu-101-2025_01_02-03_04_05.vma.zst';
  const key = (v: string): string => `${PREFIX}dump/${v.slice(7)}`;

  function host(op: string, args: Record<string, unknown>, st: Record<string, string> = storage): Promise<Envelope> {
    return new Promise((res, rej) => {
      const p = spawn(process.execPath, [HOST], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PVE_S3_LOG_FILE: join(tmp.dir, 'host.log'), PVE_S3_MANIFEST_KEY_FILE: manifestKey.file } });
      let out = '';
      p.stdout.on('data', (x) => (out += x));
      p.stderr.resume();
      p.on('error', rej);
      p.on('close', () => {
        try {
          res(JSON.parse(out) as Envelope);
        } catch {
          rej(new Error(`no envelope from ${op}: ${out}`));
        }
      });
      p.stdin.end(JSON.stringify({ v: 1, op, storage: st, args }));
    });
  }

  beforeAll(async () => {
    c = await freshBucket('pvrf');
    proxy = await startFaultProxy(testS3().endpoint);
    const t = testS3();
    // the host and its detached servers reach the bucket through the proxy
    storage = {
      id: 'pvrf', bucket: c.bucket, endpoint: proxy.url, region: t.region, access_key: t.accessKeyId, secret_key: t.secretAccessKey,
      force_path_style: '1', prefix: PREFIX, path: join(tmp.dir, 'cache'), multipart_chunk_size: '5', connection_timeout: '10', request_timeout: '30',
    };
    // the storage's manifest key, shared with the host: a restore uses only what it signed
    manifestKey = testManifestKey(tmp.dir);
    const ctx: StoreContext = { client: c, settings: { storageId: 'pvrf', bucket: c.bucket, prefix: PREFIX, chunkSizeMB: 5, concurrency: 2, manifestKey }, logger: nullLogger };
    img = join(tmp.dir, 'disk.raw');
    size = makeImage(img, [{ kind: 'data', length: 40 << 20 }, { kind: 'hole', length: 8 << 20 }, { kind: 'data', length: 1 << 20 }], 9);
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    try {
      await backupVm(ctx, { volname: indexed, time: 1735787045, config: Buffer.from(CONF), devices: [{ name: 'drive-scsi0', size, nbdPath: qsd.socket }] });
    } finally {
      await qsd.stop();
    }
    indexV2 = await readAll((await c.getObject(`${key(indexed)}.s3index`)).body);
    const ix = decodeIndex(indexV2);
    expect(ix.frames.every((f) => f.crc64 !== undefined)).toBe(true);
    dataFrames = ix.frames.filter((f) => f.kind === FrameKind.data);
    expect(dataFrames.length).toBeGreaterThanOrEqual(3);
    // the same archive without an index, as pve-s3-backup stores any .vma.zst (signed: an object
    // without a manifest signed with the storage's key is refused before it is read, issue 10 §7)
    writeFileSync(join(tmp.dir, 'plain.vma.zst'), await readAll((await c.getObject(key(indexed))).body));
    await putVolume(ctx, plain, { src: { path: join(tmp.dir, 'plain.vma.zst') } });
  }, 240_000);

  afterAll(async () => {
    await proxy?.close();
    if (c) await dropBucket(c);
    await closeTestClients();
    tmp.remove();
  });

  const restoreRoot = (): string => join(tmp.dir, 'cache', '.pve-s3', 'restore');
  const leftovers = (): string[] => (existsSync(restoreRoot()) ? readdirSync(restoreRoot()) : []);
  const mounts = (): string[] => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(tmp.dir));
  const procs = (): string[] => processesIn(tmp.dir);
  const rangeOf = (f: { offset: number; clen: number }): string => `bytes=${f.offset}-${f.offset + f.clen - 1}`;

  /** one device through qemu-img as restore_external_archive runs it; the convert's and the cleanup's outcome */
  async function convertOnce(volname: string, st: Record<string, string> = storage): Promise<{ init: Envelope; convert?: number; stop?: Envelope; cleanup?: Envelope }> {
    const init = await host('restore-vm-init', { volname }, st);
    if (!init.ok) return { init };
    const dir = init.result!.dir as string;
    const start = await host('restore-volume-start', { dir, device: 'drive-scsi0' }, st);
    expect(start.ok, start.error?.message).toBe(true);
    // not spawnSync: the fault proxy lives in this process and must keep answering meanwhile
    const conv = await new Promise<{ status: number | null }>((res) => {
      const p = spawn('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', start.result!.path as string, join(tmp.dir, 'out.raw')], { stdio: 'ignore' });
      p.on('close', (status) => res({ status }));
    });
    const stop = await host('restore-volume-stop', { dir, device: 'drive-scsi0' }, st);
    const cleanup = await host('restore-vm-cleanup', { dir }, st);
    return { init, convert: conv.status ?? -1, stop, cleanup };
  }

  /** Stores `body` as the indexed archive's frame index and re-signs its manifest for it, as
   *  the backup would have: the index is trusted through the manifest's SHA-256 of it. */
  async function storeIndex(body: Buffer): Promise<void> {
    const mkey = `${key(indexed)}.s3manifest`;
    const m = JSON.parse((await readAll((await c.getObject(mkey)).body)).toString('utf8').replace(/,"mac":"[^"]*"\}$/, '}'));
    m.index = { ...m.index, size: body.length, sha256: Buffer.from(Sha256.hash(body)).toString('hex') };
    await c.putObject(m.index.key, body);
    await c.putObject(mkey, serializeManifest(m, readKeyring(manifestKey.file)!.current));
  }

  /** the index a version 1 writer made of the same archive: version 1, no CRCs (zero bytes) */
  function asVersion1(v2: Buffer): Buffer {
    const v1 = Buffer.from(v2);
    v1.writeUInt32BE(1, 8);
    for (let at = 64 + 64 * v1.readUInt32BE(52); at < v1.length; at += 80) v1.fill(0, at + 40, at + 48);
    return v1;
  }

  function sameAsSource(): void {
    expect(spawnSync('cmp', ['-s', img, join(tmp.dir, 'out.raw')]).status).toBe(0);
  }

  function nothingLeft(): void {
    expect(mounts()).toEqual([]);
    expect(procs()).toEqual([]);
    expect(leftovers()).toEqual([]);
  }

  it('indexed: a frame damaged under its ETag fails the restore naming the damage', async () => {
    const f = dataFrames[1]!;
    proxy.plan([{ match: { method: 'GET', headers: { range: rangeOf(f) } }, fault: { kind: 'corrupt', at: 1000 }, times: Infinity }]);
    try {
      const r = await convertOnce(indexed);
      expect(r.init.ok).toBe(true);
      expect(r.convert).not.toBe(0);
      expect(r.stop!.ok).toBe(false);
      expect(r.stop!.error!.code).toBe('IntegrityError');
      expect(r.stop!.error!.message).toMatch(new RegExp(`restore of 'drive-scsi0' from backup '${indexed}' failed: backup '${indexed}' is damaged: the ${f.clen} bytes at ${f.offset} of '${key(indexed)}' do not match the CRC-64/NVME their frame index records`));
      expect(r.cleanup!.ok, r.cleanup!.error?.message).toBe(true);
    } finally {
      proxy.plan([]);
    }
    nothingLeft();
  }, 180_000);

  it('indexed: one byte of a stored frame changed in RADOS is refused by the CRC-64/NVME of a version 2 index and by the SHA-256 of a version 1 index', async () => {
    const f = dataFrames[2]!;
    const before = await c.headObject(key(indexed));
    const damage = (): Promise<void> => flipStoredByte(c.bucket, key(indexed), f.offset + Math.floor(f.clen / 2));
    try {
      // intact, a version 1 index restores, its frames checked by SHA-256
      await storeIndex(asVersion1(indexV2));
      let r = await convertOnce(indexed);
      expect(r.convert).toBe(0);
      expect(r.stop!.ok, r.stop!.error?.message).toBe(true);
      sameAsSource();
      await damage();
      const after = await c.headObject(key(indexed));
      expect([after.size, after.etag]).toEqual([before.size, before.etag]);
      for (const [version, check] of [[1, 'SHA-256'], [2, 'CRC-64/NVME']] as const) {
        if (version === 2) await storeIndex(indexV2);
        r = await convertOnce(indexed);
        expect(r.init.ok, r.init.error?.message).toBe(true);
        expect(r.convert, `index version ${version}`).not.toBe(0);
        expect(r.stop!.error).toMatchObject({ code: 'IntegrityError' });
        expect(r.stop!.error!.message).toContain(`is damaged: the ${f.clen} bytes at ${f.offset} of '${key(indexed)}' do not match the ${check} their frame index records`);
        expect(r.cleanup!.ok, r.cleanup!.error?.message).toBe(true);
        nothingLeft();
      }
    } finally {
      await damage(); // XOR again: the stored byte is what it was
      await storeIndex(indexV2);
    }
    const r = await convertOnce(indexed);
    expect(r.convert).toBe(0);
    sameAsSource();
    nothingLeft();
  }, 300_000);

  it('indexed: a change crafted to keep the frame\'s CRC (the CRC is linear) is still refused, by zstd\'s content checksum (on its zstd thread)', async () => {
    const f = dataFrames[1]!;
    const at = f.offset + Math.floor(f.clen / 3);
    await xorStoredBytes(c.bucket, key(indexed), at, crcKeepingMask(0x5a));
    try {
      const r = await convertOnce(indexed);
      expect(r.convert).not.toBe(0);
      expect(r.stop!.error).toMatchObject({ code: 'IntegrityError' });
      expect(r.stop!.error!.message).toContain(`backup '${indexed}': the frame at byte ${f.offset} does not decompress`);
      expect(r.cleanup!.ok, r.cleanup!.error?.message).toBe(true);
    } finally {
      await xorStoredBytes(c.bucket, key(indexed), at, crcKeepingMask(0x5a));
    }
    nothingLeft();
  }, 180_000);

  it('indexed: one byte of the stored frame index changed in RADOS, or the index truncated, fails restore_vm_init (the SHA-256 its signed manifest records), index version 1 and 2', async () => {
    const ixKey = `${key(indexed)}.s3index`;
    try {
      for (const body of [asVersion1(indexV2), indexV2]) {
        await storeIndex(body);
        // a CRC byte of frame 1's record: what a check of the frames would then trust
        const at = 64 + 64 + 80 + 45;
        await flipStoredByte(c.bucket, ixKey, at);
        let r = await convertOnce(indexed);
        expect(r.init.ok).toBe(false);
        expect(r.init.error).toMatchObject({ code: 'IntegrityError' });
        expect(r.init.error!.message).toContain(`is damaged: its frame index '${ixKey}' does not match the SHA-256 in its manifest`);
        await flipStoredByte(c.bucket, ixKey, at);
        // the index cut short by one record, the manifest unchanged
        await c.putObject(ixKey, body.subarray(0, body.length - 80));
        r = await convertOnce(indexed);
        expect(r.init.ok).toBe(false);
        expect(r.init.error!.message).toContain(`its frame index '${ixKey}' does not match the SHA-256 in its manifest`);
        nothingLeft();
      }
    } finally {
      await storeIndex(indexV2);
    }
  }, 180_000);

  it('indexed: the bucket failing mid-restore fails the restore with the bucket\'s error', async () => {
    // the first data frame comes through, then every ranged GET is refused
    proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=/ } }, fault: { kind: 'status', status: 503 }, times: Infinity, skip: 1 }]);
    try {
      const r = await convertOnce(indexed);
      expect(r.init.ok).toBe(true);
      expect(r.convert).not.toBe(0);
      expect(r.stop!.ok).toBe(false);
      expect(r.stop!.error!.message).toMatch(/restore of 'drive-scsi0' from backup .* failed: .*(SlowDown|503)/);
      expect(r.cleanup!.ok, r.cleanup!.error?.message).toBe(true);
    } finally {
      proxy.plan([]);
    }
    nothingLeft();
  }, 180_000);

  describe('the bucket stops answering mid-restore (stall_timeout 10 s)', () => {
    const stalling = (): Record<string, string> => ({ ...storage, request_timeout: '10' });
    const noAnswer = (): RegExp => new RegExp(`no answer from ${proxy.url.replace(/[.:/]/g, '\\$&')} for \\d+ s during GetObject of '${PREFIX}dump/vzdump-qemu-10[01]-[^']+'`);

    it('indexed (the NBD server reads frames on demand): the convert fails, stop says why, nothing is left', async () => {
      proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=/ } }, fault: { kind: 'hang' }, times: Infinity, skip: 1 }]);
      try {
        const r = await convertOnce(indexed, stalling());
        expect(r.init.ok, r.init.error?.message).toBe(true);
        expect(r.convert).not.toBe(0);
        expect(r.stop!.ok).toBe(false);
        expect(r.stop!.error!.message).toMatch(noAnswer());
        expect(r.cleanup!.ok, r.cleanup!.error?.message).toBe(true);
      } finally {
        proxy.plan([]);
      }
      nothingLeft();
    }, 180_000);

    it('no index (restore_vm_init reads the archive into images): fails naming the backup, leaves no image', async () => {
      proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=/ } }, fault: { kind: 'hang' }, times: Infinity, skip: 1 }]);
      try {
        const r = await convertOnce(plain, stalling());
        expect(r.init.ok).toBe(false);
        expect(r.init.error!.code).toBe('Timeout');
        expect(r.init.error!.message).toMatch(/^reading backup 'vzdump-qemu-101-[^']+' failed: /);
        expect(r.init.error!.message).toMatch(noAnswer());
      } finally {
        proxy.plan([]);
      }
      nothingLeft();
    }, 180_000);
  });

  it('no index: the bucket failing mid-read fails restore_vm_init and leaves no image', async () => {
    proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=/ } }, fault: { kind: 'reset', afterBytes: 3 << 20 }, times: Infinity, skip: 1 }]);
    try {
      const r = await convertOnce(plain);
      expect(r.init.ok).toBe(false);
      // the network error names only the endpoint: the message says which backup it was reading
      expect(r.init.error!.message).toMatch(/^reading backup 'vzdump-qemu-101-[^']+' failed: /);
    } finally {
      proxy.plan([]);
    }
    nothingLeft();
  }, 180_000);

  it('no index: damaged bytes fail restore_vm_init (the download\'s check against the signed manifest says so) and leave no image', async () => {
    // the first part's bytes are damaged under their ETag: its CRC-64 no longer matches the manifest
    proxy.plan([{ match: { method: 'GET', headers: { range: /^bytes=0-/ } }, fault: { kind: 'corrupt', at: 1 << 20 }, times: Infinity }]);
    try {
      const r = await convertOnce(plain);
      expect(r.init.ok).toBe(false);
      expect(r.init.error!.code).toBe('IntegrityError');
      // the check's verdict naming the archive, not the broken pipe the decompressor saw when it quit
      expect(r.init.error!.message).toMatch(/vzdump-qemu-101-/);
      expect(r.init.error!.message).not.toMatch(/EPIPE|output stream/);
    } finally {
      proxy.plan([]);
    }
    nothingLeft();
  }, 180_000);

  it('no index: no space left under the storage\'s path fails restore_vm_init with NoSpace naming the image, and leaves no image', async (t) => {
    // a 16 MiB tmpfs as the storage's path: the disk holds 41 MiB of data
    const small = join(tmp.dir, 'small');
    spawnSync('mkdir', ['-p', small]);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', small], { encoding: 'utf8' });
    if (m.status !== 0) t.skip(`cannot mount a tmpfs here (${m.stderr.trim()}): needs root`);
    try {
      const r = await host('restore-vm-init', { volname: plain }, { ...storage, path: small });
      expect(r.ok).toBe(false);
      expect(r.error, r.error?.message).toMatchObject({ code: "NoSpace" });
      expect(r.error!.message).toMatch(new RegExp(`no space left for '${small}/\\.pve-s3/restore/[^']+/drive-scsi0\\.raw'`));
      expect(readdirSync(join(small, '.pve-s3', 'restore'))).toEqual([]);
      expect(procs()).toEqual([]);
    } finally {
      spawnSync('umount', [small]);
    }
  }, 180_000);

  it('a worker killed mid-restore: its server unmounts and stops by itself, the next restore sweeps its directory', async () => {
    const worker: ChildProcess = spawn('sleep', ['600']);
    try {
      const init = await host('restore-vm-init', { volname: indexed, owner_pid: worker.pid });
      expect(init.ok, init.error?.message).toBe(true);
      const start = await host('restore-volume-start', { dir: init.result!.dir, device: 'drive-scsi0' });
      expect(start.ok, start.error?.message).toBe(true);
      expect(mounts().length).toBe(1);
      worker.kill('SIGKILL');
      for (let i = 0; i < 100 && (mounts().length || procs().length); i++) await new Promise((r) => setTimeout(r, 100));
      expect(mounts()).toEqual([]);
      expect(procs()).toEqual([]);
      expect(leftovers().length).toBe(1);
      // the server said why it stopped, once (its owner poll ends with the wait it ended)
      const said = readFileSync(join(init.result!.dir as string, 'drive-scsi0.log'), 'utf8');
      expect(said.match(/the restore's owner \(pid \d+\) is gone: stopping/g)).toEqual([`the restore's owner (pid ${worker.pid}) is gone: stopping`]);
      // the next restore on this node cleans up the abandoned one
      const next = await host('restore-vm-init', { volname: indexed });
      expect(next.ok).toBe(true);
      expect(leftovers()).toEqual([(next.result!.dir as string).split('/').pop()]);
      expect((await host('restore-vm-cleanup', { dir: next.result!.dir })).ok).toBe(true);
    } finally {
      worker.kill('SIGKILL');
    }
    nothingLeft();
  }, 180_000);

  // last: the archive stays truncated
  it('indexed: the archive truncated (its first half PUT back under its key) is refused by restore_vm_init before a frame is read', async () => {
    const whole = await readAll((await c.getObject(key(indexed))).body);
    await c.putObject(key(indexed), whole.subarray(0, Math.floor(whole.length / 2)));
    const r = await convertOnce(indexed);
    expect(r.init.ok).toBe(false);
    expect(r.init.error).toMatchObject({ code: 'IntegrityError' });
    expect(r.init.error!.message).toMatch(new RegExp(`cannot be verified: the object is ${Math.floor(whole.length / 2)} bytes but its manifest says ${whole.length}; refused, nothing downloaded`));
    nothingLeft();
  }, 180_000);
});
