/**
 * The reply side of the protocol (docs/PROTOCOL.md): one JSON envelope on stdout, a one-line human
 * message as the last line of stderr, exit status 0 only with ok:true.
 */
import { EXIT, PveS3Error, asPveS3Error, type ExitCode } from '../util/errors.js';

export const PROTOCOL_VERSION = 1;

export interface OkEnvelope {
  ok: true;
  result: unknown;
}
export interface ErrorEnvelope {
  ok: false;
  error: { code: string; message: string; status?: number; retryable: boolean; quiet?: true };
}
export type Envelope = OkEnvelope | ErrorEnvelope;

export interface Reply {
  envelope: Envelope;
  /** the last stderr line */
  message: string;
  exitCode: ExitCode;
}

export function okReply(result: unknown, message: string): Reply {
  return { envelope: { ok: true, result }, message: oneLine(message), exitCode: EXIT.ok };
}

export function errorReply(e: unknown): Reply {
  const err: PveS3Error = asPveS3Error(e);
  const error = err.toJSON();
  error.message = oneLine(error.message);
  // exit 0 is reserved for ok:true, whatever the error says
  const exitCode = err.exitCode === EXIT.ok ? EXIT.failure : err.exitCode;
  return { envelope: { ok: false, error }, message: error.message, exitCode };
}

export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}
