/**
 * Every key an `s3:` section of storage.cfg may hold: its type, range, default and how a raw
 * string value is checked and normalised. The Perl plugin's properties()/options() are generated from
 * OWN_KEYS and PVE_GLOBAL_KEYS (docs/CONFIG.md has the same table for people).
 *
 * Naming: the seed's keys verbatim; our additions use snake_case names that none of PVE's 63/61
 * global property names (reference §3.4) uses, so defining them cannot stop PVE's daemons.
 * PVE's own globals (path, content, prune-backups, …) are reused, never redefined.
 */
import { ConfigError } from '../util/errors.js';
import { parseContentList } from '../pve/content.js';
import { parsePruneBackups } from '../pve/prune.js';
import { endpointShown } from '../s3/endpoint.js';
import { PROVIDER_KEY_VALUES } from '../s3/providers.js';
import { RESTORE_TIERS } from '../s3/restore.js';

export const STORAGE_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'GLACIER_IR',
  'DEEP_ARCHIVE',
  'REDUCED_REDUNDANCY',
] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];

export const SSE_TYPES = ['AES256', 'aws:kms'] as const;
export type SseType = (typeof SSE_TYPES)[number];

export const LOCK_MODES = ['governance', 'compliance'] as const;
export type LockMode = (typeof LOCK_MODES)[number];

export const CHECKSUM_ALGORITHMS = ['CRC32C', 'CRC64NVME'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface EndpointParts {
  scheme?: 'http' | 'https';
  /** host name, IPv4 address, or bracketed IPv6 address */
  host: string;
  port?: number;
}

export type KeyType = 'string' | 'integer' | 'boolean' | 'enum';

export interface KeyDef {
  key: string;
  type: KeyType;
  /** for integers */
  min?: number;
  max?: number;
  unit?: string;
  enum?: readonly string[];
  /** the value used when the key is absent (undefined: absent means off / auto / none) */
  default?: string | number | boolean;
  /** true for PVE's own global properties: reused, never defined by the plugin */
  pveGlobal?: boolean;
  /** sensitive: kept in /etc/pve/priv/storage/<id>.pw, never printed */
  secret?: boolean;
  /** strings: the pattern PVE checks before the value reaches storage.cfg (JSON schema, matched
   *  whole). Where `parse` checks exactly this it uses `matchesPattern`; elsewhere `parse` is the
   *  stricter rule and the pattern PVE's first filter */
  pattern?: string;
  maxLength?: number;
  description: string;
  /** raw string → normalised value; throws ConfigError naming key, value and what is allowed */
  parse(raw: string): unknown;
}

/** A value against its key's PVE pattern, as PVE's JSON schema matches it (anchored, whole). */
export function matchesPattern(d: Pick<KeyDef, 'pattern'>, v: string): boolean {
  return d.pattern === undefined || new RegExp(`^(?:${d.pattern})$`).test(v);
}

const BOOL_TRUE = /^(1|on|yes|true)$/i;
const BOOL_FALSE = /^(0|off|no|false)$/i;

export function parseBool(key: string, raw: string): boolean {
  const v = raw.trim();
  if (BOOL_TRUE.test(v)) return true;
  if (BOOL_FALSE.test(v)) return false;
  throw new ConfigError(key, raw, 'must be 0 or 1');
}

export function parseIntRange(key: string, raw: string, min: number, max: number, unit?: string): number {
  const v = raw.trim();
  const u = unit ? ` (${unit})` : '';
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer ${min}..${max}`;
  if (!/^-?\d{1,15}$/.test(v)) throw new ConfigError(key, raw, `must be ${range}${u}`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(key, raw, `must be ${range}${u}`);
  return n;
}

function parseEnum<T extends string>(key: string, raw: string, values: readonly T[]): T {
  const v = raw.trim();
  const hit = values.find((x) => x.toLowerCase() === v.toLowerCase());
  if (!hit) throw new ConfigError(key, raw, `must be one of ${values.join(', ')}`);
  return hit;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const HOSTNAME_RE = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV4_RE = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** `host`, `host:port`, `[v6]:port` or `http(s)://host[:port][/]`; anything with a path is refused. */
export function parseEndpoint(raw: string, key = 'endpoint'): EndpointParts {
  const allowed = 'must be host[:port] or http(s)://host[:port], without a path (e.g. s3.amazonaws.com, 10.0.0.5:7480)';
  const shown = endpointShown(raw);
  if (shown !== raw) throw new ConfigError(key, shown, `user information (user:password@) is not allowed: give the keys as access_key and secret_key; ${allowed}`);
  const v = raw.trim();
  if (v === '' || CONTROL.test(v) || /\s/.test(v)) throw new ConfigError(key, raw, allowed);
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(v);
  let scheme: 'http' | 'https' | undefined;
  let rest = v;
  if (m) {
    const s = m[1]!.toLowerCase();
    if (s !== 'http' && s !== 'https') throw new ConfigError(key, raw, `scheme '${m[1]}' not supported; ${allowed}`);
    scheme = s;
    rest = v.slice(m[0].length);
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.includes('/') || rest.includes('?') || rest.includes('#')) {
    throw new ConfigError(key, raw, `paths are not supported (the bucket goes in 'bucket'); ${allowed}`);
  }
  let host: string;
  let portStr: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) throw new ConfigError(key, raw, allowed);
    host = rest.slice(0, close + 1);
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) throw new ConfigError(key, raw, allowed);
    portStr = after === '' ? undefined : after.slice(1);
    if (!/^\[[0-9A-Fa-f:.]+\]$/.test(host)) throw new ConfigError(key, raw, `bad IPv6 address; ${allowed}`);
  } else {
    const parts = rest.split(':');
    if (parts.length > 2) throw new ConfigError(key, raw, `IPv6 addresses need brackets, e.g. [fd00::1]:7480; ${allowed}`);
    host = parts[0]!;
    portStr = parts[1];
    if (!HOSTNAME_RE.test(host) && !IPV4_RE.test(host)) throw new ConfigError(key, raw, `bad host name '${host}'; ${allowed}`);
  }
  const out: EndpointParts = { host: host.toLowerCase() };
  if (scheme) out.scheme = scheme;
  if (portStr !== undefined) {
    if (!/^\d{1,5}$/.test(portStr) || Number(portStr) < 1 || Number(portStr) > 65535) {
      throw new ConfigError(key, raw, `port must be 1..65535; ${allowed}`);
    }
    out.port = Number(portStr);
  }
  return out;
}

