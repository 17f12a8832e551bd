import { readFileSync } from 'node:fs';

/** Whether a process with this pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
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
