// A scriptable HTTP proxy on 127.0.0.1 in front of the real RadosGW, for fault-injection tests
// (DESIGN.md §8). Requests are forwarded verbatim — including the Host header the client signed
// for the proxy's own host:port, which RadosGW accepts with path-style addressing — so SigV4
// signatures stay valid; a per-test plan replaces chosen exchanges with faults.
//
//   const p = await startFaultProxy(testS3().endpoint);
//   p.plan([{ match: { method: 'PUT', pathIncludes: 'partNumber=2' }, fault: { kind: 'status', status: 503 }, times: 2 }]);
//   ... point the client at p.url ...; p.requests (log); await p.close();
import http from 'node:http';
import net from 'node:net';
import { ArchiveTiers } from './archive-tier.js';

export type { ArchiveMark, RestoreRecord } from './archive-tier.js';

export type Fault =
  /** RST the connection. Without afterBytes and forward: before anything reaches the server.
   *  forward: the server processes the request first. afterBytes: the response head and that many
   *  body bytes reach the client, then RST. */
  | { kind: 'reset'; forward?: boolean; afterBytes?: number }
  /** An S3-style XML error with this status (code defaults by status: 500 InternalError,
   *  503 SlowDown, 429 TooManyRequests, else ServiceUnavailable). forward: after the server did it. */
  | { kind: 'status'; status: number; code?: string; message?: string; headers?: Record<string, string>; forward?: boolean }
  /** 200 OK whose body is an <Error> document (as S3 does for CompleteMultipartUpload/Copy). */
  | { kind: 'error200'; code?: string; message?: string; forward?: boolean }
  /** Forward, send the head (with the full Content-Length) and `bytes` body bytes, then close cleanly (FIN). */
  | { kind: 'truncate'; bytes: number }
  /** Forward, but move the response's Date header by offsetMs. */
  | { kind: 'skewDate'; offsetMs: number }
  /** 403 RequestTimeTooSkewed as from a server whose clock is offsetMs ahead (Date header and body agree). */
  | { kind: 'tooSkewed'; offsetMs: number }
  /** Never answer. afterBytes: forward and stall after the head and that many body bytes. */
  | { kind: 'hang'; afterBytes?: number }
  /** Forward after a pause: `ms`, or until `until` settles (a test that must act while the
   *  request is held, e.g. between a command's checks and its commit). */
  | { kind: 'delay'; ms?: number; until?: Promise<unknown> }
  /** Forward, but flip the bits of the body byte at `at` (default 0): data damaged on the server's
   *  disk or on the way, under an unchanged ETag. */
  | { kind: 'corrupt'; at?: number }
  /** Answer without forwarding, as a hostile or broken server would: the body is bytes, or a
   *  function giving chunks lazily (bodies far larger than memory; written with back-pressure,
   *  and no longer produced once the client has gone). */
  | { kind: 'respond'; status?: number; headers?: Record<string, string>; body: string | Uint8Array | (() => Iterable<Uint8Array> | AsyncIterable<Uint8Array>) };

export interface FaultMatch {
  method?: string;
  /** substring of the request target (path and query as sent, percent-encoded) */
  pathIncludes?: string;
  path?: RegExp;
  /** header name (any case) → exact value or pattern; a missing header never matches */
  headers?: Record<string, string | RegExp>;
  test?: (req: ProxiedRequest) => boolean;
}

export interface FaultRule {
  match?: FaultMatch;
  fault: Fault;
  /** how many matching requests get the fault (default 1; Infinity for all) */
  times?: number;
  /** matching requests to let through untouched before the fault starts (default 0) */
  skip?: number;
}

export interface ProxiedRequest {
  method: string;
  /** request target as sent: path and query */
  target: string;
  /** lower-case names; the SSE-C key header is redacted */
  headers: Record<string, string>;
  /** kind of the fault applied, if any */
  fault?: Fault['kind'];
  /** whether the request reached the server */
  forwarded: boolean;
  /** response body bytes relayed to the client from the server (forwarded answers) */
  bodyBytes: number;
  /** status line the client got (undefined: none, e.g. reset or hang) */
  status?: number;
}

export type DeadMode =
  /** accept connections, never answer (a stuck server or firewall black hole) */
  | 'blackhole'
  /** nothing listens on the port: connections are refused */
  | 'refuse'
  /** accept, then RST at once */
  | 'reset';