/**
 * '' stays '' (the bucket root); otherwise no leading '/', exactly one trailing '/', and no
 * empty, '.' or '..' segment: a prefix must never reach outside itself.
 */
export function normalisePrefix(raw: string, key = 'prefix'): string {
  const allowed = "must be a relative path like 'proxmox/' or 'pve/node1/' (no '..', '.', '//' or control characters)";
  let v = raw.trim();
  if (CONTROL.test(v) || v.includes('\\')) throw new ConfigError(key, raw, allowed);
  v = v.replace(/^\/+/, '');
  if (v === '') return '';
  if (!v.endsWith('/')) v += '/';
  const segs = v.slice(0, -1).split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..')) throw new ConfigError(key, raw, allowed);
  if (Buffer.byteLength(v) > 512) throw new ConfigError(key, raw, 'must be at most 512 bytes');
  return v;
}

export function parseFingerprint(raw: string, key = 'tls_fingerprint'): string {
  const v = raw.trim();
  const allowed = 'must be the SHA-256 of the certificate: 64 hex digits, with or without colons (AB:CD:…)';
  if (/^[0-9A-Fa-f]{64}$/.test(v)) return v.toLowerCase();
  if (/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/.test(v)) return v.replace(/:/g, '').toLowerCase();
  throw new ConfigError(key, raw, allowed);
}

