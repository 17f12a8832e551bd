// Issue 10 §7: manifests signed with the storage's manifest key (HMAC-SHA256 over the exact
// serialised body, TEAM contract "Manifest version 2"), the key file, and the verdicts the store
// draws from them. The HMAC is checked against node:crypto, an implementation of its own.
import { createHash, createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureKeyring, keyIdOf, readKeyring, retireKey, rotateKeyring } from '../../host/src/config/manifest-key.js';
import { locateManifestKey } from '../../host/src/config/manifest-key-location.js';
import { judge } from '../../host/src/store/trust.js';
import { buildManifest, parseManifest, serializeManifest, type Manifest } from '../../host/src/transfer/manifest.js';

const dir = mkdtempSync(join(tmpdir(), 'pve-s3-mkey-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
const KEY = 'pve/dump/vzdump-qemu-100-2026_01_02-03_04_05.vma.zst';

function manifest(): Manifest {
  const parts = [Buffer.alloc(10, 1), Buffer.alloc(3, 2)];
  return buildManifest({
    key: KEY,
    size: 13,
    partSize: 10,
    multipart: true,
    partDigests: parts.map(sha),
    partCrcs: [1n, 2n],
    partSizes: [10, 3],
    sha256: null,
    etag: '"abc-2"',
    meta: { volname: 'backup/vzdump-qemu-100-2026_01_02-03_04_05.vma.zst' },
  });
}

const key = Buffer.alloc(32, 7);
const signer = { keyId: keyIdOf(key), key };
const keys = new Map([[signer.keyId, key as Uint8Array]]);

describe('signed manifest (transfer/manifest.ts)', () => {
  it('is the body serialised once with ,"mac":"<id>:<HMAC-SHA256 hex>" before its final }', () => {
    const m = manifest();
    const body = JSON.stringify(m);
    const text = serializeManifest(m, signer).toString('utf8');
    const hmac = createHmac('sha256', key).update(body).digest('hex');
    expect(text).toBe(`${body.slice(0, -1)},"mac":"${signer.keyId}:${hmac}"}`);
    expect(signer.keyId).toBe(createHash('sha256').update(key).digest('hex').slice(0, 16));
    expect(() => JSON.parse(text)).not.toThrow();
  });

  it('reads back valid under the key, with the same fields', () => {
    const m = manifest();
    const back = parseManifest(serializeManifest(m, signer).toString('utf8'), KEY, keys);
    expect(back.mac).toEqual({ keyId: signer.keyId, status: 'valid' });
    const { mac: _, ...fields } = back;
    expect(fields).toEqual(m);
  });

  it('a reader without the key sees unknown-key; an unsigned manifest has no mac', () => {
    const text = serializeManifest(manifest(), signer).toString('utf8');
    expect(parseManifest(text, KEY).mac).toEqual({ keyId: signer.keyId, status: 'unknown-key' });
    expect(parseManifest(text, KEY, new Map([['0123456789abcdef', Buffer.alloc(32, 1)]])).mac?.status).toBe('unknown-key');
    expect(parseManifest(serializeManifest(manifest()).toString('utf8'), KEY, keys).mac).toBeUndefined();
  });

  it('any edit after signing makes it invalid: a field, whitespace, the mac itself', () => {
    const text = serializeManifest(manifest(), signer).toString('utf8');
    const edited = [
      text.replace('"size":13', '"size":14').replace('"size":3}]', '"size":4}]'),
      text.replace('"meta":{', '"meta":{"x":1,'),
      text.replace('{"format"', '{ "format"'),
      text.replace(/:([0-9a-f])([0-9a-f]{63})"\}$/, (_m, a: string, rest: string) => `:${a === '0' ? '1' : '0'}${rest}"}`),
    ];
    for (const e of edited) {
      expect(e).not.toBe(text);
      let status: string | undefined;
      try {
        status = parseManifest(e, KEY, keys).mac?.status;
      } catch {
        status = 'unparseable';
      }
      expect(['invalid', 'unparseable']).toContain(status);
    }
  });

  it('fields appended after the mac are not hidden behind it: the manifest reads as unsigned', () => {
    const text = serializeManifest(manifest(), signer).toString('utf8');
    const appended = `${text.slice(0, -1)},"etag":"\\"other\\""}`;
    const m = parseManifest(appended, KEY, keys);
    expect(m.mac).toBeUndefined();
  });

  it('a self-made manifest with a mac of its own making is invalid', () => {
    const forger = { keyId: signer.keyId, key: Buffer.alloc(32, 9) };
    expect(parseManifest(serializeManifest(manifest(), forger).toString('utf8'), KEY, keys).mac?.status).toBe('invalid');
  });
});

describe('verdicts (store/trust.ts judge)', () => {
  const ring = { file: 'x', ids: [signer.keyId], current: signer, keys };
  const obj = { key: KEY, size: 13, etag: '"abc-2"' };
  const read = (m: Manifest, s?: typeof signer) => parseManifest(serializeManifest(m, s).toString('utf8'), KEY, keys);

  it('verified only when signed with a key of the storage, for this object, matching it', () => {
    expect(judge(read(manifest(), signer), obj, ring)).toEqual({ trust: 'verified' });
    expect(judge(read(manifest(), signer), { ...obj, etag: 'abc-2' }, ring).trust).toBe('verified'); // quotes do not matter
  });

  it('names why anything else is not', () => {
    expect(judge(null, obj, ring)).toEqual({ trust: 'incomplete', note: 'no manifest' });
    expect(judge(read(manifest(), signer), { ...obj, size: 14 }, ring).trust).toBe('incomplete');
    expect(judge(read(manifest(), signer), { ...obj, etag: '"other"' }, ring).trust).toBe('incomplete');
    expect(judge(read(manifest()), obj, ring)).toMatchObject({ trust: 'unverified', note: expect.stringContaining('not signed') });
    expect(judge(read(manifest(), { keyId: 'ffffffffffffffff', key: Buffer.alloc(32, 3) }), obj, ring)).toMatchObject({
      trust: 'unverified',
      note: expect.stringContaining('key ffffffffffffffff, which this storage does not hold'),
    });
    expect(judge(read(manifest(), signer), obj, null)).toMatchObject({ trust: 'unverified', note: expect.stringContaining('no manifest key') });
    expect(judge(read(manifest(), { keyId: signer.keyId, key: Buffer.alloc(32, 9) }), obj, ring)).toMatchObject({ note: expect.stringContaining('does not match') });
    // a signed manifest of another object, copied beside a copy of its bytes
    expect(judge(read({ ...manifest(), key: 'pve/dump/other.vma.zst' }, signer), obj, ring)).toMatchObject({
      trust: 'unverified',
      note: expect.stringContaining("signed for another object ('pve/dump/other.vma.zst')"),
    });
  });
});

describe('the key file (config/manifest-key.ts)', () => {
  it('is created once, 0600, in a 0700 directory, one key line with its id', () => {
    const file = join(dir, 'priv', 'store1.manifest-key');
    const a = ensureKeyring(file);
    expect(a.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'priv')).mode & 0o777).toBe(0o700);
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    expect(lines).toHaveLength(1);
    const [id, hex] = lines[0]!.split(' ');
    expect(id).toBe(keyIdOf(Buffer.from(hex!, 'hex')));
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    const b = ensureKeyring(file);
    expect(b.created).toBe(false);
    expect(b.keyring.current.keyId).toBe(a.keyring.current.keyId);
  });

  it('rotation adds a signing key and keeps the old one for verifying; retiring drops an old one, never the signing key', () => {
    const file = join(dir, 'rot.manifest-key');
    const first = ensureKeyring(file).keyring.current.keyId;
    const rotated = rotateKeyring(file);
    expect(rotated.ids).toHaveLength(2);
    expect(rotated.ids[1]).toBe(first);
    expect(rotated.current.keyId).not.toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(() => retireKey(file, rotated.current.keyId)).toThrow(/it is the signing key/);
    expect(() => retireKey(file, '0000000000000000')).toThrow(`invalid key id '0000000000000000': must be an older key of '${file}': ${first}`);
    expect(retireKey(file, first).ids).toEqual([rotated.current.keyId]);
    expect(() => retireKey(file, first)).toThrow(`invalid key id '${first}': must be an older key, and '${file}' holds none (only the signing key ${rotated.current.keyId})`);
  });

  it('refuses a file others can read, and a damaged one, without showing the key', () => {
    const file = join(dir, 'open.manifest-key');
    const hex = ensureKeyring(file).keyring.current.key;
    const secret = Buffer.from(hex).toString('hex');
    chmodSync(file, 0o644);
    expect(() => readKeyring(file)).toThrow(/accessible by group or others \(mode 0644\).*chmod 600/);
    chmodSync(file, 0o600);
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace(/ ([0-9a-f]{64})/, (_m, k: string) => ` ${k.slice(0, 63)}${k[63] === '0' ? '1' : '0'}`), { mode: 0o600 });
    let msg = '';
    try {
      readKeyring(file);
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/line 3: the key id does not belong to the key/);
    expect(msg).not.toContain(secret.slice(0, 20));
    writeFileSync(file, 'not a key\n', { mode: 0o600 });
    expect(() => readKeyring(file)).toThrow(/line 1 is not '<16 hex digits> <64 hex digits>'$/);
    expect(readKeyring(join(dir, 'absent.manifest-key'))).toBeNull();
  });

  it('is found beside the secret, or where PVE_S3_MANIFEST_KEY_FILE says; never created under a missing /etc/pve', () => {
    expect(locateManifestKey({ storageId: 's3a', privDir: '/nonexistent/pve/priv/storage', env: {} })).toEqual({
      file: '/nonexistent/pve/priv/storage/s3a.manifest-key',
      mayCreate: false,
    });
    expect(locateManifestKey({ storageId: 's3a', privDir: join(dir, 'p'), env: { PVE_S3_PRIV_DIR: join(dir, 'p') } })).toEqual({
      file: join(dir, 'p', 's3a.manifest-key'),
      mayCreate: true,
    });
    expect(locateManifestKey({ privDir: '/x', env: {} })).toBeUndefined();
    expect(locateManifestKey({ privDir: '/x', env: { PVE_S3_MANIFEST_KEY_FILE: '/k/f' } })).toEqual({ file: '/k/f', mayCreate: true });
  });
});
