import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { LaneHasher } from '../../host/src/transfer/lane-hasher.js';
import { Sha256x4 } from '../../host/src/wasm/digests.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hex = (d: Uint8Array): string => Buffer.from(d).toString('hex');

/** Deterministic pseudo-random split sizes, so a failure can be replayed. */
function splitter(seed: number): (max: number) => number {
  let s = seed >>> 0;
  return (max) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return 1 + (s % max);
  };
}

describe('LaneHasher', () => {
  it('ranges of different sizes, fed in uneven interleaved pieces, each get their own SHA-256', () => {
    const sizes = [5 << 20, (3 << 20) + 17, 63, 0, (9 << 20) + 1, 1 << 20];
    const data = sizes.map((n) => randomBytes(n));
    const next = splitter(7);
    const h = new LaneHasher();
    // 6 ranges, at most 5 open at once: a second bank, and lanes reused after a digest
    const open = data.slice(0, 5).map((d, i) => ({ i, d, at: 0, s: h.stream() }));
    let waiting = data.slice(5).map((d, k) => ({ i: 5 + k, d }));
    const got = new Map<number, string>();
    while (open.length > 0) {
      const k = next(open.length) - 1;
      const r = open[k]!;
      const pieces: Uint8Array[] = [];
      for (let p = next(3); p > 0 && r.at < r.d.length; p--) {
        const n = Math.min(next(300_000), r.d.length - r.at);
        pieces.push(r.d.subarray(r.at, r.at + n));
        r.at += n;
      }
      r.s.update(pieces);
      if (r.at === r.d.length) {
        got.set(r.i, hex(r.s.digest()));
        open.splice(k, 1);
        const w = waiting.shift();
        if (w) open.push({ ...w, at: 0, s: h.stream() });
      }
    }
    waiting = [];
    expect([...got.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const [i, d] of got) expect(d, `range ${i}`).toBe(sha(data[i]!));
  });

  it('a dropped range leaves the others intact and its lane clean for the next range', () => {
    const a = randomBytes(3 << 20);
    const b = randomBytes(2 << 20);
    const c = randomBytes((2 << 20) + 5);
    const h = new LaneHasher();
    const sa = h.stream();
    const sb = h.stream();
    sa.update([a.subarray(0, 1 << 20)]);
    sb.update([b.subarray(0, 1 << 20)]);
    sa.update([a.subarray(1 << 20, 2 << 20)]);
    sb.drop();
    const sc = h.stream(); // takes the dropped lane
    sc.update([c.subarray(0, 1 << 20)]);
    sa.update([a.subarray(2 << 20)]);
    sc.update([c.subarray(1 << 20)]);
    expect(hex(sc.digest())).toBe(sha(c));
    expect(hex(sa.digest())).toBe(sha(a));
    expect(() => sa.digest()).toThrow(/after digest/);
  });

  it('Sha256x4.digestLane finishes one lane and restarts it empty; the other lanes go on', () => {
    const x = new Sha256x4(4);
    const d = [0, 1, 2, 3].map(() => randomBytes(200_000));
    x.update(d.map((b) => b.subarray(0, 100_000)));
    expect(hex(x.digestLane(2))).toBe(sha(d[2]!.subarray(0, 100_000)));
    x.update(d.map((b) => b.subarray(100_000)));
    const out = x.digest();
    expect(hex(out[0]!)).toBe(sha(d[0]!));
    expect(hex(out[2]!)).toBe(sha(d[2]!.subarray(100_000)));
    expect(hex(out[3]!)).toBe(sha(d[3]!));
    expect(() => new Sha256x4(2).digestLane(2)).toThrow(/invalid lane '2': must be an integer 0\.\.1/);
  });
});