function absolutePath(key: string, raw: string): string {
  const v = raw.trim();
  if (!v.startsWith('/') || CONTROL.test(v)) throw new ConfigError(key, raw, 'must be an absolute path');
  return v;
}

const BWLIMIT_KEYS = ['default', 'restore', 'migration', 'clone', 'move'] as const;

/** PVE's bwlimit property string: `default=N,restore=N,…` in KiB/s. */
export function parseBwlimit(raw: string, key = 'bwlimit'): Partial<Record<(typeof BWLIMIT_KEYS)[number], number>> {
  const allowed = `must be a comma-separated list of ${BWLIMIT_KEYS.join('|')}=<KiB/s>, e.g. restore=102400`;
  const out: Partial<Record<(typeof BWLIMIT_KEYS)[number], number>> = {};
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z]+)=(\d+(?:\.\d+)?)$/.exec(part);
    if (!m || !(BWLIMIT_KEYS as readonly string[]).includes(m[1]!)) throw new ConfigError(key, raw, allowed);
    const k = m[1] as (typeof BWLIMIT_KEYS)[number];
    if (out[k] !== undefined) throw new ConfigError(key, raw, `duplicate '${k}'; ${allowed}`);
    out[k] = Number(m[2]);
  }
  return out;
}

const NODE_RE = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

const int = (key: string, min: number, max: number, def: number | undefined, unit: string | undefined, description: string): KeyDef => {
  const d: KeyDef = { key, type: 'integer', min, max, description, parse: (r) => parseIntRange(key, r, min, max, unit) };
  if (def !== undefined) d.default = def;
  if (unit) d.unit = unit;
  return d;
};
const bool = (key: string, def: boolean | undefined, description: string): KeyDef => {
  const d: KeyDef = { key, type: 'boolean', description, parse: (r) => parseBool(key, r) };
  if (def !== undefined) d.default = def;
  return d;
};

