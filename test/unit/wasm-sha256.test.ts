// SHA-256, HMAC-SHA256 and MD5 against node:crypto and @aws-crypto/sha256-js with random inputs
// and random split points; interleaved instances; inputs larger than the I/O region.
import { createHash, createHmac } from 'node:crypto';
import { Sha256 as AwsSha256 } from '@aws-crypto/sha256-js';
import { describe, expect, it } from 'vitest';
import { Md5, Sha256, hmacSha256 } from '../../host/src/wasm/digests.js';
import { digestCore, regions } from '../../host/src/wasm/core.js';
import { heap, loadCore } from '../../host/src/wasm/load.js';
import { toHex } from '../../host/src/wasm/encoding.js';
import { rng, splits, testSeed } from '../helpers/random.js';

const seed = testSeed();
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const nodeSha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');
const nodeMd5 = (d: Uint8Array): string => createHash('md5').update(d).digest('hex');
async function awsSha(d: Uint8Array, key?: Uint8Array): Promise<string> {
  const h = key === undefined ? new AwsSha256() : new AwsSha256(key);
  h.update(d);
  return hex(await h.digest());
}

const BOUNDARY_LENGTHS = [0, 1, 3, 31, 32, 33, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 191, 192, 255, 256, 257, 1000, 4095, 4096, 4097];

describe(`SHA-256 vs node:crypto and @aws-crypto/sha256-js (seed ${seed})`, () => {
  const r = rng(seed);

  it('one-shot, every length 0..200 and block boundaries', async () => {
    const lengths = [...Array.from({ length: 201 }, (_, i) => i), ...BOUNDARY_LENGTHS];
    for (const n of lengths) {
      const d = r.bytes(n);
      const got = toHex(Sha256.hash(d));
      expect(got, `len ${n}`).toBe(nodeSha(d));
      expect(got, `len ${n}`).toBe(await awsSha(d));
    }
  });

  it('random split points, including 0-length and non-64-multiple updates', async () => {
    for (let round = 0; round < 300; round++) {
      const n = round < 200 ? round : r.int(5000);
      const d = r.bytes(n);
      const cuts = splits(r, n, r.int(8));
      const h = new Sha256();
      for (let i = 1; i < cuts.length; i++) h.update(d.subarray(cuts[i - 1], cuts[i]));
      const got = toHex(h.digest());
      expect(got, `len ${n} cuts ${cuts.join(',')}`).toBe(nodeSha(d));
      if (round % 10 === 0) expect(got).toBe(await awsSha(d));
    }
  });

  it('inputs larger than the I/O region, whole and in odd slices', () => {
    const io = regions().ioSize;
    const d = r.bytes(2 * io + io / 2 + 77);
    expect(toHex(Sha256.hash(d))).toBe(nodeSha(d));
    const h = new Sha256();
    const step = io - 13;
    for (let off = 0; off < d.length; off += step) h.update(d.subarray(off, off + step));
    expect(toHex(h.digest())).toBe(nodeSha(d));
  });

  it('accepts strings as UTF-8', () => {
    expect(toHex(Sha256.hash('grüße'))).toBe(createHash('sha256').update('grüße', 'utf8').digest('hex'));
  });

  it('interleaved instances never share state (more instances than WASM slots: spill path)', () => {
    const count = 150; // > SLOT_COUNT (64), so states are spilled to JS and restored
    const inputs = Array.from({ length: count }, (_, i) => r.bytes(i * 37 + r.int(300)));
    const hashers = inputs.map(() => new Sha256());
    const offsets = new Array<number>(count).fill(0);
    let remaining = inputs.reduce((s, d) => s + d.length, 0);
    while (remaining > 0) {
      const i = r.int(count);
      const d = inputs[i]!;
      const n = Math.min(r.int(130), d.length - offsets[i]!);
      hashers[i]!.update(d.subarray(offsets[i]!, offsets[i]! + n));
      offsets[i]! += n;
      remaining -= n;
    }
    // digest in a shuffled order too
    const order = Array.from({ length: count }, (_, i) => i);
    for (let i = count - 1; i > 0; i--) {
      const j = r.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const i of order) expect(toHex(hashers[i]!.digest()), `instance ${i}`).toBe(nodeSha(inputs[i]!));
  });

  it('an instance created after others were digested starts clean (slot reuse)', () => {
    const a = new Sha256().update('dirty state');
    a.digest();
    expect(toHex(new Sha256().digest())).toBe(nodeSha(new Uint8Array()));
  });

  it('rejects use after digest() with a clear error', () => {
    const h = new Sha256();
    h.digest();
    expect(() => h.update('x')).toThrow(/after digest\(\): create a new Sha256/);
    expect(() => h.digest()).toThrow(/DigestFinished|create a new Sha256/);
  });

  it('rejects non-byte input naming what is allowed', () => {
    expect(() => new Sha256().update(42 as unknown as Uint8Array)).toThrow(/invalid Sha256 input 'number': must be a Uint8Array or a string/);
  });
});

