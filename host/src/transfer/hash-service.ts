/**
 * Where transfer hashing runs. SHA-256 of every byte is the engine's biggest CPU cost (the WASM
 * core does ~400 MB/s here). By default it runs on the main thread, in slices between socket
 * work. PVE_S3_HASH_THREAD=1 moves it to one worker thread (when the compiled worker script is
 * there): upload parts are handed over zero-copy (the pooled buffer's memory is transferred there
 * and back) and download ranges stream to it in reused 2 MiB blocks, so the main thread only
 * keeps the sockets busy. Measured on the 2-core test machine, where the S3 server shares the
 * cores, the thread bought no throughput and cost ~10% more CPU per GiB, hence opt-in; it is
 * meant for hosts with idle cores sending to a remote store.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { PveS3Error } from '../util/errors.js';
import { Sha256 } from '../wasm/digests.js';
import { sumPart, type PartSums } from './part-hasher.js';

export type ToWorker =
  | { op: 'part'; seq: number; buf: ArrayBuffer; len: number }
  | { op: 'update'; id: number; buf: ArrayBuffer; len: number }
  | { op: 'digest'; seq: number; id: number }
  | { op: 'drop'; id: number };

type FromWorker =
  | { op: 'part'; seq: number; sums: PartSums; buf: ArrayBuffer }
  | { op: 'digest'; seq: number; digest: Uint8Array }
  | { op: 'ack'; buf: ArrayBuffer }
  | { op: 'error'; seq: number; message: string };

export interface StreamHash {
  /** Hashes `chunks` after everything given before. The chunks are copied (to the worker) or
   *  hashed before the promise resolves, so the caller may reuse them afterwards. */
  update(chunks: readonly Uint8Array[]): Promise<void>;
  digest(): Promise<Uint8Array>;
  /** Forgets the stream (a failed range). */
  drop(): void;
}

export interface HashService {
  readonly threaded: boolean;
  /** SHA-256 and CRC-64/NVME of buf[0..len). Returns the buffer to use afterwards: with a worker
   *  it is a new Buffer object over the same memory, which came back from the worker. */
  part(buf: Buffer, len: number): Promise<{ sums: PartSums; buf: Buffer }>;
  stream(): StreamHash;
}

/** Download data travels to the worker in reused blocks (no fresh allocation, no page faults);
 *  at most MAX_BLOCKS are out at once, which is also the flow control. */
const BLOCK_SIZE = 2 << 20;
const MAX_BLOCKS = 16;

class InThread implements HashService {
  readonly threaded = false;
  async part(buf: Buffer, len: number): Promise<{ sums: PartSums; buf: Buffer }> {
    return { sums: await sumPart(buf.subarray(0, len)), buf };
  }
  stream(): StreamHash {
    const h = new Sha256();
    let dropped = false;
    return {
      update: async (chunks) => {
        for (const c of chunks) h.update(c);
      },
      digest: async () => h.digest(),
      drop: () => {
        if (!dropped) h.digest();
        dropped = true;
      },
    };
  }
}

class Threaded implements HashService {
  readonly threaded = true;
  private seq = 0;
  private nextId = 0;
  private readonly freeBlocks: ArrayBuffer[] = [];
  private blocksOut = 0;
  private readonly waiting = new Map<number, { resolve: (m: FromWorker) => void; reject: (e: Error) => void }>();
  private drainWaiters: Array<() => void> = [];
  private broken: Error | null = null;
  private users = 0;

  constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
  }

  private onMessage(m: FromWorker): void {
    if (m.op === 'ack') {
      this.blocksOut--;
      this.freeBlocks.push(m.buf);
      this.release();
      this.drainWaiters.shift()?.();
      return;
    }
    const w = this.waiting.get(m.seq);
    if (!w) return;
    this.waiting.delete(m.seq);
    this.release();
    if (m.op === 'error') w.reject(new PveS3Error('InternalError', `hashing failed: ${m.message}`));
    else w.resolve(m);
  }

  private fail(e: Error): void {
    // later transfers hash on the main thread instead
    if (service === this) service = new InThread();
    this.broken = new PveS3Error('InternalError', `hash worker failed: ${e.message}`, { cause: e });
    for (const w of this.waiting.values()) w.reject(this.broken);
    this.waiting.clear();
    for (const w of this.drainWaiters.splice(0)) w();
  }

  // the worker keeps the process alive only while it has work
  private hold(): void {
    if (this.users++ === 0) this.worker.ref();
  }
  private release(): void {
    if (--this.users === 0) this.worker.unref();
  }

  private call(msg: ToWorker & { seq: number }, transfer: ArrayBuffer[]): Promise<FromWorker> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.waiting.set(msg.seq, { resolve, reject });
      this.hold();
      this.worker.postMessage(msg, transfer);
    });
  }

  async part(buf: Buffer, len: number): Promise<{ sums: PartSums; buf: Buffer }> {
    if (buf.byteOffset !== 0 || buf.byteLength !== buf.buffer.byteLength || !(buf.buffer instanceof ArrayBuffer)) {
      // not a whole allocation of its own: hashing a copy would cost more than hashing here
      return { sums: await sumPart(buf.subarray(0, len)), buf };
    }
    const r = (await this.call({ op: 'part', seq: this.seq++, buf: buf.buffer as ArrayBuffer, len }, [buf.buffer as ArrayBuffer])) as Extract<FromWorker, { op: 'part' }>;
    return { sums: r.sums, buf: Buffer.from(r.buf) };
  }

  private async block(): Promise<ArrayBuffer> {
    while (this.blocksOut >= MAX_BLOCKS && !this.broken) await new Promise<void>((r) => this.drainWaiters.push(r));
    if (this.broken) throw this.broken;
    this.blocksOut++;
    return this.freeBlocks.pop() ?? new ArrayBuffer(BLOCK_SIZE);
  }

  stream(): StreamHash {
    const id = this.nextId++;
    return {
      update: async (chunks) => {
        let i = 0;
        let off = 0;
        while (i < chunks.length) {
          if (this.broken) throw this.broken;
          const ab = await this.block();
          const view = new Uint8Array(ab);
          let len = 0;
          while (i < chunks.length && len < BLOCK_SIZE) {
            const c = chunks[i]!;
            const n = Math.min(c.length - off, BLOCK_SIZE - len);
            view.set(off === 0 && n === c.length ? c : c.subarray(off, off + n), len);
            len += n;
            off += n;
            if (off === c.length) {
              i++;
              off = 0;
            }
          }
          this.hold();
          this.worker.postMessage({ op: 'update', id, buf: ab, len } satisfies ToWorker, [ab]);
        }
      },
      digest: async () => {
        const r = (await this.call({ op: 'digest', seq: this.seq++, id }, [])) as Extract<FromWorker, { op: 'digest' }>;
        return r.digest;
      },
      drop: () => {
        if (!this.broken) this.worker.postMessage({ op: 'drop', id } satisfies ToWorker);
      },
    };
  }
}

let service: HashService | undefined;

/** The process-wide hashing service (see the file comment for PVE_S3_HASH_THREAD). */
export function hashService(): HashService {
  if (service) return service;
  const script = fileURLToPath(new URL('./hash-worker.js', import.meta.url));
  const on = process.env.PVE_S3_HASH_THREAD === '1';
  if (on && import.meta.url.endsWith('.js') && existsSync(script)) {
    try {
      // execArgv: none of the parent's flags (an --eval/--input-type there would stop the worker)
      // node:worker_threads only when asked for: its load is a MiB of memory for every other run
      const { Worker: WorkerClass } = process.getBuiltinModule('node:worker_threads');
      service = new Threaded(new WorkerClass(script, { execArgv: [] }));
      return service;
    } catch {
      // fall through to in-thread hashing
    }
  }
  service = new InThread();
  return service;
}
