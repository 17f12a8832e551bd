import { EXIT, PveS3Error } from '../util/errors.js';

/** Data that does not match its manifest, size or ETag. Exit code 5 (README). */
export function integrityError(key: string, what: string): PveS3Error {
  return new PveS3Error('IntegrityError', `integrity check failed for '${key}': ${what}`, {
    exitCode: EXIT.integrity,
    key,
  });
}

/** The caller's AbortSignal fired: nothing was left behind. */
export function abortedError(key: string, op: 'upload' | 'download' | 'verify' | 'copy', reason?: unknown): PveS3Error {
  const why = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message.split('\n')[0]}` : '';
  return new PveS3Error('Aborted', `${op} of '${key}' cancelled${why}; nothing was left behind`, { key });
}

export function isAbortError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  return e.name === 'AbortError' || (e as { code?: unknown }).code === 'ABORT_ERR' || (e as { code?: unknown }).code === 'Aborted';
}
