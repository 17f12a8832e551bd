// Issue 10 §14: `<path>/.pve-s3` (cache records, upload journals and locks: names, sizes and
// upload ids of backups) was created 0755 by the host and 0700 by the plugin, depending on who
// came first. One mode (store/state-dir.ts STATE_DIR_MODE, 0700), one rule: whichever side
// creates it, and one left 0755 by an earlier version is made 0700 by the host's next write.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeRecord } from '../../host/src/store/local-cache.js';
import { STATE_DIR, STATE_DIR_MODE } from '../../host/src/store/state-dir.js';
import { writeUsage } from '../../host/src/store/usage.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { nullLogger } from '../../host/src/util/log.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const fresh = async () => {
  const d = await mkdtemp(join(tmpdir(), 'pve-s3-state-'));
  dirs.push(d);
  return d;
};
const mode = async (p: string) => (await stat(p)).mode & 0o777;

describe('the state directory', () => {
  it('is 0700', () => {
    expect(STATE_DIR_MODE).toBe(0o700);
  });

  it('the host creates it 0700 (a cache record, the usage figure), its subdirectories too', async () => {
    const d = await fresh();
    await mkdir(join(d, 'template', 'iso'), { recursive: true });
    await writeFile(join(d, 'template', 'iso', 'a.iso'), 'x');
    await writeRecord(d, 'iso', 'a.iso', 'etag');
    expect(await mode(join(d, STATE_DIR))).toBe(STATE_DIR_MODE);
    expect(await mode(join(d, STATE_DIR, 'records'))).toBe(STATE_DIR_MODE);
    expect(await mode(join(d, STATE_DIR, 'records', 'iso'))).toBe(STATE_DIR_MODE);
    const u = await fresh();
    const ctx = { settings: { storageId: 's', bucket: 'b', prefix: '', chunkSizeMB: 5, concurrency: 1, cacheDir: u }, logger: nullLogger } as unknown as StoreContext;
    await writeUsage(ctx, 1);
    expect(await mode(join(u, STATE_DIR))).toBe(STATE_DIR_MODE);
  });

  it('one left 0755 by an earlier version is made 0700 by the next write', async () => {
    const d = await fresh();
    await mkdir(join(d, STATE_DIR), { mode: 0o755 });
    await mkdir(join(d, 'dump'));
    await writeFile(join(d, 'dump', 'vzdump-qemu-100-2024_01_01-00_00_00.vma'), 'x');
    await writeRecord(d, 'backup', 'vzdump-qemu-100-2024_01_01-00_00_00.vma', 'etag');
    expect(await mode(join(d, STATE_DIR))).toBe(STATE_DIR_MODE);
  });

  it('the plugin creates it with the same mode (from the generated rules table)', async () => {
    const d = await fresh();
    const r = spawnSync('perl', ['-It/lib', '-I.', '-e', 'use PVE::Storage::Custom::S3Plugin; PVE::Storage::Custom::S3Plugin::ensure_cache_dirs({ path => $ARGV[0] });', join(d, 'cache')], {
      cwd: join(ROOT, 'perl'),
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(join(d, 'cache', STATE_DIR)).mode & 0o777).toBe(STATE_DIR_MODE);
  });
});