describe(`HMAC-SHA256 vs node:crypto and @aws-crypto/sha256-js (seed ${seed})`, () => {
  const r = rng(seed ^ 0x5bd1e995);

  it('random keys (0..200 bytes, across the 64-byte block) and messages', async () => {
    for (let i = 0; i < 200; i++) {
      const key = r.bytes(i < 140 ? i : r.int(300));
      const msg = r.bytes(r.int(i < 100 ? 200 : 3000));
      const got = toHex(hmacSha256(key, msg));
      expect(got, `key ${key.length} msg ${msg.length}`).toBe(createHmac('sha256', key).update(msg).digest('hex'));
      if (i % 10 === 0) expect(got).toBe(await awsSha(msg, key));
    }
  });

  it('a message larger than the I/O region', () => {
    const key = r.bytes(32);
    const msg = r.bytes(regions().ioSize * 2 + 5);
    expect(toHex(hmacSha256(key, msg))).toBe(createHmac('sha256', key).update(msg).digest('hex'));
  });

  it('string key and message are UTF-8, as SigV4 uses them', () => {
    expect(toHex(hmacSha256('AWS4secret', '20150830'))).toBe(createHmac('sha256', 'AWS4secret').update('20150830').digest('hex'));
  });

  it('raw export: out may overlap the key or the message (SigV4 chains keys in one buffer)', () => {
    const raw = loadCore() as unknown as { hmacSha256(k: number, kl: number, m: number, ml: number, out: number): void };
    const { io } = regions();
    for (const [keyLen, overlap] of [[32, 'key'], [20, 'msg'], [100, 'key']] as const) {
      const key = r.bytes(keyLen);
      const msg = r.bytes(77);
      heap().set(key, io);
      heap().set(msg, io + 256);
      const out = overlap === 'key' ? io : io + 256;
      raw.hmacSha256(io, keyLen, io + 256, msg.length, out);
      expect(hex(heap().slice(out, out + 32)), `${overlap} ${keyLen}`).toBe(createHmac('sha256', key).update(msg).digest('hex'));
    }
    expect(digestCore()).toBe(loadCore());
  });

  it('leaves no key material in WASM memory (key, key^ipad, key^opad)', () => {
    const key = r.bytes(40);
    const patterns = [0x00, 0x36, 0x5c].map((p) => Buffer.from(key.map((b) => b ^ p)));
    const leaks = (): number[] => {
      const mem = Buffer.from(heap().buffer);
      return patterns.map((p) => mem.indexOf(p.subarray(0, 16)));
    };
    hmacSha256(key, r.bytes(100));
    expect(leaks()).toEqual([-1, -1, -1]);
    // the raw one-shot export, as SigV4 uses it; the caller wipes its own copy of the key
    const raw = loadCore() as unknown as { hmacSha256(k: number, kl: number, m: number, ml: number, out: number): void };
    const { io } = regions();
    heap().set(key, io);
    raw.hmacSha256(io, key.length, io + 64, 10, io + 128);
    heap().fill(0, io, io + 64);
    expect(leaks()).toEqual([-1, -1, -1]);
  });

  it('leaves a running Sha256 instance untouched', () => {
    const d = r.bytes(1000);
    const h = new Sha256().update(d.subarray(0, 333));
    hmacSha256(r.bytes(100), r.bytes(5000));
    h.update(d.subarray(333));
    expect(toHex(h.digest())).toBe(nodeSha(d));
  });
});

describe(`MD5 vs node:crypto (seed ${seed})`, () => {
  const r = rng(seed ^ 0x9e3779b9);

  it('lengths 0..200 and block boundaries, random splits', () => {
    for (const n of [...Array.from({ length: 201 }, (_, i) => i), ...BOUNDARY_LENGTHS]) {
      const d = r.bytes(n);
      expect(toHex(Md5.hash(d)), `len ${n}`).toBe(nodeMd5(d));
      const cuts = splits(r, n, r.int(6));
      const h = new Md5();
      for (let i = 1; i < cuts.length; i++) h.update(d.subarray(cuts[i - 1], cuts[i]));
      expect(toHex(h.digest()), `len ${n} cuts ${cuts.join(',')}`).toBe(nodeMd5(d));
    }
  });

  it('larger than the I/O region', () => {
    const d = r.bytes(regions().ioSize * 3 + 1);
    expect(toHex(Md5.hash(d))).toBe(nodeMd5(d));
  });

  it('interleaved Md5 and Sha256 instances (more than the slot count)', () => {
    const inputs = Array.from({ length: 80 }, (_, i) => r.bytes(100 + i * 11));
    const md5s = inputs.map(() => new Md5());
    const shas = inputs.map(() => new Sha256());
    for (let off = 0; off < 1000; off += 17) {
      inputs.forEach((d, i) => {
        md5s[i]!.update(d.subarray(off, off + 17));
        shas[i]!.update(d.subarray(off, off + 17));
      });
    }
    inputs.forEach((d, i) => {
      expect(toHex(md5s[i]!.digest())).toBe(nodeMd5(d));
      expect(toHex(shas[i]!.digest())).toBe(nodeSha(d));
    });
  });
});
