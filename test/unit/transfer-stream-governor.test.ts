// The StreamGovernor's decision: one stream, then two, then `max` only when two moved at least
// WIDEN_GAIN times what one did, else one for the rest.
import { describe, expect, it } from 'vitest';
import { StreamGovernor, WIDEN_GAIN } from '../../host/src/transfer/stream-governor.js';

/** A governor on a fake clock (ms) and byte counter. */
function rig(max: number) {
  const s = { t: 0, moved: 0 };
  const g = new StreamGovernor(max, () => s.moved, () => s.t);
  return { s, g };
}

describe('StreamGovernor', () => {
  it('one stream first, two once the first batch is in', () => {
    const { s, g } = rig(4);
    g.start();
    expect(g.target).toBe(1);
    s.t = 100;
    s.moved = 100;
    g.batchDone();
    expect([g.target, g.settled]).toEqual([2, false]);
  });

  it('widens to max when two streams move twice what one did', () => {
    const { s, g } = rig(4);
    g.start();
    [s.t, s.moved] = [100, 100];
    g.batchDone();
    [s.t, s.moved] = [150, 200];
    g.batchDone();
    expect(g.target).toBe(2);
    [s.t, s.moved] = [200, 300];
    g.batchDone();
    expect([g.target, g.settled]).toEqual([4, true]);
  });

  it('goes back to one when two are no faster, and stays there', () => {
    const { s, g } = rig(4);
    g.start();
    [s.t, s.moved] = [100, 100];
    g.batchDone();
    [s.t, s.moved] = [300, 300];
    g.batchDone();
    g.batchDone();
    expect([g.target, g.settled]).toEqual([1, true]);
    [s.t, s.moved] = [301, 10_000];
    g.batchDone();
    expect(g.target).toBe(1);
  });

  it('the gain needed is WIDEN_GAIN: just below stays at one, at it widens', () => {
    for (const [gain, want] of [
      [WIDEN_GAIN - 0.01, 1],
      [WIDEN_GAIN, 3],
    ] as const) {
      const { s, g } = rig(3);
      g.start();
      [s.t, s.moved] = [1000, 1000];
      g.batchDone();
      [s.t, s.moved] = [2000, 1000 + 1000 * gain];
      g.batchDone();
      g.batchDone();
      expect(g.target).toBe(want);
    }
  });

  it('a download of concurrency 1 never widens', () => {
    const { s, g } = rig(1);
    g.start();
    expect([g.target, g.settled]).toEqual([1, true]);
    [s.t, s.moved] = [1, 1e9];
    g.batchDone();
    expect(g.target).toBe(1);
  });
});
