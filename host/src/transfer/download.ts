/**
 * downloadObject / verifyObject: every byte that reaches the caller has been checked.
 *
 * With a manifest, the object is fetched as ranged GETs aligned to its parts and each range is
 * checked as it streams in against the part's CRC-64/NVME (manifest version 2, the default) or
 * SHA-256 (`verify: 'sha256'`, which checks the CRC too, and every version 1 manifest; see
 * docs/INTEGRITY.md); a range that fails (connection, short body, wrong digest) is fetched again a
 * couple of times before the download fails with IntegrityError. Without a manifest (objects other tools uploaded) the size is checked and, when
 * the ETag is a plain MD5 (single PUT, no SSE-KMS/SSE-C), the MD5 of the whole content.
 *
 * To a file: ranges are written at their offsets into `.<name>.pve-s3-tmp-<random>` beside the
 * destination, which is fsynced and renamed into place only when everything verified; any
 * failure or cancel removes it. To a stream: ranges are fetched ahead in parallel into memory
 * (at most `concurrency` ranges) and written strictly in order, each only after it verified.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { PveS3Error, asPveS3Error } from '../util/errors.js';
import { Crc64Nvme, Md5, Sha256 } from '../wasm/digests.js';
import { toHex as hex } from '../wasm/encoding.js';
import { isNotFound, readManifest, type Manifest } from './manifest.js';
import { BufferPool } from './buffer-pool.js';
import { HASH_SLICE, yieldToLoop } from './part-hasher.js';
import { checkBwlimit, checkConcurrency } from './option-checks.js';
import { ProgressTracker, type Progress } from './progress.js';
import { StreamGovernor } from './stream-governor.js';
import { limiterFor, type RateLimiter } from './rate-limit.js';
import { FlushBehind, checkDestination, commitTemp, createTemp, discardTemp, writeAt, type TempFile } from './temp-file.js';
import { DirectWriter } from './direct-file.js';
import { abortedError, integrityError, isAbortError } from './transfer-errors.js';
import type { SseOptions } from '../s3/types.js';
import { bareETag } from '../s3/xml.js';
import type { TransferClient, TransferObjectInfo } from './transfer-client.js';

export type DownloadDest = { path: string } | { stream: Writable };

/**
 * What a download checks against a manifest: 'crc64' (default) the parts' CRC-64/NVME, 'sha256'
 * their SHA-256 as well. A version 1 manifest has no CRC: SHA-256 either way.
 */
export type VerifyMode = 'crc64' | 'sha256';

/** The checks a download or verify made: names of the digests compared, 'md5' of a single-PUT
 *  ETag, or 'size' alone (no manifest, no MD5 ETag). */
export type Check = 'crc64nvme' | 'sha256' | 'md5' | 'size';

export interface DownloadOptions {
  concurrency: number;
  signal?: AbortSignal;
  onProgress?(p: Progress): void;
  /** replace an existing destination file */
  force?: boolean;
  /** a file destination's permission bits (default 0644, less the umask) and its mtime (epoch
   *  seconds), set on the temporary file before it is moved into place */
  mode?: number;
  mtime?: number;
  /** extra attempts for a range that failed (default 2) */
  rangeRetries?: number;
  /** the key of an SSE-C object (other SSE types need nothing to read) */
  sse?: SseOptions;
  /** PVE bwlimit in KiB/s (0 or absent: none) */
  bwlimitKiB?: number;
  /** the object's HEAD, when the caller has just made it (one round trip less) */
  info?: TransferObjectInfo;
  verify?: VerifyMode;
  /** the manifest the caller has already read (null: download without one, by size/MD5) */
  manifest?: Manifest | null;
  /** false: write a file destination through the page cache even where O_DIRECT could take it
   *  (direct-file.ts; default true) */
  directIo?: boolean;
}

export interface DownloadResult {
  key: string;
  size: number;
  etag: string;
  /** how the content was verified */
  verifiedBy: 'manifest' | 'md5' | 'size';
  /** what was compared */
  checks: Check[];
  manifest: Manifest | null;
  path?: string;
  /** of a file destination: how many bytes the disk took with O_DIRECT (0: all through the page cache) */
  directBytes?: number;
}

