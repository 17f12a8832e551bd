import { describe, expect, it } from 'vitest';
import {
  OWN_KEYS,
  PVE_GLOBAL_KEYS,
  PVE_RESERVED_NAMES,
  REQUIRED_KEYS,
  SCHEMA,
  SECRET_KEYS,
  schemaJson,
} from '../../host/src/config/schema.js';
import { endpointUrl, validateStorage } from '../../host/src/config/validate.js';
import { ConfigError } from '../../host/src/util/errors.js';

function refuse(props: Record<string, string>): ConfigError {
  try {
    validateStorage(props);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).code).toBe('ConfigInvalid');
    expect((e as ConfigError).exitCode).toBe(2);
    return e as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(props)}`);
}

describe('the key schema', () => {
  it("has the seed's keys verbatim", () => {
    for (const k of [
      'bucket', 'endpoint', 'region', 'access_key', 'secret_key', 'prefix', 'content', 'storage_class',
      'multipart_chunk_size', 'max_concurrent_uploads', 'connection_timeout', 'server_side_encryption',
      'kms_key_id', 'lifecycle_enabled', 'transition_days', 'glacier_days',
    ]) {
      expect(SCHEMA.has(k), k).toBe(true);
    }
  });

  it("never defines a PVE global property name (that would stop every PVE daemon)", () => {
    for (const k of OWN_KEYS) expect(PVE_RESERVED_NAMES, k).not.toContain(k);
    for (const k of PVE_GLOBAL_KEYS) expect(PVE_RESERVED_NAMES, k).toContain(k);
    expect(PVE_GLOBAL_KEYS).toEqual(
      expect.arrayContaining(['path', 'content', 'nodes', 'disable', 'shared', 'prune-backups', 'max-protected-backups', 'bwlimit']),
    );
    expect(SECRET_KEYS).toEqual(['secret_key']);
    expect([...REQUIRED_KEYS]).toEqual(['bucket', 'endpoint', 'access_key', 'secret_key']);
  });

  it("states the seed's ranges, and our defaults", () => {
    // 32 MB x 4 rather than the seed example's 100 x 3: ~15% faster uploads to RadosGW here, and
    // a third of the memory (docs/CONFIG.md)
    expect(SCHEMA.get('multipart_chunk_size')).toMatchObject({ min: 5, max: 5120, default: 32, unit: 'MiB' });
    expect(SCHEMA.get('max_concurrent_uploads')).toMatchObject({ min: 1, max: 20, default: 4 });
    expect(SCHEMA.get('connection_timeout')).toMatchObject({ min: 10, max: 300, default: 60, unit: 's' });
  });
});

describe('validateStorage: accepted values are normalised', () => {
  it('the seed example', () => {
    const v = validateStorage({
      bucket: 'my-bucket-proxmox',
      endpoint: 's3.amazonaws.com',
      region: 'us-east-1',
      access_key: 'AKIAIOSFODNN7EXAMPLE',
      secret_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      prefix: 'proxmox/',
      content: 'backup,iso,vztmpl,snippets',
      storage_class: 'STANDARD',
      multipart_chunk_size: '100',
      max_concurrent_uploads: '3',
      connection_timeout: '60',
      server_side_encryption: 'AES256',
      lifecycle_enabled: '1',
      transition_days: '30',
      glacier_days: '365',
    });
    expect(v).toMatchObject({
      endpoint: { host: 's3.amazonaws.com' },
      prefix: 'proxmox/',
      content: ['backup', 'iso', 'vztmpl', 'snippets'],
      multipart_chunk_size: 100,
      lifecycle_enabled: true,
      glacier_days: 365,
    });
  });

  it.each([
    ['s3.amazonaws.com', 'https://s3.amazonaws.com'],
    ['S3.Example.COM:443', 'https://s3.example.com'],
    ['127.0.0.1:7480', 'https://127.0.0.1:7480'],
    ['http://127.0.0.1:7480/', 'http://127.0.0.1:7480'],
    ['https://minio.local:9000', 'https://minio.local:9000'],
    ['[fd00::1]:7480', 'https://[fd00::1]:7480'],
  ])('endpoint %s → %s', (raw, url) => {
    expect(endpointUrl(validateStorage({ endpoint: raw }).endpoint!)).toBe(url);
  });

  it('use_ssl 0 makes a scheme-less endpoint http', () => {
    const v = validateStorage({ endpoint: 'rgw.lan:7480', use_ssl: '0' });
    expect(endpointUrl(v.endpoint!, v.use_ssl)).toBe('http://rgw.lan:7480');
    expect(endpointUrl(validateStorage({ endpoint: 'rgw.lan', use_ssl: 'no' }).endpoint!, false)).toBe('http://rgw.lan');
  });

  it.each([
    ['proxmox/', 'proxmox/'],
    ['proxmox', 'proxmox/'],
    ['/proxmox/node1', 'proxmox/node1/'],
    ['', ''],
    ['/', ''],
  ])('prefix %j → %j', (raw, norm) => {
    expect(validateStorage({ prefix: raw }).prefix).toBe(norm);
  });

  it('enums are case-insensitive, booleans take PVE spellings, fingerprints lose colons', () => {
    const fp = 'AB:'.repeat(31) + 'CD';
    const v = validateStorage({
      storage_class: 'standard_ia',
      server_side_encryption: 'AWS:KMS',
      kms_key_id: 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      force_path_style: 'yes',
      tls_verify: 'off',
      tls_fingerprint: fp,
      checksum_algorithm: 'crc32c',
      'prune-backups': 'keep-last=3,keep-daily=7',
      bwlimit: 'restore=102400,default=51200',
      nodes: 'pve1,pve2',
      'max-protected-backups': '-1',
    });
    expect(v).toMatchObject({
      storage_class: 'STANDARD_IA',
      server_side_encryption: 'aws:kms',
      force_path_style: true,
      tls_verify: false,
      tls_fingerprint: 'ab'.repeat(31) + 'cd',
      checksum_algorithm: 'CRC32C',
      'prune-backups': { 'keep-last': 3, 'keep-daily': 7 },
      bwlimit: { restore: 102400, default: 51200 },
      nodes: ['pve1', 'pve2'],
      'max-protected-backups': -1,
    });
  });
});

describe('validateStorage: every refusal names key, value and what is allowed', () => {
  it.each([
    [{ bucket: 'ab' }, "invalid bucket 'ab': must be 3..63 characters"],
    [{ bucket: 'my_bucket!' }, "invalid bucket 'my_bucket!'"],
    [{ bucket: '192.168.1.1' }, 'not an IP address'],
    [{ bucket: 'a..b' }, 'no ".."'],
    [{ endpoint: 'ftp://host' }, "invalid endpoint 'ftp://host': scheme 'ftp' not supported"],
    [{ endpoint: 'https://host/bucket' }, 'paths are not supported'],
    [{ endpoint: 'https://user:pw@host:99999' }, "invalid endpoint 'https://[user information hidden]@host:99999': user information (user:password@) is not allowed"],
    [{ endpoint: 'host:99999' }, 'port must be 1..65535'],
    [{ endpoint: 'fd00::1' }, 'IPv6 addresses need brackets'],
    [{ endpoint: 'bad_host!' }, "bad host name 'bad_host!'"],
    [{ endpoint: '' }, "invalid endpoint ''"],
    [{ region: 'us east' }, "invalid region 'us east'"],
    [{ access_key: 'has space' }, "invalid access_key 'has space'"],
    [{ prefix: 'a/../b' }, "invalid prefix 'a/../b': must be a relative path"],
    [{ prefix: 'a//b' }, "invalid prefix 'a//b'"],
    [{ prefix: './a' }, "invalid prefix './a'"],
    [{ content: 'backup,images' }, "invalid content 'backup,images': unknown content type 'images'"],
    [{ content: 'none,iso' }, "'none' cannot be combined"],
    [{ storage_class: 'COLD' }, "invalid storage_class 'COLD': must be one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER, GLACIER_IR, DEEP_ARCHIVE, REDUCED_REDUNDANCY"],
    [{ multipart_chunk_size: '2' }, "invalid multipart_chunk_size '2': must be an integer 5..5120 (MiB)"],
    [{ multipart_chunk_size: '5121' }, "invalid multipart_chunk_size '5121': must be an integer 5..5120 (MiB)"],
    [{ multipart_chunk_size: '10.5' }, "invalid multipart_chunk_size '10.5': must be an integer 5..5120 (MiB)"],
    [{ multipart_chunk_size: '1e2' }, "invalid multipart_chunk_size '1e2'"],
    [{ max_concurrent_uploads: '0' }, "invalid max_concurrent_uploads '0': must be an integer 1..20"],
    [{ max_concurrent_uploads: '21' }, "invalid max_concurrent_uploads '21': must be an integer 1..20"],
    [{ connection_timeout: '9' }, "invalid connection_timeout '9': must be an integer 10..300 (s)"],
    [{ connection_timeout: '301' }, "invalid connection_timeout '301': must be an integer 10..300 (s)"],
    [{ request_timeout: '5' }, "invalid request_timeout '5': must be an integer 10..3600 (s)"],
    [{ server_side_encryption: 'SSE-C' }, "invalid server_side_encryption 'SSE-C': must be one of AES256, aws:kms"],
    [{ kms_key_id: 'key id with spaces', server_side_encryption: 'aws:kms' }, "invalid kms_key_id 'key id with spaces'"],
    [{ kms_key_id: 'abc' }, "invalid kms_key_id 'abc': only allowed with server_side_encryption aws:kms (it is unset)"],
    [{ kms_key_id: 'abc', server_side_encryption: 'AES256' }, '(it is AES256)'],
    [{ lifecycle_enabled: '2' }, "invalid lifecycle_enabled '2': must be 0 or 1"],
    [{ transition_days: '0' }, "invalid transition_days '0': must be an integer 1..36500 (days)"],
    [{ glacier_days: 'x' }, "invalid glacier_days 'x'"],
    [{ transition_days: '30', glacier_days: '30' }, "invalid glacier_days '30': must be greater than transition_days (30)"],
    [{ force_path_style: 'maybe' }, "invalid force_path_style 'maybe': must be 0 or 1"],
    [{ use_ssl: '0', endpoint: 'https://h' }, "invalid use_ssl '0': contradicts the endpoint's scheme https://"],
    [{ use_ssl: '1', endpoint: 'http://h' }, "invalid use_ssl '1'"],
    [{ ca_file: 'relative.pem' }, "invalid ca_file 'relative.pem': must be an absolute path"],
    [{ ca_file: '/etc/ca.pem', endpoint: 'http://h' }, "invalid ca_file '/etc/ca.pem': only meaningful with https"],
    [{ tls_verify: '2' }, "invalid tls_verify '2'"],
    [{ tls_fingerprint: 'abcd' }, "invalid tls_fingerprint 'abcd': must be the SHA-256 of the certificate"],
    [{ checksum_algorithm: 'MD5' }, "invalid checksum_algorithm 'MD5': must be one of CRC32C, CRC64NVME"],
    [{ keep_local: 'x' }, "invalid keep_local 'x'"],
    [{ cache_max_size: '-1' }, "invalid cache_max_size '-1': must be an integer 0..1048576 (GiB)"],
    [{ cache_max_age: '9999' }, "invalid cache_max_age '9999'"],
    [{ abort_incomplete_days: '0' }, "invalid abort_incomplete_days '0': must be an integer 1..365 (days)"],
    [{ path: 'var/lib/x' }, "invalid path 'var/lib/x': must be an absolute path"],
    [{ nodes: 'pve1,bad node!' }, "invalid nodes 'pve1,bad node!'"],
    [{ disable: 'perhaps' }, "invalid disable 'perhaps'"],
    [{ shared: '3' }, "invalid shared '3'"],
    [{ 'prune-backups': 'keep-last=x' }, "invalid prune-backups 'keep-last=x'"],
    [{ 'max-protected-backups': '-2' }, "invalid max-protected-backups '-2': must be an integer ≥ -1"],
    [{ bwlimit: 'upload=5' }, "invalid bwlimit 'upload=5': must be a comma-separated list of default|restore|migration|clone|move"],
    [{ colour: 'blue' }, "invalid colour 'blue': unknown key"],
  ])('%j', (props, message) => {
    expect(refuse(props as Record<string, string>).message).toContain(message);
  });

  it('never echoes a secret: a bad secret_key or an unknown secret-looking key shows <hidden>', () => {
    const secret = 'bad\nsecret-value-123';
    const e = refuse({ secret_key: secret });
    expect(e.message).toBe("invalid secret_key '<hidden>': must be 1..1024 characters without control characters or newlines");
    expect(refuse({ secret_key: '' }).message).toContain('<hidden>');
    const e2 = refuse({ secret_access_key: 'mysecret-999' });
    expect(e2.message).not.toContain('mysecret-999');
  });

  it('unknown keys can be ignored and reported instead', () => {
    const seen: string[] = [];
    expect(validateStorage({ bucket: 'abc', maxfiles: '3' }, { unknown: 'ignore', onUnknown: (k) => seen.push(k) })).toEqual({
      bucket: 'abc',
    });
    expect(seen).toEqual(['maxfiles']);
  });
});

describe('schemaJson', () => {
  it('is plain JSON the Perl tests can read', () => {
    const j = JSON.parse(JSON.stringify(schemaJson())) as Array<Record<string, unknown>>;
    expect(j.map((d) => d.key)).toEqual([...SCHEMA.keys()]);
    expect(j.find((d) => d.key === 'multipart_chunk_size')).toMatchObject({ type: 'integer', min: 5, max: 5120, default: 32 });
    expect(j.find((d) => d.key === 'secret_key')).toMatchObject({ secret: true });
    expect(j.find((d) => d.key === 'max-protected-backups')).not.toHaveProperty('max');
  });
});
