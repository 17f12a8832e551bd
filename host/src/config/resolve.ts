/**
 * Resolves one storage's configuration for the CLIs, key by key, in DESIGN.md §2's order:
 *
 *   command-line flags  >  S3_* environment  >  storage.cfg section (+ <id>.pw secret)
 *                       >  INI credentials file ([<id>] / [profile <id>] / [default])
 *
 * When storage.cfg has no such storage (or no file: not a PVE host) the flags/environment alone
 * must name endpoint and bucket (keys may come from the INI file); otherwise StorageNotFound.
 * Every path is overridable (PVE_S3_STORAGE_CFG, PVE_S3_PRIV_DIR, PVE_S3_CREDENTIALS).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError, EXIT, PveS3Error } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { nullLogger } from '../util/log.js';
import { DEFAULT_LOG_FILE, registerSecret } from '../util/logger.js';
import { CONTENT_TYPES } from '../pve/content.js';
import { regionFor, resolveProvider } from '../s3/providers.js';
import type { RestoreTier } from '../s3/restore.js';
import { parseIni, pickProfile } from './credentials.js';
import { FLAG_KEYS, SCHEMA, REQUIRED_KEYS } from './schema.js';
import { readSecretFile, secretFilePath } from './secret-file.js';
import { parseStorageCfg } from './storage-cfg.js';
import type { StorageConfig } from './types.js';
import { endpointUrl, type ValidatedProps, validateStorage } from './validate.js';
import { isStorageId, STORAGE_ID_RULE } from './storage-id.js';

export const DEFAULT_PATHS = {
  storageCfg: '/etc/pve/storage.cfg',
  privDir: '/etc/pve/priv/storage',
  // in priv/: pmxcfs shows files outside it to group www-data (0640), this one holds a secret
  credentials: '/etc/pve/priv/s3-credentials/aws-credentials',
  logFile: DEFAULT_LOG_FILE,
  /** holds qemu-server/<vmid>.conf and lxc/<vmid>.conf */
  guestConfDir: '/etc/pve',
} as const;

export type ConfigPaths = { storageCfg: string; privDir: string; credentials: string; logFile: string; guestConfDir: string };

/** Where the credentials file was before it moved into priv/ (still read, if private: see below). */
export const LEGACY_CREDENTIALS = '/etc/pve/s3-credentials/aws-credentials';

/** PVE_S3_CREDENTIALS, else the default place, else the old place when only it exists. */
export function chooseCredentialsFile(env: NodeJS.ProcessEnv, exists: (p: string) => boolean = existsSync): string {
  if (env.PVE_S3_CREDENTIALS) return env.PVE_S3_CREDENTIALS;
  if (!exists(DEFAULT_PATHS.credentials) && exists(LEGACY_CREDENTIALS)) return LEGACY_CREDENTIALS;
  return DEFAULT_PATHS.credentials;
}

export function configPaths(env: NodeJS.ProcessEnv = process.env): ConfigPaths {
  return {
    storageCfg: env.PVE_S3_STORAGE_CFG || DEFAULT_PATHS.storageCfg,
    privDir: env.PVE_S3_PRIV_DIR || DEFAULT_PATHS.privDir,
    credentials: chooseCredentialsFile(env),
    logFile: env.PVE_S3_LOG_FILE || DEFAULT_PATHS.logFile,
    guestConfDir: env.PVE_S3_GUEST_CONF_DIR || DEFAULT_PATHS.guestConfDir,
  };
}

/** S3_* variables and the key each one sets. */
export const ENV_KEYS: ReadonlyArray<[string, string]> = [
  ['S3_ENDPOINT', 'endpoint'],
  ['S3_BUCKET', 'bucket'],
  ['S3_REGION', 'region'],
  ['S3_ACCESS_KEY', 'access_key'],
  ['S3_SECRET_KEY', 'secret_key'],
  ['S3_PREFIX', 'prefix'],
  ['S3_FORCE_PATH_STYLE', 'force_path_style'],
  ['S3_USE_SSL', 'use_ssl'],
  ['S3_PROVIDER', 'provider'],
];

const ENV_OF: Record<string, string> = Object.fromEntries(ENV_KEYS.map(([e, k]) => [k, e]));
const INI_OF: Record<string, string> = {
  access_key: 'aws_access_key_id',
  secret_key: 'aws_secret_access_key',
  endpoint: 'endpoint',
  region: 'region',
};

