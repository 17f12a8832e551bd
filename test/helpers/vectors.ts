/**
 * Path helper for the shared test vectors. They live outside the repo (../shared/vectors next to
 * the checkout) and are never copied into it; PVE_S3_VECTORS points elsewhere when needed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function vectorsDir(): string {
  const override = process.env.PVE_S3_VECTORS;
  const dir = override !== undefined && override !== '' ? resolve(override) : resolve(repoRoot, '..', 'shared', 'vectors');
  if (!existsSync(dir)) {
    throw new Error(`test vectors not found at ${dir}: check out ../shared/vectors next to the repo or set PVE_S3_VECTORS`);
  }
  return dir;
}

export function vectorPath(name: string): string {
  return join(vectorsDir(), name);
}

/** Parses one JSON vector file, e.g. readVectors<Checksums>('checksums.json'). */
export function readVectors<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(vectorPath(name), 'utf8')) as T;
}

export function hexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
