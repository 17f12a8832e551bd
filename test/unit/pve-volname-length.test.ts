// Issue 10 §12: the longest usable volume name comes from one table (pve/volname.ts
// DERIVED_NAMES). These tests hold the table to the code that makes the names: a derived name
// that grows without the table following fails here, not on a user's node.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeRecord } from '../../host/src/store/local-cache.js';
import { DERIVED_NAMES, MAX_NAME_BYTES, NAME_MAX_BYTES, assertUsableName, parseVolname } from '../../host/src/pve/volname.js';
import { tempPathFor } from '../../host/src/transfer/temp-file.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const adds = (prefix: string) => DERIVED_NAMES.find((d) => d.name.startsWith(prefix))!.adds;

describe('derived local names', () => {
  it("the download's temporary name adds what the table says, and is the longest", () => {
    const name = 'a'.repeat(MAX_NAME_BYTES - 4) + '.iso';
    expect(Buffer.byteLength(basename(tempPathFor(`/x/${name}`)))).toBe(MAX_NAME_BYTES + adds('.<name>.pve-s3-tmp-'));
    expect(MAX_NAME_BYTES + Math.max(...DERIVED_NAMES.map((d) => d.adds))).toBe(NAME_MAX_BYTES);
  });

  it('a cache record of the longest name can be written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pve-s3-names-'));
    try {
      const name = 'a'.repeat(MAX_NAME_BYTES - 4) + '.iso';
      await mkdir(join(dir, 'template', 'iso'), { recursive: true });
      await writeFile(join(dir, 'template', 'iso', name), 'x');
      await writeRecord(dir, 'iso', name, 'etag', 1);
      const files = await readdir(join(dir, '.pve-s3', 'records', 'iso'));
      expect(files.map((f) => Buffer.byteLength(f) - MAX_NAME_BYTES)).toEqual([adds('<name>.json')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the plugin's lock name is <content>.<name>.lock, as the table has it", () => {
    const perl = readFileSync(join(ROOT, 'perl', 'PVE', 'Storage', 'Custom', 'S3Plugin.pm'), 'utf8');
    expect(perl).toContain('my $file = "$dir/$vtype.$name.lock";');
    expect(adds('<content>.<name>.lock')).toBe('snippets.'.length + '.lock'.length);
    const host = readFileSync(join(ROOT, 'host', 'src', 'store', 'volume-lock.ts'), 'utf8');
    expect(host).toContain('`${v.content}.${v.name}.lock`');
  });

  it('assertUsableName: the name limit, and the manifest key limit with a long prefix', () => {
    expect(() => assertUsableName(parseVolname(`iso/${'a'.repeat(MAX_NAME_BYTES - 4)}.iso`))).not.toThrow();
    expect(() => assertUsableName(parseVolname(`iso/${'a'.repeat(MAX_NAME_BYTES - 3)}.iso`))).toThrow(/NameTooLong|at most 230 are usable/);
    expect(() => assertUsableName(parseVolname('iso/x.iso'), 'p/'.repeat(500))).toThrow(/manifest '.*' would be 1045 bytes, S3 allows 1024/);
  });
});