export function checkStorageId(id: string): void {
  if (!isStorageId(id)) throw new ConfigError('storage', id, STORAGE_ID_RULE);
}

export interface ResolveOptions {
  storageId?: string;
  /** config keys (snake_case; `storage-class` is accepted for `storage_class`) → values */
  flags?: Partial<Record<string, string>>;
  env?: NodeJS.ProcessEnv;
  /** INI profile to use instead of [<id>] / [default] (also S3_PROFILE) */
  profile?: string;
  logger?: Logger;
  /** the storage's section in storage.cfg and its secret file, nothing else: no S3_* variables,
   *  no credentials file, and a storage that is not there is an error. What runs unattended on
   *  a node's behalf (the vzdump hook) must not be redirected by a shell's exported variables. */
  storageCfgOnly?: boolean;
}

type Layer = { name: string; values: Record<string, string> };

function normaliseFlagKey(k: string): string {
  if (SCHEMA.has(k)) return k;
  const snake = k.replace(/-/g, '_');
  if (SCHEMA.has(snake)) return snake;
  return k;
}

function readOptional(file: string, o: { private?: boolean } = {}): { text: string } | { missing: true } | { error: string } {
  try {
    if (o.private) {
      // a secret anyone but its owner can read is a secret already spread: not used (like ssh)
      const mode = statSync(file).mode & 0o777;
      if (mode & 0o044) {
        return {
          error: `readable by group or others (mode 0${mode.toString(8)}), not used: chmod 600 it, or move it to ${DEFAULT_PATHS.credentials}`,
        };
      }
    }
    return { text: readFileSync(file, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { missing: true };
    return { error: code === 'EACCES' || code === 'EPERM' ? 'permission denied (run as root?)' : (code ?? 'unreadable') };
  }
}

export function resolveStorage(o: ResolveOptions = {}): StorageConfig {
  const env = o.env ?? process.env;
  const log = o.logger ?? nullLogger;
  const paths = configPaths(env);
  const id = o.storageId;
  if (id !== undefined) checkStorageId(id);

  // 1. flags
  const flags: Record<string, string> = {};
  for (const [k0, v] of Object.entries(o.flags ?? {})) {
    if (v === undefined) continue;
    const k = normaliseFlagKey(k0);
    if (!SCHEMA.has(k)) {
      throw new ConfigError(k0, /secret|password/i.test(k0) ? '<hidden>' : v, 'unknown configuration key; see docs/CONFIG.md');
    }
    flags[k] = v;
  }
  // 2. environment
  const envVals: Record<string, string> = {};
  for (const [name, key] of o.storageCfgOnly ? [] : ENV_KEYS) {
    const v = env[name];
    if (v !== undefined && v !== '') envVals[key] = v;
  }

  // 3. storage.cfg + secret file
  const notes: string[] = [];
  let section: Record<string, string> | null = null;
  let cfgState: 'found' | 'no-section' | 'no-file' | 'unreadable' | 'not-asked' = 'not-asked';
  let secretFromFile: string | undefined;
  if (id !== undefined) {
    const r = readOptional(paths.storageCfg);
    if ('missing' in r) cfgState = 'no-file';
    else if ('error' in r) {
      cfgState = 'unreadable';
      notes.push(`${paths.storageCfg}: ${r.error}`);
    } else {
      const sections = parseStorageCfg(r.text, { file: paths.storageCfg, onWarning: (m) => log.warn(m) });
      const s = sections.get(id);
      if (!s) cfgState = 'no-section';
      else if (s.type !== 's3') {
        throw new PveS3Error(
          'StorageWrongType',
          `storage '${id}' in ${paths.storageCfg} is of type '${s.type}', not 's3': pick an s3 storage`,
          { exitCode: EXIT.usage },
        );
      } else {
        cfgState = 'found';
        section = {};
        for (const [k, v] of Object.entries(s.props)) {
          if (SCHEMA.has(k)) section[k] = v;
          else log.warn(`storage '${id}': ignoring unknown key '${k}' in ${paths.storageCfg}`);
        }
        const sec = readSecretFile(paths.privDir, id);
        if (sec.ok) secretFromFile = sec.secret;
        else if (sec.reason === 'unreadable') notes.push(`${sec.file}: ${sec.detail === 'EACCES' ? 'permission denied (run as root?)' : sec.detail}`);
        else if (sec.reason === 'empty') notes.push(`${sec.file} is empty`);
        if (section.secret_key !== undefined) {
          if (secretFromFile === undefined) {
            log.warn(`storage '${id}': secret_key is stored in clear in ${paths.storageCfg}; move it to ${sec.file}`);
          }
        }
        if (secretFromFile !== undefined) section.secret_key = secretFromFile;
      }
    }
  }

  // 4. INI credentials
  let ini: Layer | null = null;
  const profile = o.storageCfgOnly ? undefined : (o.profile ?? (env.S3_PROFILE || undefined));
  const iniRead: ReturnType<typeof readOptional> = o.storageCfgOnly ? { missing: true } : readOptional(paths.credentials, { private: true });
  if ('text' in iniRead) {
    const picked = pickProfile(parseIni(iniRead.text), { explicit: profile, storageId: id });
    if (picked) {
      const values: Record<string, string> = {};
      for (const [k, v] of Object.entries(picked.values)) if (v !== undefined) values[k] = v;
      ini = { name: `${paths.credentials} [${picked.name}]`, values };
    } else if (profile) {
      throw new PveS3Error('ConfigMissing', `profile '${profile}' not found in ${paths.credentials}`, { exitCode: EXIT.usage });
    }
  } else if ('error' in iniRead) {
    notes.push(`${paths.credentials}: ${iniRead.error}`);
  } else if (profile) {
    throw new PveS3Error('ConfigMissing', `profile '${profile}' requested but ${paths.credentials} does not exist`, {
      exitCode: EXIT.usage,
    });
  }

  // storage missing from storage.cfg: flags/env must describe the bucket themselves
  if (o.storageCfgOnly && cfgState !== 'found') {
    const where = cfgState === 'no-file' ? `${paths.storageCfg} does not exist` : cfgState === 'unreadable' ? `${paths.storageCfg} is not readable` : `no section 's3: ${id ?? ''}' in ${paths.storageCfg}`;
    throw new PveS3Error('StorageNotFound', `storage '${id ?? ''}' not found: ${where}`, { exitCode: EXIT.usage });
  }
  if (id !== undefined && cfgState !== 'found') {
    const has = (k: string) => flags[k] !== undefined || envVals[k] !== undefined;
    if (!has('endpoint') || !has('bucket')) {
      const where =
        cfgState === 'no-file'
          ? `${paths.storageCfg} does not exist`
          : cfgState === 'unreadable'
            ? `${paths.storageCfg} is not readable (${notes[0]?.split(': ').slice(1).join(': ')})`
            : `no section 's3: ${id}' in ${paths.storageCfg}`;
      throw new PveS3Error(
        'StorageNotFound',
        `storage '${id}' not found: ${where}; add it with pvesm, or set S3_ENDPOINT and S3_BUCKET (plus S3_ACCESS_KEY/S3_SECRET_KEY) to run without storage.cfg`,
        { exitCode: EXIT.usage },
      );
    }
    log.info(`storage '${id}' not in ${paths.storageCfg}: using S3_* settings`);
  }

  // 5. merge, key by key
  const layers: Layer[] = [
    { name: 'flag', values: flags },
    { name: 'env', values: envVals },
  ];
  if (section) layers.push({ name: paths.storageCfg, values: section });
  if (ini) layers.push(ini);
  const merged: Record<string, string> = {};
  const sources: Record<string, string> = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer.values)) {
      if (merged[k] !== undefined) continue;
      merged[k] = v;
      sources[k] =
        layer.name === 'env'
          ? `env ${ENV_OF[k]}`
          : layer.name === 'flag'
            ? `--${k.replace(/_/g, '-')}`
            : layer === ini
              ? `${layer.name} ${INI_OF[k] ?? k}`
              : k === 'secret_key' && secretFromFile !== undefined
                ? secretFilePath(paths.privDir, id!)
                : `${layer.name} [${id}]`;
    }
  }
  if (merged.secret_key !== undefined) registerSecret(merged.secret_key);

  // 6. validate: name the source of a bad value
  let v: ValidatedProps;
  try {
    v = validateStorage(merged);
  } catch (e) {
    if (e instanceof ConfigError) {
      const key = /^invalid (\S+) /.exec(e.message)?.[1];
      const src = key ? sources[key] : undefined;
      if (src) e.message += ` (from ${src})`;
    }
    throw e;
  }

  // 7. required keys
  for (const key of REQUIRED_KEYS) {
    if ((v as Record<string, unknown>)[key] !== undefined) continue;
    throw missing(key, id, paths, notes);
  }

  return buildConfig(v, { storageId: id, fromStorageCfg: cfgState === 'found', sources });
}

