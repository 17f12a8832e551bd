#!/usr/bin/env node
// Entry of the JSON stdio protocol (docs/PROTOCOL.md), run by the Perl plugin once per operation.
// first, before any WebAssembly is compiled (the core's SHA-256 and undici's parser; see the file)
import '../../scripts/wasm-budget.mjs';
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 18)) {
  process.stdout.write(JSON.stringify({ ok: false, error: { code: 'NodeTooOld', message: `pve-s3 needs Node.js >= 20.18, found ${process.versions.node}: install a newer nodejs`, retryable: false } }) + '\n');
  process.stderr.write(`pve-s3 needs Node.js >= 20.18, found ${process.versions.node}: install a newer nodejs\n`);
  process.exit(2);
}
const { main } = await import('../dist/protocol/main.js');
await main();
