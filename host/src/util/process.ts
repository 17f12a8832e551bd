import { readFileSync } from 'node:fs';

/**
 * Whether a process with this pid exists (EPERM: it does, owned by someone else) and has not
 * exited: a zombie — exited, not yet reaped by its parent — counts as gone. A detached server's
 * parent is init once its starter exits, and an init that reaps late kept a stopped restore
 * server "alive" for seconds after it exited (measured: 1.5-2.2 s per restore-volume-stop here).
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) !== 'Z';
  } catch (e) {
    // gone since kill answered; any other failure to read /proc: what kill said
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/**
 * When process `pid` started (clock ticks since boot, /proc/<pid>/stat field 22), or null when it
 * does not exist. A pid alone names a process only while it lives: records that outlive their
 * process (in /run, in the storage's state) keep this too, so a later process given the same pid
 * is never taken for it — neither waited for nor signalled.
 */
export function processStart(pid: number): number | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // after "(comm) ": state is field 3, starttime field 22
    const n = Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/** Whether the process recorded as `pid` (started at `start`, when the record has it) still runs. */
export function recordedAlive(pid: number, start: number | undefined): boolean {
  if (start === undefined) return pidAlive(pid);
  return processStart(pid) === start;
}

function parentPid(): number {
  try {
    // /proc/self/stat: "pid (comm) state ppid …", comm may hold spaces and parentheses
    const s = readFileSync('/proc/self/stat', 'utf8');
    return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return process.ppid;
  }
}

/**
 * Calls `onGone` once when this process is given another parent (the one that started it died:
 * PVE's run_command dies on a signal without killing its child, and a killed worker cannot).
 * Returns the function that stops watching.
 */
export function watchParent(onGone: () => void, everyMs = 2000): () => void {
  const first = parentPid();
  const t = setInterval(() => {
    if (parentPid() === first) return;
    clearInterval(t);
    onGone();
  }, everyMs);
  t.unref();
  return () => clearInterval(t);
}
