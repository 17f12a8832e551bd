#!/usr/bin/env node
// pve-s3-restore: see host/src/cli/restore.ts (--help for usage).
// first, before any WebAssembly is compiled (undici's HTTP parser; see the file)
import '../../scripts/wasm-budget.mjs';
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 18)) {
  process.stderr.write(`pve-s3-restore: needs Node.js >= 20.18, found ${process.versions.node}: install a newer nodejs\n`);
  process.exit(2);
}
const { main } = await import('../dist/cli/restore.js');
process.exitCode = await main(process.argv.slice(2));
