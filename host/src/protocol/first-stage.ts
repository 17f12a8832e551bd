/**
 * The installed host's first stage (scripts/bundle.mjs builds host-status.cjs from it, with
 * status-ops.ts as its only operations; scripts/host-loader.mjs runs it). pvestatd starts the
 * host for a `status` of every storage every 10 s: answered here, a status reads and compiles a
 * bundle without the code of the other operations (bench:startup). Every other request — and
 * `version`, which lists all operations — goes to the whole host (host.cjs), with the request
 * this stage has read.
 */
import { PROTOCOL_VERSION } from './envelope.js';
import { main, type servedOp } from './main.js';
import { readStdinRequest, type RawRequest } from './read-request.js';

/** The whole host's entry, as host.cjs exports it. */
export interface WholeHost {
  main(o: { read: () => Promise<RawRequest> }): Promise<void>;
  servedOp: typeof servedOp;
}

export async function firstStage(whole: () => WholeHost): Promise<void> {
  let raw: RawRequest;
  try {
    raw = await readStdinRequest();
  } catch (e) {
    // unreadable or not JSON: this stage answers the BadRequest as the whole host would
    return main({ read: () => Promise.reject(e) });
  }
  const doc = raw.doc as { op?: unknown; v?: unknown } | null;
  if (doc !== null && typeof doc === 'object' && doc.op === 'status' && doc.v === PROTOCOL_VERSION) return main({ read: async () => raw });
  return whole().main({ read: async () => raw });
}
