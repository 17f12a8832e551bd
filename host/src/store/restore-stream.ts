/**
 * A VM backup without a frame index (pve-s3-backup uploads, PVE-made `.vma[.zst|.gz|.lzo]`),
 * restored the only way its format allows: one streaming pass — the verified download, the
 * decompressor PVE uses, the project's checking VMA reader — writing each device into a sparse
 * image `<dir>/<device>.raw` (zero blocks are never written), which qemu-img then reads. The
 * space needed is what the disks hold. Whatever fails, no image is left (docs/BACKUP-PROVIDER.md §6).
 */
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { decompressorFor } from '../pve/decompressor.js';
import { EXIT, PveS3Error, aboutBackup } from '../util/errors.js';
import { formatBytes } from '../util/size.js';
import type { VmaDevice } from '../vma/format.js';
import { readVma, type VmaHeaderInfo } from '../vma/reader.js';
import { startDecompressor, type Decompressor } from './decompress.js';
import type { OpenArchive } from './restore-archive.js';
import { streamVolume } from './transfer.js';
import type { StoreContext } from './types.js';

/** contiguous stored bytes gathered before one write (views of the stream's buffers, written
 *  with one pwritev: nothing joined) */
const WRITE_RUN = 4 << 20;
/** writes still running while the stream is read on: parsing and decompressing go on while the
 *  page cache takes the last runs, instead of waiting for each write */
const WRITES_IN_FLIGHT = 4;

export interface StreamedImages {
  header: VmaHeaderInfo;
  /** device name → image path */
  images: Map<string, string>;
  /** bytes written into the images (what the disks hold) */
  written: number;
}

export function imagePath(dir: string, device: string): string {
  return join(dir, `${device}.raw`);
}

export async function restoreToImages(ctx: StoreContext, a: OpenArchive, dir: string, o: { onLine?(l: string): void } = {}): Promise<StreamedImages> {
  const ac = new AbortController();
  const onOuter = (): void => ac.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onOuter, { once: true });
  const sctx: StoreContext = { ...ctx, signal: ac.signal };
  const prog = decompressorFor(a.v.compression, a.v.name);
  const dec: Decompressor | null = prog ? startDecompressor(prog, `backup '${a.v.name}'`) : null;
  const plain = dec ? null : new PassThrough({ highWaterMark: 4 << 20 });
  const sink: Writable = dec ? dec.input : plain!;
  // the reader hands out views of what it reads, and the runs below keep them until written: the
  // decompressor's output is fresh memory each read, but a download into the PassThrough reuses
  // its buffer once the PassThrough took it, so those chunks are copied first
  const source: AsyncIterable<Uint8Array> = dec ? dec.output : copies(plain!);

  // the first failure is the one to report: a truncated stream is only the symptom of it
  let first: unknown = null;
  const stopAll = (e: unknown): void => {
    if (first === null) first = e;
    ac.abort(e);
    dec?.stop();
    plain?.destroy();
  };
  const progress = progressLines(a, o.onLine);
  const decoded = dec ? dec.done.catch((e: unknown) => stopAll(e)) : Promise.resolve();
  const download = streamVolume(sctx, a.v.volname, sink, { onProgress: (p) => progress(p.bytes) }).then(
    () => sink.end(),
    // a decompressor that failed on damaged bytes closes its input: the download then reports a
    // broken pipe before the program's exit (which says what was wrong) arrives — let it speak
    // first. `decoded` settles once the program is gone; it is stopped after 2 s in any case.
    async (e: unknown) => {
      if (dec && (e as PveS3Error).code === 'WriteFailed') await Promise.race([decoded, new Promise((r) => setTimeout(r, 2000))]);
      stopAll(e);
    },
  );

  const files = new Map<number, { fh: FileHandle; dev: VmaDevice; path: string }>();
  const images = new Map<string, string>();
  let run: { id: number; start: number; bufs: Buffer[]; len: number } | null = null;
  let written = 0;
  const writing = new Set<Promise<void>>();
  let writeFailed: unknown = null;
  const flush = async (): Promise<void> => {
    if (writeFailed !== null) throw writeFailed;
    if (!run) return;
    const r = run;
    run = null;
    const f = files.get(r.id)!;
    const w: Promise<void> = writeAll(f.fh, r.bufs, r.len, r.start).then(
      () => {
        written += r.len;
      },
      (e: unknown) => {
        writeFailed ??= writeError(e, f.path, dir);
      },
    );
    writing.add(w);
    void w.finally(() => writing.delete(w));
    if (writing.size >= WRITES_IN_FLIGHT) await Promise.race(writing);
    if (writeFailed !== null) throw writeFailed;
  };
  const drain = async (): Promise<void> => {
    await Promise.all(writing);
    if (writeFailed !== null) throw writeFailed;
  };

  let header: VmaHeaderInfo | null = null;
  try {
    try {
      const res = await readVma(source, {
        onHeader: async (h) => {
          header = h;
          for (const d of h.devices) {
            const path = imagePath(dir, d.name);
            // 'wx': a name taken already is a bug or a race, never something to overwrite
            const fh = await open(path, 'wx', 0o600);
            files.set(d.id, { fh, dev: d, path });
            images.set(d.name, path);
            try {
              await fh.truncate(d.size);
            } catch (e) {
              throw (writeFailed = writeError(e, path, dir));
            }
          }
        },
        onData: async (dev, off, data) => {
          if (run && run.id === dev.id && run.start + run.len === off && run.len + data.length <= WRITE_RUN) {
            run.bufs.push(data);
            run.len += data.length;
            return;
          }
          await flush();
          run = { id: dev.id, start: off, bufs: [data], len: data.length };
        },
      });
      await flush();
      await drain();
      header = res.header;
    } catch (e) {
      // let the download and the decompressor say what went wrong first, if it was them; an
      // image that cannot be written is the cause itself (the decompressor's SIGPIPE, when its
      // output is closed because of it, is only the symptom)
      if (e !== writeFailed) await Promise.race([decoded, new Promise((r) => setTimeout(r, 2000))]);
      stopAll(e);
    }
    await Promise.all([download, decoded]);
    if (first !== null) throw first;
    for (const f of files.values()) await f.fh.close();
    files.clear();
    o.onLine?.(`read '${a.v.name}' (${formatBytes(a.size)}): ${header!.devices.map((d) => d.name).join(', ')} written to ${dir}, ${formatBytes(written)} of data`);
    return { header: header!, images, written };
  } catch (e) {
    stopAll(e);
    await Promise.allSettled([download, decoded, ...writing]);
    for (const f of files.values()) await f.fh.close().catch(() => undefined);
    for (const p of images.values()) await rm(p, { force: true });
    throw aboutBackup(first, 'reading backup', a.v.name);
  } finally {
    ctx.signal?.removeEventListener('abort', onOuter);
  }
}

