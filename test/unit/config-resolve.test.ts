import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveStorage, storageConfigFromSection } from '../../host/src/config/resolve.js';
import { toS3Settings } from '../../host/src/config/s3-settings.js';
import { PveS3Error } from '../../host/src/util/errors.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Fixture {
  cfg?: string;
  secrets?: Record<string, string>;
  ini?: string;
}

/** A throw-away /etc/pve look-alike; returns the PVE_S3_* variables pointing into it. */
function fixture(f: Fixture): Record<string, string> {
  const d = mkdtempSync(join(tmpdir(), 'pve-s3-cfg-'));
  dirs.push(d);
  const priv = join(d, 'priv', 'storage');
  mkdirSync(priv, { recursive: true });
  if (f.cfg !== undefined) writeFileSync(join(d, 'storage.cfg'), f.cfg);
  for (const [id, s] of Object.entries(f.secrets ?? {})) writeFileSync(join(priv, `${id}.pw`), s, { mode: 0o600 });
  if (f.ini !== undefined) writeFileSync(join(d, 'aws-credentials'), f.ini, { mode: 0o600 });
  return {
    PVE_S3_STORAGE_CFG: join(d, 'storage.cfg'),
    PVE_S3_PRIV_DIR: priv,
    PVE_S3_CREDENTIALS: join(d, 'aws-credentials'),
  };
}

function failure(fn: () => unknown): PveS3Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PveS3Error);
    return e as PveS3Error;
  }
  throw new Error('expected an error');
}

const SECTION = (extra = '') => `s3: store1
\tbucket cfg-bucket
\tendpoint cfg.example.com
\taccess_key CFGKEY
${extra}`;

describe('resolveStorage: precedence flags > S3_* env > storage.cfg (+ .pw) > INI', () => {
  // every combination of the four sources providing a value: the highest one present wins
  const combos: Array<[boolean, boolean, boolean, boolean]> = [];
  for (let m = 1; m < 16; m++) combos.push([!!(m & 8), !!(m & 4), !!(m & 2), !!(m & 1)]);

  it.each(combos)('region: flag=%s env=%s cfg=%s ini=%s', (flag, env, cfg, ini) => {
    const e = fixture({
      cfg: SECTION(cfg ? '\tregion cfg-region\n' : ''),
      secrets: { store1: 'pw-secret\n' },
      ini: ini ? '[default]\nregion = ini-region\n' : undefined,
    });
    const c = resolveStorage({
      storageId: 'store1',
      flags: flag ? { region: 'flag-region' } : {},
      env: { ...e, ...(env ? { S3_REGION: 'env-region' } : {}) },
    });
    const want = flag ? 'flag-region' : env ? 'env-region' : cfg ? 'cfg-region' : 'ini-region';
    expect(c.region).toBe(want);
    expect(c.sources.region).toBe(
      flag ? '--region' : env ? 'env S3_REGION' : cfg ? `${e.PVE_S3_STORAGE_CFG} [store1]` : `${e.PVE_S3_CREDENTIALS} [default] region`,
    );
  });

  it.each(combos)('secret_key: flag=%s env=%s pw-file=%s ini=%s', (flag, env, pw, ini) => {
    const e = fixture({
      cfg: SECTION(),
      secrets: pw ? { store1: 'pw-secret\n' } : {},
      ini: ini ? '[store1]\naws_secret_access_key = ini-secret\n' : undefined,
    });
    const run = () =>
      resolveStorage({
        storageId: 'store1',
        flags: flag ? { secret_key: 'flag-secret' } : {},
        env: { ...e, ...(env ? { S3_SECRET_KEY: 'env-secret' } : {}) },
      });
    expect(run().secretKey).toBe(flag ? 'flag-secret' : env ? 'env-secret' : pw ? 'pw-secret' : 'ini-secret');
  });

  it.each(combos)('endpoint: flag=%s env=%s cfg=%s ini=%s', (flag, env, cfg, ini) => {
    const e = fixture({
      cfg: `s3: store1\n\tbucket cfg-bucket\n\taccess_key CFGKEY\n${cfg ? '\tendpoint cfg.example.com\n' : ''}`,
      secrets: { store1: 's' },
      ini: ini ? '[default]\nendpoint = http://ini.example.com:9000\n' : undefined,
    });
    const c = resolveStorage({
      storageId: 'store1',
      flags: flag ? { endpoint: 'flag.example.com' } : {},
      env: { ...e, ...(env ? { S3_ENDPOINT: '10.0.0.9:7480' } : {}) },
    });
    expect(c.endpoint).toBe(
      flag ? 'https://flag.example.com' : env ? 'https://10.0.0.9:7480' : cfg ? 'https://cfg.example.com' : 'http://ini.example.com:9000',
    );
  });

  it('all S3_* variables map to their keys; flags take hyphenated names too', () => {
    const e = fixture({});
    const c = resolveStorage({
      flags: { 'storage-class': 'GLACIER_IR', 'multipart-chunk-size': '16' },
      env: {
        ...e,
        S3_ENDPOINT: 'rgw.lan:7480',
        S3_BUCKET: 'envbucket',
        S3_REGION: 'default',
        S3_ACCESS_KEY: 'ENVKEY',
        S3_SECRET_KEY: 'envsecret',
        S3_PREFIX: '/pve',
        S3_FORCE_PATH_STYLE: '1',
        S3_USE_SSL: '0',
      },
    });
    expect(c).toMatchObject({
      endpoint: 'http://rgw.lan:7480',
      bucket: 'envbucket',
      region: 'default',
      accessKey: 'ENVKEY',
      secretKey: 'envsecret',
      prefix: 'pve/',
      forcePathStyle: true,
      storageClass: 'GLACIER_IR',
      multipartChunkSizeMB: 16,
      fromStorageCfg: false,
    });
    expect(c.storageId).toBeUndefined();
  });

  it('empty environment variables count as unset', () => {
    const e = fixture({ cfg: SECTION('\tregion cfg-region\n'), secrets: { store1: 's' } });
    expect(resolveStorage({ storageId: 'store1', env: { ...e, S3_REGION: '' } }).region).toBe('cfg-region');
  });
});

