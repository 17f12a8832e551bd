/**
 * uploadObject: a file or a stream into one S3 object plus its integrity manifest.
 *
 * Shape (multipart): one producer reads parts in order from the shared chunk source into pooled
 * buffers and hashes each once (WASM SHA-256; that digest is both the signed payload hash of
 * UploadPart and the manifest entry; a file's parts are hashed ahead four at a time on the SIMD
 * core, hash-ahead.ts); `concurrency` workers take prepared parts and upload them.
 * The producer runs at most one part ahead, so at most concurrency + 1 part buffers exist: memory
 * is about chunk × (concurrency + 1) whatever the object size.
 *
 * Failure: the first error that survives the client's request retries and our part retries stops
 * the producer, cancels parts in flight, waits for every worker to settle, then aborts the
 * multipart upload and checks that the server has no trace of it. The object only becomes
 * visible at CompleteMultipartUpload, which is never sent after a failure. A cancel through the
 * AbortSignal takes the same path. Once Complete (or the single PUT) is sent, the upload is
 * finished as a whole: the manifest is written even if the signal fires meanwhile.
 */
import type { Readable } from 'node:stream';
import { PveS3Error, asPveS3Error } from '../util/errors.js';
import { sleep } from '../s3/retry.js';
import { Sha256 } from '../wasm/digests.js';
import { toHex } from '../wasm/encoding.js';
import { MAX_OBJECT_SIZE, MAX_PARTS, MAX_PART_SIZE, planUpload, type PartLimits } from '../wasm/planner.js';
import { BufferPool } from './buffer-pool.js';
import type { ByteSource } from './byte-source.js';
import { FileChunkSource, StreamChunkSource, openSourceFile, type ChunkSource, type OpenedFile, type PartSlice } from './chunk-source.js';
import type { JournalPart, UploadJournal } from './journal.js';
import { buildManifest, crc64Hex, manifestKey, serializeManifest, type Manifest, type ManifestExtra, type ManifestSigner } from './manifest.js';
import { HashAhead } from './hash-ahead.js';
import { hashService } from './hash-service.js';
import { hashPart, sumPart, type PartSums } from './part-hasher.js';
import { checkBwlimit, checkConcurrency } from './option-checks.js';
import { ProgressTracker, type Progress } from './progress.js';
import { limiterFor } from './rate-limit.js';
import { abortedError, isAbortError } from './transfer-errors.js';
import { LATER_ABORT, laterAbort, type TransferClient, type TransferPutOptions } from './transfer-client.js';
import { keepYoungGenerationSmall } from '../util/young-generation.js';

/**
 * A stream's parts are sized before its first byte: for `maxSize` (the most it may carry; more
 * fails cleanly), else for `expectedSize` (known or estimated: parts for a stream up to a quarter
 * longer, and it may grow to whatever 10,000 such parts carry), else parts of the chunk size.
 */
export type UploadSource =
  | { path: string }
  | { stream: Readable | AsyncIterable<Uint8Array> | ByteSource; maxSize?: number; expectedSize?: number };

/** How much longer than its expected size a stream's parts leave room for. */
const EXPECTED_SIZE_SLACK = 1.25;

