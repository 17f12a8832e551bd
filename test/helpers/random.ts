/**
 * Seeded randomness for property tests, so a failure can be replayed: the seed is printed in
 * the test name and PVE_S3_TEST_SEED fixes it.
 */
export function testSeed(): number {
  const s = process.env.PVE_S3_TEST_SEED;
  return s !== undefined && s !== '' ? Number(s) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
}

/** mulberry32: tiny, fast, good enough to pick lengths, splits and bytes. */
export function rng(seed: number): { int(maxExclusive: number): number; bytes(n: number): Uint8Array } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  return {
    int: (maxExclusive) => Math.floor(next() * maxExclusive),
    bytes: (n) => {
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i += 4) {
        const v = (next() * 2 ** 32) >>> 0;
        b[i] = v;
        if (i + 1 < n) b[i + 1] = v >>> 8;
        if (i + 2 < n) b[i + 2] = v >>> 16;
        if (i + 3 < n) b[i + 3] = v >>> 24;
      }
      return b;
    },
  };
}

/** Random cut points of [0, n): sorted, duplicates allowed (→ 0-length updates). */
export function splits(r: ReturnType<typeof rng>, n: number, count: number): number[] {
  const cuts = [0];
  for (let i = 0; i < count; i++) cuts.push(r.int(n + 1));
  cuts.push(n);
  return cuts.sort((x, y) => x - y);
}
