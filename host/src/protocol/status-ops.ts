/**
 * `status`, the operation pvestatd repeats for every storage every 10 s. It lives apart from the
 * other operations (ops.ts) so that the installed host's first stage (first-stage.ts) can be
 * built from it alone: a status then never reads or compiles the code of the other operations.
 */
import type { Op } from './ops.js';

export const STATUS_OPS: Record<string, Op> = {
  async status(ctx) {
    const { pveStatus } = await import('../store/usage.js');
    const { providerReport } = await import('../store/provider-report.js');
    const s = await pveStatus(ctx);
    const p = providerReport(ctx);
    return {
      result: { ...s, provider: { id: p.id, name: p.name, detected: p.detected } },
      message: `storage '${ctx.settings.storageId}' is active (bucket ${ctx.settings.bucket}, ${p.name}${p.detected ? ', detected' : ''})`,
    };
  },
};

/** What main.ts's handle() imports as './ops.js' in the first stage's bundle (scripts/bundle.mjs). */
export const OPS = STATUS_OPS;
export const OP_NAMES: readonly string[] = Object.keys(STATUS_OPS);
