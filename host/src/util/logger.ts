/**
 * The Logger of log.ts: level filter, an append-only file sink (PVE_S3_LOG_FILE, default
 * /var/log/pve/storage-s3.log) and, in debug mode, an echo to stderr. Every line goes through
 * redact() first, whatever its level, so a caller that forgets to scrub a header cannot leak it.
 *
 * Environment: PVE_S3_DEBUG=1 → level DEBUG and lines echoed on stderr; PVE_S3_LOG_LEVEL sets the
 * level of the file (DEBUG|INFO|WARN|ERROR, default INFO). A log file that cannot be opened (not a
 * PVE host, no permission) never fails the operation: lines then go to stderr in debug mode only,
 * because stderr's last line is the message PVE shows to the user.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Logger, LogLevel } from './log.js';
import { printable } from './printable.js';

export const DEFAULT_LOG_FILE = '/var/log/pve/storage-s3.log';

const ORDER: Record<LogLevel, number> = { DEBUG: 10, INFO: 20, WARN: 30, ERROR: 40 };
const LEVELS = Object.keys(ORDER) as LogLevel[];

export const REDACTED = '[redacted]';

// ---------------------------------------------------------------------------------------------
// Redaction

const registered = new Set<string>();
// longest first, so a secret containing another registered secret goes whole
let ordered: string[] = [];

/**
 * Secrets are redacted by field (SECRET_FIELD) and by the patterns of the places they travel in
 * (PATTERNS). Matching a registered secret's value anywhere in a line is only a last net, and only
 * for secrets of at least this length: a short one ("s3", "1234") would mangle every line that
 * happens to hold it, and where "[redacted]" appears would tell the secret to the log's readers.
 */
export const MIN_VALUE_REDACTION = 16;

/**
 * Registers a secret (a secret key, an SSE-C key): a long one is then also replaced wherever it
 * appears, its URI-encoded form too, since secrets end up in query strings.
 */
export function registerSecret(secret: string | undefined | null): void {
  if (!secret || secret.length < MIN_VALUE_REDACTION) return;
  registered.add(secret);
  const enc = encodeURIComponent(secret);
  if (enc !== secret) registered.add(enc);
  ordered = [...registered].sort((a, b) => b.length - a.length);
}

/** Only for tests: forget registered secrets. */
export function clearRegisteredSecrets(): void {
  registered.clear();
  ordered = [];
}

/** Field names whose value is a secret whatever it looks like (compared lower-case, `-`/`_` ignored). */
const SECRET_FIELD = new Set(
  [
    'secret_key',
    'secretkey',
    'secretaccesskey',
    'aws_secret_access_key',
    'password',
    'authorization',
    'x-amz-server-side-encryption-customer-key',
    'x-amz-copy-source-server-side-encryption-customer-key',
    'x-amz-security-token',
    'sessiontoken',
    'aws_session_token',
    'x-amz-signature',
    'signature',
    'ssec_key',
    'sse_customer_key',
  ].map(normField),
);

function normField(name: string): string {
  return name.toLowerCase().replace(/[-_]/g, '');
}

export function isSecretField(name: string): boolean {
  return SECRET_FIELD.has(normField(name));
}