export interface FaultProxy {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly requests: ProxiedRequest[];
  /** Replaces the plan; rules are tried in order, the first still active match applies. */
  plan(rules: FaultRule[]): void;
  /** how many times each rule of the current plan has fired, in plan order */
  hits(): number[];
  /** Makes the whole endpoint dead (also for connections already open), or alive again with false. */
  dead(mode: DeadMode | false): Promise<void>;
  clearLog(): void;
  /**
   * The archive-tier mode (test/helpers/archive-tier.ts): keys marked here answer HEAD, GET,
   * ListObjects and RestoreObject as AWS documents an archived object; `restores` lists the
   * RestoreObject requests it accepted (202). Planned faults still come first.
   */
  readonly archive: ArchiveTiers;
  close(): Promise<void>;
}

interface ActiveRule {
  rule: FaultRule;
  seen: number;
  hits: number;
}

const SECRET_HEADERS = new Set(['x-amz-server-side-encryption-customer-key', 'x-amz-copy-source-server-side-encryption-customer-key']);
// Per-connection, not per-message: the proxy's own connection handling decides these.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection']);

const DEFAULT_CODES: Record<number, string> = { 500: 'InternalError', 503: 'SlowDown', 429: 'TooManyRequests' };

function errorXml(code: string, message: string, extra = ''): string {
  const id = `fault-proxy-${Date.now().toString(36)}`;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>${id}</RequestId><HostId>fault-proxy</HostId></Error>`;
}

function matches(m: FaultMatch | undefined, r: ProxiedRequest): boolean {
  if (!m) return true;
  if (m.method && m.method.toUpperCase() !== r.method) return false;
  if (m.pathIncludes !== undefined && !r.target.includes(m.pathIncludes)) return false;
  if (m.path && !m.path.test(r.target)) return false;
  for (const [name, want] of Object.entries(m.headers ?? {})) {
    const got = r.headers[name.toLowerCase()];
    if (got === undefined) return false;
    if (typeof want === 'string' ? got !== want : !want.test(got)) return false;
  }
  return m.test ? m.test(r) : true;
}

function validateRule(rule: FaultRule, i: number): void {
  const f = rule.fault as Fault | undefined;
  const kinds = ['reset', 'status', 'error200', 'truncate', 'skewDate', 'tooSkewed', 'hang', 'delay', 'respond', 'corrupt'];
  if (!f || !kinds.includes(f.kind)) {
    throw new Error(`fault proxy plan[${i}].fault.kind: ${JSON.stringify(f?.kind)} is not one of ${kinds.join(', ')}`);
  }
  const count = (key: string, v: unknown, min = 0): void => {
    if (v !== undefined && !(typeof v === 'number' && v >= min && (Number.isInteger(v) || v === Infinity))) {
      throw new Error(`fault proxy plan[${i}].${key}: ${String(v)} is not an integer >= ${min}`);
    }
  };
  count('times', rule.times, 1);
  count('skip', rule.skip);
  if ('afterBytes' in f) count('fault.afterBytes', f.afterBytes);
  if (f.kind === 'truncate') count('fault.bytes', f.bytes);
  if (f.kind === 'delay') {
    count('fault.ms', f.ms);
    if (f.ms === undefined && f.until === undefined) throw new Error(`fault proxy plan[${i}].fault: delay needs ms or until`);
  }
  if (f.kind === 'status' && !(Number.isInteger(f.status) && f.status >= 100 && f.status <= 599)) {
    throw new Error(`fault proxy plan[${i}].fault.status: ${f.status} is not an HTTP status (100..599)`);
  }
}

/** A URL on which nothing listens (connections are refused), for dead-endpoint tests. */
export async function refusingEndpoint(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  if (up.protocol !== 'http:') throw new Error(`fault proxy upstream: ${upstream} must be an http:// URL`);
  const upPort = Number(up.port || 80);
  const agent = new http.Agent({ keepAlive: true });
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<net.Socket>();
  let rules: ActiveRule[] = [];
  let deadMode: DeadMode | false = false;
  let closed = false;
  const archive = new ArchiveTiers();

  const readBody = (req: http.IncomingMessage): Promise<Buffer> =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', () => resolve(Buffer.concat(chunks)));
    });

  /** The archive-tier mode's answer; false when the request is not its business. */
  const archiveExchange = async (req: http.IncomingMessage, res: http.ServerResponse, log: ProxiedRequest): Promise<boolean> => {
    const a = archive.route(log.method, log.target);
    if (!a) return false;
    if (a.kind === 'restore') {
      const body = (await readBody(req)).toString('utf8');
      const r = archive.restore(a.bucket, a.key, body);
      if (r.code) sendError(res, log, r.status, errorXml(r.code, r.message ?? r.code));
      else {
        log.status = r.status;
        res.writeHead(r.status, { 'Content-Length': 0 });
        res.end();
      }
      return true;
    }
    if (a.kind === 'list') {
      const ures = await forward(req, log);
      const body = await readBody(ures);
      const out = Buffer.from(ures.statusCode === 200 ? archive.rewriteList(a.bucket, body.toString('utf8'), a.urlEncoded) : body.toString('utf8'));
      const headers: Record<string, string> = {};
      for (let i = 0; i < ures.rawHeaders.length; i += 2) {
        const n = ures.rawHeaders[i]!.toLowerCase();
        if (!HOP_BY_HOP.has(n) && n !== 'content-length' && n !== 'transfer-encoding') headers[ures.rawHeaders[i]!] = ures.rawHeaders[i + 1]!;
      }
      log.status = ures.statusCode;
      log.bodyBytes += out.length;
      res.writeHead(ures.statusCode ?? 502, { ...headers, 'Content-Length': out.length });
      res.end(out);
      return true;
    }
    if (a.kind === 'get') {
      const refuse = archive.refuseGet(a.bucket, a.key);
      if (refuse) {
        await drain(req);
        sendError(res, log, refuse.status, errorXml(refuse.code, refuse.message, refuse.extra));
        return true;
      }
    }
    const extra = archive.objectHeaders(a.bucket, a.key);
    if (!extra) return false;
    const ures = await forward(req, log);
    relayAll(res, ures, log, 0, undefined, ures.statusCode !== undefined && ures.statusCode < 300 ? extra : undefined);
    return true;
  };

  const pick = (r: ProxiedRequest): Fault | undefined => {
    for (const a of rules) {
      if (a.hits >= (a.rule.times ?? 1) || !matches(a.rule.match, r)) continue;
      a.seen++;
      if (a.seen <= (a.rule.skip ?? 0)) return undefined;
      a.hits++;
      return a.rule.fault;
    }
    return undefined;
  };

  // Lets the client read what was already written before the RST arrives: a reset can discard
  // bytes still queued for the peer.
  const resetSoon = (socket: net.Socket): void => {
    setTimeout(() => socket.resetAndDestroy(), 30);
  };

  const drain = (req: http.IncomingMessage): Promise<void> =>
    new Promise((resolve) => {
      req.on('end', resolve).on('error', () => resolve()).resume();
    });

  const sendError = (res: http.ServerResponse, log: ProxiedRequest, status: number, body: string, headers: Record<string, string> = {}): void => {
    log.status = status;
    res.writeHead(status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

  const forward = (req: http.IncomingMessage, log: ProxiedRequest): Promise<http.IncomingMessage> =>
    new Promise((resolve, reject) => {
      const headers: string[] = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(req.rawHeaders[i]!.toLowerCase())) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      }
      const ureq = http.request({ host: up.hostname, port: upPort, method: req.method, path: req.url, headers, agent }, resolve);
      ureq.on('error', reject);
      log.forwarded = true;
      req.pipe(ureq);
    });

  const relayHead = (res: http.ServerResponse, ures: http.IncomingMessage, log: ProxiedRequest, dateOffsetMs = 0, extra?: Record<string, string>): void => {
    const headers: string[] = [];
    for (let i = 0; i < ures.rawHeaders.length; i += 2) {
      const name = ures.rawHeaders[i]!;
      let value = ures.rawHeaders[i + 1]!;
      if (HOP_BY_HOP.has(name.toLowerCase()) || (extra && name.toLowerCase() in extra)) continue;
      if (dateOffsetMs && name.toLowerCase() === 'date') value = new Date(Date.parse(value) + dateOffsetMs).toUTCString();
      headers.push(name, value);
    }
    for (const [name, value] of Object.entries(extra ?? {})) headers.push(name, value);
    log.status = ures.statusCode;
    res.writeHead(ures.statusCode ?? 502, ures.statusMessage, headers);
  };

  /** Relays the whole answer, counting its body; `corruptAt`: that body byte goes out inverted. */
  const relayAll = (res: http.ServerResponse, ures: http.IncomingMessage, log: ProxiedRequest, dateOffsetMs = 0, corruptAt?: number, extra?: Record<string, string>): void => {
    relayHead(res, ures, log, dateOffsetMs, extra);
    ures.on('data', (chunk: Buffer) => {
      const start = log.bodyBytes;
      log.bodyBytes += chunk.length;
      if (corruptAt !== undefined && corruptAt >= start && corruptAt < log.bodyBytes) {
        chunk = Buffer.from(chunk);
        chunk[corruptAt - start] = chunk[corruptAt - start]! ^ 0xff;
      }
      if (!res.write(chunk)) {
        ures.pause();
        res.once('drain', () => ures.resume());
      }
    });
    ures.on('end', () => res.end());
    ures.on('error', () => res.destroy());
  };

  /** Relays the head and up to `limit` body bytes, then calls `then` (with the rest unread). */
  const relayPartial = (res: http.ServerResponse, ures: http.IncomingMessage, log: ProxiedRequest, limit: number, then: () => void): void => {
    relayHead(res, ures, log);
    res.flushHeaders();
    let sent = 0;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      ures.destroy();
      then();
    };
    if (limit === 0) {
      res.write('', finish);
      return;
    }
    ures.on('data', (chunk: Buffer) => {
      if (done) return;
      const room = limit - sent;
      const slice = chunk.length > room ? chunk.subarray(0, room) : chunk;
      sent += slice.length;
      log.bodyBytes += slice.length;
      if (sent >= limit) res.write(slice, finish);
      else res.write(slice);
    });
    // a body shorter than the limit: stop where it ends, without completing the response
    ures.on('end', () => res.write('', finish));
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined) headers[k] = SECRET_HEADERS.has(k) ? '<redacted>' : Array.isArray(v) ? v.join(', ') : v;
    }
    const log: ProxiedRequest = { method: req.method ?? 'GET', target: req.url ?? '/', headers, forwarded: false, bodyBytes: 0 };
    requests.push(log);
    const socket = req.socket;

    if (deadMode) {
      if (deadMode === 'blackhole') return; // the socket stays open until the proxy closes
      socket.resetAndDestroy();
      return;
    }

    const fault = pick(log);
    if (fault) log.fault = fault.kind;
    try {
      if (!fault) {
        if (await archiveExchange(req, res, log)) return;
        relayAll(res, await forward(req, log), log);
        return;
      }
      switch (fault.kind) {
        case 'reset': {
          if (fault.afterBytes !== undefined) {
            relayPartial(res, await forward(req, log), log, fault.afterBytes, () => resetSoon(socket));
          } else if (fault.forward) {
            const ures = await forward(req, log);
            await drain(ures);
            socket.resetAndDestroy();
          } else {
            socket.resetAndDestroy();
          }
          return;
        }
        case 'status':
        case 'error200': {
          if (fault.forward) await drain(await forward(req, log));
          else await drain(req);
          const status = fault.kind === 'status' ? fault.status : 200;
          const code = fault.code ?? (fault.kind === 'status' ? (DEFAULT_CODES[status] ?? 'ServiceUnavailable') : 'InternalError');
          const message = fault.message ?? 'injected by the test fault proxy';
          sendError(res, log, status, errorXml(code, message), fault.kind === 'status' ? fault.headers : {});
          return;
        }
        case 'truncate':
          relayPartial(res, await forward(req, log), log, fault.bytes, () => socket.end());
          return;
        case 'skewDate':
          relayAll(res, await forward(req, log), log, fault.offsetMs);
          return;
        case 'corrupt':
          relayAll(res, await forward(req, log), log, 0, fault.at ?? 0);
          return;
        case 'tooSkewed': {
          await drain(req);
          const server = new Date(Date.now() + fault.offsetMs);
          const amz = headers['x-amz-date'] ?? '';
          const requestTime = /^\d{8}T\d{6}Z$/.test(amz)
            ? `${amz.slice(0, 4)}-${amz.slice(4, 6)}-${amz.slice(6, 8)}T${amz.slice(9, 11)}:${amz.slice(11, 13)}:${amz.slice(13, 15)}Z`
            : (headers.date ?? '');
          const extra = `<RequestTime>${requestTime}</RequestTime><ServerTime>${server.toISOString()}</ServerTime><MaxAllowedSkewMilliseconds>900000</MaxAllowedSkewMilliseconds>`;
          sendError(res, log, 403, errorXml('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', extra), {
            Date: server.toUTCString(),
          });
          return;
        }
        case 'hang':
          if (fault.afterBytes !== undefined) relayPartial(res, await forward(req, log), log, fault.afterBytes, () => undefined);
          else await drain(req); // and never answer; close() ends it
          return;
        case 'delay':
          if (fault.ms !== undefined) await new Promise((r) => setTimeout(r, fault.ms));
          if (fault.until !== undefined) await fault.until.catch(() => undefined);
          if (closed) return;
          relayAll(res, await forward(req, log), log);
          return;
        case 'respond': {
          await drain(req);
          log.status = fault.status ?? 200;
          const b = fault.body;
          if (typeof b !== 'function') {
            const bytes = typeof b === 'string' ? Buffer.from(b) : b;
            res.writeHead(log.status, { 'Content-Type': 'application/xml', 'Content-Length': bytes.byteLength, ...fault.headers });
            res.end(bytes);
            return;
          }
          res.writeHead(log.status, { 'Content-Type': 'application/xml', ...fault.headers });
          let gone = false;
          res.once('close', () => (gone = true));
          for await (const chunk of b()) {
            if (gone || closed) break;
            if (!res.write(chunk)) {
              // one pair of listeners per wait, both removed after it: a long body waits thousands of times
              await new Promise<void>((r) => {
                const done = () => (res.off('drain', done), res.off('close', done), r());
                res.once('drain', done).once('close', done);
              });
            }
          }
          if (!gone) res.end();
          return;
        }
      }
    } catch (e) {
      // The upstream connection failed: tell the client as a gateway would, without hiding why.
      if (!res.headersSent && !socket.destroyed) {
        sendError(res, log, 502, errorXml('BadGateway', `fault proxy could not reach ${upstream}: ${(e as Error).message}`));
      } else socket.destroy();
    }
  };

  const httpServer = http.createServer({ requestTimeout: 0, headersTimeout: 0, keepAliveTimeout: 65_000 }, (req, res) => {
    void handle(req, res);
  });
  httpServer.on('clientError', (_err, socket) => socket.destroy());

  const netServer = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    if (deadMode === 'blackhole') return;
    if (deadMode) {
      socket.resetAndDestroy();
      return;
    }
    httpServer.emit('connection', socket);
  });
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      netServer.once('error', reject);
      netServer.listen(port, '127.0.0.1', () => {
        netServer.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (netServer.address() as net.AddressInfo).port;
  const dropAll = (): void => {
    for (const s of sockets) s.resetAndDestroy();
  };

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    plan(newRules) {
      newRules.forEach(validateRule);
      rules = newRules.map((rule) => ({ rule, seen: 0, hits: 0 }));
    },
    hits: () => rules.map((a) => a.hits),
    async dead(mode) {
      if (mode !== false && mode !== 'blackhole' && mode !== 'refuse' && mode !== 'reset') {
        throw new Error(`fault proxy dead(): ${JSON.stringify(mode)} is not one of 'blackhole', 'refuse', 'reset', false`);
      }
      const wasRefusing = deadMode === 'refuse';
      deadMode = mode;
      if (mode) dropAll(); // a server that died takes its open connections with it
      if (mode === 'refuse' && !wasRefusing) await new Promise<void>((r) => netServer.close(() => r()));
      if (mode !== 'refuse' && wasRefusing) await listen(port);
    },
    clearLog() {
      requests.length = 0;
    },
    archive,
    async close() {
      closed = true;
      dropAll();
      agent.destroy();
      if (netServer.listening) await new Promise<void>((r) => netServer.close(() => r()));
    },
  };
}