export interface UploadOptions {
  chunkSizeMB: number;
  concurrency: number;
  put?: TransferPutOptions;
  manifestMeta?: Record<string, unknown>;
  /** signs the manifest with the storage's manifest key: every store writer passes what
   *  store/trust.ts signing() gives (required, so no writer can forget it); null: unsigned, and
   *  every reader lists the object as unverified */
  manifestSigner: ManifestSigner | null;
  signal?: AbortSignal;
  onProgress?(p: Progress): void;
  /** extra attempts for a part whose request failed with a retryable error after the client's own retries (default 2) */
  partRetries?: number;
  /** PVE bwlimit in KiB/s (0 or absent: none) */
  bwlimitKiB?: number;
  /** keep a resume journal here (file sources, multipart): an upload whose process died
   *  continues from the parts already stored (journal.ts) */
  journalDir?: string;
  /** also compute the whole-object SHA-256 of a multipart upload (default false: a second hash pass, ~2 CPU-s/GiB; a single PUT always has it) */
  wholeSha256?: boolean;
  /** the provider's most parts and largest part (default: S3's 10,000 × 5 GiB) */
  partLimits?: PartLimits;
  /** the object's bytes [0, end) are all stored (every part up to there uploaded): a producer
   *  may now discard its source of them (the Backup Provider's NBD discard) */
  onStored?(end: number): void;
  /** once the object is complete, before its manifest is written: fields the manifest adds
   *  (a provider archive's frame index). A failure removes the object, as a failed manifest does. */
  manifestExtra?(o: { size: number; etag: string }): Promise<ManifestExtra>;
  /** the request that makes the object (CompleteMultipartUpload, or the one PutObject) is about
   *  to go out: from here a failure may leave the object, whose answer was lost, for the caller
   *  to remove; before it nothing but parts exist, which the upload aborts */
  onWriting?(): void;
  /** a last check before that request: what it throws fails the upload (its parts aborted),
   *  e.g. an object another writer stored under the key meanwhile */
  beforeWrite?(): Promise<void>;
}

export interface UploadResult {
  key: string;
  size: number;
  etag: string;
  multipart: boolean;
  partSize: number;
  partCount: number;
  manifest: Manifest;
  manifestKey: string;
}

interface PreparedPart extends PartSlice {
  buf: Buffer;
  sums: PartSums;
}

export async function uploadObject(client: TransferClient, key: string, src: UploadSource, o: UploadOptions): Promise<UploadResult> {
  checkConcurrency(o.concurrency);
  checkBwlimit(o.bwlimitKiB);
  if (o.signal?.aborted) throw abortedError(key, 'upload', o.signal.reason);

  let source: ChunkSource;
  let plan: ReturnType<typeof planUpload>;
  let resume: Resume | null = null;
  let ahead: HashAhead | undefined;
  if ('path' in src) {
    const file = await openSourceFile(src.path);
    try {
      plan = planUpload({ size: file.size, chunkSizeMB: o.chunkSizeMB, ...(o.partLimits ? { limits: o.partLimits } : {}) });
      if (plan.multipart && o.journalDir) resume = await openResume(client, key, file, plan.partSize, o.journalDir);
    } catch (e) {
      await file.fh.close();
      throw e;
    }
    const kept = resume?.kept;
    const skip = kept ? (n: number) => kept.has(n) : undefined;
    source = new FileChunkSource(file, plan.partSize, skip);
    // four parts at a time on the SIMD core (hash-ahead.ts); the whole-object digest needs the
    // bytes in order, and the hashing thread takes parts as they are read
    if (plan.multipart && o.wholeSha256 !== true && !hashService().threaded) ahead = new HashAhead(file.fh, file.path, file.size, plan.partSize, skip);
  } else {
    // an estimate never asks for more than the provider takes (only a declared maximum is refused)
    const most = Math.min(MAX_OBJECT_SIZE, (o.partLimits?.maxParts ?? MAX_PARTS) * (o.partLimits?.maxPartBytes ?? MAX_PART_SIZE));
    const partsFor = src.maxSize ?? (src.expectedSize !== undefined ? Math.min(most, Math.ceil(src.expectedSize * EXPECTED_SIZE_SLACK)) : undefined);
    plan = planUpload({ maxSize: partsFor, chunkSizeMB: o.chunkSizeMB, ...(o.partLimits ? { limits: o.partLimits } : {}) });
    source = new StreamChunkSource(src.stream, plan.partSize, src.maxSize);
    keepYoungGenerationSmall();
  }
  // a cancel also ends a wait for input that may never come (a silent stdin)
  const stopReading = (): void => void source.close().catch(() => undefined);
  o.signal?.addEventListener('abort', stopReading, { once: true });
  try {
    return await run(client, key, source, plan.partSize, plan.multipart, o, resume, ahead);
  } catch (e) {
    // whatever the cancel interrupted (a PUT, a read) surfaces as the one cancel error
    if (o.signal?.aborted) throw abortedError(key, 'upload', o.signal.reason);
    throw e;
  } finally {
    o.signal?.removeEventListener('abort', stopReading);
    await ahead?.close();
    await source.close().catch(() => undefined);
  }
}

