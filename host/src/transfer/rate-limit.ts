/**
 * PVE's `bwlimit` (KiB/s) for transfers: a token bucket shared by all parts or ranges of one
 * transfer. Debt is allowed (a 100 MiB part is taken at once and paid off by waiting), so the
 * average rate holds whatever the block size; downloads take per received chunk, which throttles
 * the sockets through TCP backpressure.
 */
import { sleep } from '../s3/retry.js';

export class RateLimiter {
  private tokens: number;
  private last: number;
  private readonly rate: number;
  private readonly burst: number;

  constructor(
    kibPerSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.rate = kibPerSecond * 1024;
    // about a quarter second of traffic may pass unthrottled
    this.burst = Math.max(64 * 1024, this.rate / 4);
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Resolves once `bytes` fit the rate (or right away when the signal fired). */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    this.tokens -= bytes;
    if (this.tokens >= 0 || signal?.aborted) return;
    // a cancel ends the wait; the caller sees the signal itself
    await sleep((-this.tokens / this.rate) * 1000, signal).catch(() => undefined);
  }
}

/** undefined or 0 (PVE: no limit) → no limiter. */
export function limiterFor(kib: number | undefined): RateLimiter | undefined {
  if (kib === undefined || kib === 0) return undefined;
  return new RateLimiter(kib);
}
