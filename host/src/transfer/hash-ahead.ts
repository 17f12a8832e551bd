/**
 * Part digests (SHA-256 and CRC-64/NVME) of an upload from a file, computed ahead four parts at a
 * time on the 4-lane SIMD core. The producer of upload.ts hashes the part it has just read, alone,
 * on the scalar core (~450 MB/s here); holding four part buffers to hash them side by side would
 * double the upload's memory. This reads the next four parts once more, in slices per lane, and
 * hashes them together (~850 MB/s): the second read comes from the page cache, and on the 2-core
 * test machine, where the S3 server shares the CPU, the saved CPU is upload throughput (test/bench,
 * shared/bench/peer-bench.sh). The slices are read straight into the core's memory and hashed
 * there (no copy through its I/O region), and each piece's CRC follows its SHA-256 while the piece
 * is still in the CPU's cache.
 *
 * If the file changes between this read and the producer's, the body no longer matches its
 * signed payload hash and the server refuses the part: a failed upload, never a wrong object.
 *
 * The next batch is hashed while the parts before it are read and sent, not when the producer
 * first asks for one of its parts: asked for then, the four workers' parts all waited for the
 * batch, and the gateway had nothing to receive for the ~130 ms a batch of 32 MiB parts takes
 * (upload traces, 2026-12-06: a gap after every wave of four parts). Only sums are kept ahead,
 * never bytes; the batch runs ahead only while what it covers stays within AHEAD_MAX, so the
 * producer's read still finds the bytes in the page cache.
 */
import type { FileHandle } from 'node:fs/promises';
import { PveS3Error } from '../util/errors.js';
import { lendBulk, returnBulk } from '../wasm/core.js';
import { Crc64Nvme, Sha256x4 } from '../wasm/digests.js';
import { heap } from '../wasm/load.js';
import { readFully } from './chunk-source.js';
import { yieldToLoop, type PartSums } from './part-hasher.js';

/** Bytes read per lane per step (four lanes: 8 MiB of the core's memory). */
const SLICE = 2 << 20;
/** Bytes per lane hashed by SHA-256 and then CRC-64 (four lanes: 1 MiB, about a core's L2 cache). */
const PIECE = 256 << 10;
const LANES = 4;
/** Bytes hashed but not yet read by the producer, at most, for a batch to start ahead of it. */
const AHEAD_MAX = 512 << 20;

export class HashAhead {
  private readonly ready = new Map<number, PartSums>();
  private batch: Promise<void> | null = null;
  private failure: { e: unknown } | null = null;
  /** the lowest part no batch has covered */
  private next = 1;
  private closed = false;
  private readonly lastPart: number;

  /** `skip(n)`: parts already on the server (a resumed upload) are neither read nor hashed. */
  constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly size: number,
    private readonly partSize: number,
    private readonly skip: (n: number) => boolean = () => false,
  ) {
    this.lastPart = Math.max(1, Math.ceil(size / partSize));
  }

  /** The sums of part n (1-based); parts are asked for in increasing order. A failed run stops
   *  the batch in progress through `signal` instead of hashing the rest of it. */
  async sums(n: number, signal?: AbortSignal): Promise<PartSums> {
    for (;;) {
      // parts hashed before a batch failed are still good; the failure is for the parts it covers
      const d = this.ready.get(n);
      if (d !== undefined) {
        this.ready.delete(n);
        this.startAhead(signal);
        return d;
      }
      if (this.failure) throw this.failure.e;
      if (this.batch === null) this.start(n, signal);
      await this.batch;
    }
  }

  /** Stops a batch running ahead and waits for it: the file is closed after this. */
  async close(): Promise<void> {
    this.closed = true;
    await this.batch;
  }

  private startAhead(signal?: AbortSignal): void {
    if (this.batch !== null || this.closed || (this.ready.size + LANES) * this.partSize > AHEAD_MAX) return;
    let n = this.next;
    while (n <= this.lastPart && this.skip(n)) n++;
    if (n <= this.lastPart) this.start(n, signal);
  }

  /** A batch's failure is kept for the next `sums`: a batch running ahead has nobody awaiting it. */
  private start(from: number, signal?: AbortSignal): void {
    this.batch = this.hashBatch(from, signal)
      .catch((e: unknown) => {
        this.failure ??= { e };
      })
      .finally(() => {
        this.batch = null;
      });
  }

  private async hashBatch(from: number, signal?: AbortSignal): Promise<void> {
    const parts: number[] = [];
    for (let n = from; n <= this.lastPart && parts.length < LANES; n++) if (!this.skip(n) && !this.ready.has(n)) parts.push(n);
    if (parts.length === 0) throw new PveS3Error('InternalError', `no part ${from} to hash in '${this.path}'`);
    this.next = Math.max(this.next, parts[parts.length - 1]! + 1);
    const x = new Sha256x4(parts.length);
    const crcs = parts.map(() => new Crc64Nvme());
    const start = parts.map((n) => (n - 1) * this.partSize);
    const end = parts.map((n) => Math.min(n * this.partSize, this.size));
    const pos = [...start];
    const lens = parts.map(() => 0);
    const ptrs = parts.map(() => 0);
    const pieceLens = parts.map(() => 0);
    const region = lendBulk(LANES * SLICE);
    try {
      for (;;) {
        signal?.throwIfAborted();
        if (this.closed) throw new PveS3Error('Aborted', `hashing of '${this.path}' stopped: the upload ended`);
        for (let i = 0; i < parts.length; i++) lens[i] = Math.min(SLICE, end[i]! - pos[i]!);
        if (lens.every((l) => l === 0)) break;
        await Promise.all(parts.map((_, i) => readFully(this.fh, heap().subarray(region.ptr + i * SLICE, region.ptr + (i + 1) * SLICE), lens[i]!, pos[i]!, this.path, this.size)));
        for (let off = 0; off < SLICE; off += PIECE) {
          for (let i = 0; i < parts.length; i++) {
            ptrs[i] = region.ptr + i * SLICE + off;
            pieceLens[i] = Math.max(0, Math.min(PIECE, lens[i]! - off));
          }
          x.updateAt(ptrs, pieceLens);
          for (let i = 0; i < parts.length; i++) crcs[i]!.updateAt(ptrs[i]!, pieceLens[i]!);
        }
        for (let i = 0; i < parts.length; i++) pos[i]! += lens[i]!;
        await yieldToLoop();
      }
    } finally {
      returnBulk(region);
    }
    parts.forEach((n, i) => this.ready.set(n, { sha256: x.digestLane(i), crc64: crcs[i]!.digest() }));
  }
}
