// The installed pve-s3-host (scripts/bundle.mjs builds it from this file). The Perl plugin starts
// the host for every storage operation — pvestatd: every storage, every 10 s, on every node — and
// node has no compile cache for ES modules before Node 22. So the host is CommonJS compiled here
// through vm.Script with a V8 code cache: the first run writes the cache, later runs skip parsing
// and the lazy compiles the cached run already did (bench:startup: about 20 ms less CPU per
// status on Node 20).
//
// Two scripts: host-status.cjs, the first stage (host/src/protocol/first-stage.ts), reads the
// request and answers a `status` with only the code a status needs — a third of the whole host,
// which every start would otherwise read, and whose every top-level function V8 would create
// (bench:startup: about 12 ms less CPU per status); anything else it hands to host.cjs, the
// whole host, compiled here on demand.
//
// The first stage's cache is kept from a `status` run: V8 stores the functions a run compiled,
// and status is what PVE repeats. The whole host's cache is written by the first run that
// loads it, whatever its operation.
//
// A cache file's name carries the digest of its script (V8 itself only checks the source
// length), the node version and the architecture; V8 rejects a cache from other flags and we
// then write a fresh one. It lives in /var/cache/pve-s3 (root-writable only; made here when
// missing, for trees installed by `make install`), or in PVE_S3_CODE_CACHE_DIR; "" turns it
// off. A cache that cannot be read or written costs nothing but the saving.
import './wasm-budget.mjs';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/* global __PVE_S3_HOST_DIGEST__, __PVE_S3_STATUS_DIGEST__ */
const here = fileURLToPath(new URL('.', import.meta.url));
const dir = process.env.PVE_S3_CODE_CACHE_DIR ?? '/var/cache/pve-s3';
// The loader is built as CommonJS (pve-s3-host.cjs) next to the scripts, so its own require
// resolves as theirs would; node:module's createRequire would load node's ES module loader too
// (about 3 % of a status's CPU, bench:startup). Run as an ES module (a test, --esm-host), it has none.
const hostRequire = typeof require === 'function' ? require : process.getBuiltinModule('node:module').createRequire(join(here, 'host.cjs'));

/**
 * Compiles and runs one of the scripts (each is a function of (exports, require, module,
 * __filename, __dirname, …) as read); `keep(exports)` says at exit whether this run's code cache
 * is the one to store, when there was none or V8 refused it.
 */
function run(name, digest, keep, ...extra) {
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
  script.runInThisContext()(module.exports, hostRequire, module, filename, here, ...extra);
  return module.exports;
}

let whole;
/** host.cjs, the whole host: loaded once, when the first stage hands it a request. */
const wholeHost = () => (whole ??= run('host.cjs', __PVE_S3_HOST_DIGEST__, () => true));
run('host-status.cjs', __PVE_S3_STATUS_DIGEST__, (exports) => exports.servedOp?.() === 'status', wholeHost);
