/**
 * Waits on an AbortSignal that share one 'abort' listener per signal, however many there are.
 *
 * Every request in flight waits on its caller's signal: a cold listing has 64 small GETs in flight
 * (store/concurrency.ts), a transfer up to 20 parts. A listener each is no leak (each is dropped as
 * its request settles) but is past Node's leak heuristic of 10 per signal, which then prints
 * "MaxListenersExceededWarning: Possible EventTarget memory leak detected" into a task log or a
 * terminal. Raising the limit would also hide a real leak; here the signal holds one listener
 * while anything waits and none once nothing does, so a wait that is never dropped still shows as
 * a listener left behind.
 */

interface Waits {
  readonly fns: Set<() => void>;
  readonly listener: () => void;
}

const bySignal = new WeakMap<AbortSignal, Waits>();

const none = (): void => undefined;

/**
 * Calls `fn` once when `signal` aborts; answers the function that stops waiting (call it when the
 * request or wait settles). An already aborted signal registers nothing: the caller checks
 * `signal.aborted` itself, as it would with addEventListener.
 */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal || signal.aborted) return none;
  let w = bySignal.get(signal);
  if (!w) {
    const fns = new Set<() => void>();
    const listener = (): void => {
      bySignal.delete(signal);
      // a wait dropped by an earlier one meanwhile does not run, as with EventTarget
      for (const f of [...fns]) {
        if (!fns.delete(f)) continue;
        try {
          f();
        } catch (e) {
          // as an EventTarget listener's throw: reported, and the other waits still run
          process.nextTick(() => {
            throw e;
          });
        }
      }
    };
    w = { fns, listener };
    bySignal.set(signal, w);
    signal.addEventListener('abort', listener, { once: true });
  }
  const waits = w;
  // its own entry: the same function waiting twice is two waits, each dropped on its own
  const entry = (): void => fn();
  waits.fns.add(entry);
  return () => {
    if (!waits.fns.delete(entry) || waits.fns.size > 0) return;
    signal.removeEventListener('abort', waits.listener);
    if (bySignal.get(signal) === waits) bySignal.delete(signal);
  };
}
