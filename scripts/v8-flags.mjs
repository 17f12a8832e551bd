// Imported first by every bundled entry (scripts/bundle.mjs), before any WebAssembly is compiled.
// V8 11 (Node 20) tiers a wasm function up to TurboFan once it has run "1.8 MB worth" of code;
// undici's HTTP parser (llhttp) reaches that within the first response, and compiling it costs
// about 100 ms of CPU — as much as the rest of a `status` run. Ten times the budget still lets
// the hashing loops of a transfer tier up after a few MiB (bench:core shows no loss), while a
// short run stays on the baseline compiler. Measured by test/bench/startup.mjs.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--wasm-tiering-budget=20000000');
