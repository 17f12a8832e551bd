/**
 * docs/PROTOCOL.md is the contract between the Perl plugin and the host: every operation it names
 * must be one the host dispatches and the plugin has a timeout for, and nothing may be dispatched
 * or called that the document does not describe.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../host/src/protocol/envelope.js';
import { OP_NAMES, OPS } from '../../host/src/protocol/ops.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = readFileSync(resolve(root, 'docs/PROTOCOL.md'), 'utf8');
const plugin = readFileSync(resolve(root, 'perl/PVE/Storage/Custom/S3Plugin.pm'), 'utf8');

function section(title: RegExp): string {
  const start = doc.search(title);
  expect(start, `section ${title} in PROTOCOL.md`).toBeGreaterThanOrEqual(0);
  const rest = doc.slice(start + 1);
  const end = rest.search(/\n##? /);
  return end === -1 ? rest : rest.slice(0, end);
}

/** first-column backticked names of a markdown table, e.g. "| `list` | …" → list */
function tableOps(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\|([^|]+)\|/.exec(line);
    if (!m) continue;
    for (const name of m[1]!.matchAll(/`([a-z][a-z-]*)`/g)) out.push(name[1]!);
  }
  return out;
}

const sorted = (xs: Iterable<string>) => [...new Set(xs)].sort();

describe('docs/PROTOCOL.md against the host and the plugin', () => {
  it('names the protocol version the host speaks', () => {
    expect(doc).toMatch(new RegExp(`^# pve-s3 host protocol, version ${PROTOCOL_VERSION}$`, 'm'));
  });

  it('§4.2 lists exactly the operations the host dispatches', () => {
    const documented = sorted(tableOps(section(/^### 4\.2 /m)));
    expect(documented.length).toBeGreaterThan(10);
    expect(documented).toEqual(sorted(OP_NAMES));
    // version is answered before dispatch; everything else has a handler
    expect(sorted(Object.keys(OPS))).toEqual(sorted(OP_NAMES.filter((o) => o !== 'version')));
  });

  it('§8 gives a plugin timeout for every operation, and the plugin has the same set', () => {
    const documented = sorted(tableOps(section(/^## 8\. /m)));
    expect(documented).toEqual(sorted(OP_NAMES));
    const block = /my \$OP_TIMEOUT = \{([\s\S]*?)\n\};/.exec(plugin);
    expect(block, '$OP_TIMEOUT in the plugin').not.toBeNull();
    const inPlugin = [...block![1]!.matchAll(/^\s*'?([a-z][a-z-]*)'?\s*=>/gm)].map((m) => m[1]!);
    expect(sorted(inPlugin)).toEqual(sorted(OP_NAMES));
  });

  it('every operation the plugin sends is one the host dispatches', () => {
    const sent = [...plugin.matchAll(/host_(?:try|call)\([^;]*?,\s*'([a-z][a-z-]*)'/g)].map((m) => m[1]!);
    expect(sent.length).toBeGreaterThan(8);
    for (const op of sent) expect(OP_NAMES, `plugin op '${op}'`).toContain(op);
  });

  it('every documented operation has a caller in the plugin, or is marked internal (issue 11 §4)', () => {
    const provider = readFileSync(resolve(root, 'perl/PVE/Storage/Custom/S3Plugin/BackupProvider.pm'), 'utf8');
    const sent = new Set([
      ...[...plugin.matchAll(/host_(?:try|call)\([^;]*?,\s*'([a-z][a-z-]*)'/g)].map((m) => m[1]!),
      // background jobs run an op by name through the same runner
      ...[...plugin.matchAll(/spawn_detached\(\$storeid, \$scfg, '([a-z][a-z-]*)'\)/g)].map((m) => m[1]!),
      ...[...provider.matchAll(/->host\(\s*'([a-z][a-z-]*)'/g)].map((m) => m[1]!),
    ]);
    const rows = section(/^### 4\.2 /m).split('\n').filter((l) => /^\| `[a-z]/.test(l));
    const internal = rows.filter((l) => /\| internal:/.test(l)).flatMap((l) => tableOps(l));
    for (const op of sorted(tableOps(rows.join('\n')))) {
      if (internal.includes(op)) continue;
      expect(sent.has(op), `op '${op}' is documented but the plugin never sends it: give it a caller or remove it`).toBe(true);
    }
  });

  it('§5 documents every error code the protocol layer renames to', () => {
    const codes = new Set([...section(/^## 5\. /m).matchAll(/`([A-Za-z]+)`/g)].map((m) => m[1]!));
    for (const c of ['ProtocolVersion', 'BadRequest', 'UnknownOp', 'ConfigInvalid', 'ConfigMissing', 'InvalidVolname', 'InvalidArgument', 'NetworkError', 'Timeout', 'VolumeProtected', 'NoSuchKey', 'IntegrityError']) {
      expect(codes, c).toContain(c);
    }
  });
});
