/**
 * The HTTP connection pool. One undici Agent per client: keep-alive so that small requests do not
 * pay a handshake each, a connect timeout, and TLS options — a custom CA, skip-verify, or pinning
 * the leaf certificate's SHA-256 fingerprint (the usual way to trust a self-signed gateway, as
 * PVE does for PBS).
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Dispatcher } from 'undici';
import buildConnector from 'undici/lib/core/connect.js';
import { ConfigError } from '../util/errors.js';

export interface DispatcherSettings {
  connectTimeoutMs: number;
  tls?: { caFile?: string; insecure?: boolean; fingerprint?: string };
  /** connections per origin; undefined = as many as requests in flight */
  connections?: number;
}

/** "AB:CD:…" or "abcd…" → lower-case hex without separators. */
export function normalizeFingerprint(fp: string): string {
  const hex = fp.replace(/^sha256[:=]?/i, '').replace(/[:\s]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new ConfigError('fingerprint', fp, 'must be the SHA-256 of the certificate: 64 hex digits, optionally separated by colons');
  }
  return hex;
}

export class FingerprintMismatchError extends Error {
  readonly code = 'CERT_FINGERPRINT_MISMATCH';
  constructor(readonly got: string) {
    super(`server certificate fingerprint ${got} does not match the configured fingerprint`);
  }
}

/**
 * `connect`: a connector made earlier from the same settings (createConnector). undici's Agent is
 * loaded here, on the first request that needs the pool: a restore or a status sends only lean
 * requests (lean-http.ts) and never loads it. `#undici-agent` (package.json "imports":
 * scripts/undici-agent-side.cjs) is the Agent with the request API alone, not undici's index
 * with its fetch, WebSocket, cache and mock modules (~0.12 CPU-s less per upload from a checkout;
 * the installed bundle loads the same module).
 */
export async function createDispatcher(s: DispatcherSettings, connect?: buildConnector.connector): Promise<Dispatcher> {
  const { default: Agent } = await import('#undici-agent');
  return new Agent({
    connect: connect ?? createConnector(s),
    connections: s.connections ?? null,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    pipelining: 1,
  });
}

/**
 * How every connection of a client is opened, undici's and the lean GET path's (lean-http.ts)
 * alike: connect timeout, CA, skip-verify, fingerprint pinning. `onread` (node's net option: the
 * socket reads into one reused buffer) is for the lean path only.
 */
export function createConnector(s: DispatcherSettings, onread?: { buffer: Uint8Array; callback: (this: Socket, n: number, buf: Uint8Array) => boolean | void }): buildConnector.connector {
  const tls = s.tls ?? {};
  let ca: Buffer | undefined;
  if (tls.caFile) {
    try {
      ca = readFileSync(tls.caFile);
    } catch (e) {
      throw new ConfigError('ca_file', tls.caFile, `must be a readable PEM file (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
  }
  const pin = tls.fingerprint ? normalizeFingerprint(tls.fingerprint) : undefined;
  const base = buildConnector({
    timeout: s.connectTimeoutMs,
    ca,
    // a pinned certificate is trusted by its fingerprint alone, whoever signed it
    rejectUnauthorized: !(tls.insecure || pin),
    // pinning must see the certificate on every connection, so no resumed sessions
    maxCachedSessions: pin ? 0 : undefined,
    // passed on to net.connect / tls.connect (undici's types do not list it)
    ...(onread ? ({ onread } as object) : {}),
  });
  return pin
    ? (opts, cb) =>
        base(opts, (err, socket) => {
          if (err || !socket) return cb(err ?? new Error('no socket'), null);
          if (opts.protocol !== 'https:') return cb(null, socket);
          const cert = (socket as TLSSocket).getPeerCertificate();
          const got = (cert?.fingerprint256 ?? '').replace(/:/g, '').toLowerCase();
          if (got !== pin) {
            socket.destroy();
            return cb(new FingerprintMismatchError(got || 'none'), null);
          }
          cb(null, socket);
        })
    : base;
}
