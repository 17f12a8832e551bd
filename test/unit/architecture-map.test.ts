// docs/ARCHITECTURE.md is the map of host/src: every module is named there, and every file it
// names exists (a module added, moved or removed without the map fails here).
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const DOC = readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
const SRC = join(ROOT, 'host', 'src');

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return modules(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [relative(SRC, p)] : [];
  });
}

describe('docs/ARCHITECTURE.md, the map of host/src', () => {
  const all = modules(SRC);

  it('names every directory and every module', () => {
    const dirs = [...new Set(all.map((m) => m.split('/')[0]!).filter((d) => !d.endsWith('.ts')))];
    for (const d of dirs) expect(DOC, `host/src/${d}/`).toContain(`host/src/${d}/`);
    for (const m of all) expect(DOC, m).toMatch(new RegExp(`\\b${basename(m).replace(/[.-]/g, '\\$&')}\\b`));
  });

  it('names no module of host/src that does not exist', () => {
    const names = new Set(all.map((m) => basename(m)));
    const paths = new Set(all);
    for (const [, path] of DOC.matchAll(/host\/src\/([\w/.-]+\.ts)\b/g)) expect(paths, path!).toContain(path);
    // `dir/file.ts` of a layer, or a bare file name in a layer's section
    for (const [, dir, file] of DOC.matchAll(/\b(cli|config|nbd|protocol|pve|s3|store|transfer|util|vma|wasm|zstd)\/([\w-]+\.ts)\b/g)) {
      expect(paths, `${dir}/${file}`).toContain(`${dir}/${file}`);
    }
    // the module index names bare files: each must be one
    const index = DOC.slice(DOC.indexOf('## Module index'));
    for (const [, file] of index.matchAll(/`([\w-]+\.ts)`/g)) expect(names, file!).toContain(file);
    expect(names.size).toBeGreaterThan(100);
  });
});
