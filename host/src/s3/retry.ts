/**
 * A retry loop that knows nothing about HTTP: the caller says per error whether to try again
 * (and may ask for an immediate retry, e.g. after correcting the clock). Delays are exponential
 * with full jitter under a cap, so many workers that failed together do not retry together.
 */
import { onAbort } from '../util/on-abort.js';

export interface RetryPolicy {
  /** retries after the first attempt */
  maxRetries: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 5, baseDelayMs: 200, maxDelayMs: 20_000 };

export type RetryDecision = false | { delayMs?: number };

export interface RetryHooks {
  /** whether error e of attempt n (0-based) is worth another attempt */
  decide(e: unknown, attempt: number): RetryDecision;
  onRetry?(e: unknown, attempt: number, delayMs: number): void;
  signal?: AbortSignal;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Full jitter: uniform in [0, min(cap, base·2^attempt)). */
export function backoffDelay(p: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Parts waiting out a backoff or a bandwidth limit at once share one listener on the signal. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      stopWaiting();
      resolve();
    }, ms);
    const stopWaiting = onAbort(signal, () => {
      clearTimeout(t);
      reject(signal!.reason);
    });
  });
}

export async function withRetry<T>(policy: RetryPolicy, hooks: RetryHooks, attemptFn: (attempt: number) => Promise<T>): Promise<T> {
  const random = hooks.random ?? Math.random;
  const doSleep = hooks.sleep ?? sleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptFn(attempt);
    } catch (e) {
      if (attempt >= policy.maxRetries || hooks.signal?.aborted) throw e;
      const d = hooks.decide(e, attempt);
      if (d === false) throw e;
      const delay = d.delayMs ?? backoffDelay(policy, attempt, random);
      hooks.onRetry?.(e, attempt, delay);
      if (delay > 0) await doSleep(delay, hooks.signal);
    }
  }
}