/** `bufs` (`len` bytes in all) at `pos`, however many calls the kernel needs */
async function writeAll(fh: FileHandle, bufs: Buffer[], len: number, pos: number): Promise<void> {
  let done = (await fh.writev(bufs, pos)).bytesWritten;
  if (done === len) return;
  const rest = Buffer.concat(bufs, len);
  while (done < len) {
    const { bytesWritten } = await fh.write(rest, done, len - done, pos + done);
    if (bytesWritten === 0) throw new Error(`short write at byte ${pos + done}`);
    done += bytesWritten;
  }
}

async function* copies(s: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const c of s) yield Buffer.from(c);
}

function writeError(e: unknown, path: string, dir: string): PveS3Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new PveS3Error(
      'NoSpace',
      `no space left for '${path}': a backup without a frame index is restored through temporary images in '${dir}' as large as the data its disks hold; free space there (the storage's path) and retry`,
    );
  }
  return new PveS3Error('WriteFailed', `cannot write '${path}': ${(e as Error).message}`, { exitCode: EXIT.failure });
}

/** a line at most every 10 s or 5 % of the archive */
export function progressLines(a: OpenArchive, onLine?: (l: string) => void): (bytes: number) => void {
  const started = Date.now();
  let lastAt = started;
  let lastPct = 0;
  return (bytes) => {
    if (!onLine) return;
    const pct = Math.floor((100 * bytes) / Math.max(a.size, 1));
    if (Date.now() - lastAt < 10_000 && pct < lastPct + 5) return;
    lastAt = Date.now();
    lastPct = pct;
    const rate = bytes / Math.max((Date.now() - started) / 1000, 0.001);
    onLine(`reading '${a.v.name}': ${pct}% (${formatBytes(bytes)} of ${formatBytes(a.size)}), ${formatBytes(rate)}/s`);
  };
}
