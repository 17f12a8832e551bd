/**
 * A container backup's run record lives in a directory the container's uid writes; root reads it
 * (backup-discard, the prepare's sweep of abandoned work directories). What the uid puts there in
 * its place — a FIFO nobody writes, a link to a file of root's — must neither block root nor be
 * read through: the record is then nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { liveRun, recordedUploads } from '../../host/src/store/provider-run.js';

const dir = mkdtempSync(join(tmpdir(), 'pve-s3-run-record-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a run record in a directory another uid writes', () => {
  const rec = { pid: process.pid, volname: 'backup/vzdump-lxc-100-2025_01_02-03_04_05.tar.zst', started: 0, run: 'a'.repeat(32), uploads: [{ key: 'k', uploadId: 'u' }] };

  it('a regular file is read', async () => {
    writeFileSync(join(dir, 'run'), JSON.stringify(rec));
    expect(await recordedUploads(join(dir, 'run'))).toEqual({ run: rec.run, uploads: rec.uploads });
  });

  it('a FIFO is no record, and does not block the reader', async () => {
    const fifo = join(dir, 'fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    expect(await recordedUploads(fifo)).toEqual({ uploads: [] });
    expect(await liveRun(fifo)).toBeNull();
  });

  it('a symbolic link is not followed, even to a valid record', async () => {
    const real = join(dir, 'elsewhere.json');
    writeFileSync(real, JSON.stringify(rec));
    symlinkSync(real, join(dir, 'link'));
    expect(await recordedUploads(join(dir, 'link'))).toEqual({ uploads: [] });
  });
});
