/**
 * Where the bytes of a stream upload come from, written straight into the caller's part buffers.
 *
 * A pipe read as a Readable gets a fresh 64 KiB buffer from node for every read: at 100 MiB/s
 * that is 1,600 buffers a second that V8 frees only once their total passes its external-memory
 * threshold (~64 MiB), so the process's peak rose by that much garbage above its part buffers,
 * and every byte was copied once more into a part. A pipe or socket given as a descriptor is read
 * with net.Socket's `onread` into the part buffer itself (no allocation per read, no copy but the
 * one read that waited in a small staging buffer when a part was full); a file or device with
 * plain positional-less reads, also into the part buffer. Any other Readable or async iterable
 * (tests, a stream already opened by someone else) is copied chunk by chunk, as before.
 */
import { fstatSync, read } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import type { Readable } from 'node:stream';
import { PveS3Error } from '../util/errors.js';

export interface ByteSource {
  /** Fills `target` completely unless the input ends first; resolves with the bytes written. */
  fill(target: Uint8Array): Promise<number>;
  /** The next bytes of the input without consuming them (at least one), or none at its end. */
  peek(): Promise<Uint8Array>;
  /** Stops reading: an input not read to its end is let go (its writer sees a closed pipe), and a
   *  fill or peek waiting for bytes, or asked afterwards, fails with `Aborted` — a stopped input
   *  never looks like one that ended. */
  close(): Promise<void>;
}

export function isByteSource(x: unknown): x is ByteSource {
  return typeof (x as ByteSource | null)?.fill === 'function' && typeof (x as ByteSource).peek === 'function';
}

/** What a staging read may hold: one pipe's worth (Linux pipes carry 64 KiB by default). */
const STAGING = 64 * 1024;
const EMPTY = new Uint8Array(0);

const closedError = (): PveS3Error => new PveS3Error('Aborted', 'reading the upload source was stopped before its end');

/** Reads descriptor `fd` (stdin, a FIFO) without per-read allocations. */
export function fdSource(fd: number): ByteSource {
  const st = fstatSync(fd);
  return st.isFIFO() || st.isSocket() ? new SocketSource(fd) : new FileSource(fd);
}

/** `src`, with `onEnd` run once when the input ends: it may throw to fail the read that saw the end
 *  (a producer that exited non-zero), so the upload is aborted rather than completed. */
export function withEndCheck(src: ByteSource, onEnd: () => Promise<void>): ByteSource {
  return new EndChecked(src, onEnd);
}

/** Any Readable or async iterable of byte chunks, copied into the targets. */
export function iterableSource(stream: Readable | AsyncIterable<Uint8Array | string>): ByteSource {
  return new IterableSource(stream);
}

class SocketSource implements ByteSource {
  private readonly socket: Socket;
  /** where a read lands when no target waits (or the last one is full) */
  private readonly staging = Buffer.allocUnsafeSlow(STAGING);
  /** bytes read into staging and not handed out yet */
  private stash: Uint8Array = EMPTY;
  private target: Uint8Array | null = null;
  private filled = 0;
  private ended = false;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;

  constructor(fd: number) {
    // node's Socket takes `onread` (documented for connect) at construction too; its types do not say so
    const opts: SocketConstructorOpts & { onread: OnReadOpts } = {
      fd,
      readable: true,
      writable: false,
      onread: { buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) },
    };
    this.socket = new Socket(opts);
    // once ended the descriptor is of no more use: let it go at once, whoever closes us
    this.socket.on('end', () => {
      this.finish(null);
      this.socket.destroy();
    });
    this.socket.on('error', (e) => this.finish(e));
    this.socket.on('close', () => this.finish(null));
  }

  /** libuv reads into this next: the rest of the target when one waits, else the staging buffer. */
  private nextBuffer(): Uint8Array {
    const t = this.target;
    return t && this.filled < t.length && this.stash.length === 0 ? t.subarray(this.filled) : this.staging;
  }

  /** false pauses the socket until the next fill or peek. */
  private onRead(n: number, buf: Uint8Array): boolean {
    if (buf.buffer === this.staging.buffer) {
      this.stash = this.staging.subarray(0, n);
      if (this.target) this.drainStash();
    } else {
      this.filled += n;
    }
    const t = this.target;
    if (t && this.filled < t.length) return true;
    this.wakeUp();
    return false;
  }

  private drainStash(): void {
    const t = this.target!;
    const k = Math.min(this.stash.length, t.length - this.filled);
    t.set(k === this.stash.length ? this.stash : this.stash.subarray(0, k), this.filled);
    this.filled += k;
    this.stash = this.stash.subarray(k);
  }

  private finish(e: Error | null): void {
    if (e && !this.failure) this.failure = e;
    this.ended = true;
    this.wakeUp();
  }

  private wakeUp(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForData(): Promise<void> {
    return new Promise<void>((r) => {
      this.wake = r;
      this.socket.resume();
    });
  }

  async fill(target: Uint8Array): Promise<number> {
    if (this.failure) throw this.failure;
    this.target = target;
    this.filled = 0;
    try {
      if (this.stash.length > 0) this.drainStash();
      while (this.filled < target.length && this.stash.length === 0 && !this.ended) await this.waitForData();
      if (this.failure) throw this.failure;
      return this.filled;
    } finally {
      this.target = null;
    }
  }

  async peek(): Promise<Uint8Array> {
    if (this.failure) throw this.failure;
    while (this.stash.length === 0 && !this.ended) await this.waitForData();
    if (this.failure) throw this.failure;
    return this.stash;
  }

  async close(): Promise<void> {
    if (!this.ended) this.finish(closedError());
    this.socket.destroy();
  }
}

