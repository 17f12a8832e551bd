/**
 * A recorded process is the one that wrote the record only while pid and start time both match:
 * records in /run and the storage's state outlive their process, and pids are reused.
 */
import { spawnSync } from 'node:child_process';
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

  it('answers null / false for a process that has ended', () => {
    const p = spawnSync('sh', ['-c', 'echo $$']);
    const pid = Number(String(p.stdout).trim());
    expect(processStart(pid)).toBeNull();
    expect(recordedAlive(pid, undefined)).toBe(pidAlive(pid));
    expect(processStart(0)).toBeNull();
    expect(processStart(-1)).toBeNull();
  });
});
