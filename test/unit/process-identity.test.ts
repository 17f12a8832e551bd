/**
 * A recorded process is the one that wrote the record only while pid and start time both match:
 * records in /run and the storage's state outlive their process, and pids are reused.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { pidAlive, processStart, recordedAlive } from '../../host/src/util/process.js';

describe('process identity', () => {
  it('knows this process by pid and start time', () => {
    const start = processStart(process.pid);
    expect(start).toBeTypeOf('number');
    expect(recordedAlive(process.pid, start!)).toBe(true);
  });

  it('does not take another process given the same pid for the recorded one', () => {
    // the same pid with another start time: what a record of a dead worker looks like after reuse
    const start = processStart(process.pid)!;
    expect(pidAlive(process.pid)).toBe(true);
    expect(recordedAlive(process.pid, start + 1)).toBe(false);
  });

  it('takes a zombie (exited, not yet reaped by its parent) for gone', async () => {
    // the shell's background child waits for a line on fd 3; the shell becomes `sleep`, which
    // never reaps it; the line is sent only after that exec, so the child dies unreaped
    const p = spawn('sh', ['-c', '(read x <&3) & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore', 'pipe'] });
    try {
      const pid = Number((await new Promise<string>((res) => p.stdout!.once('data', (d: Buffer) => res(String(d))))).trim());
      const until = Date.now() + 20_000;
      while (readFileSync(`/proc/${p.pid}/comm`, 'utf8').trim() !== 'sleep' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(pidAlive(pid)).toBe(true);
      (p.stdio[3] as NodeJS.WritableStream).write('go\n');
      const state = (): string => {
        const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
        return st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
      };
      while (state() !== 'Z' && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(state()).toBe('Z');
      expect(pidAlive(pid)).toBe(false);
      expect(pidAlive(p.pid!)).toBe(true);
    } finally {
      p.kill('SIGKILL');
    }
  }, 30_000);

  it('answers null / false for a process that has ended', () => {
    const p = spawnSync('sh', ['-c', 'echo $$']);
    const pid = Number(String(p.stdout).trim());
    expect(processStart(pid)).toBeNull();
    expect(recordedAlive(pid, undefined)).toBe(pidAlive(pid));
    expect(processStart(0)).toBeNull();
    expect(processStart(-1)).toBeNull();
  });
});