class FileSource implements ByteSource {
  private readonly staging = Buffer.allocUnsafeSlow(STAGING);
  private stash: Uint8Array = EMPTY;
  private ended = false;
  private closed = false;

  constructor(private readonly fd: number) {}

  private readAt(buf: Uint8Array, off: number, len: number): Promise<number> {
    if (this.closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => read(this.fd, buf, off, len, null, (e, n) => (e ? reject(e) : this.closed ? reject(closedError()) : resolve(n))));
  }

  async fill(target: Uint8Array): Promise<number> {
    if (this.closed) throw closedError();
    let filled = Math.min(this.stash.length, target.length);
    target.set(this.stash.subarray(0, filled));
    this.stash = this.stash.subarray(filled);
    while (filled < target.length && !this.ended) {
      const n = await this.readAt(target, filled, target.length - filled);
      if (n === 0) this.ended = true;
      filled += n;
    }
    return filled;
  }

  async peek(): Promise<Uint8Array> {
    if (this.closed) throw closedError();
    if (this.stash.length === 0 && !this.ended) {
      const n = await this.readAt(this.staging, 0, STAGING);
      if (n === 0) this.ended = true;
      this.stash = this.staging.subarray(0, n);
    }
    return this.stash;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

class IterableSource implements ByteSource {
  private readonly it: AsyncIterator<unknown>;
  private stash: Uint8Array = EMPTY;
  private ended = false;
  private closed = false;

  constructor(private readonly stream: Readable | AsyncIterable<Uint8Array | string>) {
    this.it = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  private async pull(): Promise<void> {
    while (this.stash.length === 0 && !this.ended) {
      if (this.closed) throw closedError();
      const r = await this.it.next();
      if (this.closed) throw closedError();
      if (r.done) this.ended = true;
      else this.stash = typeof r.value === 'string' ? Buffer.from(r.value) : (r.value as Uint8Array);
    }
  }

  async fill(target: Uint8Array): Promise<number> {
    if (this.closed) throw closedError();
    let filled = 0;
    while (filled < target.length) {
      await this.pull();
      if (this.stash.length === 0) break;
      const k = Math.min(this.stash.length, target.length - filled);
      target.set(k === this.stash.length ? this.stash : this.stash.subarray(0, k), filled);
      filled += k;
      this.stash = this.stash.subarray(k);
    }
    return filled;
  }

  async peek(): Promise<Uint8Array> {
    if (this.closed) throw closedError();
    await this.pull();
    return this.stash;
  }

  async close(): Promise<void> {
    if (this.ended || this.closed) return;
    this.closed = true;
    // a Readable's destroy also ends a read waiting for data; an iterator's return only takes
    // effect at its next yield
    const r = this.stream as Partial<Readable>;
    if (typeof r.destroy === 'function') r.destroy();
    else void this.it.return?.().catch(() => undefined);
  }
}

/** Runs `onEnd` once, at the end of the input, before the end is reported. */
class EndChecked implements ByteSource {
  private checked = false;
  constructor(
    private readonly inner: ByteSource,
    private readonly onEnd: () => Promise<void>,
  ) {}

  private async check(): Promise<void> {
    if (this.checked) return;
    this.checked = true;
    await this.onEnd();
  }

  async fill(target: Uint8Array): Promise<number> {
    const n = await this.inner.fill(target);
    if (n < target.length) await this.check();
    return n;
  }

  async peek(): Promise<Uint8Array> {
    const b = await this.inner.peek();
    if (b.length === 0) await this.check();
    return b;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