/** Range size for objects without a manifest. */
export const PLAIN_RANGE = 16 << 20;

/** The most one GET of a download to a file asks for while the number of streams is open. */
const BATCH_MAX = 128 << 20;

/**
 * A stream restore holds each range whole until it verified (nothing unverified is written).
 * Its ranges are the manifest's parts, whose size whoever wrote the manifest chose: a part larger
 * than STREAM_PART_MAX is refused before any buffer exists (restore to a file instead: ranges
 * stream to their offsets there), and fewer ranges are in flight the larger they are, so that
 * all buffered at once stay within STREAM_BUFFER_BUDGET (at least one range, of course).
 */
export const STREAM_PART_MAX = 1024 << 20;
const STREAM_BUFFER_BUDGET = 512 << 20;

function streamInFlight(key: string, ranges: Range[], concurrency: number): number {
  const largest = ranges.reduce((m, r) => Math.max(m, r.length), 0);
  if (largest > STREAM_PART_MAX) {
    throw new PveS3Error(
      'StreamPartTooLarge',
      `'${key}' has a part size ${largest} bytes: a restore to a pipe holds one part in memory until it verified, at most ${STREAM_PART_MAX} bytes (1 GiB); restore to a file instead`,
      { key },
    );
  }
  return Math.max(1, Math.min(concurrency, Math.floor(STREAM_BUFFER_BUDGET / Math.max(largest, 1))));
}

interface Range {
  index: number;
  start: number;
  length: number;
  /** expected SHA-256 (hex) from the manifest, when it is to be checked */
  sha256?: string;
  /** expected CRC-64/NVME from the manifest, when it is to be checked */
  crc64?: bigint;
}


export async function downloadObject(client: TransferClient, key: string, dest: DownloadDest, o: DownloadOptions): Promise<DownloadResult> {
  checkConcurrency(o.concurrency);
  checkBwlimit(o.bwlimitKiB);
  if ('path' in dest) await checkDestination(dest.path, o.force === true);
  if (o.signal?.aborted) throw abortedError(key, 'download', o.signal.reason);

  const info = o.info ?? (await client.headObject(key, { signal: o.signal, sse: o.sse }));
  const manifest = o.manifest !== undefined ? o.manifest : await readManifest(client, key, { signal: o.signal, sse: o.sse });
  const ranges = planRanges(key, info, manifest, o.verify);
  const md5Check = !manifest && o.sse?.type !== 'SSE-C' && isPlainMd5Etag(info);
  const progress = new ProgressTracker(o.onProgress, info.size, ranges.length || 1);
  const job = new RangeJob(client, key, { ...o, concurrency: 'path' in dest ? o.concurrency : streamInFlight(key, ranges, o.concurrency) }, progress);
  const verifiedBy = manifest ? 'manifest' : md5Check ? 'md5' : 'size';
  const checks: Check[] = manifest ? checksOf(manifest, o.verify) : [md5Check ? 'md5' : 'size'];
  const result: DownloadResult = { key, size: info.size, etag: info.etag, verifiedBy, checks, manifest };

  try {
    if ('stream' in dest) {
      await job.toStream(ranges, dest.stream, md5Check ? new Md5() : null, info.etag);
      progress.finish();
      return result;
    }
    const temp = await createTemp(dest.path, info.size);
    let directBytes = 0;
    try {
      directBytes = await job.toFile(ranges, temp, o.directIo !== false);
      if (md5Check) await checkFileMd5(key, temp, info.size, info.etag, o.signal);
      await commitTemp(temp, dest.path, o.force === true, { ...(o.mode !== undefined ? { mode: o.mode } : {}), ...(o.mtime !== undefined ? { mtime: o.mtime } : {}) });
    } catch (e) {
      await discardTemp(temp);
      throw e;
    }
    progress.finish();
    return { ...result, path: dest.path, directBytes };
  } catch (e) {
    // the figures reached go out on a failure too: a log then says how far it got
    progress.finish();
    if (o.signal?.aborted) throw abortedError(key, 'download', o.signal.reason);
    throw e;
  }
}

