import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { sleep } from '../../host/src/s3/retry.js';
import { onAbort } from '../../host/src/util/on-abort.js';

const listeners = (s: AbortSignal): number => getEventListeners(s, 'abort').length;

describe('onAbort', () => {
  it('100 waits hold one listener on the signal; dropping them all leaves none', () => {
    const ac = new AbortController();
    const stops = Array.from({ length: 100 }, () => onAbort(ac.signal, () => undefined));
    expect(listeners(ac.signal)).toBe(1);
    for (const stop of stops.slice(1)) stop();
    expect(listeners(ac.signal)).toBe(1);
    stops[0]!();
    expect(listeners(ac.signal)).toBe(0);
    // waiting again after that registers afresh
    const stop = onAbort(ac.signal, () => undefined);
    expect(listeners(ac.signal)).toBe(1);
    stop();
    expect(listeners(ac.signal)).toBe(0);
  });

  it('an abort runs each wait still held once, in order, and none that was dropped', () => {
    const ac = new AbortController();
    const ran: string[] = [];
    const fn = () => ran.push('twice');
    onAbort(ac.signal, () => ran.push('a'));
    const dropB = onAbort(ac.signal, () => ran.push('b'));
    onAbort(ac.signal, fn);
    onAbort(ac.signal, fn); // the same function waiting twice is two waits
    dropB();
    dropB(); // dropping twice is harmless
    ac.abort();
    ac.abort();
    expect(ran).toEqual(['a', 'twice', 'twice']);
    expect(listeners(ac.signal)).toBe(0);
  });

  it('a wait dropped by another wait during the abort does not run', () => {
    const ac = new AbortController();
    const ran: string[] = [];
    let dropSecond = (): void => undefined;
    onAbort(ac.signal, () => {
      ran.push('first');
      dropSecond();
    });
    dropSecond = onAbort(ac.signal, () => ran.push('second'));
    ac.abort();
    expect(ran).toEqual(['first']); // as EventTarget does with a listener removed meanwhile
    expect(listeners(ac.signal)).toBe(0);
  });

  it('an aborted signal or none registers nothing', () => {
    const ac = new AbortController();
    ac.abort();
    let ran = 0;
    onAbort(ac.signal, () => ran++)();
    onAbort(undefined, () => ran++)();
    expect(ran).toBe(0);
    expect(listeners(ac.signal)).toBe(0);
  });

  it('sleep: 50 backoffs at once hold one listener, and none once they are over or cancelled', async () => {
    const ac = new AbortController();
    const waits = Array.from({ length: 50 }, () => sleep(1, ac.signal));
    expect(listeners(ac.signal)).toBe(1);
    await Promise.all(waits);
    expect(listeners(ac.signal)).toBe(0);
    const long = Array.from({ length: 50 }, () => sleep(60_000, ac.signal));
    expect(listeners(ac.signal)).toBe(1);
    ac.abort(new Error('stop'));
    const settled = await Promise.allSettled(long);
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'stop')).toBe(true);
    expect(listeners(ac.signal)).toBe(0);
  });
});
