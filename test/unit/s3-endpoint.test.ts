import { describe, expect, it } from 'vitest';
import { isDnsCompatibleBucket, parseEndpoint, target, usePathStyle as pathStyleFor } from '../../host/src/s3/endpoint.js';
import { detectProvider, PROVIDERS } from '../../host/src/s3/providers.js';
import { normalizeFingerprint } from '../../host/src/s3/dispatcher.js';

describe('parseEndpoint', () => {
  it('keeps scheme, host and explicit port', () => {
    expect(parseEndpoint('http://127.0.0.1:7480')).toEqual({ protocol: 'http:', hostname: '127.0.0.1', port: 7480, origin: 'http://127.0.0.1:7480' });
    expect(parseEndpoint('https://s3.eu-central-1.amazonaws.com/')).toEqual({
      protocol: 'https:',
      hostname: 's3.eu-central-1.amazonaws.com',
      port: undefined,
      origin: 'https://s3.eu-central-1.amazonaws.com',
    });
    // the default port disappears, as it would from a Host header
    expect(parseEndpoint('https://minio.lan:443').port).toBeUndefined();
    expect(parseEndpoint('http://[::1]:9000').hostname).toBe('[::1]');
  });

  it.each([
    ['s3.example.com', /must be http\(s\):\/\/host\[:port\]/],
    ['ftp://x', /scheme must be http or https/],
    ['https://user:pw@host', /must not contain credentials/],
    ['https://host/path', /without a path/],
  ])('refuses %j', (e, msg) => {
    expect(() => parseEndpoint(e)).toThrow(msg);
  });

  it('never echoes credentials embedded in an endpoint', () => {
    expect(() => parseEndpoint('https://AKIA:topsecret@host')).toThrow(/^(?!.*topsecret)/);
  });
});

describe('addressing style', () => {
  const ep = (s: string) => parseEndpoint(s);
  // as the transport calls it: the provider detected from the host says whether bucket.host works
  const usePathStyle = (e: ReturnType<typeof ep>, bucket: string, force?: boolean) =>
    pathStyleFor(e, bucket, force, PROVIDERS[detectProvider(e.hostname)].virtualHosted);
  it('auto: path-style for IPs, ports and non-AWS hosts', () => {
    expect(usePathStyle(ep('http://127.0.0.1'), 'b')).toBe(true);
    expect(usePathStyle(ep('http://[::1]'), 'b')).toBe(true);
    expect(usePathStyle(ep('https://s3.amazonaws.com:8443'), 'bucket')).toBe(true);
    expect(usePathStyle(ep('https://rgw.example.com'), 'bucket')).toBe(true);
    expect(usePathStyle(ep('https://s3.eu-central-1.wasabisys.com'), 'bucket')).toBe(true);
    expect(usePathStyle(ep('https://acc.r2.cloudflarestorage.com'), 'bucket')).toBe(true);
  });
  it('a provider set in the configuration decides, not the host name', () => {
    expect(pathStyleFor(ep('https://s3.eu-west-1.amazonaws.com'), 'my-bucket', undefined, PROVIDERS.other.virtualHosted)).toBe(true);
    expect(pathStyleFor(ep('https://s3.example.com'), 'my-bucket', undefined, PROVIDERS.aws.virtualHosted)).toBe(false);
  });
  it('auto: virtual-hosted on AWS for DNS-compatible names, path-style otherwise', () => {
    expect(usePathStyle(ep('https://s3.eu-west-1.amazonaws.com'), 'my-bucket')).toBe(false);
    expect(usePathStyle(ep('https://s3.cn-north-1.amazonaws.com.cn'), 'my-bucket')).toBe(false);
    expect(usePathStyle(ep('https://s3.amazonaws.com'), 'My_Bucket')).toBe(true);
    expect(usePathStyle(ep('https://s3.amazonaws.com'), 'dotted.bucket')).toBe(true);
    expect(usePathStyle(ep('http://s3.amazonaws.com'), 'dotted.bucket')).toBe(false);
  });
  it('an explicit choice wins', () => {
    expect(usePathStyle(ep('http://127.0.0.1'), 'b', false)).toBe(false);
    expect(usePathStyle(ep('https://s3.amazonaws.com'), 'bucket', true)).toBe(true);
  });
  it('targets', () => {
    expect(target(ep('http://127.0.0.1:7480'), 'b', 'a b/c', true)).toEqual({ origin: 'http://127.0.0.1:7480', host: '127.0.0.1:7480', path: '/b/a b/c' });
    expect(target(ep('https://s3.amazonaws.com'), 'b', 'k', false)).toEqual({ origin: 'https://b.s3.amazonaws.com', host: 'b.s3.amazonaws.com', path: '/k' });
    expect(target(ep('https://s3.amazonaws.com'), 'b', undefined, false).path).toBe('/');
    expect(target(ep('http://h:1'), 'b', undefined, true).path).toBe('/b');
  });
  it('DNS-compatible bucket names', () => {
    expect(isDnsCompatibleBucket('abc')).toBe(true);
    expect(isDnsCompatibleBucket('a.b-c')).toBe(true);
    for (const bad of ['ab', 'ABC', 'a..b', '-ab', '192.168.1.1', 'a_b', 'a.-b']) expect(isDnsCompatibleBucket(bad), bad).toBe(false);
  });
});

describe('certificate fingerprints', () => {
  it('accepts colon-separated and plain forms', () => {
    const hex = 'ab'.repeat(32);
    expect(normalizeFingerprint(hex.toUpperCase().match(/../g)!.join(':'))).toBe(hex);
    expect(normalizeFingerprint('sha256:' + hex)).toBe(hex);
  });
  it('refuses anything else, naming the key', () => {
    expect(() => normalizeFingerprint('abcd')).toThrow(/invalid fingerprint 'abcd': must be the SHA-256/);
  });
});
