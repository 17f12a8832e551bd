// Multipart planning at the S3 limits: 10,000 parts, parts 5 MiB..5 GiB, objects ≤ 5 TiB.
import { describe, expect, it } from 'vitest';
import { PveS3Error } from '../../host/src/util/errors.js';
import { MAX_OBJECT_SIZE, PlanError, planUpload, type UploadPlan } from '../../host/src/wasm/planner.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

/** Walks every part and checks the S3 rules; returns the parts' total length. */
function checkParts(p: UploadPlan): number {
  expect(p.partCount).toBeGreaterThanOrEqual(1);
  expect(p.partCount).toBeLessThanOrEqual(10_000);
  let next = 0;
  for (let n = 1; n <= p.partCount; n++) {
    const part = p.part(n);
    expect(part.partNumber).toBe(n);
    if (part.offset !== next) expect.fail(`part ${n} starts at ${part.offset}, expected ${next}`);
    const last = n === p.partCount;
    if (p.multipart) {
      if (part.length > 5 * GiB) expect.fail(`part ${n} is ${part.length} bytes > 5 GiB`);
      if (!last && part.length !== p.partSize) expect.fail(`part ${n} is ${part.length} bytes, not the plan's ${p.partSize}`);
      if (!last && part.length < 5 * MiB) expect.fail(`part ${n} is ${part.length} bytes < 5 MiB`);
      if (last && p.size !== null && part.length < 1) expect.fail('empty last part');
    }
    next += part.length;
  }
  expect(() => p.part(0)).toThrow(PlanError);
  expect(() => p.part(p.partCount + 1)).toThrow(PlanError);
  return next;
}

/** The rule, written independently: chunk size unless 10,000 parts of it are too few; then the
 *  smallest whole MiB that makes 10,000 parts enough. */
function expectedPartSize(bytes: number, chunk: number): number {
  if (bytes <= 10_000 * chunk) return chunk;
  return Math.ceil(Math.ceil(bytes / 10_000) / MiB) * MiB;
}

function checkKnown(size: number, chunkMB: number): UploadPlan {
  const chunk = chunkMB * MiB;
  const p = planUpload({ size, chunkSizeMB: chunkMB });
  expect(p.size).toBe(size);
  expect(p.capacity).toBe(size);
  if (size <= chunk) {
    expect(p.multipart).toBe(false);
    expect(p.partCount).toBe(1);
    expect(p.part(1)).toEqual({ partNumber: 1, offset: 0, length: size });
  } else {
    expect(p.multipart).toBe(true);
    expect(p.partSize).toBe(expectedPartSize(size, chunk));
    expect(p.partSize % MiB).toBe(0);
    expect(p.partCount).toBe(Math.ceil(size / p.partSize));
  }
  expect(checkParts(p)).toBe(size);
  return p;
}

