/**
 * PVE's `bwlimit` (KiB/s) for transfers: a token bucket shared by all parts or ranges of one
 * transfer, charged for the bytes as they go on the wire, not per part: an upload hands its body
 * to the socket in 64 KiB slices, each only once the bucket allows it (s3/request.ts), and a
 * download asks the server for a sixteenth of a second's worth at a time, each step once the
 * bucket allows it (download.ts). Debt is allowed (a step is paid off by waiting), so the average
 * rate holds whatever the step, and no more than a burst of an eighth of a second passes at
 * line rate.
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
    this.burst = Math.max(64 * 1024, this.rate / 8);
    this.tokens = this.burst;
    this.last = this.now();
  }

  /** Charges `bytes`; the milliseconds until the bucket is out of debt again (0: at once). */
  delay(bytes: number): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.rate) * 1000;
  }

  /** Resolves once `bytes` fit the rate (or right away when the signal fired). */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const ms = this.delay(bytes);
    if (ms <= 0 || signal?.aborted) return;
    // a cancel ends the wait; the caller sees the signal itself
    await sleep(ms, signal).catch(() => undefined);
  }
}

/** undefined or 0 (PVE: no limit) → no limiter. */
export function limiterFor(kib: number | undefined): RateLimiter | undefined {
  if (kib === undefined || kib === 0) return undefined;
  return new RateLimiter(kib);
}
