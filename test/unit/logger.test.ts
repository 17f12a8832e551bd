import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  clearRegisteredSecrets,
  createLogger,
  parseLogLevel,
  redact,
  redactFields,
  registerSecret,
} from '../../host/src/util/logger.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'pve-s3-log-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
afterEach(() => clearRegisteredSecrets());

const sink = () => {
  const lines: string[] = [];
  return { lines, write: (s: string) => lines.push(s) };
};
const fixed = () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6));

// A real SigV4 Authorization header (AWS documentation example values)
const AUTH =
  'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024';

describe('redact', () => {
  it('removes the SigV4 signature but keeps the key id and scope', () => {
    const out = redact(`authorization: ${AUTH}`);
    expect(out).not.toContain('fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024');
    expect(out).toContain('Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request');
    expect(out).toContain('SignedHeaders=host;range;x-amz-content-sha256;x-amz-date');
    expect(out).toContain('Signature=[redacted]');
  });

  it('removes X-Amz-Signature and X-Amz-Security-Token from presigned URLs, keeps X-Amz-Credential', () => {
    const url =
      'https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    const out = redact(url);
    expect(out).not.toContain('aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404');
    expect(out).not.toContain('FQoGZXIvYXdzEXAMPLETOKEN');
    expect(out).toContain('X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524');
    expect(out).toContain('X-Amz-Signature=[redacted]');
  });

  it('removes SSE-C keys, secret fields in every common spelling, and legacy SigV2 signatures', () => {
    const cases = [
      'x-amz-server-side-encryption-customer-key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      '{"x-amz-server-side-encryption-customer-key":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}',
      'x-amz-copy-source-server-side-encryption-customer-key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      'secret_key=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      "{ secretAccessKey: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=' }",
      'aws_secret_access_key = MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      '\tsecret_key MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      'Authorization: AWS AKIAIOSFODNN7EXAMPLE:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
    ];
    for (const c of cases) {
      const out = redact(c);
      expect(out, c).not.toContain('MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY');
      expect(out, c).toContain('[redacted]');
    }
  });

  it('redacts an SSE-C key inside a canonical request, keeps its MD5 header', () => {
    const canonical = [
      'PUT',
      '/bucket/key',
      '',
      'host:127.0.0.1:7480',
      'x-amz-server-side-encryption-customer-algorithm:AES256',
      'x-amz-server-side-encryption-customer-key:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
      'x-amz-server-side-encryption-customer-key-md5:zZ5FnqcIqUjVwvWmyog4zw==',
    ].join('\n');
    const out = redact(canonical);
    expect(out).not.toContain('MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY');
    expect(out).toContain('x-amz-server-side-encryption-customer-key:[redacted]');
    expect(out).toContain('x-amz-server-side-encryption-customer-key-md5:zZ5FnqcIqUjVwvWmyog4zw==');
    expect(out).toContain('host:127.0.0.1:7480');
  });

  it('leaves ordinary text alone', () => {
    const msg = "access key or secret rejected by https://s3.example.com (SignatureDoesNotMatch): check access_key/secret_key";
    expect(redact(msg)).toBe(msg);
    expect(redact("missing secret_key for storage 'x'")).toBe("missing secret_key for storage 'x'");
  });

  it('removes every registered secret wherever it appears, raw or URI-encoded', () => {
    registerSecret('wJalrXUtnFEMI/K7MDENG+bPxRfiCY');
    const out = redact('body=wJalrXUtnFEMI/K7MDENG+bPxRfiCY and q=wJalrXUtnFEMI%2FK7MDENG%2BbPxRfiCY');
    expect(out).toBe('body=[redacted] and q=[redacted]');
    registerSecret('');
    registerSecret(undefined);
    expect(redact('nothing')).toBe('nothing');
  });

  it('redactFields replaces secret-named fields, keeps a SigV4 Authorization readable', () => {
    registerSecret('inline-registered-secret');
    const out = redactFields({
      method: 'PUT',
      headers: {
        authorization: AUTH,
        'x-amz-server-side-encryption-customer-key': 'abc',
        'x-amz-security-token': 'tok',
        host: 'h',
      },
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'plain-secret' },
      secret_key: 'another',
      note: 'contains inline-registered-secret here',
      body: new Uint8Array(10),
      when: new Date(0),
    }) as Record<string, any>;
    expect(out.headers.authorization).toContain('Credential=AKIAIOSFODNN7EXAMPLE/');
    expect(out.headers.authorization).toContain('Signature=[redacted]');
    expect(out.headers['x-amz-server-side-encryption-customer-key']).toBe('[redacted]');
    expect(out.headers['x-amz-security-token']).toBe('[redacted]');
    expect(out.headers.host).toBe('h');
    expect(out.credentials).toEqual({ accessKeyId: 'AKID', secretAccessKey: '[redacted]' });
    expect(out.secret_key).toBe('[redacted]');
    expect(out.note).toBe('contains [redacted] here');
    expect(out.body).toBe('<10 bytes>');
    expect(out.when).toBe('1970-01-01T00:00:00.000Z');
  });
});

