// The 4-lane SIMD SHA-256: every lane equals the single-stream result for different inputs of
// different lengths, including lanes that finish long before the others.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sha256, sha256x4 } from '../../host/src/wasm/digests.js';
import { regions } from '../../host/src/wasm/core.js';
import { toHex } from '../../host/src/wasm/encoding.js';
import { rng, testSeed } from '../helpers/random.js';

const seed = testSeed();
const nodeSha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');

describe(`sha256x4 (seed ${seed})`, () => {
  const r = rng(seed);

  it('four different inputs of different lengths around block boundaries', () => {
    const lens = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 200, 1000, 4097];
    for (let i = 0; i < 200; i++) {
      const inputs = [0, 1, 2, 3].map(() => r.bytes(i < 100 ? lens[r.int(lens.length)]! : r.int(3000)));
      const got = sha256x4(inputs).map(toHex);
      expect(got, `lens ${inputs.map((d) => d.length).join(',')}`).toEqual(inputs.map(nodeSha));
    }
  });

  it('equals single-stream Sha256 per lane for 1, 2 and 3 inputs', () => {
    for (const n of [1, 2, 3]) {
      const inputs = Array.from({ length: n }, () => r.bytes(r.int(2000)));
      expect(sha256x4(inputs).map(toHex)).toEqual(inputs.map((d) => toHex(Sha256.hash(d))));
    }
  });

  it('same content in every lane and identical lanes', () => {
    const d = r.bytes(777);
    expect(sha256x4([d, d, d, d]).map(toHex)).toEqual([d, d, d, d].map(nodeSha));
  });

  it('lanes larger than their I/O quarter, one lane much longer than the rest', () => {
    const q = regions().ioSize / 4;
    const inputs = [r.bytes(q * 3 + 100), r.bytes(q + 64), r.bytes(5), r.bytes(q * 2 - 1)];
    expect(sha256x4(inputs).map(toHex)).toEqual(inputs.map(nodeSha));
  });

  it('does not disturb a running Sha256 instance', () => {
    const d = r.bytes(500);
    const h = new Sha256().update(d.subarray(0, 100));
    sha256x4([r.bytes(300), r.bytes(900)]);
    h.update(d.subarray(100));
    expect(toHex(h.digest())).toBe(nodeSha(d));
  });

  it('rejects 0 or more than 4 inputs, and non-bytes, naming what is allowed', () => {
    expect(() => sha256x4([])).toThrow(/length 0\): sha256x4 takes an array of 1\.\.4 Uint8Arrays/);
    expect(() => sha256x4([1, 2, 3, 4, 5].map(() => new Uint8Array()))).toThrow(/length 5/);
    expect(() => sha256x4(['abc' as unknown as Uint8Array])).toThrow(/invalid inputs\[0\] 'string': must be a Uint8Array/);
  });
});