export type Verdict = 'good' | 'corrupt' | 'missing-manifest';

/**
 * Reads the whole object through the hasher, storing nothing. 'missing-manifest' also covers a
 * manifest that is unreadable or inconsistent: either way the object cannot be vouched for.
 */
export async function verifyObject(
  client: TransferClient,
  key: string,
  o: {
    concurrency?: number;
    signal?: AbortSignal;
    onProgress?(p: Progress): void;
    sse?: SseOptions;
    /** the manifest the caller has already read (null: none, or an invalid one) */
    manifest?: Manifest | null;
    verify?: VerifyMode;
  } = {},
): Promise<Verdict> {
  const concurrency = o.concurrency ?? 3;
  checkConcurrency(concurrency);
  let manifest: Manifest | null;
  try {
    manifest = o.manifest !== undefined ? o.manifest : await readManifest(client, key, { signal: o.signal, sse: o.sse });
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ManifestInvalid') return 'missing-manifest';
    throw e;
  }
  if (!manifest) return 'missing-manifest';
  let info: TransferObjectInfo;
  try {
    info = await client.headObject(key, { signal: o.signal, sse: o.sse });
  } catch (e) {
    if (isNotFound(e)) return 'corrupt';
    throw e;
  }
  if (info.size !== manifest.size) return 'corrupt';
  const ranges = planRanges(key, info, manifest, o.verify);
  const progress = new ProgressTracker(o.onProgress, info.size, ranges.length);
  const job = new RangeJob(client, key, { concurrency, signal: o.signal, sse: o.sse }, progress);
  try {
    await job.runs(ranges, () => NO_SINK);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'IntegrityError') return 'corrupt';
    if (o.signal?.aborted) throw abortedError(key, 'verify', o.signal.reason);
    throw e;
  }
  progress.finish();
  return 'good';
}

/** The digests a check compares for this manifest (see VerifyMode). */
export function checksOf(m: Manifest, verify: VerifyMode = 'crc64'): Check[] {
  if (m.version === 1) return ['sha256'];
  return verify === 'sha256' ? ['crc64nvme', 'sha256'] : ['crc64nvme'];
}

function planRanges(key: string, info: TransferObjectInfo, manifest: Manifest | null, verify?: VerifyMode): Range[] {
  if (manifest) {
    if (manifest.size !== info.size) {
      throw integrityError(key, `the object is ${info.size} bytes but its manifest says ${manifest.size}`);
    }
    const checks = checksOf(manifest, verify);
    return manifest.parts.map((p, i) => ({
      index: i,
      start: (p.n - 1) * manifest.partSize,
      length: p.size,
      ...(checks.includes('sha256') ? { sha256: p.sha256 } : {}),
      ...(checks.includes('crc64nvme') ? { crc64: BigInt(`0x${p.crc64!}`) } : {}),
    }));
  }
  const ranges: Range[] = [];
  for (let start = 0, i = 0; start < info.size; start += PLAIN_RANGE, i++) {
    ranges.push({ index: i, start, length: Math.min(PLAIN_RANGE, info.size - start) });
  }
  return ranges;
}

/** A single-PUT ETag is the MD5 of the content, unless the object is encrypted with KMS/SSE-C. */
function isPlainMd5Etag(info: TransferObjectInfo): boolean {
  const sse = (info as { sse?: { type?: string } }).sse?.type;
  if (sse && sse !== 'AES256') return false;
  return /^[0-9a-f]{32}$/i.test(bareETag(info.etag));
}


/**
 * Where a range's bytes go, as they arrive: `chunk` is valid only during the call. A sink that
 * feeds `crc` itself (from wherever it copied the bytes to) says so by returning true.
 */
type Sink = (chunk: Uint8Array, offsetInRange: number, crc: Crc64Nvme | null) => boolean | void;
const NO_SINK: Sink = () => undefined;

