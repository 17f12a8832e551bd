/**
 * One error type for the whole host. `code` is stable (an S3 error code such as `NoSuchKey`, or
 * one of ours such as `ConfigInvalid`); `message` is one line that tells the operator what to do;
 * `exitCode` is what a CLI exits with (see README: 0 ok, 1 failure, 2 usage/config, 3 not found,
 * 4 auth, 5 integrity, 6 archived: a restore from the archive storage class is requested or
 * running, run the command again later). Messages must never contain a secret: callers build them from names and
 * non-secret values only.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  integrity: 5,
  /** not a failure of the job: the object is archived and its restore pending (store/archive-state.ts) */
  restorePending: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface PveS3ErrorOptions {
  status?: number;
  retryable?: boolean;
  exitCode?: ExitCode;
  requestId?: string;
  key?: string;
  cause?: unknown;
  /** the failure is what the storage's own settings ask for (protocol `error.quiet`) */
  quiet?: boolean;
}

export class PveS3Error extends Error {
  readonly code: string;
  readonly status?: number;
  readonly retryable: boolean;
  readonly exitCode: ExitCode;
  readonly requestId?: string;
  readonly key?: string;
  readonly quiet: boolean;

  constructor(code: string, message: string, o: PveS3ErrorOptions = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'PveS3Error';
    this.code = code;
    this.status = o.status;
    this.retryable = o.retryable ?? false;
    this.exitCode = o.exitCode ?? EXIT.failure;
    this.requestId = o.requestId;
    this.key = o.key;
    this.quiet = o.quiet ?? false;
  }

  /** The protocol's error object (DESIGN.md §4). */
  toJSON(): { code: string; message: string; status?: number; retryable: boolean; quiet?: true } {
    const o: { code: string; message: string; status?: number; retryable: boolean; quiet?: true } = {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
    };
    if (this.status !== undefined) o.status = this.status;
    if (this.quiet) o.quiet = true;
    return o;
  }
}

/** Invalid configuration or argument: names the key, the value and what is allowed. */
export class ConfigError extends PveS3Error {
  constructor(key: string, value: unknown, allowed: string) {
    super('ConfigInvalid', `invalid ${key} '${String(value)}': ${allowed}`, { exitCode: EXIT.usage });
    this.name = 'ConfigError';
  }
}

/** Wraps anything thrown into a PveS3Error without leaking stack traces to operators. */
export function asPveS3Error(e: unknown): PveS3Error {
  if (e instanceof PveS3Error) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new PveS3Error('InternalError', msg.split('\n')[0] ?? 'internal error', { cause: e });
}

/**
 * The failure of a job on one backup, saying which backup it was (a network error names only the
 * endpoint, an S3 error only its key): "<doing> '<name>' failed: <message>", code and retry
 * advice kept. A message naming the backup already is left as it is.
 */
export function aboutBackup(e: unknown, doing: string, name: string): unknown {
  if (!(e instanceof PveS3Error) || e.message.includes(`'${name}'`)) return e;
  return new PveS3Error(e.code, `${doing} '${name}' failed: ${e.message}`, { exitCode: e.exitCode, status: e.status, retryable: e.retryable, cause: e });
}
