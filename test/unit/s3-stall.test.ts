// The stall clock (host/src/s3/stall.ts): what counts as the endpoint's silence. The gateway
// itself is frozen in test/integration/gateway-stall.test.ts.
import { describe, expect, it } from 'vitest';
import { LAST_TRY_MS, MIN_ATTEMPT_MS, StallClock } from '../../host/src/s3/stall.js';

function clock(limitMs: number) {
  let t = 1_000_000;
  const c = new StallClock(limitMs, () => t);
  return { c, pass: (ms: number) => (t += ms) };
}

describe('StallClock', () => {
  it('counts silence only while a request is outstanding', () => {
    const { c, pass } = clock(60_000);
    pass(3_600_000); // an hour idle between requests is nobody's silence
    c.enter();
    pass(20_000);
    expect(c.silentMs()).toBe(20_000);
    c.leave();
    pass(600_000);
    expect(c.silentMs()).toBe(20_000);
    c.enter(); // the caller's next try of the same work: the silence goes on from there
    pass(40_000);
    expect(c.stalled()).toBe(true);
  });

  it('any byte moved resets it, whichever request moved it', () => {
    const { c, pass } = clock(60_000);
    c.enter();
    c.enter();
    pass(59_000);
    c.progress();
    pass(30_000);
    expect(c.silentMs()).toBe(30_000);
    expect(c.stalled()).toBe(false);
    c.leave();
    pass(30_000);
    expect(c.stalled()).toBe(true);
  });

  it('cuts an attempt to what is left of the limit, never below the last try nor above its own timeout', () => {
    const { c, pass } = clock(300_000);
    c.enter();
    expect(c.attemptMs(120_000)).toBe(120_000);
    pass(250_000);
    expect(c.attemptMs(120_000)).toBe(50_000);
    pass(100_000);
    expect(c.attemptMs(120_000)).toBe(LAST_TRY_MS);
    expect(c.attemptMs(2_000)).toBe(2_000);
    // a request the server answers only after its work waits against a longer limit
    expect(c.stalled(600_000)).toBe(false);
    expect(c.attemptMs(600_000, 600_000)).toBe(250_000);
  });

  it('a retry just short of the limit gets what is left (at least MIN_ATTEMPT_MS), not a last try', () => {
    const { c, pass } = clock(10_000);
    c.enter();
    pass(9_990);
    expect(c.attemptMs(10_000)).toBe(MIN_ATTEMPT_MS);
    pass(500);
    expect(c.attemptMs(10_000)).toBe(LAST_TRY_MS);
  });
});
