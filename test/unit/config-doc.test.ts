import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SCHEMA } from '../../host/src/config/schema.js';

// docs/CONFIG.md is what the Perl plugin and administrators read: it must say what the code does
const doc = readFileSync(fileURLToPath(new URL('../../docs/CONFIG.md', import.meta.url)), 'utf8');
const rows = new Map(
  doc
    .split('\n')
    .filter((l) => /^\| `[^`]+` \| (own|PVE) \|/.test(l))
    .map((l) => [/^\| `([^`]+)`/.exec(l)![1]!, l.split(/(?<!\\)\|/).map((c) => c.trim())]),
);

describe('docs/CONFIG.md key table', () => {
  it('lists exactly the keys of the schema', () => {
    expect([...rows.keys()].sort()).toEqual([...SCHEMA.keys()].sort());
  });

  it.each([...SCHEMA.values()].map((d) => [d.key, d] as const))('%s: origin, range and default agree', (key, d) => {
    const [, , origin, , range, def] = rows.get(key)!;
    expect(origin).toBe(d.pveGlobal ? 'PVE' : 'own');
    if (d.type === 'integer' && d.max !== Number.MAX_SAFE_INTEGER) expect(range).toContain(`${d.min}..${d.max}`);
    if (d.default === undefined) expect(def).toBe('—');
    else if (typeof d.default === 'boolean') expect(def).toBe(d.default ? '1' : '0');
    else if (d.default !== '') expect(def).toBe(String(d.default));
  });
});
