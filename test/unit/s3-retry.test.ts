import { describe, expect, it } from 'vitest';
import { backoffDelay, withRetry } from '../../host/src/s3/retry.js';

const policy = { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 1000 };

describe('backoffDelay (full jitter, capped)', () => {
  it('grows exponentially and stays under the cap', () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 4, 10, 60].map((a) => backoffDelay(policy, a, top))).toEqual([99, 199, 399, 799, 999, 999, 999]);
    expect(backoffDelay(policy, 5, () => 0)).toBe(0);
  });
});

describe('withRetry', () => {
  const noSleep = { sleep: async () => {} };

  it('retries retryable failures then returns', async () => {
    let n = 0;
    const slept: number[] = [];
    const r = await withRetry(policy, { decide: () => ({}), sleep: async (ms) => void slept.push(ms), random: () => 0.5 }, async () => {
      if (++n < 3) throw new Error('flaky');
      return 'ok';
    });
    expect(r).toBe('ok');
    expect(n).toBe(3);
    expect(slept).toEqual([50, 100]);
  });

  it('gives up after maxRetries and throws the last error', async () => {
    let n = 0;
    await expect(
      withRetry(policy, { decide: () => ({}), ...noSleep }, async () => {
        throw new Error(`fail ${++n}`);
      }),
    ).rejects.toThrow('fail 4');
  });

  it('does not retry what decide refuses', async () => {
    let n = 0;
    await expect(
      withRetry(policy, { decide: () => false, ...noSleep }, async () => {
        n++;
        throw new Error('fatal');
      }),
    ).rejects.toThrow('fatal');
    expect(n).toBe(1);
  });

  it('an explicit delay (e.g. 0 after a clock fix) overrides backoff', async () => {
    const slept: number[] = [];
    let n = 0;
    await withRetry(policy, { decide: () => ({ delayMs: 0 }), sleep: async (ms) => void slept.push(ms) }, async () => {
      if (++n < 2) throw new Error('skew');
    });
    expect(slept).toEqual([]);
  });

  it('stops waiting when aborted', async () => {
    const ac = new AbortController();
    const p = withRetry({ ...policy, baseDelayMs: 60_000, maxDelayMs: 60_000 }, { decide: () => ({}), signal: ac.signal, random: () => 0.9 }, async () => {
      throw new Error('x');
    });
    setTimeout(() => ac.abort(new Error('cancelled')), 10);
    await expect(p).rejects.toThrow('cancelled');
  });
});
