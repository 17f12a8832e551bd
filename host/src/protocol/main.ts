/**
 * The Perl plugin's entry (docs/PROTOCOL.md): one request on stdin → one envelope on stdout, the
 * human message as the last stderr line, exit 0 only with ok:true. The storage comes from the
 * request's section alone (never storage.cfg, S3_* or the credentials file). Everything an op
 * does not need is imported lazily: pvestatd starts this process every 10 s per storage.
 */
import { writeSync } from 'node:fs';
import { EXIT, PveS3Error } from '../util/errors.js';
import { PROTOCOL_VERSION, errorReply, okReply, type Reply } from './envelope.js';
import { readRequest, readStdinRequest, type RawRequest } from './read-request.js';
import { parseRequest } from './request.js';
import { VERSION } from '../util/version.js';
import { printable } from '../util/printable.js';
import type { S3Settings } from '../s3/settings.js';

export const HOST_VERSION = VERSION;

/** status must answer within this when the request gives no deadline (the plugin kills at 3 s) */
export const STATUS_DEFAULT_DEADLINE_MS = 2000;

/** pvestatd runs these serially for every storage: one retry at most, the deadline bounds the rest */
const PVESTATD_OPS = new Set(['status', 'activate']);

/**
 * PVE runs these inside an API call (the GUI's content view, `pvesm list`): a pveproxy or
 * pvedaemon worker, of the few a node has, waits for the answer. A gateway silent this long is
 * given up whatever stall_timeout says (a healthy listing of 5,000 backups takes ~12 s, each of
 * its requests answered within a second), so that a few clicks on a frozen storage cannot tie
 * up the node's API for the 300 s the plugin allows a listing.
 */
export const API_CALL_STALL_MS: Readonly<Record<string, number>> = { list: 30_000 };

/** after the deadline, how long an operation may take to clean up before we answer Timeout
 *  (the plugin kills the process 1 s after the deadline) */
export const ABORT_GRACE_MS = 500;

/**
 * What the stall clock leaves inside a deadline: the cleanup's last try (stall.ts LAST_TRY_MS)
 * and the answer. A gateway silent up to the deadline ended the op with "did not finish within
 * its deadline", naming neither the request nor the key; stalled this much earlier, the op ends
 * with the Stalled message, and what it started (an upload's abort) still gets its last try.
 */
export const STALL_ROOM_MS = 12_000;

/** The stall limit of an op with a deadline of `deadlineMs`, `left` of it after start-up. */
function stallWithin(s3: S3Settings, op: string, left: number, deadlineMs: number): void {
  const configured = s3.stallTimeoutMs ?? s3.requestTimeoutMs;
  // status and activate (2 s) have no room for a stall before their deadline: the deadline says it
  const within = left - STALL_ROOM_MS >= STALL_ROOM_MS ? left - STALL_ROOM_MS : left;
  if (configured <= within) {
    s3.stallTimeoutMs = configured;
    return;
  }
  s3.stallTimeoutMs = within;
  if (within < left) s3.stallReason = `${Math.round(within / 1000)} s of silence, inside the ${Math.round(deadlineMs / 1000)} s the plugin allows ${op}`;
}

/** The store and pve layers have their own names for a few codes; the protocol's are in §5. */
function protocolError(e: unknown, timedOut?: { op: string; endpoint: string; ms: number }): unknown {
  if (timedOut) {
    return new PveS3Error(
      'Timeout',
      `${timedOut.op} did not finish within its deadline of ${timedOut.ms} ms: check that endpoint '${timedOut.endpoint}' is reachable and answering, or retry`,
      { retryable: true },
    );
  }
  const err = e as PveS3Error;
  if (!(err instanceof PveS3Error)) return e;
  // §5 promises the plugin a small set of codes; the message keeps the specific cause
  const rename: Record<string, string> = {
    InvalidVolume: 'InvalidVolname',
    ConnectionRefused: 'NetworkError',
    TlsError: 'NetworkError',
    ConnectTimeout: 'Timeout',
    RequestTimeout: 'Timeout',
    Stalled: 'Timeout',
  };
  const code = rename[err.code];
  if (code === undefined) return err;
  // Stalled ends the host's own retries, but for the plugin it is an outage like any timeout:
  // retrying later may help (activate_volume then uses a cached copy, vzdump keeps the archive)
  const retryable = err.retryable || err.code === 'Stalled';
  return new PveS3Error(code, err.message, { status: err.status, retryable, exitCode: err.exitCode });
}

