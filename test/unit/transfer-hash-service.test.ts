import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hashService } from '../../host/src/transfer/hash-service.js';
import { refCrc64Nvme } from '../helpers/crc64.js';

const dist = fileURLToPath(new URL('../../host/dist/transfer/hash-service.js', import.meta.url));
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hex = (d: Uint8Array): string => Buffer.from(d).toString('hex');

describe('hash service', () => {
  it('in-thread (the default): parts match node:crypto and the CRC reference', async () => {
    const s = hashService();
    expect(s.threaded).toBe(false);
    const data = randomBytes(3 << 20);
    const buf = Buffer.allocUnsafeSlow(data.length + 100);
    data.copy(buf);
    const r = await s.part(buf, data.length);
    expect(hex(r.sums.sha256)).toBe(sha(data));
    expect(r.sums.crc64).toBe(refCrc64Nvme(data));
  });

  // PVE_S3_HASH_THREAD=1: the compiled engine hashes on a worker thread (npm test builds first).
  it('worker thread (compiled, PVE_S3_HASH_THREAD=1): parts come back intact with their sums', async () => {
    expect(existsSync(dist), `${dist} is missing: run npm run build:ts`).toBe(true);
    const script = `
      process.env.PVE_S3_HASH_THREAD = '1';
      const { hashService } = await import(${JSON.stringify(dist)});
      import { randomBytes, createHash } from 'node:crypto';
      const s = hashService();
      const out = { threaded: s.threaded, ok: [] };
      const sha = (b) => createHash('sha256').update(b).digest('hex');
      const hex = (d) => Buffer.from(d).toString('hex');
      // parts: the pooled buffer travels to the worker and back, content unchanged
      const bufs = [0, 1, 2].map(() => { const b = Buffer.allocUnsafeSlow(5 << 20); b.set(randomBytes(b.length)); return b; });
      const want = bufs.map((b, i) => sha(b.subarray(0, b.length - i)));
      const { Crc64Nvme } = await import(${JSON.stringify(dist.replace('transfer/hash-service.js', 'wasm/digests.js'))});
      const wantCrc = bufs.map((b, i) => Crc64Nvme.hash(b.subarray(0, b.length - i)));
      const copies = bufs.map((b) => Buffer.from(b));
      const got = await Promise.all(bufs.map((b, i) => s.part(b, b.length - i)));
      got.forEach((g, i) => out.ok.push(hex(g.sums.sha256) === want[i] && g.sums.crc64 === wantCrc[i] && g.buf.equals(copies[i])));
      console.log(JSON.stringify(out));
    `;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 }, (e, out, err) => (e ? reject(new Error(`${e.message}\n${err}`)) : resolve(out))),
    );
    const r = JSON.parse(stdout.trim()) as { threaded: boolean; ok: boolean[] };
    expect(r.threaded).toBe(true);
    expect(r.ok).toEqual([true, true, true]);
  });
});