interface Resume {
  journal: UploadJournal;
  /** an upload a previous run of this file left, still on the server */
  uploadId: string | null;
  /** its parts that are on the server as journaled */
  kept: Map<number, JournalPart>;
}

async function openResume(client: TransferClient, key: string, file: OpenedFile, partSize: number, dir: string): Promise<Resume> {
  // loaded only for uploads that keep a journal (node:crypto is a few MiB of memory otherwise)
  const { UploadJournal } = await import('./journal.js');
  const journal = await UploadJournal.open(dir, { bucket: client.bucket, key, path: file.path, size: file.size, mtimeMs: file.mtimeMs, partSize });
  const prev = journal.previous();
  if (!prev) return { journal, uploadId: null, kept: new Map() };
  let onServer: Array<{ partNumber: number; etag: string; size: number }>;
  try {
    onServer = await client.listParts(key, prev.uploadId);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'NoSuchUpload') return { journal, uploadId: null, kept: new Map() };
    throw e;
  }
  const kept = new Map<number, JournalPart>();
  for (const sp of onServer) {
    const jp = prev.parts.get(sp.partNumber);
    // a part journaled without its CRC (an older version) is sent again: the manifest needs it
    if (jp && jp.etag === sp.etag && jp.size === sp.size && /^[0-9a-f]{16}$/.test(jp.crc64 ?? '')) kept.set(sp.partNumber, jp);
  }
  return { journal, uploadId: prev.uploadId, kept };
}

async function run(
  client: TransferClient,
  key: string,
  source: ChunkSource,
  partSize: number,
  plannedMultipart: boolean,
  o: UploadOptions,
  resume: Resume | null,
  ahead?: HashAhead,
): Promise<UploadResult> {
  const knownSize = source.size;
  const partsTotal = knownSize === null ? null : Math.max(1, Math.ceil(knownSize / partSize));
  const progress = new ProgressTracker(o.onProgress, knownSize, partsTotal);
  // a small known file needs a buffer of its own size, not a whole part
  const bufSize = knownSize !== null && !plannedMultipart ? Math.max(knownSize, 1) : partSize;
  const pool = new BufferPool(bufSize, o.concurrency + 1);

  if (resume) {
    // a file to go up in parts, with a journal: no need to look at the first part first
    let uploadId = resume.uploadId;
    if (uploadId === null) uploadId = await client.createMultipartUpload(key, o.put);
    // like every journal write, a failure here only costs the ability to resume
    await resume.journal.start(uploadId, resume.kept).catch(() => undefined);
    // the whole-object digest needs every byte; parts kept from an earlier run are not read
    const whole = o.wholeSha256 === true && resume.kept.size === 0 ? new Sha256() : undefined;
    const mp = new MultipartRun(client, key, uploadId, source, pool, o, progress, whole, resume, ahead);
    return mp.run(null, partSize, partsTotal);
  }

  // The first part decides between PUT and multipart for streams (did it end within one part?).
  // A file planned in parts has nothing to decide: its CreateMultipartUpload goes out while the
  // first part is read (one round trip less before the first UploadPart), and is aborted if that
  // read fails or the upload is cancelled meanwhile.
  const early = knownSize !== null && plannedMultipart ? client.createMultipartUpload(key, o.put) : undefined;
  early?.catch(() => undefined); // its failure is taken below, with the first part's
  let firstBuf;
  let first;
  try {
    firstBuf = await pool.acquire();
    first = await source.read(firstBuf);
    if (!first) throw new PveS3Error('InternalError', `upload source for '${key}' produced no part`);
    if (o.signal?.aborted) throw abortedError(key, 'upload', o.signal.reason);
  } catch (e) {
    const id = await early?.catch(() => undefined);
    if (id !== undefined) await client.abortMultipartUpload(key, id).catch(() => undefined);
    throw e;
  }

  if (first.last && (knownSize === null || !plannedMultipart)) {
    return singlePut(client, key, firstBuf, first.length, partSize, o, progress);
  }
  const whole = o.wholeSha256 === true ? new Sha256() : undefined;
  // the first part's hash overlaps CreateMultipartUpload
  const [hashed, created] = await Promise.allSettled([
    whole
      ? sumPart(firstBuf.subarray(0, first.length), whole).then((sums) => ({ sums, buf: firstBuf }))
      : ahead
        ? ahead.sums(first.n).then((sums) => ({ sums, buf: firstBuf }))
        : hashService().part(firstBuf, first.length),
    early ?? client.createMultipartUpload(key, o.put),
  ]);
  if (created.status === 'rejected') throw created.reason;
  const uploadId = created.value;
  if (hashed.status === 'rejected') {
    await client.abortMultipartUpload(key, uploadId).catch(() => undefined);
    throw hashed.reason;
  }
  const mp = new MultipartRun(client, key, uploadId, source, pool, o, progress, whole, null, ahead);
  return mp.run({ ...first, buf: hashed.value.buf, sums: hashed.value.sums }, partSize, partsTotal);
}