class RangeJob {
  private readonly cancel = new AbortController();
  private failure: unknown = null;
  private readonly limiter: RateLimiter | undefined;
  /** with a bwlimit: the bytes asked for per GET (see fetchOnce) */
  private readonly step: number;
  private cancelledP: Promise<void> | undefined;
  /** bytes received so far, for the StreamGovernor's rates */
  private moved = 0;
  /** awaited before a range is fetched again: its new bytes must not be overtaken by its old ones */
  private beforeRetry: (() => Promise<void>) | null = null;

  constructor(
    private readonly client: TransferClient,
    private readonly key: string,
    private readonly o: { concurrency: number; signal?: AbortSignal; rangeRetries?: number; sse?: SseOptions; bwlimitKiB?: number },
    private readonly progress: ProgressTracker,
  ) {
    this.limiter = limiterFor(o.bwlimitKiB);
    this.step = this.limiter ? Math.max(64 * 1024, Math.floor((o.bwlimitKiB! * 1024) / 16)) : Infinity;
  }

  /** Runs ranges on `concurrency` workers; the first failure cancels the rest. */
  async parallel(ranges: Range[], sinkFor: (r: Range) => Sink, onDone?: (r: Range) => Promise<void> | void, gate?: (r: Range) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.failure && next < ranges.length) {
        const r = ranges[next++]!;
        try {
          if (gate) await gate(r);
          if (this.failure) return;
          await this.fetchVerified(r, sinkFor(r));
          await onDone?.(r);
        } catch (e) {
          this.stop(e);
        }
      }
    };
    await this.cancellable(() => Promise.all(Array.from({ length: Math.min(this.o.concurrency, Math.max(ranges.length, 1)) }, worker)));
  }

  /** Runs `work` with the caller's signal stopping the job; throws the job's first failure. */
  private async cancellable(work: () => Promise<unknown>): Promise<void> {
    const onAbort = (): void => this.stop(abortedError(this.key, 'download', this.o.signal?.reason));
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.o.signal?.aborted) onAbort();
    try {
      await work();
    } finally {
      this.o.signal?.removeEventListener('abort', onAbort);
    }
    if (this.failure) throw this.failure;
  }

  stop(e: unknown): void {
    if (this.failure) return;
    this.failure = e;
    this.cancel.abort(e);
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  /**
   * Each piece goes to its offset in the temp file as it arrives: through O_DIRECT stages where
   * the file's filesystem takes them (direct-file.ts), else synchronously through the page cache
   * (the socket's buffer is reused for the next read, and a write to the page cache costs less
   * than handing the piece to the thread pool: a copy and a promise per piece). A range fetched
   * again overwrites its own bytes. Each finished range starts a flush of what went through the
   * page cache (FlushBehind). Returns the bytes written with O_DIRECT.
   */
  async toFile(ranges: Range[], temp: TempFile, directIo: boolean): Promise<number> {
    const fd = temp.fh.fd;
    const flush = new FlushBehind(temp);
    const direct = directIo ? await DirectWriter.open(temp.path, fd) : null;
    const sinkFor: (r: Range) => Sink = direct
      ? (r) => (chunk, at, crc) => {
          direct.put(chunk, r.start + at, crc);
          return true;
        }
      : (r) => (chunk, at) => writeAt(fd, chunk, r.start + at, temp.path);
    const kick = direct ? (): void => (direct.takeBuffered() > 0 ? flush.kick() : undefined) : (): void => flush.kick();
    this.beforeRetry = direct ? () => direct.quiesce() : null;
    try {
      await this.runs(ranges, sinkFor, kick);
      await direct?.finish();
    } catch (e) {
      await direct?.close().catch(() => undefined);
      await flush.done().catch(() => undefined);
      throw e;
    } finally {
      this.beforeRetry = null;
    }
    await flush.done();
    return direct?.directBytes ?? 0;
  }

  /**
   * Ranges are fetched ahead into reused buffers, at most `concurrency` beyond the one being
   * written, and written in order once verified; a buffer is reused once the stream has taken it.
   */
  async toStream(ranges: Range[], out: Writable, md5: Md5 | null, etag: string): Promise<void> {
    const pool = new BufferPool(ranges.reduce((m, r) => Math.max(m, r.length), 1), this.o.concurrency + 1);
    const buffers = new Map<number, Buffer>();
    const done = new Map<number, () => void>();
    const waiting = new Map<number, Promise<void>>();
    let written = 0;
    let windowWaiters: Array<() => void> = [];
    const onError = (e: Error): void => this.stop(new PveS3Error('WriteFailed', `cannot write '${this.key}' to the output stream: ${e.message}`, { cause: e }));
    out.on('error', onError);
    for (const r of ranges) waiting.set(r.index, new Promise<void>((res) => done.set(r.index, res)));

    const writer = (async (): Promise<void> => {
      for (const r of ranges) {
        await Promise.race([waiting.get(r.index), this.cancelled()]);
        if (this.failure) return;
        const b = buffers.get(r.index)!;
        buffers.delete(r.index);
        const data = b.subarray(0, r.length);
        if (md5) await updateSliced(md5, data);
        // the buffer goes back to the pool once the stream is done with it, not at 'drain'
        const taken = new Promise<void>((res) => out.write(data, () => res()));
        if (out.writableNeedDrain) {
          const drained = once(out, 'drain');
          // an 'error' instead of 'drain' is reported through onError; never unhandled
          drained.catch(() => undefined);
          await Promise.race([drained, this.cancelled()]);
        }
        void taken.then(() => pool.release(b));
        written++;
        for (const w of windowWaiters.splice(0)) w();
      }
    })();

    // a writer failure surfaces at `await writer`, not as an unhandled rejection before it
    writer.catch(() => undefined);

    const gate = async (r: Range): Promise<void> => {
      while (r.index >= written + this.o.concurrency && !this.failure) {
        await Promise.race([new Promise<void>((res) => windowWaiters.push(res)), this.cancelled()]);
      }
      if (!this.failure) buffers.set(r.index, await pool.acquire());
    };
    try {
      await this.parallel(
        ranges,
        (r) => {
          const b = buffers.get(r.index)!;
          return (chunk, at) => b.set(chunk, at);
        },
        (r) => done.get(r.index)!(),
        gate,
      );
      await writer;
      if (this.failure) throw this.failure;
      if (md5 && hex(md5.digest()) !== bareETag(etag).toLowerCase()) {
        throw integrityError(this.key, `MD5 of the content does not match its ETag ${etag}`);
      }
    } finally {
      windowWaiters = [];
      out.off('error', onError);
    }
  }

  /** Settles when the job is cancelled; one promise (one abort listener) for the whole job. */
  private cancelled(): Promise<void> {
    this.cancelledP ??= new Promise<void>((res) => {
      if (this.cancel.signal.aborted) res();
      else this.cancel.signal.addEventListener('abort', () => res(), { once: true });
    });
    return this.cancelledP;
  }

  /** Fetches one range into `sink`, checking it as it streams; retried on any failure but cancel. */
  private async fetchVerified(r: Range, sink: Sink): Promise<void> {
    const retries = this.o.rangeRetries ?? 2;
    for (let attempt = 0; ; attempt++) {
      let counted = 0;
      try {
        const { sha256, crc64 } = await this.fetchOnce(r, sink, (n) => {
          counted += n;
          this.progress.add(n);
        });
        this.check(r, crc64, sha256);
        this.progress.add(0, 1);
        return;
      } catch (e) {
        this.progress.retract(counted);
        if (this.failure || isAbortError(e) || this.cancel.signal.aborted) throw this.failure ?? e;
        if (!worthAnotherTry(e) || attempt >= retries) throw e;
        await this.beforeRetry?.();
      }
    }
  }

  private check(r: Range, crc64: bigint | undefined, sha256: Uint8Array | undefined): void {
    const where = `part ${r.index + 1} (bytes ${r.start}..${r.start + r.length - 1})`;
    if (r.crc64 !== undefined && crc64 !== r.crc64) throw integrityError(this.key, `${where} does not match its CRC-64/NVME in the manifest`);
    if (r.sha256 !== undefined && hex(sha256!) !== r.sha256) throw integrityError(this.key, `${where} does not match its SHA-256 in the manifest`);
  }

  /**
   * Ranges in batches of consecutive ranges, one GET per batch, on as many streams as the
   * StreamGovernor finds worth it (at most `concurrency`); once it settled on one stream, the
   * rest of the object is one GET. With a bwlimit, range by range (see fetchOnce).
   */
  async runs(ranges: Range[], sinkFor: (r: Range) => Sink, onDone?: (r: Range) => Promise<void> | void): Promise<void> {
    if (this.limiter || this.o.concurrency <= 1 || ranges.length <= 1) return this.parallel(ranges, sinkFor, onDone);
    const total = ranges.reduce((n, r) => n + r.length, 0);
    const perBatch = Math.max(1, Math.floor(Math.min(BATCH_MAX, total / 8) / Math.max(ranges[0]!.length, 1)));
    const gov = new StreamGovernor(this.o.concurrency, () => this.moved);
    let next = 0;
    let running = 0;
    const streams: Array<Promise<void>> = [];
    const stream = async (): Promise<void> => {
      try {
        while (!this.failure && next < ranges.length && running <= gov.target) {
          const take = gov.settled && gov.target === 1 ? ranges.length - next : perBatch;
          const batch = ranges.slice(next, next + take);
          next += batch.length;
          await this.fetchRun(batch, sinkFor, onDone);
          gov.batchDone();
          widen();
        }
      } catch (e) {
        this.stop(e);
      } finally {
        running--;
      }
    };
    const widen = (): void => {
      while (!this.failure && running < gov.target && next < ranges.length) {
        running++;
        streams.push(stream());
      }
    };
    await this.cancellable(async () => {
      gov.start();
      widen();
      // streams started later are pushed while earlier ones run: wait until none is left
      for (let i = 0; i < streams.length; i++) await streams[i];
    });
  }

  /**
   * Consecutive ranges with one GET. Each is checked when its last byte passed (as fetchVerified
   * checks one) and handed to `onDone`; after a failure the GET is asked again from the first
   * range not yet checked, each range with its own retries.
   */
  private async fetchRun(run: Range[], sinkFor: (r: Range) => Sink, onDone?: (r: Range) => Promise<void> | void): Promise<void> {
    const retries = this.o.rangeRetries ?? 2;
    const failures = new Map<number, number>();
    const last = run[run.length - 1]!;
    const end = last.start + last.length;
    const settling: Array<Promise<void>> = [];
    let i = 0;
    while (i < run.length) {
      let r = run[i]!;
      let sink = sinkFor(r);
      let got = 0;
      let crc: Crc64Nvme | null = null;
      let sha: Sha256 | null = null;
      const begin = (): void => {
        r = run[i]!;
        sink = sinkFor(r);
        got = 0;
        crc = r.crc64 !== undefined ? new Crc64Nvme() : null;
        sha = r.sha256 !== undefined ? new Sha256() : null;
      };
      begin();
      const onData = (chunk: Uint8Array): void => {
        for (let off = 0; off < chunk.length; ) {
          if (i >= run.length) throw new PveS3Error('ShortRead', `server sent more than the ${end - run[0]!.start} bytes asked for in a range of '${this.key}'`, { retryable: true });
          const piece = chunk.subarray(off, off + Math.min(chunk.length - off, r.length - got));
          if (sink(piece, got, crc) !== true) crc?.update(piece);
          sha?.update(piece);
          got += piece.length;
          off += piece.length;
          this.moved += piece.length;
          this.progress.add(piece.length);
          if (got === r.length) {
            const s = sha;
            sha = null;
            this.check(r, crc?.digest(), s?.digest());
            this.progress.add(0, 1);
            const p = onDone?.(r);
            if (p) settling.push(p);
            if (++i < run.length) begin();
          }
        }
      };
      try {
        await this.client.getObjectInto(this.key, { range: [r.start, end - 1], signal: this.cancel.signal, sse: this.o.sse }, onData);
        if (i < run.length) throw new PveS3Error('ShortRead', `connection ended after ${got} of ${r.length} bytes of a range of '${this.key}'`, { retryable: true });
      } catch (e) {
        // a Sha256 holds a slot of the WASM core until its digest is taken
        (sha as Sha256 | null)?.digest();
        this.progress.retract(got);
        if (this.failure || isAbortError(e) || this.cancel.signal.aborted) throw this.failure ?? e;
        const n = (failures.get(i) ?? 0) + 1;
        failures.set(i, n);
        if (!worthAnotherTry(e) || n > retries) throw e;
        await this.beforeRetry?.();
      }
    }
    await Promise.all(settling);
  }

  /**
   * One part through the lean path: every piece is checked (CRC, SHA-256 when asked) and handed to
   * the sink in the socket's read callback, then its buffer is read into again. Nothing is
   * allocated per piece and nothing waits for a promise between them.
   *
   * With a bwlimit the part is asked for in steps of a sixteenth of a second's worth (at least
   * 64 KiB), each only once the shared bucket has room: the server sends only what was asked
   * for, so the wire carries the rate. (Pausing the reads instead lets the kernel's receive
   * buffers, megabytes on a fast link, fill at line rate first.)
   */
  private async fetchOnce(r: Range, sink: Sink, count: (n: number) => void): Promise<{ sha256?: Uint8Array; crc64?: bigint }> {
    const crc = r.crc64 !== undefined ? new Crc64Nvme() : null;
    const sha = r.sha256 !== undefined ? new Sha256() : null;
    let finished = false;
    try {
      let got = 0;
      let asked = 0;
      const onData = (chunk: Uint8Array): void => {
        if (got + chunk.length > asked) throw new PveS3Error('ShortRead', `server sent more than the ${r.length} bytes asked for in a range of '${this.key}'`, { retryable: true });
        if (sink(chunk, got, crc) !== true) crc?.update(chunk);
        sha?.update(chunk);
        got += chunk.length;
        count(chunk.length);
      };
      while (asked < r.length) {
        const from = asked;
        asked = Math.min(r.length, asked + this.step);
        await this.limiter?.take(asked - from, this.cancel.signal);
        await this.client.getObjectInto(this.key, { range: [r.start + from, r.start + asked - 1], signal: this.cancel.signal, sse: this.o.sse }, onData);
        if (got !== asked) throw new PveS3Error('ShortRead', `connection ended after ${got} of ${r.length} bytes of a range of '${this.key}'`, { retryable: true });
      }
      finished = true;
      return { sha256: sha?.digest(), crc64: crc?.digest() };
    } finally {
      // a Sha256 holds a slot of the WASM core until its digest is taken
      if (!finished) sha?.digest();
    }
  }
}

