/** Checks of the options uploads and downloads share; the messages name the setting the user wrote. */
import { ConfigError } from '../util/errors.js';

export function checkConcurrency(c: number): void {
  if (!Number.isInteger(c) || c < 1 || c > 20) throw new ConfigError('max_concurrent_uploads', c, 'must be an integer 1..20');
}

export function checkBwlimit(v: number | undefined): void {
  if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new ConfigError('bwlimit', v, 'must be a whole number of KiB/s ≥ 0 (0 = unlimited)');
}