// Each pattern keeps what identifies the thing (header name, key id) and replaces the secret part.
const PATTERNS: Array<[RegExp, string]> = [
  // SigV4 Authorization header value: Credential=AKID/date/region/s3/aws4_request stays.
  [/(\bSignature\s*=\s*)(?!\[redacted\])[^\s,"'&]+/gi, `$1${REDACTED}`],
  // Presigned URL / query form.
  [/(X-Amz-Signature=)[^&\s"']+/gi, `$1${REDACTED}`],
  [/(X-Amz-Security-Token=)[^&\s"']+/gi, `$1${REDACTED}`],
  // Header lines or JSON/object renderings of secret-bearing headers and fields.
  [
    /((?:x-amz-(?:copy-source-)?server-side-encryption-customer-key|x-amz-security-token|aws_secret_access_key|aws_session_token|secret_?key|secretAccessKey|sessionToken|password)["']?\s*[:=]\s*["']?)(?!\[redacted\])[^\s"',;}&]+/gi,
    `$1${REDACTED}`,
  ],
  // storage.cfg / INI line form: "secret_key VALUE"
  [/^(\s*secret_key[ \t]+)\S+/gim, `$1${REDACTED}`],
  // Legacy SigV2 header: "AWS AKID:signature"
  [/(Authorization["']?\s*[:=]\s*["']?AWS\s+[^:\s]+:)[^\s"',]+/gi, `$1${REDACTED}`],
];

/** Strips signatures and secrets out of any text bound for a log, a trace or an error message. */
export function redact(text: string): string {
  let out = text;
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep);
  for (const s of ordered) if (out.includes(s)) out = out.split(s).join(REDACTED);
  return out;
}

/** Deep copy of a fields object with secret-named fields replaced and strings redacted. */
export function redactFields(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return redact(v);
  if (v === null || typeof v !== 'object') return v;
  if (depth > 6) return '[…]';
  if (v instanceof Error) return redact(v.message);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  if (Array.isArray(v)) return v.map((x) => redactFields(x, depth + 1));
  if (v instanceof Map) return redactFields(Object.fromEntries(v), depth);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!isSecretField(k) || x === undefined || x === null || x === '') out[k] = redactFields(x, depth + 1);
    // a SigV4 Authorization value keeps its Credential (key id, scope) for debugging; anything else goes
    else if (normField(k) === 'authorization' && typeof x === 'string' && /Signature\s*=/.test(x)) out[k] = redact(x);
    else out[k] = REDACTED;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Logger

export function parseLogLevel(s: string | undefined): LogLevel | undefined {
  if (!s) return undefined;
  const u = s.trim().toUpperCase();
  if (u === 'WARNING') return 'WARN';
  if (u === 'ERR') return 'ERROR';
  return (LEVELS as string[]).includes(u) ? (u as LogLevel) : undefined;
}

function truthy(s: string | undefined): boolean {
  return s !== undefined && /^(1|on|yes|true)$/i.test(s.trim());
}

export interface LoggerOptions {
  env?: NodeJS.ProcessEnv;
  /** overrides PVE_S3_LOG_FILE; null = no file */
  file?: string | null;
  level?: LogLevel;
  /** where the debug echo (and the fallback) goes: default process.stderr; null = nowhere */
  stderr?: { write(s: string): unknown } | null;
  /** echo every line on stderr, whatever PVE_S3_DEBUG says */
  echo?: boolean;
  /** tag shown on every line, e.g. the command name */
  component?: string;
  clock?: () => Date;
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return '[unserialisable]';
  }
}

export class FileLogger implements Logger {
  readonly level: LogLevel;
  readonly debugEnabled: boolean;
  readonly file: string | null;
  private fd: number | null | undefined; // undefined = not tried yet; null = unusable
  private readonly echo: boolean;
  private readonly debugMode: boolean;
  private readonly stderr: { write(s: string): unknown } | null;
  private readonly component?: string;
  private readonly clock: () => Date;
  private readonly shared?: FileLogger; // children share the parent's fd

  constructor(o: LoggerOptions = {}, parent?: FileLogger) {
    const env = o.env ?? process.env;
    this.debugMode = truthy(env.PVE_S3_DEBUG);
    const fromEnv = parseLogLevel(env.PVE_S3_LOG_LEVEL);
    this.level = o.level ?? (this.debugMode ? 'DEBUG' : (fromEnv ?? 'INFO'));
    this.debugEnabled = ORDER[this.level] <= ORDER.DEBUG;
    this.file = o.file !== undefined ? o.file : env.PVE_S3_LOG_FILE || DEFAULT_LOG_FILE;
    this.echo = o.echo ?? this.debugMode;
    // process.stderr is a stream made on first access (about 0.3 ms): only when a line goes there
    this.stderr = o.stderr !== undefined ? o.stderr : { write: (s: string) => process.stderr.write(s) };
    this.component = o.component;
    this.clock = o.clock ?? (() => new Date());
    this.shared = parent;
  }

  /** A logger writing to the same sinks with another component tag. */
  child(component: string): FileLogger {
    const root = this.shared ?? this;
    return new FileLogger(
      {
        level: this.level,
        file: this.file,
        stderr: this.stderr,
        echo: this.echo,
        component,
        clock: this.clock,
        env: { PVE_S3_DEBUG: this.debugMode ? '1' : '' },
      },
      root,
    );
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.write('DEBUG', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.write('INFO', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.write('WARN', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.write('ERROR', msg, fields);
  }

  /** The line as it would be written (redacted), without the trailing newline. */
  format(level: LogLevel, msg: string, fields?: Record<string, unknown>): string {
    let line = `${this.clock().toISOString()} ${level} [${process.pid}]`;
    if (this.component) line += ` ${this.component}:`;
    line += ` ${msg.replace(/\r?\n/g, ' | ')}`;
    if (fields) {
      const clean = redactFields(fields) as Record<string, unknown>;
      for (const [k, v] of Object.entries(clean)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`;
    }
    // keys and servers' messages in fields: the file is read with less/tail, the echo on a terminal
    return printable(redact(line));
  }

  close(): void {
    const root = this.shared ?? this;
    if (typeof root.fd === 'number') {
      try {
        closeSync(root.fd);
      } catch {
        /* already closed */
      }
    }
    root.fd = null;
  }

  private write(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const line = this.format(level, msg, fields) + '\n';
    const wroteFile = this.writeFile(line);
    if (this.stderr && (this.echo || (!wroteFile && this.debugMode))) {
      try {
        this.stderr.write(line);
      } catch {
        /* a closed stderr must not fail the operation */
      }
    }
  }

  private writeFile(line: string): boolean {
    const root = this.shared ?? this;
    if (!root.file) return false;
    if (root.fd === undefined) {
      try {
        root.fd = openSync(root.file, 'a', 0o640);
      } catch {
        root.fd = null;
      }
    }
    if (root.fd === null) return false;
    try {
      writeSync(root.fd, line);
      return true;
    } catch {
      return false;
    }
  }
}

export function createLogger(o: LoggerOptions = {}): FileLogger {
  return new FileLogger(o);
}
