/**
 * A VM backup as a PVE Backup Provider takes it (docs/BACKUP-PROVIDER.md §5): each device read
 * from its NBD export, written as a standard VMA in independent zstd frames, uploaded as it is
 * made through the transfer engine (bounded memory, no local file), then the frame index
 * sidecar and the manifest (with `index` and `guest`), then a HEAD that shows the object is what
 * the manifest says. Whatever fails, nothing of the archive stays visible.
 */
import { Readable } from 'node:stream';
import { NbdClient } from '../nbd/client.js';
import { parseVolname, type VolumeInfo } from '../pve/volname.js';
import type { FileLock } from '../util/flock.js';
import { INDEX_SUFFIX } from '../pve/volname.js';
import { EXIT, PveS3Error, aboutBackup, asPveS3Error } from '../util/errors.js';
import { S3Error } from '../s3/errors.js';
import { Sha256 } from '../wasm/digests.js';
import { toHex } from '../wasm/encoding.js';
import { CLUSTER_SIZE, CLUSTERS_PER_EXTENT, EXTENT_HEADER_SIZE, clusterCount, type VmaDevice } from '../vma/format.js';
import { FrameKind, INDEX_TYPE, encodeIndex, type FrameRecord } from '../vma/frame-index.js';
import { deviceFrames, type RawFrame } from '../vma/device-frames.js';
import { buildHeader, newUuid } from '../vma/writer.js';
import { FrameCompressor } from '../zstd/frames.js';
import { retentionFor } from './object-lock.js';
import { assertUploadVerified } from './local-files.js';
import { archiveUploadOptions, freeArchiveKey, removeFailedArchive } from './provider-archive.js';
import { statVolume } from './volumes.js';
import { transferClient, type StoreContext, type Volume } from './types.js';
import { formatBytes } from '../util/size.js';
import type { TransferClient } from '../transfer/transfer-client.js';

export interface BackupVmDevice {
  name: string;
  size: number;
  nbdPath: string;
}

export interface BackupVmArgs {
  volname: string;
  /** the backup time (VMA ctime) */
  time: number;
  config: Buffer;
  firewall?: Buffer;
  devices: BackupVmDevice[];
  /** PVE's bandwidth limit for this job, KiB/s */
  bwlimitKiB?: number;
  /** backup-init's id of this run, written into the archive's metadata (provider-archive.ts RUN_META) */
  run?: string;
  /** the client the archive is uploaded through, given the store's (provider-run.ts RunRecord.client) */
  uploads?: (c: TransferClient) => TransferClient;
  /** a progress line for the task log */
  onLine?(line: string): void;
  /** zstd threads (default 2) */
  threads?: number;
}

export interface BackupVmResult {
  volume: Volume;
  size: number;
  frames: number;
  readBytes: number;
  zeroBytes: number;
  storedBlocks: number;
}

/** frames compressed or waiting to be (each ≤ ~17 MiB uncompressed) */
const PIPELINE = 4;

export async function backupVm(ctx: StoreContext, a: BackupVmArgs): Promise<BackupVmResult> {
  const v = parseVolname(a.volname);
  if (v.content !== 'backup' || v.guestType !== 'qemu' || v.format !== 'vma' || v.compression !== 'zst') {
    throw new PveS3Error('InvalidArgument', `invalid volname '${a.volname}': a provider VM backup is a vzdump-qemu-….vma.zst archive`, { exitCode: EXIT.usage });
  }
  if (a.devices.length === 0) throw new PveS3Error('InvalidArgument', 'a VM backup needs at least one device', { exitCode: EXIT.usage });
  // the one writer of the archive on this node; its upload, a stream, is remembered with this
  // lock, so that a backup killed with SIGKILL does not leave its parts to the lifecycle rule
  const { lockVolumeWriter, WAIT_FOR_WRITER_SECONDS } = await import('./volume-lock.js');
  const writer = await lockVolumeWriter(ctx, v, { waitSeconds: WAIT_FOR_WRITER_SECONDS, who: 'backup provider', onWait: (m) => a.onLine?.(m) });
  try {
    return await backupVmLocked(ctx, a, v, writer);
  } finally {
    await writer.release();
  }
}

