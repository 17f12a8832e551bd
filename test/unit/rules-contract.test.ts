// The contract between the host and the Perl plugin's generated rules (issue 11 §4): the cases of
// test/contract/rules-cases.json as the host answers them. perl/t/04-rules-contract.t asks the
// plugin the same cases, so both ends give one answer; and the generated Rules.pm is the table
// the host's own constants make (a stale build fails here).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OWN_KEYS, PVE_GLOBAL_KEYS, SCHEMA, matchesPattern } from '../../host/src/config/schema.js';
import { CONTENT_DIR, CONTENT_TYPES } from '../../host/src/pve/content.js';
import { NAME_RULES } from '../../host/src/pve/name-rules.js';
import { parseVolname, sidecarNames } from '../../host/src/pve/volname.js';
import { SYNC_QUIET_SECONDS, isTemporaryName, localOnlyFiles } from '../../host/src/store/local-cache.js';
import { RECORDS_DIR, STATE_DIR } from '../../host/src/store/state-dir.js';
import type { Content } from '../../host/src/store/types.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
interface Cases {
  volnames: Array<{ volname: string; ok: boolean; format?: string; vmid?: number | null; log?: string | null }>;
  temporary: Array<{ name: string; temporary: boolean }>;
  properties: Array<{ key: string; type: string; minimum?: number; maximum?: number; default?: number }>;
  values: Array<{ key: string; value: string; pve: boolean; host: boolean }>;
  pending: PendingCase[];
}
interface PendingCase {
  content: Content;
  name: string;
  record: 'none' | 'match' | 'size' | 'mtime';
  directory?: boolean;
  pending: boolean;
}

const MTIME = 1_700_000_000;

/** A cache dir holding that one file (and its record), as perl/t/04-rules-contract.t makes it. */
function cacheWith(c: PendingCase): string {
  const dir = mkdtempSync(join(tmpdir(), 'pve-s3-contract-'));
  const path = join(dir, CONTENT_DIR[c.content], c.name);
  mkdirSync(dirname(path), { recursive: true });
  if (c.directory) mkdirSync(path);
  else writeFileSync(path, 'contract');
  utimesSync(path, MTIME, MTIME);
  if (c.record !== 'none') {
    const rec = join(dir, STATE_DIR, RECORDS_DIR, c.content, `${c.name}.json`);
    mkdirSync(dirname(rec), { recursive: true });
    const size = c.record === 'size' ? 9 : 8;
    const mtime = c.record === 'mtime' ? MTIME - 10 : MTIME;
    writeFileSync(rec, JSON.stringify({ volname: `${c.content}/${c.name}`, size, mtime, etag: '"e"' }));
  }
  return dir;
}
const cases = JSON.parse(readFileSync(join(ROOT, 'test', 'contract', 'rules-cases.json'), 'utf8')) as Cases;

const parses = (volname: string) => {
  try {
    return parseVolname(volname);
  } catch {
    return null;
  }
};

describe('the host answers the contract cases', () => {
  it.each(cases.volnames.map((c) => [JSON.stringify(c.volname).slice(0, 60), c] as const))('volume name %s', (_n, c) => {
    const v = parses(c.volname);
    expect(v !== null, 'parses').toBe(c.ok);
    if (!v) return;
    expect(v.listFormat).toBe(c.format);
    if (v.content === 'backup') {
      expect(v.vmid ?? null).toBe(c.vmid);
      expect(sidecarNames(v.name).log ?? null).toBe(c.log);
    }
  });

  it.each(cases.temporary.map((c) => [c.name, c] as const))('temporary name %s', (_n, c) => {
    expect(isTemporaryName(c.name)).toBe(c.temporary);
  });

  it.each(cases.pending.map((c) => [`${c.content}/${c.name} (record: ${c.record})`, c] as const))('pending local file %s', async (_n, c) => {
    const dir = cacheWith(c);
    try {
      const found = (await localOnlyFiles(dir, CONTENT_TYPES)).map((f) => `${f.content}/${f.name}`);
      expect(found.includes(`${c.content}/${c.name}`)).toBe(c.pending);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(cases.properties.map((c) => [c.key, c] as const))('property %s', (_n, c) => {
    const d = SCHEMA.get(c.key)!;
    expect(d.type === 'enum' ? 'string' : d.type).toBe(c.type);
    expect(d.min).toBe(c.minimum);
    expect(d.max).toBe(c.maximum);
    expect(typeof d.default === 'boolean' ? Number(d.default) : d.default).toBe(c.default);
  });

  it.each(cases.values.map((c) => [`${c.key} ${c.value}`, c] as const))('value %s: PVE pattern and host parse', (_n, c) => {
    const d = SCHEMA.get(c.key)!;
    expect(matchesPattern(d, c.value), 'pattern').toBe(c.pve);
    let host = true;
    try {
      d.parse(c.value);
    } catch {
      host = false;
    }
    expect(host, 'host parse').toBe(c.host);
  });
});

describe('the generated Rules.pm', () => {
  const file = join(ROOT, 'perl', 'PVE', 'Storage', 'Custom', 'S3Plugin', 'Rules.pm');

  it('is the table of the host constants it was generated from', () => {
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` (npm test does)`);
    const text = readFileSync(file, 'utf8');
    const json = /<<'END_OF_RULES'\);\n([\s\S]*?)\nEND_OF_RULES\n/.exec(text)?.[1];
    expect(json, 'the table heredoc').toBeDefined();
    const t = JSON.parse(json!) as Record<string, unknown> & { properties: Record<string, { description: string; type: string }> };
    expect(t.names).toEqual(JSON.parse(JSON.stringify(NAME_RULES)));
    expect(t.contentDir).toEqual(Object.fromEntries(Object.entries(CONTENT_DIR).map(([k, v]) => [k, v.replace(/\/$/, '')])));
    expect(Object.keys(t.properties).sort()).toEqual([...OWN_KEYS].sort());
    expect(t.globalOptions).toEqual([...PVE_GLOBAL_KEYS]);
    expect(t.syncQuietSeconds).toBe(SYNC_QUIET_SECONDS);
    // the descriptions PVE shows are the schema's (issue 11 §4: they had drifted apart)
    for (const k of OWN_KEYS) expect(t.properties[k]!.description.toLowerCase(), k).toContain(SCHEMA.get(k)!.description.toLowerCase().replace(/\.$/, ''));
  });
});
