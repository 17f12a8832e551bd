/**
 * zstd for the host: the native zstd-napi addon (Node 20 has no zstd; measured against a WASM
 * build and the zstd program in docs/BACKUP-PROVIDER.md §4.1). Installed, the addon is
 * `zstd.node` next to the bundle; from a checkout it is the npm package's build.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PveS3Error } from '../util/errors.js';

export interface ZstdCCtx {
  setParameter(param: number, value: number): void;
  compress2(dst: Uint8Array, src: Uint8Array): number;
}

export interface ZstdBinding {
  CCtx: new () => ZstdCCtx;
  compressBound(n: number): number;
  decompress(dst: Uint8Array, src: Uint8Array): number;
  getFrameContentSize(frame: Uint8Array): number | null;
  findFrameCompressedSize(frame: Uint8Array): number;
}

/** ZSTD_cParameter values (zstd.h) */
export const C_COMPRESSION_LEVEL = 100;
export const C_CONTENT_SIZE_FLAG = 200;
export const C_CHECKSUM_FLAG = 201;

let binding: ZstdBinding | undefined;

export function zstd(): ZstdBinding {
  if (binding) return binding;
  const req = createRequire(import.meta.url);
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'zstd.node')];
  try {
    candidates.push(join(dirname(req.resolve('zstd-napi/package.json')), 'build', 'Release', 'binding.node'));
  } catch {
    // not a checkout with node_modules: only the bundled addon can be there
  }
  for (const c of candidates) {
    if (existsSync(c)) return (binding = req(c) as ZstdBinding);
  }
  throw new PveS3Error('InternalError', `the zstd addon is missing (looked for ${candidates.join(', ')}): reinstall pve-s3`);
}
