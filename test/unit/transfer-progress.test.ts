import { describe, expect, it, vi } from 'vitest';
import { BufferPool } from '../../host/src/transfer/buffer-pool.js';
import { ProgressTracker, type Progress } from '../../host/src/transfer/progress.js';

describe('ProgressTracker', () => {
  it('throttles events and always sends the final one', () => {
    let t = 0;
    const seen: Progress[] = [];
    const p = new ProgressTracker((e) => seen.push(e), 1000, 10, { intervalMs: 100, now: () => t });
    for (let i = 0; i < 10; i++) {
      t += 10; // 10 events within 100 ms of clock
      p.add(100, 1);
    }
    expect(seen.length).toBe(1);
    p.finish();
    expect(seen.at(-1)).toMatchObject({ bytes: 1000, total: 1000, parts: 10, partsTotal: 10 });
  });

  it('reports the rate over the recent window', () => {
    let t = 0;
    const seen: Progress[] = [];
    const p = new ProgressTracker((e) => seen.push(e), null, null, { intervalMs: 0, now: () => t });
    t = 1000;
    p.add(5000);
    expect(seen.at(-1)!.rate).toBeCloseTo(5000);
    // a long stall then a burst: the window forgets the distant start
    t = 20_000;
    p.add(0);
    t = 21_000;
    p.add(1000);
    expect(seen.at(-1)!.rate).toBeLessThan(5000);
    expect(seen.at(-1)!.total).toBeNull();
  });

  it('retracts bytes of a retried range', () => {
    const p = new ProgressTracker(undefined, 100, 1);
    p.add(60);
    p.retract(60);
    p.add(100, 1);
    expect(p.snapshot()).toMatchObject({ bytes: 100, parts: 1 });
  });
});

describe('BufferPool', () => {
  it('never allocates more than its capacity and reuses returned buffers', async () => {
    const pool = new BufferPool(16, 2);
    const a = await pool.acquire();
    const b = await pool.acquire();
    let third: Buffer | null = null;
    const waiting = pool.acquire().then((x) => (third = x));
    await Promise.resolve();
    expect(third).toBeNull();
    pool.release(a);
    await waiting;
    expect(third).toBe(a);
    expect(pool.allocated).toBe(2);
    pool.release(b);
  });
});

describe('RateLimiter (bwlimit)', () => {
  it('lets a burst through, then holds the average rate, debt included', async () => {
    const { RateLimiter } = await import('../../host/src/transfer/rate-limit.js');
    vi.useFakeTimers();
    try {
      let t = 0;
      const rl = new RateLimiter(1024, () => t); // 1 MiB/s, burst 128 KiB
      let done = false;
      await rl.take(128 * 1024); // the burst: no wait
      const p = rl.take(512 * 1024).then(() => (done = true)); // half a second of debt
      await vi.advanceTimersByTimeAsync(499);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(2);
      expect(done).toBe(true);
      await p;
      // aborting releases a waiter at once
      t = 501;
      const ac = new AbortController();
      let released = false;
      const q = rl.take(10 << 20, ac.signal).then(() => (released = true));
      ac.abort();
      await vi.advanceTimersByTimeAsync(0);
      expect(released).toBe(true);
      await q;
    } finally {
      vi.useRealTimers();
    }
  });

  it('delay() charges the bytes and says how long until the bucket is out of debt', async () => {
    const { RateLimiter } = await import('../../host/src/transfer/rate-limit.js');
    let t = 0;
    const rl = new RateLimiter(1024, () => t); // 1 MiB/s, burst 128 KiB
    expect(rl.delay(128 * 1024)).toBe(0);
    expect(rl.delay(256 * 1024)).toBeCloseTo(250, 6);
    t = 250; // paid off exactly
    expect(rl.delay(0)).toBe(0);
    t = 10_000; // idle time refills the burst only, never more
    expect(rl.delay(128 * 1024)).toBe(0);
    expect(rl.delay(1024)).toBeCloseTo(1000 / 1024, 6);
  });
});