describe('resolveStorage: storage.cfg and its secret', () => {
  it('reads the seed example storage with defaults filled in', () => {
    const e = fixture({
      cfg: `dir: local\n\tpath /var/lib/vz\n\ns3: mon-stockage-s3\n\tbucket my-bucket-proxmox\n\tendpoint s3.amazonaws.com\n\tregion eu-west-3\n\taccess_key AKIAEXAMPLE\n\tprefix proxmox/\n\tserver_side_encryption aws:kms\n\tkms_key_id alias/pve\n\tlifecycle_enabled 1\n\ttransition_days 30\n\tglacier_days 365\n\tprune-backups keep-last=3,keep-weekly=2\n`,
      secrets: { 'mon-stockage-s3': 'the-secret\r\n\n' },
    });
    const c = resolveStorage({ storageId: 'mon-stockage-s3', env: e });
    expect(c).toMatchObject({
      storageId: 'mon-stockage-s3',
      fromStorageCfg: true,
      bucket: 'my-bucket-proxmox',
      endpoint: 'https://s3.amazonaws.com',
      region: 'eu-west-3',
      accessKey: 'AKIAEXAMPLE',
      secretKey: 'the-secret',
      prefix: 'proxmox/',
      content: ['backup', 'iso', 'vztmpl', 'snippets'],
      multipartChunkSizeMB: 32,
      maxConcurrentUploads: 4,
      connectionTimeoutS: 60,
      requestTimeoutS: 300,
      sse: { type: 'aws:kms', keyId: 'alias/pve' },
      lifecycle: { enabled: true, transitionDays: 30, glacierDays: 365, abortIncompleteDays: 7 },
      tls: { verify: true },
      keepLocal: false,
      disable: false,
      pruneBackups: { 'keep-last': 3, 'keep-weekly': 2 },
    });
    expect(c.sources.secret_key).toBe(join(e.PVE_S3_PRIV_DIR!, 'mon-stockage-s3.pw'));
    expect(c.sources.multipart_chunk_size).toBe('default');
    expect(c.forcePathStyle).toBeUndefined();
  });

  it('keeps inner/leading spaces of the secret file, trims only trailing newlines', () => {
    const e = fixture({ cfg: SECTION(), secrets: { store1: ' a b \n' } });
    expect(resolveStorage({ storageId: 'store1', env: e }).secretKey).toBe(' a b ');
  });

  it('accepts a legacy secret_key inside the section; the .pw file wins over it', () => {
    const e1 = fixture({ cfg: SECTION('\tsecret_key inline-secret\n') });
    expect(resolveStorage({ storageId: 'store1', env: e1 }).secretKey).toBe('inline-secret');
    const e2 = fixture({ cfg: SECTION('\tsecret_key inline-secret\n'), secrets: { store1: 'file-secret' } });
    expect(resolveStorage({ storageId: 'store1', env: e2 }).secretKey).toBe('file-secret');
  });

  it('falls back to an INI profile named like the storage, or [profile <id>], or an explicit S3_PROFILE', () => {
    const ini = '[default]\naws_access_key_id = D\naws_secret_access_key = dsecret\n[profile store1]\naws_access_key_id = P\naws_secret_access_key = psecret\n[alt]\naws_access_key_id = A\naws_secret_access_key = asecret\n';
    const e = fixture({ cfg: 's3: store1\n\tbucket b-1\n\tendpoint h.example\n', ini });
    expect(resolveStorage({ storageId: 'store1', env: e })).toMatchObject({ accessKey: 'P', secretKey: 'psecret' });
    expect(resolveStorage({ storageId: 'store1', env: { ...e, S3_PROFILE: 'alt' } })).toMatchObject({ accessKey: 'A' });
    expect(resolveStorage({ storageId: 'store1', env: e, profile: 'default' })).toMatchObject({ accessKey: 'D' });
    const err = failure(() => resolveStorage({ storageId: 'store1', env: e, profile: 'nope' }));
    expect(err.code).toBe('ConfigMissing');
    expect(err.message).toContain(`profile 'nope' not found in ${e.PVE_S3_CREDENTIALS}`);
  });

  it('ignores keys it does not know in a section, with a warning', () => {
    const warnings: string[] = [];
    const e = fixture({ cfg: SECTION('\tmaxfiles 3\n'), secrets: { store1: 's' } });
    const logger = { debug() {}, info() {}, warn: (m: string) => warnings.push(m), error() {}, debugEnabled: false };
    resolveStorage({ storageId: 'store1', env: e, logger });
    expect(warnings.join()).toContain("ignoring unknown key 'maxfiles'");
  });
});

