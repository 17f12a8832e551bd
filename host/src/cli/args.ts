/**
 * Argument parsing shared by the commands: node:util parseArgs in strict mode, with every parse
 * failure turned into a usage error (exit 2) whose one line names the problem and the command's
 * usage, so a typo never runs anything.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { FLAG_KEYS, SCHEMA } from '../config/schema.js';
import { ConfigError, EXIT, PveS3Error } from '../util/errors.js';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command accepts (the storage and how to talk). */
export const COMMON_OPTIONS = {
  storage: { type: 'string' },
  profile: { type: 'string' },
  endpoint: { type: 'string' },
  bucket: { type: 'string' },
  region: { type: 'string' },
  prefix: { type: 'string' },
  json: { type: 'boolean' },
  progress: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies OptionSpec;

export class UsageError extends PveS3Error {
  constructor(command: string, problem: string, usage: string) {
    super('Usage', `${problem}; usage: ${usage} (see ${command} --help)`, { exitCode: EXIT.usage });
  }
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parse(command: string, usage: string, argv: string[], options: OptionSpec, o: { positionals?: boolean } = {}): Parsed {
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: o.positionals === true });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (e) {
    // node's messages span lines and mention "ERR_PARSE_ARGS"; keep the first sentence
    const msg = (e as Error).message.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, '');
    throw new UsageError(command, valueProblem(msg, argv) ?? msg.replace(/\.$/, ''), usage);
  }
}

/**
 * node's "Option '--keep-last' argument is ambiguous" (the next word starts with '-': a missing
 * value, or a negative number) and "Option '--older-than <value>' argument missing" leave the
 * administrator guessing; say which option lacks its value, what follows it, and how to give a
 * value that starts with '-'.
 */
function valueProblem(msg: string, argv: string[]): string | undefined {
  const missing = /^Option '(--[\w-]+) <value>' argument missing/.exec(msg);
  if (missing) return `${missing[1]} needs a value, and none follows it`;
  const ambiguous = /^Option '(--[\w-]+)' argument is ambiguous/.exec(msg);
  if (!ambiguous) return undefined;
  const opt = ambiguous[1]!;
  const next = argv.find((w, i) => i > 0 && argv[i - 1] === opt && w.startsWith('-'));
  if (next === undefined) return `${opt} needs a value`;
  return `${opt} needs a value, but '${next}' follows it; if '${next}' is the value, write ${opt}=${next}`;
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** An option restricted to a set of values: the message names the option, the value and the choices. */
export function oneOf<T extends string>(p: Parsed, name: string, allowed: readonly T[]): T | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) {
    throw new PveS3Error('Usage', `invalid --${name} '${v}': must be one of ${allowed.join(', ')}`, { exitCode: EXIT.usage });
  }
  return v as T;
}

export function intOpt(p: Parsed, name: string, min: number, max: number): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new PveS3Error('Usage', `invalid --${name} '${v}': must be an integer ${min}..${max}`, { exitCode: EXIT.usage });
  }
  return Number(v);
}

export function vmidOpt(p: Parsed): number | undefined {
  return intOpt(p, 'vmid', 100, 999_999_999);
}

/** `512M`, `2G`, `1T`, or plain bytes (binary units: what `ls -h` and PVE show). */
export function sizeOpt(p: Parsed, name: string): number | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const m = /^(\d+)([KMGT]i?B?)?$/i.exec(v);
  const unit = m?.[2]?.[0]?.toUpperCase();
  const n = m ? Number(m[1]) * (unit ? 1024 ** ('KMGT'.indexOf(unit) + 1) : 1) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new PveS3Error('Usage', `invalid --${name} '${v}': must be a size such as 500G, 2T or a byte count`, { exitCode: EXIT.usage });
  }
  return n;
}

/**
 * An option whose values are a storage key's (`--restore-tier` for `restore_tier`): checked by
 * the schema's own parse, so the rule lives once; the message names the option.
 */
