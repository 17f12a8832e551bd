/**
 * Logger contract. The implementation (levels, file sink at PVE_S3_LOG_FILE, PVE_S3_DEBUG /
 * PVE_S3_LOG_LEVEL, redaction of signatures and secrets) lives beside this file; every module
 * takes a Logger so tests can capture what would be written.
 */
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** true when debug lines would be written: lets callers skip building expensive traces. */
  readonly debugEnabled: boolean;
}

export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  debugEnabled: false,
};
