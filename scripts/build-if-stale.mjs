#!/usr/bin/env node
// Runs `npm run build` only when an output is missing or a source is newer than the oldest output.
// `npm ci` already builds (prepare), so `npm ci && npm run demo` used to build twice, and a second
// `npm run demo` rebuilt everything for nothing. tsc and asc rewrite every output on each build, so
// one file per step is enough to date the step.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outputs = ['build/core.wasm', 'host/dist/cli/demo.js', 'perl/PVE/Storage/Custom/S3Plugin/Rules.pm'];
const sources = ['assembly', 'host/src', 'scripts/gen-perl-rules.mjs', 'asconfig.json', 'tsconfig.json', 'package.json', 'package-lock.json'];

function mtime(path) {
  try {
    return statSync(join(root, path)).mtimeMs;
  } catch {
    return undefined;
  }
}

function newest(path) {
  const full = join(root, path);
  const st = statSync(full, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs; // a deleted source changes its directory's mtime
  for (const e of readdirSync(full)) m = Math.max(m, newest(join(path, e)));
  return m;
}

const built = outputs.map(mtime);
const oldestOutput = built.some((m) => m === undefined) ? -1 : Math.min(...built);
const stale = oldestOutput < 0 || sources.some((s) => newest(s) > oldestOutput);
if (stale) {
  const r = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
process.stderr.write('build is up to date (nothing in assembly/, host/src/ or the build settings changed)\n');