async function singlePut(
  client: TransferClient,
  key: string,
  buf: Buffer,
  length: number,
  partSize: number,
  o: UploadOptions,
  progress: ProgressTracker,
): Promise<UploadResult> {
  const hashed = await hashService().part(buf, length);
  const data = hashed.buf.subarray(0, length);
  const digest = hashed.sums.sha256;
  if (o.signal?.aborted) throw abortedError(key, 'upload', o.signal.reason);
  const hexDigest = toHex(digest);
  const pace = pacer(o.bwlimitKiB);
  await o.beforeWrite?.();
  o.onWriting?.();
  const { etag } = await withPartRetries(o, o.signal, () => client.putObject(key, data, { ...o.put, sha256Hex: hexDigest, signal: o.signal, ...(pace ? { pace } : {}) }));
  progress.add(data.length, 1);
  o.onStored?.(data.length);
  const extra = await extraFields(client, key, o, data.length, etag);
  const manifest = buildManifest({
    key,
    size: data.length,
    partSize,
    multipart: false,
    partDigests: [digest],
    partCrcs: [hashed.sums.crc64],
    partSizes: [data.length],
    sha256: digest,
    etag,
    meta: o.manifestMeta,
    extra,
  });
  await writeManifest(client, key, manifest, o.put, { signer: o.manifestSigner });
  progress.finish();
  return { key, size: data.length, etag, multipart: false, partSize, partCount: 1, manifest, manifestKey: manifestKey(key) };
}

class MultipartRun {
  private failure: PveS3Error | null = null;
  private readonly cancel = new AbortController();
  private readonly digests: Uint8Array[] = [];
  private readonly crcs: bigint[] = [];
  private readonly sizes: number[] = [];
  private readonly etags: string[] = [];
  /** the single-slot hand-over between producer and workers */
  private ready: PreparedPart | null = null;
  private producerDone = false;
  private readonly takers: Array<() => void> = [];
  private readonly putters: Array<() => void> = [];
  private readonly pace: TransferPutOptions['pace'];

  constructor(
    private readonly client: TransferClient,
    private readonly key: string,
    private readonly uploadId: string,
    private readonly source: ChunkSource,
    private readonly pool: BufferPool,
    private readonly o: UploadOptions,
    private readonly progress: ProgressTracker,
    private readonly whole: Sha256 | undefined,
    private readonly resume: Resume | null,
    private readonly ahead?: HashAhead,
  ) {
    this.pace = pacer(o.bwlimitKiB);
  }

