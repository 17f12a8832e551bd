/**
 * Where requests go: the endpoint URL, and whether the bucket is named in the host
 * (virtual-hosted) or in the path. Auto picks path-style unless the provider's row says
 * virtual-hosted (AWS only, host/src/s3/providers.ts), because IPs, custom ports and most
 * self-hosted gateways (RadosGW, MinIO, Garage) have no wildcard DNS or certificate for bucket.host.
 */
import { isIP } from 'node:net';
import { ConfigError } from '../util/errors.js';

export interface Endpoint {
  protocol: 'http:' | 'https:';
  /** as in URLs: IPv6 in brackets */
  hostname: string;
  /** explicit port, or undefined for the scheme's default */
  port?: number;
  /** "https://host[:port]" — what messages name */
  origin: string;
}

/**
 * An endpoint as a message may show it: whatever stands before its last '@' (user information,
 * `http://user:password@host`, a password holding '/' or '@' too) replaced. An endpoint with
 * credentials is refused, and the refusal goes to the task log, the syslog and our log file,
 * which more people read than the storage's secret.
 */
export function endpointShown(raw: string): string {
  const at = raw.lastIndexOf('@');
  if (at < 0) return raw;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(raw)?.[0] ?? '';
  return `${scheme}${REDACTED_USERINFO}${raw.slice(at)}`;
}

const REDACTED_USERINFO = '[user information hidden]';

export function parseEndpoint(endpoint: string): Endpoint {
  const shown = endpointShown(endpoint);
  if (shown !== endpoint) throw new ConfigError('endpoint', shown, 'must not contain credentials');
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw new ConfigError('endpoint', endpoint, 'must be http(s)://host[:port]');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError('endpoint', endpoint, 'scheme must be http or https');
  if (u.username || u.password) throw new ConfigError('endpoint', `${u.protocol}//${u.host}`, 'must not contain credentials');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) throw new ConfigError('endpoint', endpoint, 'must be http(s)://host[:port] without a path');
  return {
    protocol: u.protocol,
    hostname: u.hostname,
    port: u.port ? Number(u.port) : undefined,
    origin: `${u.protocol}//${u.host}`,
  };
}

/** A bucket name usable as a DNS label set (and so in bucket.host). */
export function isDnsCompatibleBucket(bucket: string): boolean {
  return (
    /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) &&
    !bucket.includes('..') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(bucket) &&
    !bucket.includes('.-') &&
    !bucket.includes('-.')
  );
}

/** virtualHosted: the provider's row says its endpoints take bucket.host (providers.ts) */
export function usePathStyle(ep: Endpoint, bucket: string, force: boolean | undefined, virtualHosted: boolean): boolean {
  if (force !== undefined) return force;
  const host = ep.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) !== 0) return true;
  if (ep.port !== undefined) return true;
  if (!virtualHosted) return true;
  if (!isDnsCompatibleBucket(bucket)) return true;
  // *.s3.amazonaws.com certificates do not cover dotted bucket names
  if (ep.protocol === 'https:' && bucket.includes('.')) return true;
  return false;
}

export interface Target {
  /** scheme://host[:port] the connection goes to */
  origin: string;
  /** the Host header: host[:port] (default port omitted, as undici would send it) */
  host: string;
  /** decoded path, e.g. "/bucket/my key"; the signer encodes it once */
  path: string;
}

export function target(ep: Endpoint, bucket: string, key: string | undefined, pathStyle: boolean): Target {
  const hostPort = ep.port !== undefined ? `${ep.hostname}:${ep.port}` : ep.hostname;
  if (pathStyle) {
    return { origin: ep.origin, host: hostPort, path: `/${bucket}` + (key !== undefined ? `/${key}` : '') };
  }
  const vhost = `${bucket}.${hostPort}`;
  return { origin: `${ep.protocol}//${vhost}`, host: vhost, path: '/' + (key ?? '') };
}
