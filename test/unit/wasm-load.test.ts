// Locating core.wasm: $PVE_S3_WASM first, then the package's build/, then next to the module;
// and the release module's no-allocation contract (no imports, memory never grows).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

const repoBuild = resolve(import.meta.dirname, '..', '..', 'build', 'core.wasm');

async function freshLoader(): Promise<typeof import('../../host/src/wasm/load.js')> {
  vi.resetModules();
  return import('../../host/src/wasm/load.js');
}

describe('loadCore', () => {
  const saved = process.env.PVE_S3_WASM;
  afterEach(() => {
    if (saved === undefined) delete process.env.PVE_S3_WASM;
    else process.env.PVE_S3_WASM = saved;
  });

  it('without an override, loads build/core.wasm of the package, once', async () => {
    delete process.env.PVE_S3_WASM;
    const l = await freshLoader();
    const a = l.loadCore();
    expect(l.corePath()).toBe(repoBuild);
    expect(l.loadCore()).toBe(a);
    expect(l.heap().byteLength).toBeGreaterThan(1 << 20);
  });

  it('uses $PVE_S3_WASM when set', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pve-s3-wasm-'));
    try {
      const copy = join(dir, 'other.wasm');
      copyFileSync(repoBuild, copy);
      process.env.PVE_S3_WASM = copy;
      const l = await freshLoader();
      l.loadCore();
      expect(l.corePath()).toBe(copy);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails clearly when $PVE_S3_WASM names a missing file (no silent fallback)', async () => {
    process.env.PVE_S3_WASM = '/nonexistent/core.wasm';
    const l = await freshLoader();
    expect(() => l.loadCore()).toThrow("invalid PVE_S3_WASM '/nonexistent/core.wasm': file does not exist");
  });

  it('candidate order: override, package build/, next to the module', async () => {
    const l = await freshLoader();
    const c = l.wasmCandidates({ PVE_S3_WASM: 'x/y.wasm' });
    expect(c).toEqual([resolve('x/y.wasm'), repoBuild, resolve(import.meta.dirname, '..', '..', 'host', 'src', 'wasm', 'core.wasm')]);
    expect(l.wasmCandidates({})).toEqual(c.slice(1));
  });
});

describe('release core.wasm: static buffers only (docs/WASM-ABI.md)', () => {
  it('imports nothing: no allocator, no abort, no host calls', () => {
    const WA = (globalThis as unknown as { WebAssembly: { Module: { new (b: Uint8Array): object; imports(m: object): unknown[] } } }).WebAssembly;
    expect(WA.Module.imports(new WA.Module(readFileSync(repoBuild)))).toEqual([]);
  });

  it('its memory keeps its initial size through every kernel, the signer and the planner', async () => {
    vi.resetModules();
    const { loadCore } = await import('../../host/src/wasm/load.js');
    const d = await import('../../host/src/wasm/digests.js');
    const { SigV4Signer } = await import('../../host/src/wasm/signer.js');
    const { planUpload } = await import('../../host/src/wasm/planner.js');
    const mem = loadCore().memory;
    const before = mem.buffer.byteLength;
    const big = new Uint8Array(3 << 20).fill(7);
    const live = Array.from({ length: 100 }, () => new d.Sha256().update(big.subarray(0, 1000)));
    live.forEach((h) => h.digest());
    d.Sha256.hash(big);
    d.Md5.hash(big);
    d.Crc32c.hash(big);
    d.Crc64Nvme.hash(big);
    d.hmacSha256(big.subarray(0, 100), big);
    d.sha256x4([big, big.subarray(1), big.subarray(2), big.subarray(3)]);
    const s = new SigV4Signer({ credentials: { accessKeyId: 'AK', secretAccessKey: 'secret' }, region: 'r' });
    const signed = s.sign({ method: 'PUT', path: '/b/k', headers: { host: 'h' }, payloadHash: 'UNSIGNED-PAYLOAD', date: new Date(0) });
    s.chunkSigner(signed.signature, new Date(0)).sign('0'.repeat(64));
    s.presign({ method: 'GET', path: '/b/k', headers: { host: 'h' }, expiresIn: 60, date: new Date(0) });
    const plan = planUpload({ size: 5 * 2 ** 40, chunkSizeMB: 5 });
    plan.part(plan.partCount);
    expect(loadCore().memory).toBe(mem);
    expect(mem.buffer.byteLength).toBe(before);
  });
});