describe('planUpload, known size', () => {
  it('0 bytes and 1 byte: one PUT', () => {
    expect(checkKnown(0, 5).multipart).toBe(false);
    expect(checkKnown(1, 5).multipart).toBe(false);
    expect(checkKnown(0, 5).partSize).toBe(5 * MiB); // never a zero-length buffer for readers
  });

  it('exactly 5 MiB with 5 MB chunks: one PUT; one byte more: two parts', () => {
    expect(checkKnown(5 * MiB, 5).multipart).toBe(false);
    const p = checkKnown(5 * MiB + 1, 5);
    expect([p.partCount, p.part(1).length, p.part(2).length]).toEqual([2, 5 * MiB, 1]);
  });

  it('exactly 5 GiB: one PUT at chunk 5120, 1024 parts at chunk 5', () => {
    expect(checkKnown(5 * GiB, 5120).multipart).toBe(false);
    const p = checkKnown(5 * GiB, 5);
    expect([p.partSize, p.partCount]).toEqual([5 * MiB, 1024]);
  });

  it.each([5, 8, 100, 5120])('10,000 × chunk fits exactly; one byte more raises the part size (chunk %i MB)', (mb) => {
    const exact = 10_000 * mb * MiB;
    if (exact <= MAX_OBJECT_SIZE) {
      const p = checkKnown(exact, mb);
      expect([p.partSize, p.partCount]).toEqual([mb * MiB, 10_000]);
      const q = checkKnown(exact + 1, mb);
      expect(q.partSize).toBe(mb * MiB + MiB);
      expect(q.partCount).toBeLessThanOrEqual(10_000);
    } else {
      // 10,000 × 5120 MB is beyond 5 TiB: the limit there is the object size
      expect(() => planUpload({ size: exact, chunkSizeMB: mb })).toThrow(PlanError);
    }
  });

  it('exactly 5 TiB: parts raised to 525 MiB (chunk 5) / kept at 5 GiB (chunk 5120)', () => {
    const p = checkKnown(5 * TiB, 5);
    expect([p.partSize, p.partCount]).toEqual([525 * MiB, Math.ceil((5 * TiB) / (525 * MiB))]);
    const q = checkKnown(5 * TiB, 5120);
    expect([q.partSize, q.partCount]).toEqual([5 * GiB, 1024]);
  });

  it('5 TiB + 1 byte: EntityTooLarge naming the size and the 5 TiB limit', () => {
    let err: unknown;
    try { planUpload({ size: 5 * TiB + 1, chunkSizeMB: 100 }); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(PlanError);
    expect(err).toBeInstanceOf(PveS3Error);
    const e = err as PlanError;
    expect(e.code).toBe('EntityTooLarge');
    expect(e.message).toContain(String(5 * TiB + 1));
    expect(e.message).toContain('5 TiB');
  });

  it('random sizes and chunk sizes obey every rule', () => {
    let seed = 42;
    const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
    for (let i = 0; i < 60; i++) {
      const mb = 5 + Math.floor(rnd() * 5116);
      const size = Math.floor(rnd() ** 3 * MAX_OBJECT_SIZE);
      checkKnown(size, mb);
    }
  });
});

describe('planUpload, unknown size (stream)', () => {
  it('without maxSize: parts of the chunk size, up to 10,000', () => {
    const p = planUpload({ chunkSizeMB: 16 });
    expect([p.multipart, p.size, p.partSize, p.partCount, p.capacity]).toEqual([true, null, 16 * MiB, 10_000, 160_000 * MiB]);
    expect(p.part(3)).toEqual({ partNumber: 3, offset: 32 * MiB, length: 16 * MiB });
    expect(checkParts(p)).toBe(p.capacity);
  });

  it('capacity never exceeds 5 TiB', () => {
    expect(planUpload({ chunkSizeMB: 5120 }).capacity).toBe(MAX_OBJECT_SIZE);
  });

  it('with maxSize: part size raised so maxSize fits in 10,000 parts', () => {
    const small = planUpload({ maxSize: 3 * MiB, chunkSizeMB: 5 });
    expect([small.partSize, small.partCount]).toEqual([5 * MiB, 1]);
    const exact = planUpload({ maxSize: 50_000 * MiB, chunkSizeMB: 5 });
    expect([exact.partSize, exact.partCount]).toEqual([5 * MiB, 10_000]);
    const over = planUpload({ maxSize: 50_000 * MiB + 1, chunkSizeMB: 5 });
    expect([over.partSize, over.partCount]).toEqual([6 * MiB, Math.ceil((50_000 * MiB + 1) / (6 * MiB))]);
    const max = planUpload({ maxSize: 5 * TiB, chunkSizeMB: 5 });
    expect(max.partSize).toBe(525 * MiB);
    expect(max.partSize * max.partCount).toBeGreaterThanOrEqual(5 * TiB);
    expect(max.capacity).toBe(5 * TiB);
    expect(planUpload({ maxSize: 0, chunkSizeMB: 5 }).partCount).toBe(1);
  });

  it('maxSize over 5 TiB: EntityTooLarge', () => {
    expect(() => planUpload({ maxSize: 5 * TiB + 1, chunkSizeMB: 5 })).toThrow(/5497558138881 bytes exceeds .*5 TiB/);
  });
});

describe('planUpload, bad input', () => {
  it.each([4, 5121, 0, -5, 5.5, Number.NaN, '8' as unknown as number])('multipart_chunk_size %s → InvalidChunkSize', (mb) => {
    let err: PlanError | undefined;
    try { planUpload({ size: 1, chunkSizeMB: mb }); } catch (e) { err = e as PlanError; }
    expect(err?.code).toBe('InvalidChunkSize');
    expect(err?.message).toBe(`invalid multipart_chunk_size '${String(mb)}': must be an integer 5..5120 (MiB)`);
  });

  it('chunk sizes 5 and 5120 are accepted', () => {
    expect(planUpload({ size: 1, chunkSizeMB: 5 }).partSize).toBe(5 * MiB);
    expect(planUpload({ size: 1, chunkSizeMB: 5120 }).partSize).toBe(5 * GiB);
  });

  it.each([-1, 1.5, Number.POSITIVE_INFINITY])('size %s → InvalidSize naming the field', (size) => {
    expect(() => planUpload({ size, chunkSizeMB: 5 })).toThrow(/invalid size/);
    expect(() => planUpload({ maxSize: size, chunkSizeMB: 5 })).toThrow(/invalid maxSize/);
  });

  it('plans are independent of each other (part() after another plan)', () => {
    const a = planUpload({ size: 20 * MiB + 7, chunkSizeMB: 5 });
    const b = planUpload({ size: 1000 * MiB, chunkSizeMB: 100 });
    expect(a.part(5)).toEqual({ partNumber: 5, offset: 20 * MiB, length: 7 });
    expect(b.part(10)).toEqual({ partNumber: 10, offset: 900 * MiB, length: 100 * MiB });
  });
});
