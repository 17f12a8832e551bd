// host/bin/pve-s3-host.js refuses a Node.js older than 20.18 with one line naming what it found,
// before importing anything (an old Node would otherwise die on syntax or missing APIs).
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SHIM = join(resolve(import.meta.dirname, '..', '..'), 'host', 'bin', 'pve-s3-host.js');

function runAs(version: string) {
  // pretend to be another Node before the shim's first line runs
  const fake = `data:text/javascript,Object.defineProperty(process.versions,"node",{value:${JSON.stringify(version)}})`;
  return spawnSync(process.execPath, ['--import', fake, SHIM], { input: '{"v":1,"op":"version"}', encoding: 'utf8' });
}

describe('pve-s3-host shim', () => {
  it.each(['18.19.0', '20.17.1', '12.22.12'])('refuses Node %s with an envelope and a one-line message', (v) => {
    const r = runAs(v);
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: false,
      error: { code: 'NodeTooOld', message: `pve-s3 needs Node.js >= 20.18, found ${v}: install a newer nodejs`, retryable: false },
    });
    expect(r.stderr.trim().split('\n')).toEqual([`pve-s3 needs Node.js >= 20.18, found ${v}: install a newer nodejs`]);
  });
});
