/**
 * From parsed options to a StoreContext: the storage's configuration (config/), a client
 * (s3/), the store's settings (store/settings.ts) and a logger. Ctrl-C aborts the running
 * operation through the context's signal, so uploads abort their multipart upload and
 * downloads drop their temporary file instead of leaving debris. A second Ctrl-C kills at once
 * (the handlers are `once`).
 */
import type { StorageConfig } from '../config/types.js';
import type { StoreContext } from '../store/types.js';
import type { FileLogger } from '../util/logger.js';
import { configFlags, str, type Parsed } from './args.js';
import { markInterrupted } from './exit.js';

export interface Opened {
  ctx: StoreContext;
  cfg: StorageConfig;
  logger: FileLogger;
  close(): Promise<void>;
}

export async function createCliLogger(command: string): Promise<FileLogger> {
  const { createLogger } = await import('../util/logger.js');
  return createLogger({ component: command });
}

/** Resolves the storage without touching the network (dry runs, the hook's type check). */
export async function resolveFrom(p: Parsed, logger: FileLogger, extraFlags: Record<string, string> = {}): Promise<StorageConfig> {
  const { resolveStorage } = await import('../config/resolve.js');
  const storageId = str(p, 'storage');
  const profile = str(p, 'profile');
  return resolveStorage({
    ...(storageId !== undefined ? { storageId } : {}),
    ...(profile !== undefined ? { profile } : {}),
    flags: { ...configFlags(p), ...extraFlags },
    logger,
  });
}

export async function openStore(cfg: StorageConfig, logger: FileLogger): Promise<Opened> {
  const { openStore: open } = await import('../store/open.js');
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    markInterrupted(sig);
    process.stderr.write(`\ninterrupted (${sig}): cleaning up\n`);
    // the abort also ends an upload's wait for stdin bytes that may never come (transfer/upload.ts)
    ac.abort(new Error(`interrupted by ${sig}`));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const { note } = await import('./output.js');
  const { redact } = await import('../util/logger.js');
  const ctx = await open(cfg, { logger, signal: ac.signal, retryNotice: (line) => note(redact(line)) });
  ctx.notice = note;
  return {
    ctx,
    cfg,
    logger,
    async close() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await ctx.close().catch(() => undefined);
    },
  };
}