  async run(first: PreparedPart | null, partSize: number, expectedParts: number | null): Promise<UploadResult> {
    let keptBytes = 0;
    for (const [n, p] of this.resume?.kept ?? []) {
      this.etags[n - 1] = p.etag;
      this.digests[n - 1] = Buffer.from(p.sha256, 'hex');
      this.crcs[n - 1] = BigInt(`0x${p.crc64!}`);
      this.sizes[n - 1] = p.size;
      keptBytes += p.size;
    }
    if (this.resume?.kept.size) this.progress.resume(keptBytes, this.resume.kept.size);
    const onAbort = (): void => this.fail(abortedError(this.key, 'upload', this.o.signal?.reason));
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    if (this.o.signal?.aborted) onAbort();
    try {
      const producer = this.produce(first);
      const workers = Array.from({ length: this.o.concurrency }, () => this.work());
      await Promise.all([producer, ...workers]);
      if (!this.failure) {
        try {
          await this.source.checkUnchanged();
        } catch (e) {
          this.fail(asPveS3Error(e));
        }
      }
      if (!this.failure && this.o.beforeWrite) {
        try {
          await this.o.beforeWrite();
        } catch (e) {
          this.fail(asPveS3Error(e));
        }
      }
      let missing = this.etags.length === 0 || (expectedParts !== null && this.etags.length !== expectedParts);
      for (let i = 0; i < this.etags.length; i++) if (!this.etags[i]) missing = true;
      if (!this.failure && missing) {
        this.fail(new PveS3Error('InternalError', `upload of '${this.key}' ended with parts missing; nothing was stored`));
      }
      if (this.failure) {
        const aborted = await this.abortUpload();
        await this.resume?.journal.remove();
        throw aborted === true ? this.failure : notAborted(this.failure, aborted);
      }
    } finally {
      this.o.signal?.removeEventListener('abort', onAbort);
    }

    const parts = this.etags.map((etag, i) => ({ partNumber: i + 1, etag }));
    let etag: string;
    this.o.onWriting?.();
    try {
      // the client's own empty-ETag HEAD needs the SSE-C key; a cancel must reach Complete too
      ({ etag } = await this.client.completeMultipartUpload(this.key, this.uploadId, parts, { sse: this.o.put?.sse, signal: this.o.signal, ...(this.o.put?.objectLock ? { objectLock: this.o.put.objectLock } : {}) }));
    } catch (e) {
      const aborted = await this.abortUpload();
      await this.resume?.journal.remove();
      throw aborted === true ? e : notAborted(asPveS3Error(e), aborted);
    }
    await this.resume?.journal.remove();
    // some RadosGW releases answer Complete with an empty <ETag/>; the object has one
    if (!etag) etag = (await this.client.headObject(this.key, { sse: this.o.put?.sse })).etag;
    const size = this.sizes.reduce((a, b) => a + b, 0);
    const extra = await extraFields(this.client, this.key, this.o, size, etag);
    const manifest = buildManifest({
      key: this.key,
      size,
      partSize,
      multipart: true,
      partDigests: this.digests,
      partCrcs: this.crcs,
      partSizes: this.sizes,
      sha256: this.whole ? this.whole.digest() : null,
      etag,
      meta: this.o.manifestMeta,
      extra,
    });
    await writeManifest(this.client, this.key, manifest, this.o.put, { signer: this.o.manifestSigner });
    this.progress.finish();
    return { key: this.key, size, etag, multipart: true, partSize, partCount: parts.length, manifest, manifestKey: manifestKey(this.key) };
  }

  /** The whole-object digest needs the bytes in order on this thread; otherwise the hashing
   *  thread takes the part (zero-copy) while this one keeps uploading. */
  private async hashPart(buf: Buffer, len: number, n: number): Promise<{ sums: PartSums; buf: Buffer }> {
    if (this.whole) return { sums: await sumPart(buf.subarray(0, len), this.whole), buf };
    if (this.ahead) return { sums: await this.ahead.sums(n, this.cancel.signal), buf };
    return hashService().part(buf, len);
  }

  private storedParts = 0;
  private storedEnd = 0;

  private advanceStored(): void {
    if (!this.o.onStored) return;
    const before = this.storedParts;
    while (this.etags[this.storedParts]) this.storedEnd += this.sizes[this.storedParts++]!;
    if (this.storedParts > before) this.o.onStored(this.storedEnd);
  }