let served: string | undefined;

/** The op of the request this process answered (after `handle` parsed it): the installed
 *  loader keeps the V8 code cache of a `status` run, the operation PVE repeats every 10 s. */
export function servedOp(): string | undefined {
  return served;
}

/** `input`: a stream holding the request, or the reader of the process's own stdin. */
export async function handle(
  input: NodeJS.ReadableStream | (() => Promise<RawRequest>),
  started = Date.now(),
  o: { abort?: AbortSignal; exiting?: boolean } = {},
): Promise<Reply> {
  let timedOut: { op: string; endpoint: string; ms: number } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let client: { close(): Promise<void> } | undefined;
  try {
    const raw = typeof input === 'function' ? await input() : await readRequest(input as import('node:stream').Readable);
    const { OPS, OP_NAMES } = await import('./ops.js');
    const doc = raw.doc as Record<string, unknown>;
    if (doc && typeof doc === 'object' && doc.op === 'version' && doc.v === PROTOCOL_VERSION) {
      return okReply({ protocol: PROTOCOL_VERSION, host_version: HOST_VERSION, ops: OP_NAMES }, `pve-s3 host ${HOST_VERSION}, protocol ${PROTOCOL_VERSION}`);
    }
    const req = parseRequest(raw.doc, OP_NAMES);
    served = req.op;
    const deadlineRaw = doc.deadline_ms;
    if (deadlineRaw !== undefined && (typeof deadlineRaw !== 'number' || !Number.isInteger(deadlineRaw) || deadlineRaw <= 0)) {
      throw new PveS3Error('BadRequest', `invalid deadline_ms '${String(deadlineRaw)}': must be a positive integer (milliseconds)`, { exitCode: EXIT.usage });
    }
    const deadlineMs = (deadlineRaw as number | undefined) ?? (req.op === 'status' ? STATUS_DEFAULT_DEADLINE_MS : undefined);

    const { registerSecret, redact, FileLogger } = await import('../util/logger.js');
    const secret = req.storage.secret_key;
    if (typeof secret === 'string') registerSecret(secret);
    const logger = new FileLogger({ component: `host:${req.op}` });
    const { storageConfigFromSection } = await import('../config/resolve.js');
    const { id, ...section } = req.storage;
    const cfg = storageConfigFromSection(id, section, { logger });
    const ac = new AbortController();
    if (o.abort) {
      if (o.abort.aborted) ac.abort(o.abort.reason);
      else o.abort.addEventListener('abort', () => ac.abort(o.abort!.reason), { once: true });
    }
    let left: number | undefined;
    if (deadlineMs !== undefined) left = Math.max(1, deadlineMs - (Date.now() - started));
    const { openStore } = await import('../store/open.js');
    const ctx = await openStore(cfg, {
      logger,
      storageId: id,
      signal: ac.signal,
      // before the answer's last line: the plugin copies a long op's lines to the task log
      retryNotice: (line) => writeOut(2, printable(redact(line)) + '\n'),
      s3: (s3) => {
        const cap = API_CALL_STALL_MS[req.op];
        if (cap !== undefined && (s3.stallTimeoutMs ?? s3.requestTimeoutMs) > cap) {
          s3.stallTimeoutMs = cap;
          s3.stallReason = `PVE lists inside an API call, which waits at most ${cap / 1000} s of silence`;
        }
        if (left === undefined) return;
        // no single request may outlive the deadline, and a retry storm must not either
        s3.connectTimeoutMs = Math.min(s3.connectTimeoutMs, left);
        s3.requestTimeoutMs = Math.min(s3.requestTimeoutMs, left);
        stallWithin(s3, req.op, left, deadlineMs!);
        if (PVESTATD_OPS.has(req.op)) s3.maxRetries = 1;
      },
    });
    client = ctx;
    // a getter: stdin becomes a stream only for the one op that reads it (upload from '-')
    const run = OPS[req.op]!(ctx, req.args, {
      get stdin() {
        return raw.rest;
      },
      storage: req.storage,
    });
    let r: Awaited<typeof run>;
    if (deadlineMs === undefined) {
      r = await run;
    } else {
      // loading the client took some of the budget: the timer gets only what is left
      const remaining = Math.max(1, deadlineMs - (Date.now() - started));
      const expired = new Promise<'expired'>((res) => (timer = setTimeout(() => res('expired'), remaining)));
      const first = await Promise.race([run.then((x) => ({ x }), (e: unknown) => ({ e })), expired]);
      if (first === 'expired') {
        timedOut = { op: req.op, endpoint: String(req.storage.endpoint ?? ''), ms: deadlineMs };
        // let the operation undo what it started (abort a multipart upload, drop a temp file)
        // before answering, within the plugin's margin between deadline and SIGTERM
        ac.abort(new Error('deadline'));
        await Promise.race([run.catch(() => undefined), new Promise((res) => setTimeout(res, ABORT_GRACE_MS))]);
        throw new Error('deadline');
      }
      if ('e' in first) throw first.e;
      r = first.x;
    }
    return okReply(r.result, r.message);
  } catch (e) {
    return errorReply(protocolError(e, timedOut));
  } finally {
    if (timer) clearTimeout(timer);
    // A process about to exit has nothing to close; closing would have undici build (and node's
    // socket destroy format) a ClientDestroyedError stack over the whole bundled host: ~1.5 % of
    // a status's CPU for nothing (bench:startup).
    if (!o.exiting) void client?.close().catch(() => {});
  }
}

