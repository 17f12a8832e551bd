/**
 * Checks the request document's outer shape (docs/PROTOCOL.md) before anything is loaded or any
 * network is touched; the message names the field, what was sent and what is allowed, but never
 * echoes a value from `storage` (it holds the secret).
 */
import { EXIT, PveS3Error } from '../util/errors.js';
import { isStorageId, STORAGE_ID_RULE } from '../config/storage-id.js';
import { PROTOCOL_VERSION } from './envelope.js';

export interface Request {
  v: number;
  op: string;
  storage: Record<string, unknown> & { id: string };
  args: Record<string, unknown>;
}

const bad = (msg: string) => new PveS3Error('BadRequest', msg, { exitCode: EXIT.usage });

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

const show = (x: unknown): string => {
  const s = typeof x === 'string' ? x : JSON.stringify(x) ?? String(x);
  return s.length > 60 ? s.slice(0, 57) + '...' : s;
};

export function parseRequest(doc: unknown, knownOps: readonly string[]): Request {
  if (!isObject(doc)) throw bad(`invalid request: expected a JSON object, got ${Array.isArray(doc) ? 'an array' : typeof doc}`);
  if (doc.v !== PROTOCOL_VERSION) {
    throw new PveS3Error(
      'ProtocolVersion',
      `invalid v '${show(doc.v)}': this host speaks protocol version ${PROTOCOL_VERSION}; update the plugin and the host together`,
      { exitCode: EXIT.usage },
    );
  }
  const op = doc.op;
  if (typeof op !== 'string' || !knownOps.includes(op)) {
    throw new PveS3Error('UnknownOp', `invalid op '${show(op)}': must be one of ${knownOps.join(', ')}`, { exitCode: EXIT.usage });
  }
  if (!isObject(doc.storage)) throw bad(`invalid storage: expected an object with the storage.cfg section (id and properties)`);
  const id = doc.storage.id;
  if (!isStorageId(id)) {
    throw bad(`invalid storage.id '${typeof id === 'string' ? show(id) : typeof id}': a PVE storage id ${STORAGE_ID_RULE}`);
  }
  const args = doc.args === undefined ? {} : doc.args;
  if (!isObject(args)) throw bad(`invalid args: expected an object, got ${show(args)}`);
  return { v: PROTOCOL_VERSION, op, storage: doc.storage as Request['storage'], args };
}
