// The installed pve-s3-host (scripts/bundle.mjs builds it from this file). The Perl plugin starts
// the host for every storage operation — pvestatd: every storage, every 10 s, on every node — and
// node has no compile cache for ES modules before Node 22. So the host is CommonJS compiled
// through vm.Script with a V8 code cache (code-cache.mjs): the first run writes the cache, later
// runs skip parsing and the lazy compiles the cached run already did (bench:startup: about 20 ms
// less CPU per status on Node 20).
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
import './wasm-budget.mjs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCached } from './code-cache.mjs';

/* global __PVE_S3_HOST_DIGEST__, __PVE_S3_STATUS_DIGEST__ */
const here = fileURLToPath(new URL('.', import.meta.url));
// The loader is built as CommonJS (pve-s3-host.cjs) next to the scripts, so its own require
// resolves as theirs would; node:module's createRequire would load node's ES module loader too
// (about 3 % of a status's CPU, bench:startup). Run as an ES module (a test, --esm-host), it has none.
const hostRequire = typeof require === 'function' ? require : process.getBuiltinModule('node:module').createRequire(join(here, 'host.cjs'));

let whole;
/** host.cjs, the whole host: loaded once, when the first stage hands it a request. */
const wholeHost = () => (whole ??= runCached(here, 'host.cjs', __PVE_S3_HOST_DIGEST__, hostRequire, () => true));
runCached(here, 'host-status.cjs', __PVE_S3_STATUS_DIGEST__, hostRequire, (exports) => exports.servedOp?.() === 'status', wholeHost);
