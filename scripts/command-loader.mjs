// What the installed commands (pve-s3-backup, -restore, -maintenance, -vzdump-hook) run:
// scripts/bundle.mjs builds each command's entry (pve-s3-<command>.cjs) from its bin shim's Node
// version check and this, and its code as one CommonJS script (cli-<command>.cjs) that this
// compiles with a V8 code cache (code-cache.mjs), as the installed host's loader compiles
// host.cjs. As ES modules in shared chunks, node's module loader read, linked and compiled ~60
// files per restore, the code of each afresh: bench:startup, restore and backup rows.
//
// A command's cache is kept from a run that talked to S3 (it compiled the WebAssembly core to
// sign) and exited 0: V8 stores the functions a run compiled, and a --help, a usage error or
// one of the vzdump hook's phases that do nothing would leave a cache of argument parsing alone.
import { wasmModulesCompiled } from './wasm-budget.mjs';
import { runCached } from './code-cache.mjs';

/* global require */
/** Runs `here/script` (exports main(argv) → exit code) with this process's arguments. */
export function runCommand(here, script, digest) {
  const { main } = runCached(here, script, digest, require, () => process.exitCode === 0 && wasmModulesCompiled() > 0);
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
