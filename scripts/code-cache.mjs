// Compiles one of the installed CommonJS scripts through vm.Script with a V8 code cache: shared
// by the installed host's loader (host-loader.mjs) and the commands' (command-loader.mjs).
// Node 20 has no compile cache for modules (module.enableCompileCache is Node 22), so every
// start would parse its script and lazily compile what it runs again; with the cache it
// deserialises what an earlier run compiled.
//
// A cache file's name carries the digest of its script (V8 itself only checks the source
// length), the node version and the architecture; V8 rejects a cache from other flags and we
// then write a fresh one. It lives in /var/cache/pve-s3 (root-writable only; made here when
// missing, for trees installed by `make install`), or in PVE_S3_CODE_CACHE_DIR; "" turns it
// off. A cache that cannot be read or written costs nothing but the saving.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

const dir = process.env.PVE_S3_CODE_CACHE_DIR ?? '/var/cache/pve-s3';

/**
 * Compiles and runs `here/name` (a function of (exports, require, module, __filename,
 * __dirname, …extra) as read) with `req` as its require; `keep(exports)` says at exit whether
 * this run's code cache is the one to store, when there was none or V8 refused it.
 */
export function runCached(here, name, digest, req, keep, ...extra) {
  const filename = join(here, name);
  const cacheFile = dir === '' ? undefined : join(dir, `${name.replace(/\.cjs$/, '')}-${digest}-${process.version}-${process.arch}.v8cache`);
  let cachedData;
  if (cacheFile !== undefined) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
  }
  // ASCII (scripts/bundle.mjs checks): latin1 makes the one-byte string V8 takes without a copy
  const script = new Script(readFileSync(filename, 'latin1'), { filename, ...(cachedData ? { cachedData } : {}) });
  const module = { exports: {} };
  if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
    // at exit, so that the functions this run compiled lazily are in the cache too
    process.once('exit', () => {
      if (!keep(module.exports)) return;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        mkdirSync(dirname(cacheFile), { recursive: true, mode: 0o755 });
        writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        renameSync(tmp, cacheFile);
      } catch {
        // no cache directory, read-only, not root: run without a cache
      }
    });
  }
  script.runInThisContext()(module.exports, req, module, filename, here, ...extra);
  return module.exports;
}