describe('Logger', () => {
  it('writes INFO and above to the file by default, one redacted line each', () => {
    const file = join(tmp(), 'storage-s3.log');
    const err = sink();
    const log = createLogger({ env: { PVE_S3_LOG_FILE: file }, stderr: err, clock: fixed, component: 'backup' });
    expect(log.debugEnabled).toBe(false);
    log.debug('not written');
    log.info('upload done', { key: 'dump/a b.vma', size: 5, ok: true });
    log.warn('multi\nline');
    log.error('request failed', { headers: { authorization: AUTH } });
    log.close();
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toBe(`2026-01-02T03:04:05.006Z INFO [${process.pid}] backup: upload done key="dump/a b.vma" size=5 ok=true`);
    expect(lines[1]).toContain('WARN');
    expect(lines[1]).toContain('multi | line');
    expect(lines[2]).toContain('Signature=[redacted]');
    expect(lines[2]).not.toContain('fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024');
    expect(err.lines).toEqual([]); // not in debug mode: nothing on stderr
  });

  it('PVE_S3_LOG_LEVEL sets the file level; PVE_S3_DEBUG=1 means DEBUG and an echo on stderr', () => {
    const file = join(tmp(), 'l.log');
    const err = sink();
    const warnOnly = createLogger({ env: { PVE_S3_LOG_FILE: file, PVE_S3_LOG_LEVEL: 'warning' }, stderr: err });
    warnOnly.info('dropped');
    warnOnly.warn('kept');
    warnOnly.close();
    expect(readFileSync(file, 'utf8')).not.toContain('dropped');
    expect(readFileSync(file, 'utf8')).toContain('kept');

    const dbg = createLogger({ env: { PVE_S3_LOG_FILE: file, PVE_S3_DEBUG: '1' }, stderr: err });
    expect(dbg.debugEnabled).toBe(true);
    dbg.debug('trace', { 'x-amz-signature': 'abc' });
    dbg.close();
    expect(err.lines).toHaveLength(1);
    expect(err.lines[0]).toContain('DEBUG');
    expect(err.lines[0]).toContain('x-amz-signature=[redacted]');
    expect(readFileSync(file, 'utf8')).toContain('trace');

    const lvl = createLogger({ env: { PVE_S3_LOG_FILE: file, PVE_S3_LOG_LEVEL: 'DEBUG' }, stderr: err });
    expect(lvl.debugEnabled).toBe(true);
    lvl.debug('file only');
    lvl.close();
    expect(err.lines).toHaveLength(1);
  });

  it('never throws when the log directory is missing or not writable; stderr only in debug', () => {
    const missing = join(tmp(), 'no', 'such', 'dir', 'storage-s3.log');
    const err = sink();
    const quiet = createLogger({ env: { PVE_S3_LOG_FILE: missing }, stderr: err });
    expect(() => quiet.error('lost but harmless')).not.toThrow();
    expect(err.lines).toEqual([]);
    expect(existsSync(missing)).toBe(false);

    const dbg = createLogger({ env: { PVE_S3_LOG_FILE: missing, PVE_S3_DEBUG: 'yes' }, stderr: err });
    dbg.info('to stderr instead');
    expect(err.lines).toHaveLength(1);
    expect(err.lines[0]).toContain('to stderr instead');

    // a directory where the file should be: open fails even as root
    const dirAsFile = join(tmp(), 'isdir');
    mkdirSync(dirAsFile);
    expect(() => createLogger({ env: { PVE_S3_LOG_FILE: dirAsFile } , stderr: null }).error('x')).not.toThrow();

    if (process.getuid?.() !== 0) {
      const ro = tmp();
      chmodSync(ro, 0o500);
      expect(() => createLogger({ env: { PVE_S3_LOG_FILE: join(ro, 'x.log') }, stderr: null }).error('x')).not.toThrow();
    }
  });

  it('children share the sink and tag their component', () => {
    const file = join(tmp(), 'c.log');
    const root = createLogger({ env: { PVE_S3_LOG_FILE: file }, stderr: null });
    root.child('s3').info('one');
    root.child('transfer').warn('two');
    root.close();
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/INFO \[\d+\] s3: one/);
    expect(text).toMatch(/WARN \[\d+\] transfer: two/);
  });

  it('registered secrets never reach the file, whatever the level or the field', () => {
    const file = join(tmp(), 's.log');
    registerSecret('S3cr3t/Value+xyz');
    const log = createLogger({ env: { PVE_S3_LOG_FILE: file, PVE_S3_DEBUG: '1' }, stderr: null });
    log.debug('S3cr3t/Value+xyz in a message');
    log.info('fields', { anything: 'S3cr3t/Value+xyz', nested: { deep: ['S3cr3t%2FValue%2Bxyz'] } });
    log.error(String(new Error('boom S3cr3t/Value+xyz')));
    log.close();
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n').filter(Boolean)).toHaveLength(3);
    expect(text).not.toContain('S3cr3t');
  });

  it('parses level names', () => {
    expect(parseLogLevel('debug')).toBe('DEBUG');
    expect(parseLogLevel('WARNING')).toBe('WARN');
    expect(parseLogLevel('err')).toBe('ERROR');
    expect(parseLogLevel('verbose')).toBeUndefined();
    expect(createLogger({ env: { PVE_S3_LOG_LEVEL: 'verbose' }, file: null }).level).toBe('INFO');
  });
});
