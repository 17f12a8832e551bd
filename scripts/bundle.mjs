#!/usr/bin/env node
// Bundles the compiled host (host/dist, via the package.json `bin` shims in host/bin) into the
// installed tree: the host and each command as CommonJS scripts that their entries (built from
// scripts/host-loader.mjs and scripts/command-loader.mjs) compile with a V8 code cache, and the
// worker threads' ES modules beside them. Production dependencies are inlined: nothing is
// fetched from npm at install time.
//
//   node scripts/bundle.mjs OUTDIR [--partial] [--full-undici] [--meta FILE]
//     --partial      skip bin entries whose shim does not exist yet (development only)
//     --full-undici  bundle undici's whole index instead of scripts/undici-agent.mjs (to measure)
//     --no-wasm-budget  leave out scripts/wasm-budget.mjs (to measure)
//     --split-host   load the host from shared chunks (to measure)
//     --split-commands  the commands as ES modules sharing chunks/, without a code cache (to measure)
//     --esm-host     the host as one ES module, without scripts/host-loader.mjs's code cache (to measure)
//     --meta FILE    write esbuild's metafile (what went into which output, byte counts)
//     --zstd-addon FILE  the zstd addon to ship as zstd.node (default: the one npm ci built,
//                    node_modules/zstd-napi/build/Release/binding.node; `make` passes its own build)
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(name);
  if (i < 0) return false;
  argv.splice(i, 1);
  return true;
};
const option = (name) => {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined) throw new Error(`${name} needs a value`);
  argv.splice(i, 2);
  return v;
};
const partial = flag('--partial');
const fullUndici = flag('--full-undici');
const noFlags = flag('--no-wasm-budget');
const splitHost = flag('--split-host');
const splitCommands = flag('--split-commands');
const esmHost = flag('--esm-host');
const metaFile = option('--meta');
const zstdAddon = resolve(option('--zstd-addon') ?? join(root, 'node_modules', 'zstd-napi', 'build', 'Release', 'binding.node'));
if (argv.length > 1 || argv.some((a) => a.startsWith('-'))) {
  throw new Error(`usage: node scripts/bundle.mjs OUTDIR [--partial] [--full-undici] [--no-wasm-budget] [--split-host] [--split-commands] [--esm-host] [--meta FILE] [--zstd-addon FILE] (got ${argv.join(' ')})`);
}
if (!existsSync(zstdAddon)) throw new Error(`${zstdAddon} is missing: the zstd addon is built by npm ci (zstd-napi, node-gyp: python3, make, g++)`);
const out = resolve(argv[0] ?? join(root, 'build', 'pkg'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const wasm = join(root, 'build', 'core.wasm');
if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run 'npm run build' first`);

const entryPoints = {};
const bins = new Map(); // entry name → its bin shim (each imports scripts/wasm-budget.mjs first)
for (const [name, file] of Object.entries(pkg.bin)) {
  if (existsSync(join(root, file))) {
    entryPoints[name] = `pve-s3-entry:${name}`;
    bins.set(name, join(root, file));
  }
  else if (partial) console.error(`bundle: skipping bin ${name}: ${file} does not exist yet (--partial)`);
  else throw new Error(`bin entry ${name}: ${file} is missing (run 'npm run build'; --partial skips it)`);
}
// The transfer engine starts its hashing thread from `new URL('./hash-worker.js', import.meta.url)`:
// the worker must be a file of its own next to the chunk holding that code (checked below).
const worker = join(root, 'host', 'dist', 'transfer', 'hash-worker.js');
if (existsSync(worker)) entryPoints['chunks/hash-worker'] = worker;
// The Backup Provider's zstd threads (host/src/zstd/frames.ts) are started the same way, from
// the host only: compress-worker.js next to it, with zstd.node and core.wasm (copied below).
const compressWorker = join(root, 'host', 'dist', 'zstd', 'compress-worker.js');

// Each command's entry is its shim, which imports the wasm budget first (--no-wasm-budget: an
// empty module in its place).
const binEntries = {
  name: 'bin-entries',
  setup(b) {
    b.onResolve({ filter: /^pve-s3-entry:/ }, (a) => ({ path: a.path, namespace: 'pve-s3-entry' }));
    b.onLoad({ filter: /.*/, namespace: 'pve-s3-entry' }, (a) => {
      const shim = bins.get(a.path.slice('pve-s3-entry:'.length));
      return { contents: `#!/usr/bin/env node\nimport ${JSON.stringify(shim)};\n`, resolveDir: root, loader: 'js' };
    });
    if (noFlags) {
      b.onResolve({ filter: /wasm-budget\.mjs$/ }, (a) => ({ path: a.path, namespace: 'pve-s3-no-budget' }));
      // no budget, no count: command-loader.mjs then keeps the cache of any run that exits 0
      b.onLoad({ filter: /.*/, namespace: 'pve-s3-no-budget' }, () => ({ contents: 'export const wasmModulesCompiled = () => 1;', loader: 'js' }));
    }
  },
};