const DEFS: KeyDef[] = [
  // --- the seed's keys -----------------------------------------------------------------------
  {
    key: 'bucket',
    type: 'string',
    description: 'bucket name (required)',
    pattern: '[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]',
    parse(raw) {
      const v = raw.trim();
      if (!matchesPattern(this, v) || v.includes('..') || IPV4_RE.test(v)) {
        throw new ConfigError(
          'bucket',
          raw,
          'must be 3..63 characters of letters, digits, dots and hyphens, starting and ending with a letter or digit, no "..", not an IP address',
        );
      }
      return v;
    },
  },
  {
    key: 'endpoint',
    type: 'string',
    description: 'S3 endpoint: host[:port] or http(s)://host[:port]; https unless use_ssl 0 (required)',
    pattern: '(?:https?://)?(?:[A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(?::\\d{1,5})?/?',
    maxLength: 256,
    parse: (raw) => parseEndpoint(raw),
  },
  {
    key: 'region',
    type: 'string',
    default: 'us-east-1',
    description: 'region used in request signatures',
    pattern: '[A-Za-z0-9][A-Za-z0-9_-]{0,63}',
    parse(raw) {
      const v = raw.trim();
      if (!matchesPattern(this, v)) {
        throw new ConfigError('region', raw, 'must be letters, digits, "-" or "_" (e.g. us-east-1, default)');
      }
      return v;
    },
  },
  {
    key: 'access_key',
    type: 'string',
    description: 'access key id (required)',
    pattern: '[\\x21-\\x7e]{1,256}',
    parse(raw) {
      const v = raw.trim();
      if (!matchesPattern(this, v)) throw new ConfigError('access_key', raw, 'must be 1..256 printable characters without spaces');
      return v;
    },
  },
  {
    key: 'secret_key',
    type: 'string',
    secret: true,
    description: 'secret access key; stored in /etc/pve/priv/storage/<id>.pw, never in storage.cfg; without it the storage is inactive and its operations fail naming it (pvesm add takes it missing only with --disable 1)',
    pattern: '[^\\x00-\\x1f\\x7f]{1,1024}',
    parse(raw) {
      // the value is never echoed: errors show a placeholder
      if (!matchesPattern(this, raw)) {
        throw new ConfigError('secret_key', '<hidden>', 'must be 1..1024 characters without control characters or newlines');
      }
      return raw;
    },
  },
  {
    key: 'prefix',
    type: 'string',
    default: '',
    description: "key prefix for everything this storage writes, e.g. 'proxmox/' (normalised to end with '/')",
    pattern: '[^\\x00-\\x1f\\x7f\\\\]{0,512}',
    parse: (raw) => normalisePrefix(raw),
  },
  {
    key: 'storage_class',
    type: 'enum',
    enum: STORAGE_CLASSES,
    description: 'storage class of uploaded objects (absent: the bucket default, normally STANDARD)',
    parse: (raw) => parseEnum('storage_class', raw, STORAGE_CLASSES),
  },
  int('multipart_chunk_size', 5, 5120, 32, 'MiB', 'multipart part size (MiB); raised automatically when an object would need more than 10,000 parts'),
  int('max_concurrent_uploads', 1, 20, 4, undefined, 'parts in flight at once, and the most ranges a download fetches at once'),
  int('connection_timeout', 10, 300, 60, 's', 'TCP/TLS connect timeout'),
  {
    key: 'server_side_encryption',
    type: 'enum',
    enum: SSE_TYPES,
    description: 'server-side encryption: AES256 (SSE-S3) or aws:kms (with kms_key_id, or the provider default key)',
    parse: (raw) => parseEnum('server_side_encryption', raw, SSE_TYPES),
  },
  {
    key: 'kms_key_id',
    type: 'string',
    description: 'KMS key id, ARN or alias; only with server_side_encryption aws:kms',
    pattern: '[A-Za-z0-9:/_+=.@-]{1,2048}',
    parse(raw) {
      const v = raw.trim();
      if (!matchesPattern(this, v)) {
        throw new ConfigError('kms_key_id', raw, 'must be a KMS key id, ARN or alias (letters, digits and :/_+=.@-)');
      }
      return v;
    },
  },
  bool('lifecycle_enabled', false, "let 'pve-s3-maintenance --action lifecycle' manage transition/expiry rules under the prefix"),
  int('transition_days', 1, 36500, undefined, 'days', 'with lifecycle_enabled: move backup archives to STANDARD_IA after this many days'),
  int('glacier_days', 1, 36500, undefined, 'days', 'with lifecycle_enabled: move backup archives to GLACIER after this many days (> transition_days)'),
  // --- our additions ---------------------------------------------------------------------------
  bool('force_path_style', undefined, 'path-style addressing (1) or virtual-hosted (0); absent: auto (path style for IPs, ports and non-AWS hosts)'),
  bool('use_ssl', undefined, 'https (1) or http (0) when the endpoint has no scheme; absent: https'),
  {
    key: 'ca_file',
    type: 'string',
    description: 'PEM file of the CA(s) to trust for the endpoint (self-signed or private CA)',
    pattern: '/[^\\x00\\n]{0,4095}',
    parse: (raw) => absolutePath('ca_file', raw),
  },
  bool('tls_verify', true, 'verify the endpoint certificate (0 only for tests; prefer ca_file or tls_fingerprint)'),
  {
    key: 'tls_fingerprint',
    type: 'string',
    description: "pin the endpoint's leaf certificate by SHA-256 (64 hex digits, colons allowed)",
    pattern: '(?:[0-9A-Fa-f]{64}|[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})',
    parse: (raw) => parseFingerprint(raw),
  },
  {
    key: 'checksum_algorithm',
    type: 'enum',
    enum: CHECKSUM_ALGORITHMS,
    description: 'also send x-amz-checksum-* (CRC32C or CRC64NVME); absent: never (many gateways reject them)',
    parse: (raw) => parseEnum('checksum_algorithm', raw, CHECKSUM_ALGORITHMS),
  },
  {
    key: 'provider',
    type: 'enum',
    enum: PROVIDER_KEY_VALUES,
    default: 'auto',
    description:
      "the S3 implementation behind the endpoint, whose limits and features apply (docs/PROVIDERS.md); auto: from the endpoint's host name (AWS, Wasabi, B2, R2, OVHcloud, Scaleway), else other",
    parse: (raw) => parseEnum('provider', raw, PROVIDER_KEY_VALUES),
  },
  int(
    'lock_days',
    1,
    36500,
    undefined,
    'days',
    'S3 Object Lock: write each archive and its manifest with a retention of this many days (the bucket must be created with Object Lock); absent: no lock',
  ),
  {
    key: 'lock_mode',
    type: 'enum',
    enum: LOCK_MODES,
    default: 'governance',
    description:
      'with lock_days: governance (users with s3:BypassGovernanceRetention may still delete; pve-s3 never asks to) or compliance (nobody can delete or shorten it, not even the root account)',
    parse: (raw) => parseEnum('lock_mode', raw, LOCK_MODES),
  },
  {
    key: 'restore_tier',
    type: 'enum',
    enum: RESTORE_TIERS,
    default: 'Standard',
    description:
      "retrieval tier of the restores pve-s3 requests for archived backups (GLACIER, DEEP_ARCHIVE, INTELLIGENT_TIERING archive tiers): Standard (3-5 h; 12 h from deep archive), Bulk (5-12 h; 48 h), Expedited (1-5 min, not from deep archive); --restore-tier overrides it",
    parse: (raw) => parseEnum('restore_tier', raw, RESTORE_TIERS),
  },
  int(
    'restore_days',
    1,
    36500,
    7,
    'days',
    'how long the restored copy of a GLACIER or DEEP_ARCHIVE backup stays readable (billed as storage meanwhile); --restore-days overrides it',
  ),
  int('request_timeout', 10, 3600, 300, 's', 'time allowed without progress on one request (headers or body)'),
  int(
    'stall_timeout',
    10,
    86400,
    undefined,
    's',
    'an operation gives up once the endpoint has neither answered nor taken a byte for this long, across all its requests and retries (a stopped gateway, a Ceph cluster that blocks writes); absent: request_timeout',
  ),
  bool('keep_local', false, 'the vzdump hook and the background sync keep the local file after its verified upload (ISO images and snippets are kept either way)'),
  int('cache_max_size', 0, 1048576, 0, 'GiB', 'local cache budget for downloaded volumes; 0: no size limit'),
  int('cache_max_age', 0, 3650, undefined, 'days', 'evict cached downloads unused for this many days; absent: 1 day for backups, 7 for ISOs/templates; 0: never by age'),
  int('abort_incomplete_days', 1, 365, 7, 'days', 'lifecycle rule: abort multipart uploads left incomplete this long'),
  // --- PVE global properties, reused --------------------------------------------------------
  {
    key: 'path',
    type: 'string',
    pveGlobal: true,
    description: 'local cache/spool directory (the plugin defaults it to a cache directory per storage)',
    parse: (raw) => absolutePath('path', raw),
  },
  {
    key: 'content',
    type: 'string',
    pveGlobal: true,
    default: 'backup,iso,vztmpl,snippets',
    description: 'content types: backup, iso, vztmpl, snippets, or none alone',
    parse: (raw) => parseContentList(raw),
  },
  {
    key: 'nodes',
    type: 'string',
    pveGlobal: true,
    description: 'nodes allowed to use the storage',
    parse(raw) {
      const list = raw.split(/[\s,;]+/).filter(Boolean);
      for (const n of list) if (!NODE_RE.test(n)) throw new ConfigError('nodes', raw, `'${n}' is not a node name`);
      return list;
    },
  },
  bool('disable', false, 'storage disabled'),
  bool('shared', true, 'shared between nodes (always, for a bucket)'),
  {
    key: 'prune-backups',
    type: 'string',
    pveGlobal: true,
    description: 'retention, e.g. keep-last=3,keep-daily=7,keep-weekly=4',
    parse: (raw) => parsePruneBackups(raw),
  },
  int('max-protected-backups', -1, Number.MAX_SAFE_INTEGER, undefined, undefined, 'protected backups allowed per guest (-1: unlimited)'),
  {
    key: 'bwlimit',
    type: 'string',
    pveGlobal: true,
    description: 'bandwidth limits in KiB/s: default, restore, migration, clone, move (downloads take restore, else default; uploads take default)',
    parse: (raw) => parseBwlimit(raw),
  },
];
for (const d of DEFS) if (['disable', 'shared', 'max-protected-backups'].includes(d.key)) d.pveGlobal = true;

