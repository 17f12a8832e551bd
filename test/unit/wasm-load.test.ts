// Locating core.wasm: $PVE_S3_WASM first, then the package's build/, then next to the module.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
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
