// The contract between the host and the Perl plugin's generated rules (issue 11 §4): the cases of
// test/contract/rules-cases.json as the host answers them. perl/t/04-rules-contract.t asks the
// plugin the same cases, so both ends give one answer; and the generated Rules.pm is the table
// the host's own constants make (a stale build fails here).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OWN_KEYS, PVE_GLOBAL_KEYS, SCHEMA, matchesPattern } from '../../host/src/config/schema.js';
import { CONTENT_DIR } from '../../host/src/pve/content.js';
import { NAME_RULES } from '../../host/src/pve/name-rules.js';
import { parseVolname, sidecarNames } from '../../host/src/pve/volname.js';
import { isTemporaryName } from '../../host/src/store/local-cache.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
interface Cases {
  volnames: Array<{ volname: string; ok: boolean; format?: string; vmid?: number | null; log?: string | null }>;
  temporary: Array<{ name: string; temporary: boolean }>;
  properties: Array<{ key: string; type: string; minimum?: number; maximum?: number; default?: number }>;
  values: Array<{ key: string; value: string; pve: boolean; host: boolean }>;
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
    // the descriptions PVE shows are the schema's (issue 11 §4: they had drifted apart)
    for (const k of OWN_KEYS) expect(t.properties[k]!.description.toLowerCase(), k).toContain(SCHEMA.get(k)!.description.toLowerCase().replace(/\.$/, ''));
  });
});
