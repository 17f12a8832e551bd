/**
 * A fixed set of part-sized buffers handed out and returned. Uploads reuse them part after part so
 * the process holds about chunk × (concurrency + 1) bytes whatever the object size, and the GC
 * never sees hundreds of MiB of short-lived garbage.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiters: Array<(b: Buffer) => void> = [];
  private created = 0;

  constructor(
    readonly bufferSize: number,
    readonly capacity: number,
  ) {}

  /**
   * Resolves with a buffer as soon as one is free. Up to `capacity` are created, one per request,
   * before any is reused: a transfer of that many parts or more reaches its whole footprint at its
   * start, instead of creeping up to it whenever uploads happen to overlap more (a long stream
   * would sooner or later), so its peak memory does not depend on its length or on luck.
   */
  acquire(): Promise<Buffer> {
    if (this.created < this.capacity) {
      this.created++;
      // allocUnsafeSlow: a dedicated allocation, never a slice of Node's shared slab
      return Promise.resolve(Buffer.allocUnsafeSlow(this.bufferSize));
    }
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(b: Buffer): void {
    const w = this.waiters.shift();
    if (w) w(b);
    else this.free.push(b);
  }

  /** Buffers allocated so far: lets tests check the memory bound. */
  get allocated(): number {
    return this.created;
  }
}
