// CRC32C / CRC64NVME streaming and combine(): combine equals the CRC of the concatenation for
// random splits (lenB = 0 included) and for lengths beyond 2^32 bytes.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Crc32c, Crc64Nvme } from '../../host/src/wasm/digests.js';
import { regions, type DigestCore } from '../../host/src/wasm/core.js';
import { corePath, loadCore } from '../../host/src/wasm/load.js';
import { crc32cBase64, crc64Base64 } from '../../host/src/wasm/encoding.js';
import { rng, splits, testSeed } from '../helpers/random.js';

const seed = testSeed();

// Bitwise reference implementations, independent of the table-driven core.
function refCrc32c(d: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of d) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
function refCrc64(d: Uint8Array): bigint {
  const P = 0x9a6c9329ac4bc9b5n;
  let c = 0xffffffffffffffffn;
  for (const b of d) {
    c ^= BigInt(b);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ P : c >> 1n;
  }
  return c ^ 0xffffffffffffffffn;
}

/** Feeds n zero bytes in bounded pieces (no multi-GB allocation). */
function zeros<T extends { update(d: Uint8Array): unknown }>(h: T, n: number): T {
  const z = new Uint8Array(16 << 20);
  for (let left = n; left > 0; left -= z.length) h.update(left >= z.length ? z : z.subarray(0, left));
  return h;
}

describe(`Crc32c (seed ${seed})`, () => {
  const r = rng(seed);

  it('equals a bitwise reference for lengths 0..300 with random splits and alignments', () => {
    for (let n = 0; n <= 300; n++) {
      const buf = r.bytes(n + 7);
      const at = r.int(8);
      const d = buf.subarray(at, at + n);
      expect(Crc32c.hash(d), `len ${n}`).toBe(refCrc32c(d));
      const cuts = splits(r, n, r.int(6));
      const h = new Crc32c();
      for (let i = 1; i < cuts.length; i++) h.update(d.subarray(cuts[i - 1], cuts[i]));
      expect(h.digest(), `len ${n} cuts ${cuts.join(',')}`).toBe(refCrc32c(d));
    }
  });

  it('digest() can be read mid-stream and the stream continued', () => {
    const d = r.bytes(1000);
    const h = new Crc32c().update(d.subarray(0, 400));
    expect(h.digest()).toBe(refCrc32c(d.subarray(0, 400)));
    expect(h.update(d.subarray(400)).digest()).toBe(refCrc32c(d));
  });

  it('larger than the I/O region', () => {
    const d = r.bytes(regions().ioSize * 2 + 3);
    expect(Crc32c.hash(d)).toBe(refCrc32c(d));
  });

  it('combine(crcA, crcB, lenB) equals the CRC of A‖B for random splits, lenB = 0 included', () => {
    for (let i = 0; i < 300; i++) {
      const n = r.int(i < 100 ? 100 : 20000);
      const d = r.bytes(n);
      const cut = i % 10 === 0 ? n : r.int(n + 1); // every 10th: lenB = 0
      const a = Crc32c.hash(d.subarray(0, cut));
      const b = Crc32c.hash(d.subarray(cut));
      expect(Crc32c.combine(a, b, n - cut), `n ${n} cut ${cut}`).toBe(Crc32c.hash(d));
    }
  });

  it('combine over more than 2^32 bytes (multi-GB part) equals streaming the concatenation', () => {
    const a = r.bytes(1000);
    const lenB = 2 ** 32 + 3;
    const whole = zeros(new Crc32c().update(a), lenB).digest();
    const b = zeros(new Crc32c(), lenB).digest();
    expect(Crc32c.combine(Crc32c.hash(a), b, lenB)).toBe(whole);
  });

  it('combine is associative for 5 TiB-scale lengths (parts of a maximum-size object)', () => {
    const [x, y, z] = [0x12345678, 0x9abcdef0, 0x0badf00d];
    const ly = 5 * 2 ** 40 - 12345;
    const lz = 5 * 2 ** 30 + 1;
    const left = Crc32c.combine(Crc32c.combine(x, y, ly), z, lz);
    const right = Crc32c.combine(x, Crc32c.combine(y, z, lz), ly + lz);
    expect(left).toBe(right);
  });

  it('rejects bad combine arguments naming the key and what is allowed', () => {
    expect(() => Crc32c.combine(1, 2, -1)).toThrow("invalid lenB '-1': must be a non-negative safe integer (bytes)");
    expect(() => Crc32c.combine(1, 2, 1.5)).toThrow(/invalid lenB '1.5'/);
    expect(() => Crc32c.combine(2 ** 32, 2, 1)).toThrow(/invalid a '4294967296': must be a CRC-32C value/);
  });

  it('base64 is the big-endian CRC', () => {
    expect(crc32cBase64(0xe3069283)).toBe('4waSgw==');
  });
});

