/**
 * Where upload parts are hashed. SHA-256 of every byte is an upload's biggest CPU cost (the WASM
 * core does ~500 MB/s here). By default it runs on the main thread, in slices between socket
 * work. PVE_S3_HASH_THREAD=1 moves it to one worker thread (when the compiled worker script is
 * there): parts are handed over zero-copy (the pooled buffer's memory is transferred there and
 * back), so the main thread only keeps the sockets busy. Measured on the 2-core test machine,
 * where the S3 server shares the cores, the thread bought no throughput and cost ~10% more CPU per
 * GiB, hence opt-in; it is meant for hosts with idle cores sending to a remote store. Downloads
 * check each piece in the socket's read callback (download.ts), where a hand-over would cost more
 * than the CRC it moves.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { PveS3Error } from '../util/errors.js';
import { sumPart, type PartSums } from './part-hasher.js';

export type ToWorker = { op: 'part'; seq: number; buf: ArrayBuffer; len: number };

type FromWorker = { op: 'part'; seq: number; sums: PartSums; buf: ArrayBuffer } | { op: 'error'; seq: number; message: string };

export interface HashService {
  readonly threaded: boolean;
  /** SHA-256 and CRC-64/NVME of buf[0..len). Returns the buffer to use afterwards: with a worker
   *  it is a new Buffer object over the same memory, which came back from the worker. */
  part(buf: Buffer, len: number): Promise<{ sums: PartSums; buf: Buffer }>;
}

class InThread implements HashService {
  readonly threaded = false;
  async part(buf: Buffer, len: number): Promise<{ sums: PartSums; buf: Buffer }> {
    return { sums: await sumPart(buf.subarray(0, len)), buf };
  }
}

class Threaded implements HashService {
  readonly threaded = true;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (m: FromWorker) => void; reject: (e: Error) => void }>();
  private broken: Error | null = null;
  private users = 0;

  constructor(private readonly worker: Worker) {
    worker.unref();
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`hash worker exited with code ${code}`)));
  }

  private onMessage(m: FromWorker): void {
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
