/**
 * A logger counting a client's requests by operation (its 's3 request' debug lines) and keeping
 * the warnings: what the listing tests assert (a warm listing = its pages, a cold one = …).
 */
import type { Logger } from '../../host/src/util/log.js';

export function countingLogger(): Logger & { ops: Record<string, number>; warnings: string[] } {
  const ops: Record<string, number> = {};
  const warnings: string[] = [];
  return {
    ops,
    warnings,
    debugEnabled: true,
    debug(msg, f) {
      if (msg === 's3 request') ops[String(f?.operation)] = (ops[String(f?.operation)] ?? 0) + 1;
    },
    info() {},
    warn(msg) {
      warnings.push(msg);
    },
    error() {},
  };
}
