/**
 * Independent zstd frames, compressed on worker threads (one zstd context each) so the main
 * thread stays free for NBD, S3 and hashing; in-thread when the worker script is not there (the
 * TypeScript sources under vitest) or when asked. Results come back in submission order.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PveS3Error } from '../util/errors.js';
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';
import { C_CHECKSUM_FLAG, C_COMPRESSION_LEVEL, C_CONTENT_SIZE_FLAG, zstd, type ZstdCCtx } from './native.js';

export interface ToCompressor {
  seq: number;
  level: number;
  buf: ArrayBuffer;
  len: number;
}

interface FromCompressor {
  seq: number;
  out?: ArrayBuffer;
  len?: number;
  sha256?: Uint8Array;
  crc64?: bigint;
  input?: ArrayBuffer;
  error?: string;
}

export interface CompressedFrame {
  data: Buffer;
  sha256: Buffer;
  crc64: bigint;
}

export function newContext(level: number): ZstdCCtx {
  const c = new (zstd().CCtx)();
  c.setParameter(C_COMPRESSION_LEVEL, level);
  c.setParameter(C_CONTENT_SIZE_FLAG, 1);
  c.setParameter(C_CHECKSUM_FLAG, 1);
  return c;
}

/** one complete zstd frame of src */
export function compressFrame(ctx: ZstdCCtx, src: Uint8Array): Buffer {
  const dst = Buffer.allocUnsafeSlow(zstd().compressBound(src.length));
  const n = ctx.compress2(dst, src);
  return dst.subarray(0, n);
}

function unpooledCopy(data: Buffer): Buffer {
  const b = Buffer.allocUnsafeSlow(data.length);
  data.copy(b);
  return b;
}

/**
 * The zstd threads (compress-worker.js, next to this module once built), `threads` of them
 * (default 2): none when asked for 0 or when the script is not there — the TypeScript sources
 * under vitest, unless a test names the built script — so the caller works on its own thread.
 */
export function startZstdThreads<M>(o: { threads?: number; workerScript?: string }, onMessage: (m: M) => void, onError: (e: Error) => void): Worker[] {
  const threads = o.threads ?? 2;
  const script = o.workerScript ?? fileURLToPath(new URL('./compress-worker.js', import.meta.url));
  zstd(); // fail here, clearly, when the addon is missing
  const workers: Worker[] = [];
  if (threads > 0 && (o.workerScript !== undefined || import.meta.url.endsWith('.js')) && existsSync(script)) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(script, { execArgv: [] });
      w.on('message', onMessage);
      w.on('error', onError);
      w.unref();
      workers.push(w);
    }
  }
  return workers;
}

export interface FrameCompressorOptions {
  /** worker threads (default 2: the two cores of a small node); 0 = on this thread */
  threads?: number;
  /** zstd level (default 3, vzdump's) */
  level?: number;
  /** the compiled compress-worker.js (default: next to this module; tests of the sources name
   *  host/dist's) */
  workerScript?: string;
}

export class FrameCompressor {
  private readonly workers: Worker[];
  private readonly waiting = new Map<number, { resolve(f: CompressedFrame): void; reject(e: Error): void }>();
  private seq = 0;
  private ctx: ZstdCCtx | undefined;
  private readonly level: number;
  private broken: Error | null = null;

  constructor(o: FrameCompressorOptions = {}) {
    this.level = o.level ?? 3;
    this.workers = startZstdThreads(o, (m: FromCompressor) => this.onMessage(m), (e) => this.fail(e));
  }

  get threaded(): boolean {
    return this.workers.length > 0;
  }

  /** where the frames are compressed, for the task log (an installed tree without its worker
   *  script still works, on one core: the log line is how an administrator sees it) */
  get where(): string {
    return this.workers.length > 0 ? `${this.workers.length} zstd threads` : 'zstd on the main thread';
  }

  /** compresses `data` (which is handed over: do not use it afterwards) */
  compress(data: Buffer): Promise<CompressedFrame> {
    if (this.broken) return Promise.reject(this.broken);
    if (this.workers.length === 0) {
      try {
        this.ctx ??= newContext(this.level);
        const out = compressFrame(this.ctx, data);
        return Promise.resolve({ data: out, sha256: Buffer.from(Sha256.hash(out)), crc64: Crc64Nvme.hash(out) });
      } catch (e) {
        return Promise.reject(new PveS3Error('InternalError', `zstd compression failed: ${(e as Error).message}`));
      }
    }
    const seq = this.seq++;
    // The worker gets an ArrayBuffer holding exactly these bytes from offset 0. A view into a
    // larger one (Buffer.concat and Buffer.from of small sizes use node's shared 8 KiB pool, which
    // postMessage copies whole instead of moving) is copied into a buffer of its own first: sent
    // as it was, the worker compressed the pool's first bytes - other requests' data, the secret
    // among them - into the archive.
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer) ? data : unpooledCopy(data);
    const ab = own.buffer as ArrayBuffer;
    return new Promise((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject });
      this.workers[seq % this.workers.length]!.postMessage({ seq, level: this.level, buf: ab, len: own.length } satisfies ToCompressor, [ab]);
    });
  }

  private onMessage(m: FromCompressor): void {
    const w = this.waiting.get(m.seq);
    if (!w) return;
    this.waiting.delete(m.seq);
    if (m.error !== undefined) w.reject(new PveS3Error('InternalError', `zstd compression failed: ${m.error}`));
    else w.resolve({ data: Buffer.from(m.out!, 0, m.len!), sha256: Buffer.from(m.sha256!), crc64: m.crc64! });
  }

  private fail(e: Error): void {
    this.broken ??= new PveS3Error('InternalError', `zstd compression thread failed: ${e.message}`);
    for (const w of this.waiting.values()) w.reject(this.broken);
    this.waiting.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}