async function backupVmLocked(ctx: StoreContext, a: BackupVmArgs, v: VolumeInfo, writer: FileLock): Promise<BackupVmResult> {
  const key = await freeArchiveKey(ctx, v);
  const indexKey = key + INDEX_SUFFIX;
  const sorted = [...a.devices].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const devices: VmaDevice[] = sorted.map((d, i) => ({ id: i + 1, name: d.name, size: d.size }));
  const uuid = newUuid();
  const configs = [{ name: 'qemu-server.conf', data: a.config }];
  if (a.firewall) configs.push({ name: 'qemu-server.fw', data: a.firewall });
  const header = buildHeader({ uuid, ctime: a.time, configs, devices });

  const abort = new AbortController();
  const onOuterAbort = (): void => abort.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const clients: NbdClient[] = [];
  const compressor = new FrameCompressor({ threads: a.threads });
  const frames: FrameRecord[] = [];
  const total = devices.reduce((s, d) => s + d.size, 0);
  const stats = { read: 0, zero: 0, stored: 0 };
  const progress = progressLines(a, total, stats);
  // frames whose bytes are not all stored yet: their read ranges are discarded once they are
  const toDiscard: Array<{ end: number; client: NbdClient; read: Array<[number, number]> }> = [];
  let discardFailed = false;
  const discards: Promise<void>[] = [];
  const onStored = (end: number): void => {
    while (toDiscard.length && toDiscard[0]!.end <= end) {
      const d = toDiscard.shift()!;
      for (const [off, len] of d.read) {
        discards.push(
          d.client.trim(off, len).catch((e: Error) => {
            if (!discardFailed) a.onLine?.(`warning: discard on the NBD export failed (${e.message}); the backup goes on`);
            discardFailed = true;
          }),
        );
      }
    }
  };

  async function* archive(): AsyncGenerator<Buffer> {
    let offset = 0;
    let voffset = 0;
    const queue: Array<{ raw: Omit<RawFrame, 'data'> & { ulen: number }; client: NbdClient | null; done: ReturnType<FrameCompressor['compress']> }> = [];
    const emit = async (): Promise<Buffer> => {
      const q = queue.shift()!;
      const c = await q.done;
      frames.push({
        offset, clen: c.data.length, ulen: q.raw.ulen, voffset, devId: q.raw.devId, kind: q.raw.kind,
        firstCluster: q.raw.firstCluster, clusterCount: q.raw.clusterCount, storedBlocks: q.raw.storedBlocks, sha256: c.sha256, crc64: c.crc64,
      });
      offset += c.data.length;
      voffset += q.raw.ulen;
      stats.stored = offset;
      if (q.client && q.raw.read.length) toDiscard.push({ end: offset, client: q.client, read: q.raw.read });
      return c.data;
    };
    const submit = (raw: RawFrame, client: NbdClient | null): void => {
      const { data, ...rest } = raw;
      queue.push({ raw: { ...rest, ulen: data.length }, client, done: compressor.compress(data) });
    };
    submit({ devId: 0, kind: FrameKind.header, firstCluster: 0, clusterCount: 0, storedBlocks: 0, data: header, read: [] }, null);
    for (let i = 0; i < devices.length; i++) {
      const dev = devices[i]!;
      const client = await NbdClient.connect({ socket: sorted[i]!.nbdPath, exportName: dev.name, signal: abort.signal });
      clients.push(client);
      if (client.size !== dev.size) {
        throw new PveS3Error('NbdError', `NBD export '${dev.name}' at ${sorted[i]!.nbdPath} has ${client.size} bytes, PVE announced ${dev.size}`);
      }
      for await (const raw of deviceFrames({ client, dev, uuid, onProgress: (r, z) => progress.add(dev.name, r, z) })) {
        if (abort.signal.aborted) throw abort.signal.reason;
        submit(raw, client.canTrim ? client : null);
        while (queue.length >= PIPELINE) yield await emit();
      }
      progress.deviceDone(dev.name);
    }
    while (queue.length) yield await emit();
  }

  const stream = Readable.from(archive(), { objectMode: false, highWaterMark: 1 });
  const maxSize = archiveBound(header.length, devices);
  const retention = retentionFor(ctx);
  let indexWritten = false;
  // the archive may exist once its Complete went out; before that a failure leaves only parts,
  // which the upload aborted: a DELETE then would only cost a stalled gateway another last try
  let mayExist = false;
  try {
    const { uploadObject } = await import('../transfer/upload.js');
    const res = await uploadObject(a.uploads ? a.uploads(transferClient(ctx, writer)) : transferClient(ctx, writer), key, { stream, maxSize }, {
      ...(await archiveUploadOptions(ctx, v, { contentType: 'application/zstd', retention, ...(a.bwlimitKiB ? { bwlimitKiB: a.bwlimitKiB } : {}), ...(a.run !== undefined ? { run: a.run } : {}) })),
      signal: abort.signal,
      onStored,
      onWriting: () => (mayExist = true),
      beforeWrite: async () => {
        await freeArchiveKey(ctx, v, { stored: true });
      },
      manifestExtra: async ({ size }) => {
        const body = encodeIndex({ uuid, archiveSize: size, devices, frames });
        const sha = toHex(Sha256.hash(body));
        // the frame index is part of the immutable archive: locked like it
        await ctx.client.putObject(indexKey, body, {
          ...(ctx.settings.put ?? {}),
          contentType: 'application/octet-stream',
          sha256Hex: sha,
          ...(retention !== undefined ? { objectLock: retention } : {}),
        });
        indexWritten = true;
        return {
          index: { type: INDEX_TYPE, key: indexKey, size: body.length, sha256: sha },
          guest: { type: 'qemu', ...guestTexts(a.config, a.firewall), devices: devices.map((d) => ({ name: d.name, size: d.size })) },
        };
      },
      onProgress: () => progress.tick(),
    });
    await Promise.all(discards);
    const volume = await statVolume(ctx, a.volname);
    assertUploadVerified(volume);
    a.onLine?.(
      `stored ${v.name}: ${formatBytes(res.size)} for ${formatBytes(total)} of disks (${formatBytes(stats.read)} read, ${formatBytes(stats.zero)} zero or holes not read), ${frames.length} frames, ${compressor.where}`,
    );
    return { volume, size: res.size, frames: frames.length, readBytes: stats.read, zeroBytes: stats.zero, storedBlocks: frames.reduce((s, f) => s + f.storedBlocks, 0) };
  } catch (e) {
    abort.abort(e);
    stream.destroy();
    // the engine aborted its multipart upload; an object completed before the failure goes too
    const err = aboutBackup(failure(e, ctx, abort.signal), 'storing backup', v.name);
    throw mayExist ? await removeFailedArchive(ctx, a.volname, indexWritten ? [key, indexKey] : [key], err) : err;
  } finally {
    ctx.signal?.removeEventListener('abort', onOuterAbort);
    await Promise.allSettled(discards);
    await Promise.allSettled(clients.map((c) => c.close()));
    await compressor.close();
  }
}