describe(`Crc64Nvme (seed ${seed})`, () => {
  const r = rng(seed ^ 0x27d4eb2f);

  it('equals a bitwise reference for lengths 0..200 with random splits and alignments', () => {
    for (let n = 0; n <= 200; n++) {
      const buf = r.bytes(n + 15);
      const at = r.int(16);
      const d = buf.subarray(at, at + n);
      const want = refCrc64(d);
      expect(Crc64Nvme.hash(d), `len ${n}`).toBe(want);
      const cuts = splits(r, n, r.int(6));
      const h = new Crc64Nvme();
      for (let i = 1; i < cuts.length; i++) h.update(d.subarray(cuts[i - 1], cuts[i]));
      expect(h.digest(), `len ${n} cuts ${cuts.join(',')}`).toBe(want);
    }
  });

  it('larger than the I/O region', () => {
    const d = r.bytes(regions().ioSize + 999);
    const h = new Crc64Nvme();
    h.update(d.subarray(0, 12345)).update(d.subarray(12345));
    expect(h.digest()).toBe(Crc64Nvme.hash(d));
    expect(Crc64Nvme.hash(d.subarray(0, 5000))).toBe(refCrc64(d.subarray(0, 5000)));
  });

  it('combine equals the CRC of A‖B for random splits, lenB = 0 included', () => {
    for (let i = 0; i < 300; i++) {
      const n = r.int(i < 100 ? 100 : 20000);
      const d = r.bytes(n);
      const cut = i % 10 === 0 ? n : r.int(n + 1);
      const a = Crc64Nvme.hash(d.subarray(0, cut));
      const b = Crc64Nvme.hash(d.subarray(cut));
      expect(Crc64Nvme.combine(a, b, n - cut), `n ${n} cut ${cut}`).toBe(Crc64Nvme.hash(d));
    }
  });

  it('combine over more than 2^32 bytes equals streaming the concatenation', () => {
    const a = r.bytes(333);
    const lenB = 2 ** 32 + 5;
    const whole = zeros(new Crc64Nvme().update(a), lenB).digest();
    const b = zeros(new Crc64Nvme(), lenB).digest();
    expect(Crc64Nvme.combine(Crc64Nvme.hash(a), b, lenB)).toBe(whole);
  });

  it('combine is associative for 5 TiB-scale lengths', () => {
    const [x, y, z] = [0xfedcba9876543210n, 0x0123456789abcdefn, 0x8000000000000001n];
    const ly = 5 * 2 ** 40 - 7;
    const lz = 3 * 2 ** 32 + 11;
    expect(Crc64Nvme.combine(Crc64Nvme.combine(x, y, ly), z, lz)).toBe(Crc64Nvme.combine(x, Crc64Nvme.combine(y, z, lz), ly + lz));
  });

  it('rejects bad combine arguments', () => {
    expect(() => Crc64Nvme.combine(1n, 2n, Number.NaN)).toThrow(/invalid lenB 'NaN'/);
    expect(() => Crc64Nvme.combine(-1n, 2n, 1)).toThrow(/invalid a '-1': must be a CRC-64\/NVME value/);
    expect(() => Crc64Nvme.combine(1n, 2n ** 64n, 1)).toThrow(/invalid b '18446744073709551616'/);
  });

  it('base64 is the big-endian CRC', () => {
    expect(crc64Base64(0xae8b14860a799888n)).toBe('rosUhgp5mIg=');
  });
});

// The tables are built by the first CRC call of an instance (not at instantiation, which every
// process pays): whichever export comes first, a fresh instance answers like the shared one.
describe('CRC tables of a fresh instance', () => {
  const fresh = (): DigestCore & { memory: { buffer: ArrayBuffer } } => {
    loadCore();
    // lib "ES2023" without DOM types no WebAssembly value (as in host/src/wasm/load.ts)
    const WA = (globalThis as unknown as { WebAssembly: { Module: new (b: Uint8Array) => object; Instance: new (m: object, i: object) => { exports: unknown } } }).WebAssembly;
    const m = new WA.Module(readFileSync(corePath()!));
    return new WA.Instance(m, { env: { abort: () => undefined } }).exports as DigestCore & { memory: { buffer: ArrayBuffer } };
  };
  const data = rng(seed).bytes(4096 + 7);
  const updateFirst = <T>(crc: (c: DigestCore, ptr: number, len: number) => T): T => {
    const c = fresh();
    new Uint8Array(c.memory.buffer).set(data, c.ioPtr());
    return crc(c, c.ioPtr(), data.length);
  };

  it('update first', () => {
    expect(updateFirst((c, p, n) => c.crc32cUpdate(0, p, n)) >>> 0).toBe(refCrc32c(data));
    expect(BigInt.asUintN(64, updateFirst((c, p, n) => c.crc64nvmeUpdate(0n, p, n)))).toBe(refCrc64(data));
  });

  it('combine first', () => {
    const cut = 1000;
    const [a32, b32] = [refCrc32c(data.subarray(0, cut)), refCrc32c(data.subarray(cut))];
    expect(fresh().crc32cCombine(a32, b32, data.length - cut) >>> 0).toBe(refCrc32c(data));
    const [a64, b64] = [refCrc64(data.subarray(0, cut)), refCrc64(data.subarray(cut))];
    expect(BigInt.asUintN(64, fresh().crc64nvmeCombine(BigInt.asIntN(64, a64), BigInt.asIntN(64, b64), data.length - cut))).toBe(refCrc64(data));
  });
});