function missing(key: string, id: string | undefined, paths: ConfigPaths, notes: string[]): PveS3Error {
  const from: string[] = (FLAG_KEYS as readonly string[]).includes(key) ? [`--${key}`] : [];
  if (ENV_OF[key]) from.push(`${ENV_OF[key]}`);
  if (id !== undefined) {
    from.push(
      key === 'secret_key'
        ? `${secretFilePath(paths.privDir, id)} (pvesm set ${id} --secret_key)`
        : `'${key}' in section 's3: ${id}' of ${paths.storageCfg}`,
    );
  }
  if (INI_OF[key]) from.push(`${INI_OF[key]} in ${paths.credentials}`);
  const extra = notes.length > 0 ? ` (note: ${notes.join('; ')})` : '';
  const what = id !== undefined ? `storage '${id}'` : 'the S3 storage';
  return new PveS3Error('ConfigMissing', `missing ${key} for ${what}: set it with ${from.join(', or ')}${extra}`, {
    exitCode: EXIT.usage,
  });
}

/**
 * A StorageConfig from one storage.cfg section as the Perl plugin sends it in a protocol request
 * (values may be strings, numbers, booleans, or PVE's decoded `{backup:1,…}` hashes / arrays),
 * with its secret. No flags, environment or files are consulted.
 */
