// flockFile (util/flock.ts): an exclusive lock that a second taker cannot have, that the holder's
// release hands on, and that a holder killed with SIGKILL cannot leave behind; with `remove`, a
// lock file that goes with its lock and still excludes every other taker.
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flockFile } from '../../host/src/util/flock.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
let dir: string;

function compiledFlock(): string {
  // the TypeScript source is not importable by plain node: other processes use the compiled module
  const mod = join(ROOT, 'host', 'dist', 'util', 'flock.js');
  if (!existsSync(mod)) throw new Error('host/dist is missing: run `npm run build` (npm test does) before this test');
  return mod;
}

/** flock(1) on the path, not waiting: 0 when it was free, 1 when someone holds what the path names */
const probe = (file: string): Promise<number | null> => new Promise((r) => spawn('flock', ['--nonblock', file, 'true']).once('close', r));

/** Waits (polling /proc/locks, not the clock) until someone is blocked on the inode of `file`. */
async function waiterBlockedOn(file: string): Promise<void> {
  const ino = statSync(file).ino;
  for (let i = 0; i < 3000; i++) {
    const locks = await readFile('/proc/locks', 'utf8');
    if (locks.split('\n').some((l) => l.includes('->') && l.includes(' FLOCK ') && l.trim().split(/\s+/).at(-3)?.endsWith(`:${ino}`))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`nobody blocked on ${file}`);
}

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
    const mod = compiledFlock();
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

  describe('remove', () => {
    it('the file goes when the lock is dropped, and when its holder is killed with SIGKILL', async () => {
      const file = join(dir, 'r1.lock');
      const held = await flockFile(file, { waitSeconds: 0, remove: true });
      expect(existsSync(file)).toBe(true);
      await held!.release();
      expect(existsSync(file)).toBe(false);

      const mod = compiledFlock();
      const holder = spawn(process.execPath, ['--input-type=module', '-e', `const { flockFile } = await import(${JSON.stringify(mod)}); await flockFile(${JSON.stringify(file)}, { waitSeconds: 0, remove: true }); console.log('held'); setInterval(() => {}, 1000);`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((r) => holder.stdout.on('data', (d: Buffer) => d.toString().includes('held') && r()));
      expect(await probe(file)).toBe(1);
      const exited = new Promise((r) => holder.once('close', r));
      holder.kill('SIGKILL');
      await exited;
      // the lock's shell still holds it when it sees the pipe close, and removes the file then
      const after = await flockFile(file, { waitSeconds: 30, remove: true });
      await after!.release();
      expect(existsSync(file)).toBe(false);
    });

    it('a waiter on the file its holder removes gets the lock on the file at the path, not on the removed one', async () => {
      const file = join(dir, 'r2.lock');
      const first = await flockFile(file, { waitSeconds: 0, remove: true });
      const waiting = flockFile(file, { waitSeconds: 60, remove: true });
      // the waiter has opened the holder's file and sleeps in flock(2) on it
      await waiterBlockedOn(file);
      await first!.release();
      const second = await waiting;
      expect(second).not.toBeNull();
      // a third taker opens what the path names now: it must find it taken (a waiter left holding
      // the removed inode would let it in, and two would hold the volume)
      expect(existsSync(file)).toBe(true);
      expect(await probe(file)).toBe(1);
      expect(await flockFile(file, { waitSeconds: 0, remove: true })).toBeNull();
      await second!.release();
      expect(existsSync(file)).toBe(false);
      expect(await probe(file)).toBe(0);
    });

    it('processes taking and removing one lock file in turn never hold it together', async () => {
      const file = join(dir, 'r3.lock');
      const counter = join(dir, 'r3.count');
      await writeFile(counter, '0');
      const mod = compiledFlock();
      const ROUNDS = 15;
      // each round reads the counter, yields, and writes it back plus one: two holders at once lose counts
      const script = `const { flockFile } = await import(${JSON.stringify(mod)}); const fs = await import('node:fs/promises');
        for (let i = 0; i < ${ROUNDS}; i++) {
          const l = await flockFile(${JSON.stringify(file)}, { waitSeconds: 60, remove: true });
          const n = Number(await fs.readFile(${JSON.stringify(counter)}, 'utf8'));
          await new Promise((r) => setImmediate(r));
          await fs.writeFile(${JSON.stringify(counter)}, String(n + 1));
          await l.release();
        }`;
      const procs = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'inherit'] }));
      const codes = await Promise.all(procs.map((p) => new Promise((r) => p.once('close', r))));
      expect(codes).toEqual([0, 0, 0, 0]);
      expect(Number(await readFile(counter, 'utf8'))).toBe(4 * ROUNDS);
      expect(existsSync(file)).toBe(false);
    });
  });
});
