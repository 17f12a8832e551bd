/**
 * DirectWriter on real files: whatever mix of direct writes, page-cache fragments and page-cache
 * fallbacks it makes, the file ends up holding exactly the bytes put, the last put of a region
 * winning. Where the temp directory's filesystem takes no O_DIRECT, the direct cases are skipped
 * with a note (the download then writes as before; transfer-direct-io.test.ts covers that).
 */
import { existsSync, openSync, closeSync, readFileSync, statfsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectWriter, STAGE, STAGES } from '../../host/src/transfer/direct-file.js';
import { Crc64Nvme } from '../../host/src/wasm/digests.js';
import { rng } from '../helpers/random.js';

const MiB = 1 << 20;
let dir: string;
let direct = false;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-direct-'));
  const probe = await writer('probe');
  direct = probe.w !== null;
  await probe.w?.close();
  closeSync(probe.fd);
  if (!direct) console.warn(`transfer-direct-file: ${dir} (f_type 0x${statfsSync(dir).type.toString(16)}) takes no O_DIRECT here: direct cases skipped`);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writer(name: string): Promise<{ w: DirectWriter | null; fd: number; path: string }> {
  const path = join(dir, name);
  const fd = openSync(path, 'w+');
  return { w: await DirectWriter.open(path, fd), fd, path };
}

function bytes(n: number, seed: number): Buffer {
  const b = rng(seed).bytes(n);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** `data` cut into pieces of odd sizes (up to 300 KiB), as a socket hands them over. */
function* pieces(data: Buffer, seed: number): Generator<[Buffer, number]> {
  const r = rng(seed);
  for (let off = 0; off < data.length; ) {
    const n = Math.min(data.length - off, 1 + r.int(300 * 1024));
    yield [data.subarray(off, off + n), off];
    off += n;
  }
}

describe('DirectWriter', () => {
  it('more than all stages hold, from an unaligned offset, put without a pause: the stages go direct, the rest through the page cache, every byte in place, the CRC fed from both', async (ctx) => {
    if (!direct) ctx.skip();
    const { w, fd, path } = await writer('burst');
    const data = bytes(STAGE * STAGES + 8 * MiB + 333, 1);
    const at = 12_345;
    const crc = new Crc64Nvme();
    // no await between the puts: no direct write can finish, so the stages run out
    for (const [p, off] of pieces(data, 2)) w!.put(p, at + off, crc);
    await w!.finish();
    expect(crc.digest()).toBe(Crc64Nvme.hash(data));
    closeSync(fd);
    const got = readFileSync(path);
    expect(got.length).toBe(at + data.length);
    expect(got.subarray(at).equals(data)).toBe(true);
    expect(got.subarray(0, at).every((b) => b === 0)).toBe(true);
    expect(w!.directBytes).toBeGreaterThan(STAGE * (STAGES - 1));
    expect(w!.directBytes).toBeLessThan(data.length);
  });

  it('two streams interleaved, at unaligned boundaries, with pauses: the file is both streams', async (ctx) => {
    if (!direct) ctx.skip();
    const { w, fd, path } = await writer('two');
    const a = bytes(9 * MiB + 5, 3);
    const b = bytes(11 * MiB + 4093, 4);
    const ia = pieces(a, 5);
    const ib = pieces(b, 6);
    for (let i = 0; ; i++) {
      const x = ia.next();
      const y = ib.next();
      if (x.done && y.done) break;
      if (!x.done) w!.put(x.value[0], x.value[1], null);
      // b follows a directly, mid-page
      if (!y.done) w!.put(y.value[0], a.length + y.value[1], null);
      if (i % 7 === 0) await new Promise((r) => setImmediate(r));
    }
    await w!.finish();
    closeSync(fd);
    expect(readFileSync(path).equals(Buffer.concat([a, b]))).toBe(true);
    expect(w!.directBytes).toBeGreaterThan(0);
  });

  it('a region put again after quiesce() holds the second bytes: the first attempt broke off mid-stage, with damaged bytes in flight and in a stage', async (ctx) => {
    if (!direct) ctx.skip();
    const { w, fd, path } = await writer('again');
    // as a range whose connection broke after a stage and 1 MiB + 100 bytes of damaged data, then fetched
    // whole: the second attempt fills whole stages, so none of its bytes waits in a stage
    const bad = bytes(STAGE + MiB + 100, 7);
    const good = bytes(2 * STAGE, 8);
    for (const [p, off] of pieces(bad, 9)) w!.put(p, 8192 + off, null);
    await w!.quiesce();
    for (const [p, off] of pieces(good, 10)) w!.put(p, 8192 + off, null);
    await w!.finish();
    closeSync(fd);
    expect(readFileSync(path).subarray(8192).equals(good)).toBe(true);
  });

  it('a file on tmpfs gets no direct writer (memory, not a disk: the page cache is where it lives)', async (ctx) => {
    if (!existsSync('/dev/shm') || statfsSync('/dev/shm').type !== 0x01021994) ctx.skip();
    const d = await mkdtemp('/dev/shm/pve-s3-direct-');
    try {
      const path = join(d, 'f');
      const fd = openSync(path, 'w+');
      expect(await DirectWriter.open(path, fd)).toBeNull();
      closeSync(fd);
    } finally {
      await rm(d, { recursive: true, force: true });
    }
  });
});
