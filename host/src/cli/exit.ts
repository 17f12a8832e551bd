/**
 * The end of every command: an error becomes one line on stderr ("<command>: <message>") and
 * its exit code; nothing escapes as a stack trace. Lines pass through the logger's redaction,
 * the last guard against a secret reaching a terminal or a task log.
 */
import { EXIT, asPveS3Error, type ExitCode } from '../util/errors.js';
import { printable, printableLines } from '../util/printable.js';

let interruption: string | undefined;

/** Set by the Ctrl-C handler: whatever error follows is the interruption's doing, and says so. */
export function markInterrupted(signal: string): void {
  interruption ??= signal;
}

/** The one line a failure ends with: "<command>: <message> [<code>]" (the code says what to grep for). */
export function errorLine(command: string, message: string, code: string | undefined): string {
  return `${command}: ${message}${code && !/^(Usage|InternalError)$/.test(code) ? ` [${code}]` : ''}`;
}

export async function runCommand(command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    const err = asPveS3Error(e);
    const { redact } = await import('../util/logger.js');
    const line =
      interruption !== undefined && err.code !== 'Aborted'
        ? `${command}: interrupted by ${interruption}: operation cancelled (${err.message})`
        : errorLine(command, err.message, err.code);
    // messages quote keys and servers' words: one line, nothing a terminal would act on
    process.stderr.write(printable(redact(line)) + '\n');
    if (process.env.PVE_S3_DEBUG && e instanceof Error && e.stack) process.stderr.write(printableLines(redact(e.stack)) + '\n');
    return err.exitCode;
  }
}

export const exitCodes: Readonly<Record<keyof typeof EXIT, ExitCode>> = EXIT;
