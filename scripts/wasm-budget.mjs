// Imported first by every shim in host/bin (so by the bundle's commands too) and by the installed
// host's loader (host-loader.mjs; its first stage leaves the shim's import out), before any
// WebAssembly is compiled.
// V8 11 (Node 20) tiers a wasm function up to TurboFan once it has run "1.8 MB worth" of code;
// undici's HTTP parser (llhttp) reaches that within the first response, and compiling its one
// big function costs about 80 ms — which a short run then waits for at exit. Ten times the
// budget still lets the hashing loops of a transfer tier up after a few MiB (bench:core shows
// no loss), while a short run stays on the baseline compiler.
//
// The budget is raised only while a module compiles (V8 gives each function its budget then),
// and put back afterwards: any V8 flag that differs from its default changes V8's flag hash,
// and with it node rejects its own code cache of the built-in modules — every node:net,
// node:stream… loaded afterwards would be compiled from source (about 8 ms of a `status`), and
// the host's own code cache would not match the next run. Measured by test/bench/startup.mjs.
//
// llhttp gets the largest budget V8 takes: its state machine is one huge function, and TurboFan
// needs ~30 MiB of compile-zone memory for it on a background thread. A long upload sends enough
// requests to reach the raised budget, and that one compile then set the process's peak memory
// (an 8 GiB stream peaked 35 MiB above its part buffers; test/bench/stream-memory.mjs). Its
// baseline code parses a response of a few hundred bytes in microseconds. Even this budget runs
// out, later: V8 charges a function by its code size, and 300 small responses through undici
// sent the parser to TurboFan (--trace-wasm-compilation-times; 200 did not, and without this file
// 5 did). So uploads no longer answer their parts through undici (host/src/s3/lean-http.ts):
// a 4 GiB stream in 8 MiB parts went through with no TurboFan compile of llhttp, and an 8 GiB
// one peaked within 1% of a 512 MiB one. What still runs through undici (listings, control
// requests) would pay that compile once after some hundreds of answers.
const RAISED = '--wasm-tiering-budget=20000000';
const NEVER = '--wasm-tiering-budget=2147483647';
// V8's default (node --v8-options); if a future V8 changes it, the only cost is the one above
const DEFAULT = '--wasm-tiering-budget=1800000';

const wasm = globalThis.WebAssembly;
let v8;
let compiled = 0;
wasm.Module = new Proxy(wasm.Module, {
  construct(target, args, newTarget) {
    compiled++;
    // node:v8 only when a module is compiled: `version` and argument errors never pay for it
    v8 ??= process.getBuiltinModule('node:v8');
    v8.setFlagsFromString(isLlhttp(args[0]) ? NEVER : RAISED);
    try {
      return Reflect.construct(target, args, newTarget);
    } finally {
      v8.setFlagsFromString(DEFAULT);
    }
  },
});

/** undici's HTTP parser, by the name of its entry point in the module's export section. */
function isLlhttp(src) {
  const bytes = ArrayBuffer.isView(src) ? Buffer.from(src.buffer, src.byteOffset, src.byteLength) : Buffer.from(src);
  return bytes.includes('llhttp_execute');
}

/** How many WebAssembly modules this process compiled: the core (to sign its first S3 request)
 *  and llhttp (undici's first answer). command-loader.mjs keeps a code cache only of a run that
 *  talked to S3. */
export const wasmModulesCompiled = () => compiled;