/** Last line of defence: no registered secret leaves this process, whatever a message says. */
async function scrub(text: string): Promise<string> {
  const { redact } = await import('../util/logger.js');
  return redact(text);
}

/** `read`: the request, when a first stage (first-stage.ts) has read it already. */
export async function main(o: { read?: () => Promise<RawRequest> } = {}): Promise<void> {
  // the plugin's timeout runs from the spawn, so the deadline does too: Node's boot and module
  // loading (longer on a busy node) come out of the same budget
  const started = Date.now() - Math.round(process.uptime() * 1000);
  // an operator's Ctrl-C or a service stop: use it to undo half-done work (PVE's run_command
  // timeout sends SIGKILL, which is why everything uses temporary names)
  const term = new AbortController();
  const onTerm = () => term.abort(new Error('terminated'));
  process.once('SIGTERM', onTerm);
  process.once('SIGINT', onTerm);
  const reply = await handle(o.read ?? (() => readStdinRequest()), started, { abort: term.signal, exiting: true });
  const out = await scrub(JSON.stringify(reply.envelope) + '\n');
  // the line PVE shows in the task log and on the terminal of `pvesm`: nothing there may act on it
  const msg = printable(await scrub(reply.message)) + '\n';
  writeOut(2, msg);
  writeOut(1, out);
  process.exit(reply.exitCode);
}

/**
 * Plain blocking writes: process.stdout and process.stderr are streams over pipe handles that
 * cost a `status` about 1 ms to set up, for one line each. A descriptor that will not block
 * (EAGAIN) gets the rest through the stream, which process.exit then flushes for pipes.
 */
function writeOut(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw e;
    (fd === 1 ? process.stdout : process.stderr).write(buf.subarray(off));
  }
}