  private fail(e: PveS3Error): void {
    if (this.failure) return;
    this.failure = e;
    this.cancel.abort(e);
    // the producer may be waiting for input that never comes (a silent stdin)
    void this.source.close().catch(() => undefined);
    // wake everyone waiting on the hand-over so they can see the failure and leave
    for (const w of this.takers.splice(0)) w();
    for (const w of this.putters.splice(0)) w();
  }

  private async produce(first: PreparedPart | null): Promise<void> {
    try {
      let part: PreparedPart | null = first;
      for (;;) {
        if (part) {
          if (!(await this.handOver(part))) return;
          if (part.last) return;
        }
        const buf = await this.pool.acquire();
        if (this.failure) return this.pool.release(buf);
        const slice = await this.source.read(buf);
        if (!slice || this.failure) {
          this.pool.release(buf);
          return;
        }
        const h = await this.hashPart(buf, slice.length, slice.n);
        part = { ...slice, buf: h.buf, sums: h.sums };
      }
    } catch (e) {
      this.fail(asPveS3Error(e));
    } finally {
      this.producerDone = true;
      for (const w of this.takers.splice(0)) w();
    }
  }

  /** Waits until a worker takes the part; false (part released) when the run failed. */
  private async handOver(p: PreparedPart): Promise<boolean> {
    while (this.ready && !this.failure) await new Promise<void>((r) => this.putters.push(r));
    if (this.failure) {
      this.pool.release(p.buf);
      return false;
    }
    this.ready = p;
    this.takers.shift()?.();
    return true;
  }

  private async take(): Promise<PreparedPart | null> {
    for (;;) {
      if (this.failure) return null;
      const p = this.ready;
      if (p) {
        this.ready = null;
        this.putters.shift()?.();
        return p;
      }
      if (this.producerDone) return null;
      await new Promise<void>((r) => this.takers.push(r));
    }
  }

  private async work(): Promise<void> {
    for (;;) {
      const p = await this.take();
      if (!p) return;
      try {
        const hexDigest = toHex(p.sums.sha256);
        const body = p.buf.subarray(0, p.length);
        const { etag } = await withPartRetries(this.o, this.cancel.signal, () =>
          this.client.uploadPart(this.key, this.uploadId, p.n, body, hexDigest, {
            signal: this.cancel.signal,
            // SSE-C parts carry the key; Object Lock buckets want Content-MD5 on parts too
            sse: this.o.put?.sse,
            contentMd5: this.o.put?.contentMd5,
            ...(this.pace ? { pace: this.pace } : {}),
          }),
        );
        this.etags[p.n - 1] = etag;
        this.digests[p.n - 1] = p.sums.sha256;
        this.crcs[p.n - 1] = p.sums.crc64;
        this.sizes[p.n - 1] = p.length;
        this.progress.add(p.length, 1);
        this.advanceStored();
        // a journal that cannot be written only costs the resume, never the upload
        await this.resume?.journal.record(p.n, { etag, sha256: hexDigest, crc64: crc64Hex(p.sums.crc64), size: p.length }).catch(() => undefined);
      } catch (e) {
        this.fail(asPveS3Error(e));
      } finally {
        this.pool.release(p.buf);
      }
    }
  }

  /**
   * Every worker has settled, so no UploadPart can land after this. S3 documents that parts still
   * arriving during an abort may survive it, hence the check and a second try.
   */
  private async abortUpload(): Promise<true | { later: string }> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.client.abortMultipartUpload(this.key, this.uploadId);
      } catch (e) {
        const code = (e as { code?: unknown }).code;
        if (code !== 'NoSuchUpload') {
          // the store's client remembers it where it can and says what aborts it (LATER_ABORT);
          // a stalled endpoint had its last try
          if (attempt === 2 || code === 'Stalled') {
            const later = (e as Record<symbol, unknown>)[LATER_ABORT];
            return { later: typeof later === 'string' ? later : laterAbort({ remembered: false }) };
          }
          continue;
        }
      }
      if (!(await this.stillListed())) return true;
    }
    return true;
  }

  private async stillListed(): Promise<boolean> {
    try {
      const r = await this.client.listMultipartUploads({ prefix: this.key });
      return r.some((u) => u.uploadId === this.uploadId);
    } catch {
      return false;
    }
  }
}

