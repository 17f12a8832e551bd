// The installed pve-s3-host (scripts/bundle.mjs builds it from this file). The Perl plugin starts
// the host for every storage operation — pvestatd: every storage, every 10 s, on every node — and
// node has no compile cache for ES modules before Node 22. So the host itself is one CommonJS
// file (host.cjs) compiled here through vm.Script with a V8 code cache: the first run writes the
// cache, later runs skip parsing and the lazy compiles the cached run already did (bench:startup:
// about 20 ms less CPU per status on Node 20).
//
// The cache is kept from a `status` run: V8 stores the functions a run compiled, and status is
// what PVE repeats (a cache made by `pvesm add`'s first request would leave status compiling
// half its code on every poll: bench:startup, about 25 ms).
//
// The cache file's name carries the digest of host.cjs (V8 itself only checks the source length),
// the node version and the architecture; V8 rejects a cache from other flags and we then write a
// fresh one. It lives in /var/cache/pve-s3 (root-writable only; made here when missing, for trees
// installed by `make install`), or in PVE_S3_CODE_CACHE_DIR; "" turns it off. A cache that cannot be read or written costs nothing
// but the saving.
import './wasm-budget.mjs';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/* global __PVE_S3_HOST_DIGEST__ */
const here = fileURLToPath(new URL('.', import.meta.url));
const filename = join(here, 'host.cjs');
const dir = process.env.PVE_S3_CODE_CACHE_DIR ?? '/var/cache/pve-s3';
const cacheFile = dir === '' ? undefined : join(dir, `host-${__PVE_S3_HOST_DIGEST__}-${process.version}-${process.arch}.v8cache`);

let cachedData;
if (cacheFile !== undefined) {
  try {
    cachedData = readFileSync(cacheFile);
  } catch {
    cachedData = undefined;
  }
}
// ASCII (scripts/bundle.mjs checks): latin1 makes the one-byte string V8 takes without a copy;
// the file is already a function of (exports, require, module, __filename, __dirname)
const source = readFileSync(filename, 'latin1');
const script = new Script(source, {
  filename,
  ...(cachedData ? { cachedData } : {}),
});
const module = { exports: {} };
if (cacheFile !== undefined && (cachedData === undefined || script.cachedDataRejected)) {
  // at exit, so that the functions this run compiled lazily are in the cache too
  process.once('exit', () => {
    if (module.exports.servedOp?.() !== 'status') return;
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
// The loader is built as CommonJS (pve-s3-host.cjs) next to host.cjs, so its own require resolves
// as host.cjs's would; node:module's createRequire would load node's ES module loader too (about
// 3 % of a status's CPU, bench:startup). Run as an ES module (a test, --esm-host), it has none.
const hostRequire = typeof require === 'function' ? require : process.getBuiltinModule('node:module').createRequire(filename);
script.runInThisContext()(module.exports, hostRequire, module, filename, here);
