import { rename, writeFile } from 'node:fs/promises';

/** Writes v as JSON to path through a temp file and a rename: a reader (or a crash) sees the old
 *  file or the new one whole, never half of one. Mode 0600: these files are the node's state. */
export async function writeJsonAtomic(path: string, v: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(v) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}