export function storageConfigFromSection(
  storageId: string | undefined,
  section: Readonly<Record<string, unknown>>,
  o: { secret?: string; logger?: Logger } = {},
): StorageConfig {
  if (storageId !== undefined) checkStorageId(storageId);
  const props: Record<string, string> = {};
  for (const [k, val] of Object.entries(section)) {
    if (k === 'type' || k === 'storage' || k === 'digest' || val === undefined || val === null) continue;
    let s: string;
    if (typeof val === 'string') s = val;
    else if (typeof val === 'number') s = String(val);
    else if (typeof val === 'boolean') s = val ? '1' : '0';
    else if (Array.isArray(val)) s = val.map(String).join(',');
    else if (typeof val === 'object') {
      s = Object.entries(val as Record<string, unknown>)
        .filter(([, x]) => x !== 0 && x !== '0' && x !== false && x !== null)
        .map(([name]) => name)
        .join(',');
      if (s === '' && k === 'content') s = 'none';
    } else continue;
    if (!SCHEMA.has(k)) {
      o.logger?.warn(`storage '${storageId ?? '?'}': ignoring unknown key '${k}'`);
      continue;
    }
    props[k] = s;
  }
  if (o.secret !== undefined && o.secret !== '') props.secret_key = o.secret;
  if (props.secret_key !== undefined) registerSecret(props.secret_key);
  const v = validateStorage(props);
  const sources: Record<string, string> = {};
  for (const k of Object.keys(props)) sources[k] = 'request';
  for (const key of REQUIRED_KEYS) {
    if ((v as Record<string, unknown>)[key] === undefined) {
      throw new PveS3Error(
        'ConfigMissing',
        `missing ${key} for storage '${storageId ?? '?'}': ${key === 'secret_key' ? `no secret stored for it (${secretFilePath(configPaths().privDir, storageId ?? '<id>')}): set it with` : 'set it with'} pvesm set ${storageId ?? '<id>'} --${key}`,
        // a storage added disabled without its secret (pvesm add --disable 1) is what the admin
        // asked for: failing is right, warning about it (on_add_hook's manifest key) only noise
        { exitCode: EXIT.usage, quiet: key === 'secret_key' && v.disable === true },
      );
    }
  }
  return buildConfig(v, { storageId, fromStorageCfg: true, sources });
}

function dflt<T>(key: string): T {
  return SCHEMA.get(key)!.default as T;
}