export function schemaOpt<T>(p: Parsed, name: string, key: string): T | undefined {
  const v = str(p, name);
  if (v === undefined) return undefined;
  const def = SCHEMA.get(key);
  if (!def) throw new Error(`no storage key ${key}`);
  try {
    return def.parse(v) as T;
  } catch (e) {
    if (e instanceof ConfigError) throw new PveS3Error('Usage', e.message.replace(`invalid ${key} `, `invalid --${name} `), { exitCode: EXIT.usage });
    throw e;
  }
}

/** `--restore-tier` / `--restore-days` of the commands that restore archived backups (README
 *  "Restoring an archived backup"); absent ones come from the storage's restore_tier/restore_days. */
export const RESTORE_OPTIONS = {
  'restore-tier': { type: 'string' },
  'restore-days': { type: 'string' },
} as const;

export const RESTORE_HELP = `  --restore-tier Standard|Bulk|Expedited
                      retrieval tier of the restore requested for an archived backup (GLACIER,
                      DEEP_ARCHIVE, INTELLIGENT_TIERING archive tiers; default: the storage's
                      restore_tier, else Standard). AWS's typical times: Expedited 1-5 minutes
                      (not from DEEP_ARCHIVE), Standard 3-5 hours (12 from DEEP_ARCHIVE), Bulk
                      5-12 hours (48 from DEEP_ARCHIVE)
  --restore-days N    days the restored copy stays readable (default: the storage's
                      restore_days, else 7; INTELLIGENT_TIERING takes none)`;

export function restoreOpts(p: Parsed): { tier?: import('../s3/restore.js').RestoreTier; days?: number } {
  const tier = schemaOpt<import('../s3/restore.js').RestoreTier>(p, 'restore-tier', 'restore_tier');
  const days = schemaOpt<number>(p, 'restore-days', 'restore_days');
  return { ...(tier !== undefined ? { tier } : {}), ...(days !== undefined ? { days } : {}) };
}

/** The config keys the common options set (flags win over S3_*, storage.cfg and the INI file). */
export function configFlags(p: Parsed): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of FLAG_KEYS) {
    const v = str(p, k);
    if (v !== undefined) out[k] = v;
  }
  return out;
}

export const COMMON_HELP = `Storage selection (key by key, the first source with a value wins: flags > S3_* environment >
  storage.cfg + secret file > credentials INI; README "Credentials"):
  --storage ID        storage id in storage.cfg (PVE_S3_STORAGE_CFG, default /etc/pve/storage.cfg);
                      with S3_ENDPOINT and S3_BUCKET set it may be absent from storage.cfg
  --profile NAME      profile of the credentials file (PVE_S3_CREDENTIALS)
  --endpoint URL, --bucket NAME, --region R, --prefix P   override single settings
                      (secrets are never taken from the command line: use S3_SECRET_KEY or the
                      secret file PVE_S3_PRIV_DIR/<ID>.pw)
  --json              machine-readable output on stdout
  --progress          progress bar on stderr even when stderr is not a terminal
  -h, --help          this help

Environment: S3_ENDPOINT S3_BUCKET S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_PREFIX S3_PROFILE
  S3_FORCE_PATH_STYLE S3_USE_SSL S3_PROVIDER; PVE_S3_STORAGE_CFG PVE_S3_PRIV_DIR PVE_S3_CREDENTIALS;
  PVE_S3_MANIFEST_KEY_FILE (the key that signs manifests; default PVE_S3_PRIV_DIR/<ID>.manifest-key);
  PVE_S3_LOG_FILE (default /var/log/pve/storage-s3.log); PVE_S3_DEBUG=1 or PVE_S3_LOG_LEVEL=DEBUG
  for request traces (signatures and secrets redacted).

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 not found,
  4 authentication refused, 5 integrity error (corrupt or unverifiable data),
  6 archived: a restore from the archive storage class was requested or is running; run again later.`;
