#!/usr/bin/env node
// Bundles the compiled host (host/dist, via the host/bin shims) into a few ESM files for the
// installed tree: one entry per command plus shared chunks, so an operation loads only the
// code it imports (dynamic import() stays a separate chunk). Production dependencies (undici,
// fast-xml-parser) are inlined: nothing is fetched from npm at install time.
// Usage: node scripts/bundle.mjs OUTDIR
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const out = resolve(process.argv[2] ?? join(root, 'build', 'pkg'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const entryPoints = {};
for (const [name, file] of Object.entries(pkg.bin)) {
  if (!existsSync(join(root, file))) throw new Error(`bin entry ${name}: ${file} is missing`);
  entryPoints[name] = join(root, file);
}

await build({
  entryPoints,
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'lib/[name]-[hash]',
  // ESM output still meets CommonJS dependencies that call require() on node builtins.
  banner: {
    js: "import { createRequire as __pveS3Req } from 'node:module'; const require = __pveS3Req(import.meta.url);",
  },
  legalComments: 'eof',
  minifySyntax: true,
  logLevel: 'warning',
});
copyFileSync(join(root, 'build', 'core.wasm'), join(out, 'core.wasm'));
// chunks live in lib/: the WASM loader looks next to the module that loads it
copyFileSync(join(root, 'build', 'core.wasm'), join(out, 'lib', 'core.wasm'));
console.error(`bundled ${Object.keys(entryPoints).map((n) => basename(n)).join(', ')} into ${out}`);
