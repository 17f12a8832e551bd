/** compareKeys orders keys as S3 lists them: by their UTF-8 bytes (Buffer.compare as the oracle). */
import { describe, expect, it } from 'vitest';
import { compareKeys } from '../../host/src/s3/key-order.js';

describe('compareKeys', () => {
  it('agrees with the order of the UTF-8 bytes on 20,000 pairs of mixed keys (fixed seed)', () => {
    let seed = 42;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const chars = ['a', 'b', '/', '-', '.', '\u007f', '\u0080', 'é', '\u07ff', '\u0800', '\ud7ff', '\ue000', '\uffef', '\ufffd', '\uffff', '\u{10000}', '\u{1f600}', '\u{10ffff}'];
    const key = () => Array.from({ length: rnd(5) }, () => chars[rnd(chars.length)]).join('');
    for (let i = 0; i < 20000; i++) {
      const a = key();
      const b = rnd(4) === 0 ? a + key() : key();
      expect(Math.sign(compareKeys(a, b)), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`).toBe(Buffer.compare(Buffer.from(a), Buffer.from(b)));
    }
  });

  it('puts a character beyond U+FFFF after U+E000-U+FFFF, where JavaScript puts it before', () => {
    expect(compareKeys('\u{1f600}', '\ufffd')).toBeGreaterThan(0);
    expect('\u{1f600}' < '\ufffd').toBe(true);
  });
});
