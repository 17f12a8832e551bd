/**
 * A manifest key for tests (issue 10 §7): the store verifies only what a key of the storage
 * signed, so every test storage that expects its uploads to be verified gets one, made by the
 * same code as on a node (config/manifest-key.ts), in the test's own directory.
 */
import { join } from 'node:path';
import type { ManifestKeyLocation } from '../../host/src/config/manifest-key-location.js';
import { ensureKeyring } from '../../host/src/config/manifest-key.js';

export function testManifestKey(dir: string, name = 'test'): ManifestKeyLocation {
  const file = join(dir, `${name}.manifest-key`);
  ensureKeyring(file);
  return { file, mayCreate: true };
}
