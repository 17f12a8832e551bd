/**
 * https: a TLS terminator (self-signed certificate made with openssl for this run) in front of the
 * real RadosGW, so the S3 traffic is real and only the TLS options are under test.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { S3Error } from '../../host/src/s3/errors.js';
import { closeTestClients, dropBucket, freshBucket, readAll, testClient, testS3 } from '../helpers/s3.js';

let dir: string;
let server: tls.Server;
let endpoint: string;
let certFile: string;
let fingerprint: string;
let direct: S3Client;

function selfSigned(name: string): { key: string; cert: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], {
    stdio: 'ignore',
  });
  return { key, cert };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pve-s3-tls-'));
  const { key, cert } = selfSigned('server');
  certFile = cert;
  fingerprint = new X509Certificate(readFileSync(cert)).fingerprint256; // "AB:CD:..."
  const up = new URL(testS3().endpoint);
  server = tls.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (client) => {
    const upstream = net.connect(Number(up.port), up.hostname);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  direct = await freshBucket('tls');
});

afterAll(async () => {
  if (direct) await dropBucket(direct);
  await closeTestClients();
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function roundTrip(c: S3Client): Promise<void> {
  const data = randomBytes(300_000);
  await c.putObject('tls.bin', data);
  expect((await readAll((await c.getObject('tls.bin')).body)).equals(data)).toBe(true);
  // the lean GET path (downloads) opens its connections with the same TLS options
  const pieces: Buffer[] = [];
  await c.getObjectInto('tls.bin', { range: [1000, 299_999] }, (chunk) => pieces.push(Buffer.from(chunk)));
  expect(Buffer.concat(pieces).equals(data.subarray(1000))).toBe(true);
}

describe('TLS options', () => {
  it('a self-signed certificate is refused by default, with what to check', async () => {
    const c = testClient({ endpoint, bucket: direct.bucket, maxRetries: 0 });
    const e = (await c.headBucket().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('TlsError');
    expect(e.retryable).toBe(false);
    expect(e.message).toMatch(new RegExp(`^TLS handshake with ${endpoint} failed: .*SELF_SIGNED.* \\(check ca file, fingerprint or the server certificate\\)$`));
  });

  it('with the certificate as CA file: works', async () => {
    await roundTrip(testClient({ endpoint, bucket: direct.bucket, tls: { caFile: certFile } }));
  });

  it('insecure (skip verification): works', async () => {
    await roundTrip(testClient({ endpoint, bucket: direct.bucket, tls: { insecure: true } }));
  });

  it('pinned fingerprint (as openssl/PVE print it): works without any CA', async () => {
    await roundTrip(testClient({ endpoint, bucket: direct.bucket, tls: { fingerprint } }));
  });

  it('SSE-C over https', async () => {
    const c = testClient({ endpoint, bucket: direct.bucket, tls: { fingerprint } });
    const sse = { type: 'SSE-C' as const, key: randomBytes(32) };
    await c.putObject('tls-ssec.bin', new Uint8Array([1, 2, 3]), { sse });
    expect([...(await readAll((await c.getObject('tls-ssec.bin', { sse })).body))]).toEqual([1, 2, 3]);
  });

  it('a wrong fingerprint is refused even when the CA would trust the certificate', async () => {
    const wrong = 'AB:'.repeat(31) + 'AB';
    const c = testClient({ endpoint, bucket: direct.bucket, maxRetries: 0, tls: { fingerprint: wrong, caFile: certFile } });
    const e = (await c.headBucket().catch((x: unknown) => x)) as S3Error;
    expect(e).toBeInstanceOf(S3Error);
    expect(e.code).toBe('TlsError');
    expect(e.message).toBe(`TLS certificate of ${endpoint} does not match the configured fingerprint: check fingerprint (or the server's certificate changed)`);
    const lean = (await c.getObjectInto('tls.bin', {}, () => undefined).catch((x: unknown) => x)) as S3Error;
    expect(lean).toMatchObject({ code: 'TlsError', message: e.message });
  });

  it('an unreadable CA file is a configuration error naming ca_file', () => {
    expect(() => testClient({ endpoint, bucket: direct.bucket, tls: { caFile: join(dir, 'missing.pem') } })).toThrow(
      /^invalid ca_file '.*missing\.pem': must be a readable PEM file \(ENOENT\)$/,
    );
  });

  it('a server that accepts but never completes the handshake: ConnectTimeout after connectTimeoutMs, named', async () => {
    const held: net.Socket[] = [];
    const mute = net.createServer((sock) => void held.push(sock));
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(mute.address() as net.AddressInfo).port}`;
    try {
      const c = testClient({ endpoint: url, bucket: direct.bucket, connectTimeoutMs: 500, maxRetries: 1 }, { retry: { baseDelayMs: 1, maxDelayMs: 2 } });
      const e = (await c.headBucket().catch((x: unknown) => x)) as S3Error;
      expect(e).toBeInstanceOf(S3Error);
      expect([e.code, e.retryable]).toEqual(['ConnectTimeout', true]);
      expect(e.message).toBe(`cannot reach ${url}: no connection within 500 ms (check endpoint and network)`);
      expect(held.length).toBe(2); // the first attempt and one retry
    } finally {
      for (const s of held) s.destroy();
      mute.close();
    }
  });
});
