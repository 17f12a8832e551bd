/**
 * Restore frames decompressed on worker threads (the zstd thread of frames.ts), so the NBD
 * server's main thread goes on receiving the next frames and answering reads meanwhile; on this
 * thread when the worker script is not there (the TypeScript sources under vitest). The
 * compressed bytes travel to the thread and back without a copy: the caller hands over a buffer
 * of its own (not a view into a shared pool) and gets it back with the result, to reuse it.
 */
import type { Worker } from 'node:worker_threads';
import { PveS3Error } from '../util/errors.js';
import { startZstdThreads } from './frames.js';
import { zstd } from './native.js';

export interface ToDecompressor {
  seq: number;
  buf: ArrayBuffer;
  /** compressed bytes at the start of buf */
  len: number;
  /** the frame's size once decompressed (its index record) */
  ulen: number;
}

interface FromDecompressor {
  seq: number;
  out?: ArrayBuffer;
  len?: number;
  input: ArrayBuffer;
  error?: string;
}

export interface Decompressed {
  /** the frame's bytes: `len` of them, in a buffer of `ulen` */
  out: Buffer;
  len: number;
  /** the buffer handed in, back for reuse */
  input: Buffer;
}

/** a zstd error (damaged bytes): the caller says which frame; `input` is the buffer handed in */
export class DecompressError extends Error {
  constructor(
    message: string,
    readonly input: Buffer,
  ) {
    super(message);
  }
}

export class FrameDecompressor {
  private readonly workers: Worker[];
  private readonly waiting = new Map<number, { resolve(d: Decompressed): void; reject(e: Error): void }>();
  private seq = 0;
  private broken: Error | null = null;

  constructor(o: { threads?: number; workerScript?: string } = {}) {
    this.workers = startZstdThreads(o, (m: FromDecompressor) => this.onMessage(m), (e) => this.fail(e));
  }

  get threaded(): boolean {
    return this.workers.length > 0;
  }

  /** decompresses the first `len` bytes of `src`, which must own its whole ArrayBuffer and is
   *  handed over until the result comes back */
  decompress(src: Buffer, len: number, ulen: number): Promise<Decompressed> {
    if (this.broken) return Promise.reject(this.broken);
    if (src.byteOffset !== 0 || src.byteLength !== src.buffer.byteLength || src.buffer instanceof SharedArrayBuffer) {
      return Promise.reject(new PveS3Error('InternalError', 'FrameDecompressor needs a buffer that owns its memory'));
    }
    if (this.workers.length === 0) {
      const out = Buffer.allocUnsafe(ulen);
      try {
        return Promise.resolve({ out, len: zstd().decompress(out, src.subarray(0, len)), input: src });
      } catch (e) {
        return Promise.reject(new DecompressError((e as Error).message, src));
      }
    }
    const seq = this.seq++;
    const ab = src.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.workers[seq % this.workers.length]!.postMessage({ seq, buf: ab, len, ulen } satisfies ToDecompressor, [ab]);
    });
  }

  private onMessage(m: FromDecompressor): void {
    const w = this.waiting.get(m.seq);
    if (!w) return;
    this.waiting.delete(m.seq);
    if (m.error !== undefined) w.reject(new DecompressError(m.error, Buffer.from(m.input)));
    else w.resolve({ out: Buffer.from(m.out!, 0, m.out!.byteLength), len: m.len!, input: Buffer.from(m.input) });
  }

  private fail(e: Error): void {
    this.broken ??= new PveS3Error('InternalError', `zstd thread failed: ${e.message}`);
    for (const w of this.waiting.values()) w.reject(this.broken);
    this.waiting.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}