describe('resolveStorage: running without storage.cfg', () => {
  const ENV = { S3_ENDPOINT: '127.0.0.1:7480', S3_BUCKET: 'envb', S3_ACCESS_KEY: 'K', S3_SECRET_KEY: 'S', S3_USE_SSL: '0' };

  it('no storage.cfg at all (not a PVE host): S3_* alone are enough, the id is kept', () => {
    const e = fixture({});
    const c = resolveStorage({ storageId: 'mon-stockage-s3', env: { ...e, ...ENV } });
    expect(c).toMatchObject({ storageId: 'mon-stockage-s3', fromStorageCfg: false, endpoint: 'http://127.0.0.1:7480', region: 'us-east-1', prefix: '' });
  });

  it('storage.cfg without that storage: S3_* alone are enough', () => {
    const e = fixture({ cfg: 'dir: local\n\tpath /var/lib/vz\n' });
    expect(resolveStorage({ storageId: 'other-s3', env: { ...e, ...ENV } }).bucket).toBe('envb');
  });

  it('keys may come from the INI file when S3_* give endpoint and bucket', () => {
    const e = fixture({ ini: '[default]\naws_access_key_id = IK\naws_secret_access_key = IS\n' });
    const c = resolveStorage({ storageId: 'x1', env: { ...e, S3_ENDPOINT: 'h.example', S3_BUCKET: 'bkt' } });
    expect(c).toMatchObject({ accessKey: 'IK', secretKey: 'IS' });
  });

  it('unknown storage without S3_* → StorageNotFound naming the id and the file (exit 2)', () => {
    const e = fixture({ cfg: 'dir: local\n\tpath /var/lib/vz\n' });
    const err = failure(() => resolveStorage({ storageId: 'nope-s3', env: e }));
    expect(err.code).toBe('StorageNotFound');
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain("storage 'nope-s3' not found");
    expect(err.message).toContain(`no section 's3: nope-s3' in ${e.PVE_S3_STORAGE_CFG}`);
    expect(err.message).toContain('S3_ENDPOINT and S3_BUCKET');
    const e2 = fixture({});
    expect(failure(() => resolveStorage({ storageId: 'nope-s3', env: e2 })).message).toContain(
      `${e2.PVE_S3_STORAGE_CFG} does not exist`,
    );
  });

  it('a storage of another type is refused clearly', () => {
    const e = fixture({ cfg: 'dir: local\n\tpath /var/lib/vz\n' });
    const err = failure(() => resolveStorage({ storageId: 'local', env: { ...e, ...ENV } }));
    expect(err.code).toBe('StorageWrongType');
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(`storage 'local' in ${e.PVE_S3_STORAGE_CFG} is of type 'dir', not 's3': pick an s3 storage`);
  });

  it('refuses a storage id that could escape the priv dir', () => {
    const e = fixture({});
    for (const id of ['../x', 'a/b', 'x', '1abc', 'abc-']) {
      const err = failure(() => resolveStorage({ storageId: id, env: { ...e, ...ENV } }));
      expect(err.code).toBe('ConfigInvalid');
      expect(err.message).toContain(`invalid storage '${id}'`);
    }
  });
});

