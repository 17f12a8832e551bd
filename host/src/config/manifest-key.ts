/**
 * The per-storage manifest key (issue 10 §7): an HMAC-SHA256 key that signs every integrity
 * manifest this storage writes, so that someone who can only write to the bucket cannot make an
 * object look like ours. It lives beside the storage's secret, `<priv dir>/<id>.manifest-key`
 * (default /etc/pve/priv/storage: root only, replicated to every node by pmxcfs), mode 0600,
 * and is never sent to the bucket, put in argv, the environment or a log.
 *
 * This module is the only place that makes, reads or changes the file. The text format:
 *
 *   # comment lines
 *   <key id> <key: 64 hex digits>      the first key signs new manifests
 *   <key id> <key>                     older keys (after a rotation) only verify
 *
 * A key is 32 random bytes; its id is the first 16 hex digits of SHA-256(key), which names the
 * key in a manifest's mac without saying anything about it, and catches a mistyped line.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { EXIT, PveS3Error, type ExitCode } from '../util/errors.js';
import { registerSecret } from '../util/logger.js';
import { Sha256 } from '../wasm/digests.js';
import { toHex } from '../wasm/encoding.js';

export { manifestKeyPath, locateManifestKey, type ManifestKeyLocation } from './manifest-key-location.js';

export interface ManifestKeyring {
  file: string;
  /** ids, the signing key first */
  ids: string[];
  /** the key new manifests are signed with */
  current: { keyId: string; key: Uint8Array };
  /** every key, for verification */
  keys: ReadonlyMap<string, Uint8Array>;
}

export function keyIdOf(key: Uint8Array): string {
  return toHex(Sha256.hash(key)).slice(0, 16);
}

const LINE = /^([0-9a-f]{16}) ([0-9a-f]{64})$/;
const HEADER =
  '# pve-s3 manifest key: signs the integrity manifests of this storage (docs/ARCHITECTURE.md, "Manifest key").\n' +
  '# Root only (0600). Never copy it into the bucket. The first key signs, the others only verify.\n';

function keyError(file: string, why: string, exitCode: ExitCode = EXIT.usage): PveS3Error {
  return new PveS3Error('ManifestKeyInvalid', `manifest key file '${file}' ${why}`, { exitCode, key: file });
}

/** The keyring in `file`, or null when there is none. Never puts key material into an error. */
export function readKeyring(file: string): ManifestKeyring | null {
  let text = '';
  for (let attempt = 0; ; attempt++) {
    try {
      const st = statSync(file);
      if (!st.isFile()) throw keyError(file, 'is not a regular file');
      if ((st.mode & 0o077) !== 0) {
        throw keyError(file, `is accessible by group or others (mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}): anyone who reads it can forge manifests; run chmod 600 '${file}'`);
      }
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      if (e instanceof PveS3Error) throw e;
      throw keyError(file, `cannot be read (${code ?? 'error'})`, EXIT.failure);
    }
    // another node may have created it a moment ago and not written it yet (pmxcfs replicates
    // the create and the write as two steps)
    if (text.trim() !== '' || attempt >= 5) break;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
  const ids: string[] = [];
  const keys = new Map<string, Uint8Array>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    // the line number, never the line: it holds a key
    if (!m) throw keyError(file, `line ${i + 1} is not '<16 hex digits> <64 hex digits>'`);
    const key = Buffer.from(m[2]!, 'hex');
    if (keyIdOf(key) !== m[1]) throw keyError(file, `line ${i + 1}: the key id does not belong to the key (damaged or mistyped)`);
    if (!keys.has(m[1]!)) ids.push(m[1]!);
    keys.set(m[1]!, key);
    registerSecret(m[2]!);
  }
  if (ids.length === 0) throw keyError(file, 'holds no key');
  return { file, ids, current: { keyId: ids[0]!, key: keys.get(ids[0]!)! }, keys };
}

function newKey(): { id: string; hex: string } {
  const key = randomBytes(32);
  const hex = key.toString('hex');
  registerSecret(hex);
  return { id: keyIdOf(key), hex };
}

function format(entries: Array<{ id: string; hex: string }>): string {
  return HEADER + entries.map((e) => `${e.id} ${e.hex}\n`).join('');
}

function entriesOf(k: ManifestKeyring): Array<{ id: string; hex: string }> {
  return k.ids.map((id) => ({ id, hex: Buffer.from(k.keys.get(id)!).toString('hex') }));
}

/**
 * Creates the key file when there is none (exclusively: two nodes racing on pmxcfs get one key)
 * and returns the keyring either way.
 */
export function ensureKeyring(file: string): { keyring: ManifestKeyring; created: boolean } {
  const have = readKeyring(file);
  if (have) return { keyring: have, created: false };
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return { keyring: mustRead(file), created: false };
    throw keyError(file, `cannot be created (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.failure);
  }
  try {
    writeSync(fd, format([newKey()]));
  } finally {
    closeSync(fd);
  }
  return { keyring: mustRead(file), created: true };
}

function mustRead(file: string): ManifestKeyring {
  const k = readKeyring(file);
  if (!k) throw keyError(file, 'vanished while it was being created', EXIT.failure);
  return k;
}

/** Replaces the file's content atomically (temporary name + rename, 0600). */
function rewrite(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw keyError(file, `cannot be replaced (${(e as NodeJS.ErrnoException).code ?? 'error'})`, EXIT.failure);
  }
}

/** A new signing key; the old ones stay to verify what they signed (none yet: the first key). */
export function rotateKeyring(file: string): ManifestKeyring {
  const cur = readKeyring(file);
  // no key yet: the new one is the only one
  if (!cur) return ensureKeyring(file).keyring;
  rewrite(file, format([newKey(), ...entriesOf(cur)]));
  return mustRead(file);
}

/** Drops an older key: what only it signed becomes unverified. The signing key cannot go. */
export function retireKey(file: string, keyId: string): ManifestKeyring {
  const cur = readKeyring(file);
  if (!cur) throw keyError(file, 'does not exist', EXIT.notFound);
  if (!cur.keys.has(keyId)) {
    const older = cur.ids.filter((id) => id !== cur.current.keyId);
    const can = older.length > 0 ? `an older key of '${file}': ${older.join(', ')}` : `an older key, and '${file}' holds none (only the signing key ${cur.current.keyId})`;
    throw new PveS3Error('InvalidArgument', `invalid key id '${keyId}': must be ${can}`, { exitCode: EXIT.usage });
  }
  if (keyId === cur.current.keyId) {
    throw new PveS3Error('InvalidArgument', `invalid key id '${keyId}': it is the signing key; rotate first, then retire it`, { exitCode: EXIT.usage });
  }
  rewrite(file, format(entriesOf(cur).filter((e) => e.id !== keyId)));
  return mustRead(file);
}
