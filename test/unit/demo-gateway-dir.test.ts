// Issue 10 §14: without S3_*, `npm run demo` runs the test gateway in a predictable place under
// /tmp (PVE_S3_RGW_DIR, default /tmp/pve-s3-rgw, and its `.test-runs` leases beside it). Another
// local user could create those first: a planted ceph.conf (log file = /etc/shadow) in a dir
// root then starts daemons from, or a symlink. The demo uses such a directory only when it is a
// real directory of its own user that nobody else can write to, and refuses otherwise, naming it
// and what to do, before anything is started or written. (The demo's own scratch files are in a
// mkdtemp directory.)
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const DEMO = join(ROOT, 'host', 'dist', 'cli', 'demo.js');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function demo(gatewayDir: string) {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, PVE_S3_RGW_DIR: gatewayDir, PVE_S3_DEMO_MIB: '1' };
  return spawnSync(process.execPath, [DEMO], { env, encoding: 'utf8', timeout: 60_000 });
}

const scratch = () => {
  const d = mkdtempSync(join(tmpdir(), 'pve-s3-demo-dir-'));
  dirs.push(d);
  return d;
};
const isRoot = process.getuid?.() === 0;

describe("the demo's gateway directory", () => {
  it('a symlink planted at its place is refused, never followed', () => {
    const d = scratch();
    mkdirSync(join(d, 'elsewhere'));
    symlinkSync(join(d, 'elsewhere'), join(d, 'rgw'));
    const r = demo(join(d, 'rgw'));
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/'.*\/rgw' is not a directory of this user that only it can write to \(a symbolic link\): .*PVE_S3_RGW_DIR/);
    expect(existsSync(join(d, 'elsewhere', 'ceph.conf'))).toBe(false);
  });

  it('a directory others can write to is refused (the gateway dir, and its leases dir)', () => {
    const d = scratch();
    mkdirSync(join(d, 'rgw'), { mode: 0o777 });
    chmodSync(join(d, 'rgw'), 0o777);
    const w = demo(join(d, 'rgw'));
    expect(w.status).toBe(2);
    expect(w.stderr).toMatch(/'.*\/rgw' is not a directory of this user that only it can write to \(mode 0777\)/);
    const e = scratch();
    mkdirSync(join(e, 'rgw'), { mode: 0o700 });
    mkdirSync(join(e, 'rgw.test-runs'), { mode: 0o777 });
    chmodSync(join(e, 'rgw.test-runs'), 0o777);
    const r = demo(join(e, 'rgw'));
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/'.*\/rgw\.test-runs' is not a directory of this user/);
  });

  it.skipIf(!isRoot)("another user's directory is refused", () => {
    const d = scratch();
    mkdirSync(join(d, 'rgw'), { mode: 0o755 });
    chownSync(join(d, 'rgw'), 65534, 65534);
    const r = demo(join(d, 'rgw'));
    expect(r.status).toBe(2);
    expect(r.stdout + r.stderr).toMatch(/'.*\/rgw' is not a directory of this user that only it can write to \(owned by uid 65534\)/);
  });
});
