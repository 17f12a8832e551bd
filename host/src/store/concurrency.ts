/** Runs fn over items with at most `limit` in flight; rejects with the first error after all settle. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined) {
      const i = next++;
      if (i >= items.length) return;
      try {
        results[i] = await fn(items[i]!, i);
      } catch (e) {
        failure ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/**
 * Awaits every promise (one round of requests sent together: none is left running when this
 * returns, none rejects unhandled), then answers their values or throws the error of the first
 * that failed in the order given — the caller's priority (a missing object before a sidecar's
 * failure), not whichever failed first in time.
 */
export async function allInOrder<T extends readonly unknown[]>(ps: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(ps);
  for (const r of settled) if (r.status === 'rejected') throw r.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

/**
 * GETs at once of each kind a listing finds missing from its caches (`.notes` sidecars,
 * manifests for the trust verdicts): both kinds run together, so a cold listing has twice this in
 * flight. Small objects, so the gateway's per-request latency is the cost: 5,000 backups cold
 * (no shared listing index) were 43-49 s with 16 notes then 8 manifests at once, one kind after
 * the other; both together 16 each 28.4/28.6 s, 32 each 25.8/22.5 s (the host's list op, test
 * RadosGW on this 2-core machine at load 14-19, alternated). Beyond that the gateway is the
 * limit; 64 small GETs in flight is what S3 clients commonly allow (the AWS SDKs' 50 sockets).
 */
export const LIST_FETCH_PARALLEL = 32;