const LAZY_ASSERT = `const real = () => require('node:assert');
function assert(value, message) {
  if (!value) real()(value, message);
}
module.exports = new Proxy(assert, { get: (t, k) => (k in t ? t[k] : real()[k]) });`;
const LAZY_HTTP = `// a class no stream is made by: undici's IncomingMessage special case never applies
class IncomingMessage {}
const flagged = () => [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\\s+/)].some((a) => a.startsWith('--max-http-header-size'));
module.exports = new Proxy({}, {
  get: (t, k) => (k === 'IncomingMessage' ? IncomingMessage : k === 'maxHeaderSize' && !flagged() ? 16384 : require('node:http')[k]),
});`;

const undiciShim = {
  name: 'undici-agent',
  setup(b) {
    b.onResolve({ filter: /^undici$/ }, (a) =>
      a.importer.endsWith('undici-agent.mjs') ? undefined : { path: join(root, 'scripts', 'undici-agent.mjs') },
    );
    // undici's HTTP/2 client loads node:http2 (70 internal modules) at start-up only to read
    // header-name constants; the host never speaks h2 (allowH2 is off). Those constants are
    // protocol strings and numbers, so they are copied here; anything else (connect) loads the
    // real module on first use.
    b.onResolve({ filter: /^node:http2$/ }, (a) =>
      a.importer.endsWith(join('undici', 'lib', 'dispatcher', 'client-h2.js')) ? { path: 'http2-lazy', namespace: 'pve-s3-http2' } : undefined,
    );
    // node:http (8 internal modules and perf_hooks) is loaded by undici's util.js and client.js
    // only to compare a body's constructor with IncomingMessage (the host never hands undici
    // one: its bodies are buffers and async iterables) and to read maxHeaderSize (node's
    // --max-http-header-size, 16 KiB unless that flag is given). node:assert (4 modules) guards
    // invariants that hold. Both are loaded on first real use instead: about 6 ms of a status.
    b.onResolve({ filter: /^node:(http|assert)$/ }, (a) =>
      a.importer.includes(join('node_modules', 'undici', 'lib')) ? { path: a.path, namespace: 'pve-s3-lazy' } : undefined,
    );
    // undici's util.js builds a ternary search tree of ~100 well-known header names when it is
    // loaded (thousands of small objects: about 3 ms and the young generation's one scavenge of
    // a status, bench:startup), for lookups only its HTTP parser makes. A status needs util.js
    // for the connector (connect.js) alone and sends its one HEAD the lean way: the tree is built
    // on the first lookup instead.
    b.onResolve({ filter: /^\.\/tree$/ }, (a) =>
      a.importer.endsWith(join('undici', 'lib', 'core', 'util.js')) ? { path: 'undici-tree', namespace: 'pve-s3-lazy-tree', pluginData: a.resolveDir } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'pve-s3-lazy-tree' }, (a) => ({
      contents: `let real;
module.exports = { tree: { lookup: (key) => (real ??= require('./tree.js').tree).lookup(key) } };`,
      resolveDir: a.pluginData,
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'pve-s3-lazy' }, (a) => ({
      contents: a.path === 'node:assert' ? LAZY_ASSERT : LAZY_HTTP,
      loader: 'js',
    }));
    b.onLoad({ filter: /.*/, namespace: 'pve-s3-http2' }, async () => {
      const { constants } = await import('node:http2');
      return {
        contents: `const constants = ${JSON.stringify(constants)};
module.exports = new Proxy({ constants }, { get: (t, k) => (k === 'constants' ? constants : require('node:http2')[k]) });`,
        loader: 'js',
      };
    });
  },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const common = {
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: fullUndici ? [binEntries] : [binEntries, undiciShim],
  // ESM output still meets CommonJS dependencies that call require() on node builtins.
  banner: {
    js: "import { createRequire as __pveS3Req } from 'node:module'; const require = __pveS3Req(import.meta.url);",
  },
  legalComments: 'eof',
  minifySyntax: true,
  metafile: true,
  logLevel: 'warning',
};
/**
 * One of the CommonJS scripts scripts/code-cache.mjs compiles with a V8 code cache: `entry`
 * bundled into OUTDIR/`file`, a function of (exports, require, module, __filename, __dirname
 * `params`) as the loader reads it.
 */
async function cjsScript(file, entry, plugins, params) {
  return (
    await build({
      ...common,
      entryPoints: undefined,
      outdir: undefined,
      stdin: { contents: entry, resolveDir: join(root, 'host', 'bin'), sourcefile: `${file.replace(/\.cjs$/, '')}-entry.js`, loader: 'js' },
      outfile: join(out, file),
      format: 'cjs',
      // node reads and V8 checks all of the script on every start, cache or not: without the
      // whitespace host.cjs is a quarter smaller and a status about 4 ms faster (names are kept,
      // so stack traces in the log still say which function)
      minifyWhitespace: true,
      // licences to FILE.LEGAL.txt: one non-ASCII letter in a licence comment would make the
      // whole source a two-byte string (the loader reads it as latin1, asciiDigest checks)
      legalComments: 'external',
      plugins: [...(fullUndici ? [] : [undiciShim]), ...plugins],
      // the code needs import.meta.url only to find core.wasm, zstd.node, hash-worker.js and
      // compress-worker.js, which sit next to the script: give it the URL of a .js file there (a
      // .js one, as the hash thread requires)
      define: { 'import.meta.url': '__pveS3HostUrl' },
      // the CommonJS wrapper is in the file, so the loader compiles the text it read (wrapping
      // it there made V8 copy and flatten 0.8 MB more per start); strict, as the ES modules the
      // code was written as are
      banner: { js: `(function (exports, require, module, __filename, __dirname${params}) {'use strict';var __pveS3HostUrl = require('node:url').pathToFileURL(__dirname + '/pve-s3-host.js').href;` },
      footer: { js: '\n})' },
      // vm.Script has no loader for import(): builtins imported lazily become require()
      supported: { 'dynamic-import': false },
    })
  ).metafile;
}

/** The digest naming `file`'s code cache; refuses a byte the loader's latin1 read would garble. */
function asciiDigest(file) {
  const text = readFileSync(join(out, file));
  const wide = text.findIndex((b) => b > 0x7f);
  if (wide >= 0) throw new Error(`${file} has a non-ASCII byte at offset ${wide} (${JSON.stringify(text.subarray(Math.max(0, wide - 40), wide + 10).toString())}): scripts/code-cache.mjs reads it as latin1`);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

let workersBuilt = false;
/** hash-worker.js and compress-worker.js next to the CommonJS scripts that start them. */
async function topWorkers() {
  if (workersBuilt) return;
  workersBuilt = true;
  const entries = existsSync(worker) ? { 'hash-worker': worker } : {};
  if (existsSync(compressWorker)) entries['compress-worker'] = compressWorker;
  metas.push((await build({ ...common, plugins: [undiciShim], entryPoints: entries, splitting: false })).metafile);
}

// With --split-host or --split-commands, those entries share chunks (chunks/); .js everywhere
// (package.json below says ESM): the host checks its own URL ends in .js.
const commandNames = [...bins.keys()].filter((n) => n !== 'pve-s3-host');
const splitEntries = Object.fromEntries(
  Object.entries(entryPoints).filter(([n]) => (n === 'pve-s3-host' ? splitHost : n === 'chunks/hash-worker' ? splitHost || splitCommands : splitCommands)),
);
const metas = [];
if (Object.keys(splitEntries).some((n) => n !== 'chunks/hash-worker')) {
  metas.push((await build({ ...common, entryPoints: splitEntries, splitting: true, chunkNames: 'chunks/[name]-[hash]' })).metafile);
}
// The Perl plugin starts the host for every operation (pvestatd: every storage, every 10 s), so
// it is one self-contained file: one read and one compile instead of a dozen chunk loads
// (bench:startup: about 10 ms less CPU per status). Its hashing thread, when enabled, is the
// hash-worker.js next to it.
if (!splitHost && esmHost && entryPoints['pve-s3-host']) {
  const hostEntries = { 'pve-s3-host': entryPoints['pve-s3-host'] };
  if (existsSync(worker)) hostEntries['hash-worker'] = worker;
  if (existsSync(compressWorker)) hostEntries['compress-worker'] = compressWorker;
  metas.push((await build({ ...common, entryPoints: hostEntries, splitting: false })).metafile);
} else if (!splitHost && entryPoints['pve-s3-host']) {
  // The same host as CommonJS, which scripts/host-loader.mjs compiles with V8 code caches, in two
  // scripts: host-status.cjs, the first stage (host/src/protocol/first-stage.ts: the bin shim's
  // Node version check, then the request read; a status answered with status-ops.ts standing in
  // for ops.ts, so none of the other operations' code is in it), and host.cjs, the whole host,
  // to which the first stage hands every other request (the loader passes it as __pveS3Whole).
  const shim = readFileSync(bins.get('pve-s3-host'), 'utf8');
  const m = /^([\s\S]*?)^const \{ main \} = await import\('\.\.\/dist\/protocol\/main\.js'\);\s*await main\(\);\s*$/m.exec(shim);
  if (!m) throw new Error(`${bins.get('pve-s3-host')} no longer ends in "const { main } = await import('../dist/protocol/main.js'); await main();": update scripts/bundle.mjs`);
  const protocol = join(root, 'host', 'dist', 'protocol');
  const mainJs = JSON.stringify(join(protocol, 'main.js'));
  // The first stage borrows from the whole host what a status needs only when something goes
  // wrong (a body read as a stream — its listings take the lean path; an error body that is not
  // flat, s3/flat-xml.ts): undici's Agent side (pool, client, llhttp) and fast-xml-parser, two
  // thirds of what the stage would carry.
  const borrowed = {
    'undici-agent': join(root, 'scripts', 'undici-agent-side.cjs'),
    // the ES module host/src imports (a require() of the package name would bundle its CommonJS
    // build, a second copy)
    'fast-xml-parser': fileURLToPath(import.meta.resolve('fast-xml-parser')),
  };
  // servedOp tells scripts/host-loader.mjs which run's code cache to keep
  const wholeEntry = `export { main, servedOp } from ${mainJs};
const borrowed = { ${Object.entries(borrowed).map(([k, v]) => `${JSON.stringify(k)}: () => require(${JSON.stringify(v)})`).join(', ')} };
export function borrow(name) { return borrowed[name](); }
`;
  // the shim's budget import is the loader's (host-loader.mjs runs it first): not wrapped twice
  const budget = "import '../../scripts/wasm-budget.mjs';\n";
  if (!m[1].includes(budget)) throw new Error(`${bins.get('pve-s3-host')} no longer has the line ${budget.trim()}: update scripts/bundle.mjs`);
  const stageEntry = `import { firstStage } from ${JSON.stringify(join(protocol, 'first-stage.js'))};\nexport { servedOp } from ${mainJs};\n${m[1].replace(/^#!.*\n/, '').replace(budget, '')}\nfirstStage(__pveS3Whole);\n`;
  const statusOnly = {
    name: 'status-ops',
    setup(b) {
      b.onResolve({ filter: /^\.\/ops\.js$/ }, (a) => (a.importer === join(protocol, 'main.js') ? { path: join(protocol, 'status-ops.js') } : undefined));
      b.onResolve({ filter: /^(\.\/undici-agent-side\.cjs|#undici-agent|fast-xml-parser)$/ }, (a) => ({ path: a.path === 'fast-xml-parser' ? a.path : 'undici-agent', namespace: 'pve-s3-borrowed' }));
      b.onLoad({ filter: /.*/, namespace: 'pve-s3-borrowed' }, (a) => ({ contents: `module.exports = __pveS3Whole().borrow(${JSON.stringify(a.path)});`, loader: 'js' }));
      // undici's constants.js builds, when util.js loads it, its header-name record and a Buffer
      // of each of ~100 header names, for the lookups of undici's HTTP parser alone; the first
      // stage needs util.js for the connector only (its HTTP client is borrowed): built on first
      // use instead (~0.5 ms of a status).
      b.onResolve({ filter: /^\.\/constants$/ }, (a) => {
        if (!a.importer.endsWith(join('undici', 'lib', 'core', 'util.js'))) return undefined;
        if (!readFileSync(a.importer, 'utf8').includes("const { headerNameLowerCasedRecord } = require('./constants')")) {
          throw new Error(`${a.importer} takes more than headerNameLowerCasedRecord from ./constants now: update scripts/bundle.mjs`);
        }
        return { path: 'undici-constants', namespace: 'pve-s3-lazy-constants', pluginData: a.resolveDir };
      });
      b.onLoad({ filter: /.*/, namespace: 'pve-s3-lazy-constants' }, (a) => ({
        contents: `let real;
module.exports = { headerNameLowerCasedRecord: new Proxy({}, { get: (_, k) => (real ??= require('./constants.js').headerNameLowerCasedRecord)[k] }) };`,
        resolveDir: a.pluginData,
        loader: 'js',
      }));
    },
  };
  metas.push(await cjsScript('host.cjs', wholeEntry, [], ''));
  metas.push(await cjsScript('host-status.cjs', stageEntry, [statusOnly], ', __pveS3Whole'));
  const digests = { 'host.cjs': asciiDigest('host.cjs'), 'host-status.cjs': asciiDigest('host-status.cjs') };
  await topWorkers();
  // The loader is CommonJS too (pve-s3-host.cjs): node reaches a CommonJS entry about 3 ms
  // sooner than an ES module one (bench:startup). Its #! names node's path, not /usr/bin/env:
  // the plugin executes it for every operation, and env's own start (an exec, its libraries, a
  // PATH search) cost a few ms of every status (bench:startup); the package depends on Debian's
  // (or NodeSource's) nodejs, which is /usr/bin/node.
  await build({
    ...common,
    format: 'cjs',
    outExtension: { '.js': '.cjs' },
    entryPoints: { 'pve-s3-host': join(root, 'scripts', 'host-loader.mjs') },
    plugins: [],
    banner: { js: "#!/usr/bin/node\nvar __pveS3LoaderUrl = require('node:url').pathToFileURL(__filename).href;" },
    define: { __PVE_S3_HOST_DIGEST__: JSON.stringify(digests['host.cjs']), __PVE_S3_STATUS_DIGEST__: JSON.stringify(digests['host-status.cjs']), 'import.meta.url': '__pveS3LoaderUrl' },
    splitting: false,
  });
}
// Each command as the installed host is built: its code as one CommonJS script, cli-NAME.cjs,
// which its entry pve-s3-NAME.cjs (the bin shim's Node version check, then
// scripts/command-loader.mjs) compiles with a V8 code cache. As ES modules sharing chunks/, a
// 1 MiB restore had node's module loader read, link and compile ~60 files, each from source
// (bench:startup's restore and backup rows). Like the host's loader, the entry is CommonJS with
// node's path in its #! line (reached a few ms sooner than an ES module or /usr/bin/env).
if (!splitCommands) {
  for (const name of commandNames) {
    const shimFile = bins.get(name);
    const shim = readFileSync(shimFile, 'utf8');
    const m = /^([\s\S]*?)^const \{ main \} = await import\('(\.\.\/dist\/cli\/[\w-]+\.js)'\);\s*process\.exitCode = await main\(process\.argv\.slice\(2\)\);\s*$/m.exec(shim);
    if (!m) throw new Error(`${shimFile} no longer ends in "const { main } = await import('../dist/cli/….js'); process.exitCode = await main(process.argv.slice(2));": update scripts/bundle.mjs`);
    const script = `cli-${name.replace(/^pve-s3-/, '')}.cjs`;
    metas.push(await cjsScript(script, `export { main } from ${JSON.stringify(resolve(dirname(shimFile), m[2]))};\n`, [], ''));
    const entry = `${m[1].replace(/^#!.*\n/, '')}
import { runCommand } from ${JSON.stringify(join(root, 'scripts', 'command-loader.mjs'))};
runCommand(__dirname, ${JSON.stringify(script)}, ${JSON.stringify(asciiDigest(script))});
`;
    const built = await build({
      ...common,
      entryPoints: undefined,
      outdir: undefined,
      stdin: { contents: entry, resolveDir: dirname(shimFile), sourcefile: `${name}-entry.js`, loader: 'js' },
      outfile: join(out, `${name}.cjs`),
      format: 'cjs',
      plugins: noFlags ? [binEntries] : [],
      banner: { js: '#!/usr/bin/node' },
    });
    metas.push(built.metafile);
  }
  await topWorkers();
}
const result = { metafile: { outputs: Object.assign({}, ...metas.map((m) => m.outputs)) } };
writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'pve-s3-bundle', private: true, type: 'module' }, null, 2) + '\n');
if (metaFile) writeFileSync(metaFile, JSON.stringify(result.metafile));

// core.wasm goes next to the output that holds the loader (host/src/wasm/load.ts looks there).
const outputs = Object.entries(result.metafile.outputs);
const loaders = outputs.filter(([, o]) => Object.keys(o.inputs).some((i) => i.endsWith('host/dist/wasm/load.js')));
if (loaders.length === 0) throw new Error('no bundle output contains host/dist/wasm/load.js: where would core.wasm go?');
for (const dir of new Set(loaders.map(([f]) => dirname(resolve(f))))) copyFileSync(wasm, join(dir, 'core.wasm'));
// zstd.node likewise next to every output holding the code that loads it (host/src/zstd/native.ts)
const zstdUsers = outputs.filter(([, o]) => Object.keys(o.inputs).some((i) => i.endsWith('host/dist/zstd/native.js')));
if (entryPoints['pve-s3-host'] && zstdUsers.length === 0) throw new Error('no bundle output contains host/dist/zstd/native.js: where would zstd.node go?');
for (const dir of new Set(zstdUsers.map(([f]) => dirname(resolve(f))))) copyFileSync(zstdAddon, join(dir, 'zstd.node'));

// Code found through `new URL('./x.js', import.meta.url)` must sit where the chunk expects it
// (host.cjs names import.meta.url __pveS3HostUrl: the same place); other files so referred to
// (package.json for a version string) are only reported.
for (const [f] of outputs) {
  const file = resolve(f);
  if (!file.endsWith('.js') && !file.endsWith('.cjs')) continue;
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/new URL\(\s*["'](\.{1,2}\/[^"']+)["']\s*,\s*(?:import\.meta\.url|__pveS3HostUrl)\s*\)/g)) {
    const target = resolve(dirname(file), m[1]);
    if (existsSync(target)) continue;
    const msg = `${relative(out, file)} refers to ${m[1]}, which the bundle does not contain`;
    if (/\.(js|mjs|wasm)$/.test(m[1])) throw new Error(msg);
    console.error(`bundle: note: ${msg}`);
  }
}

const files = readdirSync(out, { recursive: true }).filter((f) => !f.toString().endsWith('/'));
console.error(`bundle: ${[...bins.keys()].join(', ')} → ${out} (${files.length} files${fullUndici ? ', whole undici' : ''})`);
