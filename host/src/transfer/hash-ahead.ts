/**
 * Part digests (SHA-256 and CRC-64/NVME) of an upload from a file, computed ahead four parts at a
 * time on the 4-lane SIMD core (the CRC of each lane's slice right after, while it is in cache). The producer of upload.ts hashes the part it has just read, alone, on the scalar core
 * (~450 MB/s here); holding four part buffers to hash them side by side would double the upload's
 * memory. This reads the next four parts once more, in small slices per lane, and hashes them
 * together (~850 MB/s): the second read comes from the page cache, and on the 2-core test machine,
 * where the S3 server shares the CPU, the saved CPU is upload throughput (test/bench,
 * shared/bench/peer-bench.sh).
 *
 * If the file changes between this read and the producer's, the body no longer matches its
 * signed payload hash and the server refuses the part: a failed upload, never a wrong object.
 */
import type { FileHandle } from 'node:fs/promises';
import { PveS3Error } from '../util/errors.js';
import { Crc64Nvme, Sha256x4 } from '../wasm/digests.js';
import { readFully } from './chunk-source.js';
import { yieldToLoop, type PartSums } from './part-hasher.js';

/** Bytes read per lane per step (four lanes: 8 MiB of memory). */
const SLICE = 2 << 20;
const LANES = 4;

export class HashAhead {
  private readonly ready = new Map<number, PartSums>();
  private batch: Promise<void> | null = null;
  private readonly buffers = Array.from({ length: LANES }, () => new Uint8Array(SLICE));
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
      const d = this.ready.get(n);
      if (d !== undefined) {
        this.ready.delete(n);
        return d;
      }
      if (this.batch === null) {
        this.batch = this.hashBatch(n, signal).finally(() => {
          this.batch = null;
        });
      }
      await this.batch;
    }
  }

  private async hashBatch(from: number, signal?: AbortSignal): Promise<void> {
    const parts: number[] = [];
    for (let n = from; n <= this.lastPart && parts.length < LANES; n++) if (!this.skip(n) && !this.ready.has(n)) parts.push(n);
    if (parts.length === 0) throw new PveS3Error('InternalError', `no part ${from} to hash in '${this.path}'`);
    const x = new Sha256x4(parts.length);
    const crcs = parts.map(() => new Crc64Nvme());
    const start = parts.map((n) => (n - 1) * this.partSize);
    const end = parts.map((n) => Math.min(n * this.partSize, this.size));
    const pos = [...start];
    for (;;) {
      signal?.throwIfAborted();
      const slices = await Promise.all(parts.map((_, i) => this.readSlice(i, pos[i]!, Math.min(SLICE, end[i]! - pos[i]!))));
      if (slices.every((s) => s.length === 0)) break;
      x.update(slices);
      for (let i = 0; i < parts.length; i++) {
        crcs[i]!.update(slices[i]!);
        pos[i]! += slices[i]!.length;
      }
      await yieldToLoop();
    }
    parts.forEach((n, i) => this.ready.set(n, { sha256: x.digestLane(i), crc64: crcs[i]!.digest() }));
  }

  private async readSlice(lane: number, at: number, length: number): Promise<Uint8Array> {
    const buf = this.buffers[lane]!;
    await readFully(this.fh, buf, length, at, this.path, this.size);
    return new Uint8Array(buf.buffer, buf.byteOffset, length);
  }
}
