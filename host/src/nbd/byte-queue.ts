/**
 * Bytes arriving from a socket, taken in exact amounts by one async reader. The socket is paused
 * while enough is buffered, so a slow consumer (compression, upload) holds back the server
 * instead of growing this queue.
 */
import type { Socket } from 'node:net';

const HIGH_WATER = 8 << 20;

export class ByteQueue {
  private chunks: Buffer[] = [];
  private length = 0;
  private waiter: { n: number; resolve(b: Buffer): void; reject(e: Error): void } | null = null;
  private failure: Error | null = null;

  constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.push(d));
  }

  private push(d: Buffer): void {
    this.chunks.push(d);
    this.length += d.length;
    if (this.length >= HIGH_WATER) this.socket.pause();
    this.settle();
  }

  /** every later take() fails with e (the connection is gone) */
  fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.settle();
  }

  get buffered(): number {
    return this.length;
  }

  take(n: number): Promise<Buffer> {
    if (this.waiter) throw new Error('ByteQueue: one reader at a time');
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.settle();
    });
  }

  private settle(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.length >= w.n) {
      this.waiter = null;
      w.resolve(this.consume(w.n));
      if (this.length < HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    } else if (this.failure) {
      this.waiter = null;
      w.reject(this.failure);
    } else if (this.socket.isPaused()) {
      this.socket.resume();
    }
  }

  private consume(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      // the common case for headers: no copy
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.length -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let pos = 0;
    while (pos < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - pos);
      c.copy(out, pos, 0, k);
      pos += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.length -= n;
    return out;
  }
}