function buildConfig(
  v: ValidatedProps,
  meta: { storageId?: string; fromStorageCfg: boolean; sources: Record<string, string> },
): StorageConfig {
  const sources = { ...meta.sources };
  const pick = <T>(key: keyof ValidatedProps): T => {
    const x = v[key];
    if (x !== undefined) return x as T;
    sources[key] = 'default';
    return dflt<T>(key);
  };
  const { provider, detected } = resolveProvider(v.provider, v.endpoint!.host);
  if (v.provider === undefined) sources.provider = 'default';
  // a region the endpoint's host names (or the provider's only one) beats the generic default
  let region = v.region;
  if (region === undefined) {
    region = regionFor(provider, v.endpoint!.host);
    if (region !== undefined) sources.region = `endpoint ${v.endpoint!.host} (${provider.name})`;
  }
  const cfg: StorageConfig = {
    fromStorageCfg: meta.fromStorageCfg,
    bucket: v.bucket!,
    endpoint: endpointUrl(v.endpoint!, v.use_ssl),
    region: region ?? pick<string>('region'),
    provider: { id: provider.id, detected },
    accessKey: v.access_key!,
    secretKey: v.secret_key!,
    prefix: pick<string>('prefix'),
    content: v.content ?? [...CONTENT_TYPES],
    multipartChunkSizeMB: pick<number>('multipart_chunk_size'),
    maxConcurrentUploads: pick<number>('max_concurrent_uploads'),
    connectionTimeoutS: pick<number>('connection_timeout'),
    requestTimeoutS: pick<number>('request_timeout'),
    ...(v.stall_timeout !== undefined ? { stallTimeoutS: v.stall_timeout } : {}),
    lifecycle: {
      enabled: pick<boolean>('lifecycle_enabled'),
      abortIncompleteDays: pick<number>('abort_incomplete_days'),
    },
    tls: { verify: pick<boolean>('tls_verify') },
    keepLocal: pick<boolean>('keep_local'),
    restore: { tier: pick<RestoreTier>('restore_tier'), days: pick<number>('restore_days') },
    cache: { maxSizeGiB: pick<number>('cache_max_size'), maxAgeDays: pick<number>('cache_max_age') },
    disable: v.disable ?? false,
    sources,
  };
  if (meta.storageId !== undefined) cfg.storageId = meta.storageId;
  if (v.storage_class) cfg.storageClass = v.storage_class;
  if (v.server_side_encryption === 'AES256') cfg.sse = { type: 'AES256' };
  else if (v.server_side_encryption === 'aws:kms') {
    cfg.sse = v.kms_key_id ? { type: 'aws:kms', keyId: v.kms_key_id } : { type: 'aws:kms' };
  }
  if (v.transition_days !== undefined) cfg.lifecycle.transitionDays = v.transition_days;
  if (v.glacier_days !== undefined) cfg.lifecycle.glacierDays = v.glacier_days;
  if (v.force_path_style !== undefined) cfg.forcePathStyle = v.force_path_style;
  if (v.ca_file) cfg.tls.caFile = v.ca_file;
  if (v.tls_fingerprint) cfg.tls.fingerprint = v.tls_fingerprint;
  if (v.checksum_algorithm) cfg.checksumAlgorithm = v.checksum_algorithm;
  if (v.lock_days !== undefined) cfg.lock = { days: v.lock_days, mode: v.lock_mode ?? 'governance' };
  if (v.path) cfg.path = v.path;
  if (v.nodes) cfg.nodes = v.nodes;
  if (v['prune-backups']) cfg.pruneBackups = v['prune-backups'];
  if (v['max-protected-backups'] !== undefined) cfg.maxProtectedBackups = v['max-protected-backups'];
  if (v.bwlimit) cfg.bwlimit = v.bwlimit;
  hideSecret(cfg);
  return cfg;
}

/** JSON.stringify / console.log / util.inspect of a config print the secret as [redacted]. */
function hideSecret(cfg: StorageConfig): void {
  const safe = () => ({ ...cfg, secretKey: '[redacted]' });
  Object.defineProperty(cfg, 'toJSON', { value: safe, enumerable: false });
  Object.defineProperty(cfg, inspect.custom, {
    value: (_d: number, opts: object) => inspect(safe(), opts),
    enumerable: false,
  });
}
