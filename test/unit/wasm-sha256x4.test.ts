// The 4-lane SIMD SHA-256: every lane equals the single-stream result for different inputs of
// different lengths, including lanes that finish long before the others; the streaming form
// (Sha256x4) with random, uneven splits per lane.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Sha256, Sha256x4, sha256x4 } from '../../host/src/wasm/digests.js';
import { lendBulk, regions, returnBulk } from '../../host/src/wasm/core.js';
import { Crc64Nvme } from '../../host/src/wasm/digests.js';
import { heap } from '../../host/src/wasm/load.js';
import { toHex } from '../../host/src/wasm/encoding.js';
import { rng, splits, testSeed } from '../helpers/random.js';

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

describe(`Sha256x4 streaming (seed ${seed})`, () => {
  const r = rng(seed ^ 0x85ebca6b);

  /** Feeds each lane's input in its own random cuts (0-length pieces included), one piece per
   *  lane per update(), so lanes run out at different times and sit at different offsets. */
  function streamed(inputs: Uint8Array[], maxCuts: number): string[] {
    const pieces = inputs.map((d) => {
      const cuts = splits(r, d.length, r.int(maxCuts));
      return cuts.slice(1).map((c, i) => d.subarray(cuts[i], c));
    });
    const h = new Sha256x4(inputs.length);
    for (let step = 0; pieces.some((p) => step < p.length); step++) {
      h.update(pieces.map((p) => p[step]));
    }
    return h.digest().map(toHex);
  }

  it('random splits per lane (0-length and non-64-multiple pieces), lengths across block boundaries', () => {
    const lens = [0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 191, 192, 193, 1000, 4097];
    for (let i = 0; i < 300; i++) {
      const lanes = 1 + r.int(4);
      const inputs = Array.from({ length: lanes }, () => r.bytes(i < 150 ? lens[r.int(lens.length)]! : r.int(6000)));
      expect(streamed(inputs, 10), `lens ${inputs.map((d) => d.length).join(',')}`).toEqual(inputs.map(nodeSha));
    }
  });

  it('equal slices per lane (the parallel-parts pattern) over more than the I/O region', () => {
    const q = regions().ioSize / 4;
    const inputs = [r.bytes(q * 2 + 333), r.bytes(q * 2 + 333), r.bytes(q * 2 + 1), r.bytes(q + 7)];
    const h = new Sha256x4();
    const step = 100_003; // not a multiple of 64: every update leaves partial blocks behind
    for (let off = 0; off < inputs[0]!.length; off += step) h.update(inputs.map((d) => d.subarray(off, off + step)));
    expect(h.digest().map(toHex)).toEqual(inputs.map(nodeSha));
  });

  it('a lane fed alone, or lanes left out of an update, keep their own state', () => {
    const a = r.bytes(5000);
    const b = r.bytes(3000);
    const h = new Sha256x4(3);
    h.update([a.subarray(0, 1000)]);
    h.update([undefined, b.subarray(0, 70), undefined]);
    h.update([a.subarray(1000, 1001), b.subarray(70)]);
    h.update([a.subarray(1001)]);
    expect(h.digest().map(toHex)).toEqual([a, b, new Uint8Array()].map(nodeSha));
  });

  it('interleaved instances, Sha256 and sha256x4() in between, never share state', () => {
    const ins = [0, 1].map(() => [0, 1, 2, 3].map(() => r.bytes(700 + r.int(700))));
    const hs = [new Sha256x4(), new Sha256x4()];
    const single = new Sha256();
    const s = r.bytes(900);
    for (let off = 0; off < 1400; off += 129) {
      hs.forEach((h, k) => h.update(ins[k]!.map((d) => d.subarray(off, off + 129))));
      single.update(s.subarray(off, off + 129));
      sha256x4([r.bytes(200), r.bytes(300)]);
    }
    hs.forEach((h, k) => expect(h.digest().map(toHex)).toEqual(ins[k]!.map(nodeSha)));
    expect(toHex(single.digest())).toBe(nodeSha(s));
  });

  it('strings are UTF-8; use after digest() and bad arguments fail naming what is allowed', () => {
    expect(new Sha256x4(1).update(['grüße']).digest().map(toHex)).toEqual([createHash('sha256').update('grüße', 'utf8').digest('hex')]);
    const h = new Sha256x4(2);
    h.digest();
    expect(() => h.update([new Uint8Array(1)])).toThrow(/after digest\(\): create a new Sha256x4/);
    expect(() => new Sha256x4(5)).toThrow("invalid lanes '5': must be an integer 1..4");
    expect(() => new Sha256x4(0)).toThrow(/invalid lanes '0'/);
    expect(() => new Sha256x4(2).update([undefined, undefined, new Uint8Array(1)])).toThrow(/length 3\): Sha256x4.update takes an array of at most 2 slices/);
    expect(() => new Sha256x4().update([42 as unknown as Uint8Array])).toThrow(/invalid Sha256x4 chunks\[0\] 'number': must be a Uint8Array or a string/);
  });

  it('updateAt hashes lanes where they lie in a bulk region (uneven, unaligned pieces), as update() and node:crypto do; CRC-64 alike', () => {
    const region = lendBulk(4 << 16);
    try {
      for (let round = 0; round < 20; round++) {
        const n = 1 + r.int(4);
        const inputs = Array.from({ length: n }, () => r.bytes(r.int(1 << 16)));
        heap().fill(0xa5, region.ptr, region.ptr + region.size);
        inputs.forEach((d, l) => heap().set(d, region.ptr + l * (1 << 16)));
        const x = new Sha256x4(n);
        const crcs = inputs.map(() => new Crc64Nvme());
        const pos = inputs.map(() => 0);
        while (pos.some((p, l) => p < inputs[l]!.length)) {
          const lens = pos.map((p, l) => Math.min(r.int(5000), inputs[l]!.length - p));
          const ptrs = pos.map((p, l) => region.ptr + l * (1 << 16) + p);
          x.updateAt(ptrs, lens);
          lens.forEach((len, l) => crcs[l]!.updateAt(ptrs[l]!, len));
          lens.forEach((len, l) => (pos[l]! += len));
        }
        expect(x.digest().map(toHex), `lens ${inputs.map((d) => d.length).join(',')}`).toEqual(inputs.map(nodeSha));
        expect(crcs.map((c) => c.digest())).toEqual(inputs.map((d) => Crc64Nvme.hash(d)));
      }
    } finally {
      returnBulk(region);
    }
  });

  it('updateAt refuses a range outside the core\'s memory, by name', () => {
    const end = heap().length;
    expect(() => new Sha256x4(2).updateAt([0, end - 10], [64, 64])).toThrow(/invalid Sha256x4 lane 1 range \[\d+, \+64\): must lie inside the core's memory/);
    expect(() => new Crc64Nvme().updateAt(-1, 1)).toThrow(/invalid Crc64Nvme range/);
  });
});