/** The NBD side's error when the upload only saw the stream end, else the error itself. */
function failure(e: unknown, ctx: StoreContext, signal: AbortSignal): PveS3Error {
  const err = asPveS3Error(e);
  const cause = (err as { cause?: unknown }).cause;
  // not the transport's causes (a Stalled request's last timeout), nor an error the upload
  // only added to (its multipart upload could not be aborted): those say more than their cause
  if (cause instanceof PveS3Error && !(cause instanceof S3Error) && cause.code !== err.code && err.code !== 'NbdError') return cause;
  if (ctx.signal?.aborted && err.code !== 'Aborted') return new PveS3Error('Aborted', `backup cancelled: ${err.message}`);
  void signal;
  return err;
}

/** The texts for the manifest: all of them or none (a reader takes a missing firewall beside a
 *  config for "no firewall", so one that is not UTF-8 must send readers to the VMA header). */
export function guestTexts(config: Buffer, firewall: Buffer | undefined): { config?: string; firewall?: string } {
  const utf8 = (b: Buffer): string | null => {
    const s = b.toString('utf8');
    return Buffer.from(s, 'utf8').equals(b) ? s : null;
  };
  const c = utf8(config);
  const f = firewall ? utf8(firewall) : undefined;
  if (c === null || f === null) return {};
  return f === undefined ? { config: c } : { config: c, firewall: f };
}

/** Most bytes the archive can take: header, every cluster stored, extent headers, zstd's worst case. */
function archiveBound(headerLen: number, devices: VmaDevice[]): number {
  let raw = headerLen;
  for (const d of devices) {
    const clusters = clusterCount(d.size);
    raw += clusters * CLUSTER_SIZE + Math.ceil(clusters / CLUSTERS_PER_EXTENT) * EXTENT_HEADER_SIZE;
  }
  // zstd: 3 bytes per 128 KiB block plus a frame header and checksum per frame (≤ 256 clusters)
  return raw + Math.ceil(raw / 131072) * 3 + (Math.ceil(raw / (256 * CLUSTER_SIZE)) + devices.length * 2 + 1) * 32;
}

/** One line at most every 10 s or 5 % of the disks, for the task log. */
function progressLines(a: BackupVmArgs, total: number, stats: { read: number; zero: number; stored: number }) {
  const started = Date.now();
  let lastAt = started;
  let lastPct = 0;
  const line = (dev: string): void => {
    const done = stats.read + stats.zero;
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    a.onLine?.(
      `${dev}: ${Math.floor((100 * done) / Math.max(total, 1))}% (${formatBytes(done)} of ${formatBytes(total)}, ${formatBytes(stats.zero)} zero/holes not read), ${formatBytes(stats.read / secs)}/s read, ${formatBytes(stats.stored)} compressed`,
    );
    lastAt = Date.now();
    lastPct = Math.floor((100 * done) / Math.max(total, 1));
  };
  let current = '';
  return {
    add(dev: string, read: number, zero: number): void {
      current = dev;
      stats.read += read;
      stats.zero += zero;
      const pct = Math.floor((100 * (stats.read + stats.zero)) / Math.max(total, 1));
      if (Date.now() - lastAt >= 10_000 || pct >= lastPct + 5) line(dev);
    },
    tick(): void {
      if (current && Date.now() - lastAt >= 10_000) line(current);
    },
    deviceDone(dev: string): void {
      line(dev);
    },
  };
}