export const SCHEMA: ReadonlyMap<string, KeyDef> = new Map(DEFS.map((d) => [d.key, d]));

/** Properties the plugin defines itself (its properties()); everything else it lists is PVE's. */
export const OWN_KEYS: readonly string[] = DEFS.filter((d) => !d.pveGlobal).map((d) => d.key);

/** PVE global properties the plugin lists in options() without defining them. */
export const PVE_GLOBAL_KEYS: readonly string[] = DEFS.filter((d) => d.pveGlobal).map((d) => d.key);

/** Keys whose values never leave the priv dir: plugindata sensitive-properties. */
export const SECRET_KEYS: readonly string[] = DEFS.filter((d) => d.secret).map((d) => d.key);

/** Keys without which no request can be made. */
export const REQUIRED_KEYS = ['bucket', 'endpoint', 'access_key', 'secret_key'] as const;

/**
 * PVE's global property names on 8.4 and 9.x (reference §3.4): none of OWN_KEYS may be one of
 * these, or every PVE daemon dies with "duplicate property". Kept here so a test enforces it.
 */
export const PVE_RESERVED_NAMES: readonly string[] = [
  'type', 'storage', 'nodes', 'content', 'disable', 'prune-backups', 'max-protected-backups', 'shared', 'subdir',
  'format', 'preallocation', 'content-dirs', 'options', 'port', 'path', 'mkdir', 'create-base-path',
  'create-subdirs', 'is_mountpoint', 'bwlimit', 'server', 'export', 'share', 'domain', 'smbversion', 'password',
  'pool', 'data-pool', 'monhost', 'krbd', 'keyring', 'username', 'namespace', 'authsupported', 'fs-name', 'fuse',
  'portal', 'target', 'nocow', 'vgname', 'base', 'saferemove', 'saferemove_throughput', 'tagged_only', 'thinpool',
  'blocksize', 'sparse', 'mountpoint', 'iscsiprovider', 'comstar_hg', 'comstar_tg', 'lio_tpg', 'nowritecache',
  'zfs-base-path', 'datastore', 'fingerprint', 'encryption-key', 'master-pubkey', 'skip-cert-verification',
  // version-specific
  'maxfiles', 'server2', 'transport', 'volume', 'snapshot-as-volume-chain', 'saferemove-stepsize',
];

/**
 * The schema as plain JSON, for the Perl side's tests to compare its properties()/options()
 * against: `node -e "import('./host/dist/config/schema.js').then(m => console.log(JSON.stringify(m.schemaJson())))"`.
 */
export function schemaJson(): Array<Omit<KeyDef, 'parse'>> {
  return [...SCHEMA.values()].map(({ parse: _parse, ...rest }) => {
    const out: Omit<KeyDef, 'parse'> = { ...rest };
    if (out.max === Number.MAX_SAFE_INTEGER) delete out.max;
    return out;
  });
}

/**
 * The storage keys the commands take as flags (--endpoint …): never a secret, which would show in
 * ps, nor the access key beside it. A message naming where a value can come from offers only these.
 */
export const FLAG_KEYS = ['endpoint', 'bucket', 'region', 'prefix'] as const;
