/**
 * Locates and instantiates build/core.wasm once per process. Synchronous on purpose: the host
 * starts once per PVE operation and the module is small, so a compile on first use costs less
 * than threading a promise through every digest call site.
 *
 * Search order: $PVE_S3_WASM, then build/core.wasm under the package root (this file lives in
 * host/src/wasm/ or host/dist/wasm/, three levels below it), then core.wasm next to this module
 * (bundled/installed layout).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PveS3Error } from '../util/errors.js';

// lib "ES2023" without DOM carries no WebAssembly typings; this is the little we use.
export interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { exports: Record<string, unknown> };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The raw export surface of core.wasm (documented in docs/WASM-ABI.md). Pointers are byte
 *  offsets into `memory`. */
export interface CoreExports {
  readonly memory: WasmMemory;
  [name: string]: unknown;
}

let cached: { exports: CoreExports; path: string } | undefined;

/** The candidate paths, in the order they are tried. */
export function wasmCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const list: string[] = [];
  const override = env.PVE_S3_WASM;
  if (override !== undefined && override !== '') list.push(resolve(override));
  list.push(resolve(here, '..', '..', '..', 'build', 'core.wasm'));
  list.push(join(here, 'core.wasm'));
  return list;
}

function locate(): string {
  const override = process.env.PVE_S3_WASM;
  if (override !== undefined && override !== '') {
    const p = resolve(override);
    if (!existsSync(p)) {
      throw new PveS3Error('WasmMissing', `invalid PVE_S3_WASM '${override}': file does not exist; unset it or point it at a built core.wasm`);
    }
    return p;
  }
  for (const p of wasmCandidates({})) if (existsSync(p)) return p;
  throw new PveS3Error('WasmMissing', `core.wasm not found (looked in ${wasmCandidates({}).join(', ')}); run 'npm run build:wasm'`);
}

/** The instantiated core, compiled on first call and shared afterwards. */
export function loadCore(): CoreExports {
  if (cached !== undefined) return cached.exports;
  const path = locate();
  const module = new WA.Module(readFileSync(path));
  const instance = new WA.Instance(module, {
    env: {
      // Only reachable in debug builds (release uses noAssert); a trap is the honest outcome.
      abort(_msg: number, _file: number, line: number, col: number): never {
        throw new PveS3Error('WasmAbort', `core.wasm aborted at ${line}:${col}`);
      },
    },
  });
  cached = { exports: instance.exports as unknown as CoreExports, path };
  return cached.exports;
}

/** Where the loaded module came from (for diagnostics). */
export function corePath(): string | undefined {
  return cached?.path;
}

let heapView: Uint8Array | undefined;

/** A byte view of the core's linear memory. Re-created if the buffer was replaced (memory
 *  growth detaches the old ArrayBuffer), so callers must not keep the view across calls that
 *  might grow memory — in practice nothing grows it, but the check is one comparison. */
export function heap(): Uint8Array {
  const buf = loadCore().memory.buffer;
  if (heapView === undefined || heapView.buffer !== buf) heapView = new Uint8Array(buf);
  return heapView;
}
