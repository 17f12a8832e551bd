// flockFile (util/flock.ts): an exclusive lock that a second taker cannot have, that the holder's
// release hands on, and that a holder killed with SIGKILL cannot leave behind.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flockFile } from '../../host/src/util/flock.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-flock-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('flockFile', () => {
  it('excludes a second taker until the first releases', async () => {
    const file = join(dir, 'a.lock');
    const first = await flockFile(file, { waitSeconds: 0 });
    expect(first).not.toBeNull();
    expect(await flockFile(file, { waitSeconds: 0 })).toBeNull();
    const waiting = flockFile(file, { waitSeconds: 60 });
    await first!.release();
    const second = await waiting;
    expect(second).not.toBeNull();
    await second!.release();
  });

  it('Perl-style flock(1) on the same file sees it taken', async () => {
    const file = join(dir, 'b.lock');
    const held = await flockFile(file, { waitSeconds: 0 });
    const code = await new Promise<number | null>((r) => spawn('flock', ['--nonblock', file, 'true']).once('close', r));
    expect(code).toBe(1);
    await held!.release();
  });

  it('a holder killed with SIGKILL leaves no lock behind', async () => {
    const file = join(dir, 'c.lock');
    // the TypeScript source is not importable by plain node: the holder uses the compiled module
    const mod = join(ROOT, 'host', 'dist', 'util', 'flock.js');
    if (!existsSync(mod)) throw new Error('host/dist is missing: run `npm run build` (npm test does) before this test');
    const holder = spawn(process.execPath, ['--input-type=module', '-e', `const { flockFile } = await import(${JSON.stringify(mod)}); await flockFile(${JSON.stringify(file)}, { waitSeconds: 0 }); console.log('held'); setInterval(() => {}, 1000);`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((r) => holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && r()));
    expect(await flockFile(file, { waitSeconds: 0 })).toBeNull();
    holder.kill('SIGKILL');
    // its flock(1) notices the closed pipe at once; the wait only bounds a broken system
    const after = await flockFile(file, { waitSeconds: 30 });
    expect(after).not.toBeNull();
    await after!.release();
  });

  it('gives up waiting when the signal fires', async () => {
    const file = join(dir, 'd.lock');
    const held = await flockFile(file, { waitSeconds: 0 });
    const ac = new AbortController();
    const waiting = flockFile(file, { waitSeconds: 600, signal: ac.signal });
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'Aborted' });
    await held!.release();
  });
});
