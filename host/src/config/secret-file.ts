/**
 * The storage's secret in <priv dir>/<id>.pw (PVE's convention for PBS/CIFS/ESXi passwords; the
 * plugin's on_add/on_update hooks write it, mode 0600). The whole file is the secret; trailing
 * newlines are not part of it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export type SecretRead =
  | { ok: true; secret: string; file: string }
  | { ok: false; file: string; reason: 'missing' | 'unreadable' | 'empty'; detail?: string };

export function secretFilePath(privDir: string, storageId: string): string {
  return join(privDir, `${storageId}.pw`);
}

export function readSecretFile(privDir: string, storageId: string): SecretRead {
  const file = secretFilePath(privDir, storageId);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, file, reason: 'missing' };
    return { ok: false, file, reason: 'unreadable', detail: code ?? 'error' };
  }
  const secret = text.replace(/(\r?\n)+$/, '');
  if (secret === '') return { ok: false, file, reason: 'empty' };
  return { ok: true, secret, file };
}