describe('resolveStorage: missing and invalid values say where they can come from', () => {
  it('missing secret names the .pw file, S3_SECRET_KEY and the INI key', () => {
    const e = fixture({ cfg: SECTION() });
    const err = failure(() => resolveStorage({ storageId: 'store1', env: e }));
    expect(err.code).toBe('ConfigMissing');
    expect(err.exitCode).toBe(2);
    expect(err.message).toBe(
      `missing secret_key for storage 'store1': set it with S3_SECRET_KEY, or ${join(e.PVE_S3_PRIV_DIR!, 'store1.pw')} (pvesm set store1 --secret_key), or aws_secret_access_key in ${e.PVE_S3_CREDENTIALS}`,
    );
  });

  it('missing access_key offers no flag: the commands have none for it (nor for the secret)', () => {
    const e = fixture({ cfg: 's3: store1\n\tbucket b-1\n\tendpoint h.example\n', secrets: { store1: 's' } });
    const err = failure(() => resolveStorage({ storageId: 'store1', env: e }));
    expect(err.message).toBe(
      `missing access_key for storage 'store1': set it with S3_ACCESS_KEY, or 'access_key' in section 's3: store1' of ${e.PVE_S3_STORAGE_CFG}, or aws_access_key_id in ${e.PVE_S3_CREDENTIALS}`,
    );
  });

  it('missing bucket names the section and file', () => {
    const e = fixture({ cfg: 's3: store1\n\tendpoint h.example\n\taccess_key K\n', secrets: { store1: 's' } });
    const err = failure(() => resolveStorage({ storageId: 'store1', env: e }));
    expect(err.message).toBe(
      `missing bucket for storage 'store1': set it with --bucket, or S3_BUCKET, or 'bucket' in section 's3: store1' of ${e.PVE_S3_STORAGE_CFG}`,
    );
  });

  it('without any storage id, lists flags, env and the INI file', () => {
    const e = fixture({});
    const err = failure(() => resolveStorage({ env: { ...e, S3_BUCKET: 'b-1' } }));
    expect(err.message).toBe(
      `missing endpoint for the S3 storage: set it with --endpoint, or S3_ENDPOINT, or endpoint in ${e.PVE_S3_CREDENTIALS}`,
    );
  });

  it('an unreadable secret file is mentioned when the secret is then missing', () => {
    const e = fixture({ cfg: SECTION() });
    // a directory in place of the file: unreadable even for root (chmod 000 is not)
    mkdirSync(join(e.PVE_S3_PRIV_DIR!, 'store1.pw'));
    const msg = failure(() => resolveStorage({ storageId: 'store1', env: e })).message;
    expect(msg).toContain('missing secret_key');
    expect(msg).toContain(`(note: ${join(e.PVE_S3_PRIV_DIR!, 'store1.pw')}: EISDIR)`);
  });

  it.skipIf(process.getuid?.() === 0)('a secret file without read permission says so', () => {
    const e = fixture({ cfg: SECTION(), secrets: { store1: 's' } });
    chmodSync(join(e.PVE_S3_PRIV_DIR!, 'store1.pw'), 0o000);
    expect(failure(() => resolveStorage({ storageId: 'store1', env: e })).message).toContain('permission denied');
  });

  it('an invalid value names its source', () => {
    const e = fixture({ cfg: SECTION('\tmultipart_chunk_size 2\n'), secrets: { store1: 's' } });
    const err = failure(() => resolveStorage({ storageId: 'store1', env: e }));
    expect(err.message).toBe(
      `invalid multipart_chunk_size '2': must be an integer 5..5120 (MiB) (from ${e.PVE_S3_STORAGE_CFG} [store1])`,
    );
    const err2 = failure(() => resolveStorage({ storageId: 'store1', env: { ...e, S3_ENDPOINT: 'ftp://x' } }));
    expect(err2.message).toContain('(from env S3_ENDPOINT)');
    // a valid flag overrides the bad file value
    expect(resolveStorage({ storageId: 'store1', env: e, flags: { multipart_chunk_size: '8' } }).multipartChunkSizeMB).toBe(8);
  });

  it('an unknown flag is refused', () => {
    const err = failure(() => resolveStorage({ env: {}, flags: { colour: 'blue' } }));
    expect(err.message).toContain("invalid colour 'blue': unknown configuration key");
  });
});