/** The upload failed and its abort failed too (the gateway died or stayed silent): say where its parts are. */
function notAborted(e: PveS3Error, o: { later: string }): PveS3Error {
  return new PveS3Error(
    e.code,
    `${e.message}; its incomplete multipart upload could not be aborted now: ${o.later}`,
    { cause: e, key: e.key, status: e.status, retryable: e.retryable, exitCode: e.exitCode },
  );
}

async function withPartRetries<T>(o: UploadOptions, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const retries = o.partRetries ?? 2;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      const retryable = (e as { retryable?: unknown }).retryable === true;
      if (!retryable || attempt >= retries || isAbortError(e) || signal?.aborted) throw e;
      await sleep(1000 * 2 ** attempt, signal);
    }
  }
}

/**
 * The manifest is encrypted like its object (a bucket policy demanding SSE applies to it too, and
 * an SSE-C object's manifest opens with the same key) and honours Content-MD5, but keeps the
 * default storage class: it must stay readable when the object moves to an archive tier.
 */
/** UploadOptions.manifestExtra, removing the completed object when it fails */
async function extraFields(client: TransferClient, key: string, o: UploadOptions, size: number, etag: string): Promise<ManifestExtra | undefined> {
  if (!o.manifestExtra) return undefined;
  try {
    return await o.manifestExtra({ size, etag });
  } catch (e) {
    await client.deleteObject(key).catch(() => undefined);
    throw e;
  }
}

export async function writeManifest(
  client: TransferClient,
  key: string,
  m: Manifest,
  put: TransferPutOptions | undefined,
  o: { signer: ManifestSigner | null; onFailure?: 'remove-object' | 'keep-object'; keptAs?: string },
): Promise<void> {
  const body = serializeManifest(m, o.signer);
  const digest = await hashPart(body);
  try {
    await client.putObject(manifestKey(key), body, {
      contentType: 'application/json',
      sha256Hex: toHex(digest),
      sse: put?.sse,
      contentMd5: put?.contentMd5,
      objectLock: put?.objectLock,
    });
  } catch (e) {
    const err = asPveS3Error(e);
    if (o.onFailure === 'keep-object') {
      // a copy switched into place (copy.ts): its bytes are also stored, verified, as `keptAs`
      throw new PveS3Error(
        'ManifestWriteFailed',
        `the manifest '${manifestKey(key)}' could not be written (${err.code}): '${key}' holds the new data but shows as unverified; the new data stays verified as '${o.keptAs ?? key}': upload it again`,
        { cause: e, key, status: err.status, retryable: err.retryable },
      );
    }
    // DESIGN §7: a failed upload leaves no visible object; an object without manifest would
    // only ever be reported as incomplete. (Only ever a new name: a replacement is staged under
    // a name of its own first, store/transfer.ts, so this never removes an older object.)
    const removed = await client.deleteObject(key).then(
      () => true,
      () => false,
    );
    throw new PveS3Error(
      'ManifestWriteFailed',
      `the manifest '${manifestKey(key)}' could not be written (${err.code}), so '${key}' ${removed ? 'was removed again' : 'stays incomplete (its removal failed too)'}: upload it again`,
      { cause: e, key, status: err.status, retryable: err.retryable },
    );
  }
  if (o.signer) m.mac = { keyId: o.signer.keyId, status: 'valid' };
}

/** bwlimit as the S3 client applies it: each slice of a body waits for the shared bucket. */
function pacer(kib: number | undefined): TransferPutOptions['pace'] {
  const limiter = limiterFor(kib);
  return limiter ? (bytes, signal) => limiter.take(bytes, signal) : undefined;
}