/** A range that failed this way is fetched again (up to rangeRetries): a wrong digest or a short
 *  body may be the wire's, not the stored object's. */
function worthAnotherTry(e: unknown): boolean {
  const err = asPveS3Error(e);
  return err.retryable || err.code === 'IntegrityError' || err.code === 'ShortRead' || err.code === 'InternalError';
}

async function updateSliced(h: { update(d: Uint8Array): unknown }, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length; off += HASH_SLICE) {
    h.update(data.subarray(off, Math.min(off + HASH_SLICE, data.length)));
    if (off + HASH_SLICE < data.length) await yieldToLoop();
  }
}

/** The MD5 pass for manifest-less single-PUT objects: ranges arrive out of order, so it reads the
 *  finished temp file back (from the page cache, as a rule). */
async function checkFileMd5(key: string, t: TempFile, size: number, etag: string, signal?: AbortSignal): Promise<void> {
  const md5 = new Md5();
  const buf = Buffer.allocUnsafe(Math.min(Math.max(size, 1), 4 << 20));
  for (let pos = 0; pos < size; ) {
    if (signal?.aborted) throw abortedError(key, 'download', signal.reason);
    const { bytesRead } = await t.fh.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) throw integrityError(key, `temporary file is shorter than ${size} bytes`);
    md5.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  if (hex(md5.digest()) !== bareETag(etag).toLowerCase()) {
    throw integrityError(key, `MD5 of the content does not match its ETag ${etag}`);
  }
}