describe('toS3Settings and the protocol entry', () => {
  it('maps to the S3Settings contract: scheme, auto path style, ms timeouts, TLS', () => {
    const e = fixture({
      cfg: SECTION('\tconnection_timeout 30\n\trequest_timeout 120\n\ttls_verify 0\n\tca_file /etc/ssl/ca.pem\n\tchecksum_algorithm CRC64NVME\n'),
      secrets: { store1: 'sec' },
    });
    const s = toS3Settings(resolveStorage({ storageId: 'store1', env: e }));
    expect(s).toEqual({
      endpoint: 'https://cfg.example.com',
      region: 'us-east-1',
      bucket: 'cfg-bucket',
      credentials: { accessKeyId: 'CFGKEY', secretAccessKey: 'sec' },
      connectTimeoutMs: 30_000,
      requestTimeoutMs: 120_000,
      tls: { caFile: '/etc/ssl/ca.pem', insecure: true },
      checksumAlgorithm: 'CRC64NVME',
      // cfg.example.com is none of the public providers' hosts
      provider: 'other',
    });
    expect('forcePathStyle' in s).toBe(false);
    const s2 = toS3Settings(resolveStorage({ storageId: 'store1', env: { ...e, S3_FORCE_PATH_STYLE: '0' } }));
    expect(s2.forcePathStyle).toBe(false);
  });

  it('storageConfigFromSection takes the section as the Perl plugin decodes it', () => {
    const c = storageConfigFromSection(
      'store1',
      {
        type: 's3',
        bucket: 'b-1',
        endpoint: 'rgw:7480',
        access_key: 'K',
        content: { backup: 1, iso: 1 },
        nodes: { pve1: 1 },
        shared: 1,
        lifecycle_enabled: true,
        multipart_chunk_size: 64,
        digest: 'abc',
      },
      { secret: 'plugin-secret' },
    );
    expect(c).toMatchObject({ content: ['backup', 'iso'], nodes: ['pve1'], multipartChunkSizeMB: 64, secretKey: 'plugin-secret' });
    expect(c.lifecycle.enabled).toBe(true);
    const err = failure(() => storageConfigFromSection('store1', { bucket: 'b-1', endpoint: 'h', access_key: 'K' }));
    expect(err.message).toContain("missing secret_key for storage 'store1'");
  });

  it('printing a resolved config never prints its secret', () => {
    const e = fixture({ cfg: SECTION(), secrets: { store1: 'very-secret-value-42' } });
    const c = resolveStorage({ storageId: 'store1', env: e });
    expect(JSON.stringify(c)).not.toContain('very-secret-value-42');
    expect(JSON.stringify(c)).toContain('[redacted]');
    expect(inspect(c, { depth: 5 })).not.toContain('very-secret-value-42');
    expect(`${JSON.stringify({ cfg: c })}`).not.toContain('very-secret-value-42');
    // but a copy still carries it, so it can still sign requests
    expect({ ...c }.secretKey).toBe('very-secret-value-42');
  });
});
