// The lean GET path's response parser: every framing S3 servers and proxies use, fed whole and
// split at every byte boundary (a socket may cut anywhere); anything that cannot be framed exactly
// is an error, never a short body taken for a whole one.
import { describe, expect, it } from 'vitest';
import { MAX_HEAD_BYTES, ProtocolError, ResponseParser, type ResponseHead } from '../../host/src/s3/http1-response.js';

interface Seen {
  heads: ResponseHead[];
  body: Buffer;
  ended: boolean;
  parser: ResponseParser;
}

/** Feeds `wire` in pieces of the given sizes (the rest in one), copying each piece into a scratch
 *  buffer that is overwritten afterwards, as the socket's reused read buffer is. */
function parse(wire: string | Buffer, pieces: number[] = []): Seen {
  const bytes = typeof wire === 'string' ? Buffer.from(wire, 'latin1') : wire;
  const seen: Seen = { heads: [], body: Buffer.alloc(0), ended: false, parser: null as unknown as ResponseParser };
  const parts: Buffer[] = [];
  seen.parser = new ResponseParser({
    head: (h) => seen.heads.push(h),
    body: (c) => parts.push(Buffer.from(c)),
    end: () => (seen.ended = true),
  });
  const scratch = Buffer.alloc(bytes.length + 16);
  let off = 0;
  for (const n of [...pieces, bytes.length]) {
    const take = Math.min(n, bytes.length - off);
    if (take <= 0) continue;
    bytes.copy(scratch, 3, off, off + take);
    seen.parser.feed(scratch, 3, 3 + take);
    scratch.fill(0xee);
    off += take;
  }
  seen.body = Buffer.concat(parts);
  return seen;
}

/** Every split of `wire` into two pieces gives the same result as feeding it whole. */
function everySplit(wire: string, check: (s: Seen) => void): void {
  for (let i = 0; i <= wire.length; i++) check(parse(wire, [i]));
  // and one byte at a time
  check(parse(wire, Array.from({ length: wire.length }, () => 1)));
}

const body = 'the body, with CRLF\r\n inside and more';

describe('HTTP/1.1 response framing', () => {
  it('Content-Length: exact body, keep-alive, split anywhere', () => {
    const wire = `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nETag: "x"\r\nX-Amz-Request-Id: r1\r\n\r\n${body}`;
    everySplit(wire, (s) => {
      expect(s.heads).toEqual([{ status: 206, headers: { 'content-length': String(body.length), etag: '"x"', 'x-amz-request-id': 'r1' }, keepAlive: true }]);
      expect(s.body.toString('latin1')).toBe(body);
      expect(s.ended).toBe(true);
      expect(s.parser.done).toBe(true);
    });
  });

  it('chunked, with extensions and trailers, split anywhere', () => {
    const wire = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n' + 'x'.repeat(26) + '\r\n0\r\nX-Trailer: t\r\n\r\n';
    everySplit(wire, (s) => {
      expect(s.heads[0]).toMatchObject({ status: 200, keepAlive: true });
      expect(s.body.toString()).toBe('hello' + 'x'.repeat(26));
      expect(s.ended).toBe(true);
    });
  });

  it('no length: the body runs to the end of the connection, which is not kept', () => {
    const s = parse('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nabc');
    expect(s.heads[0]!.keepAlive).toBe(false);
    expect(s.ended).toBe(false);
    s.parser.eof();
    expect(s.ended).toBe(true);
    expect(s.body.toString()).toBe('abc');
  });

  it('a body cut short, or a head cut short, is an error at the end of the connection', () => {
    const short = parse('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    expect(() => short.parser.eof()).toThrow(/in the middle of the response body/);
    const chunked = parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel');
    expect(() => chunked.parser.eof()).toThrow(ProtocolError);
    const head = parse('HTTP/1.1 200 OK\r\nContent-Le');
    expect(() => head.parser.eof()).toThrow(/before a complete response head/);
    expect(head.parser.started).toBe(true);
  });

  it('an error answer is framed the same way (its body is the XML)', () => {
    const xml = '<Error><Code>NoSuchKey</Code></Error>';
    const s = parse(`HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\nContent-Length: ${xml.length}\r\n\r\n${xml}`);
    expect(s.heads[0]!.status).toBe(404);
    expect(s.body.toString()).toBe(xml);
  });

  it('informational answers are skipped; 204/304 and Content-Length 0 have no body', () => {
    const s = parse('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    expect(s.heads.map((h) => h.status)).toEqual([200]);
    expect(s.body.toString()).toBe('ok');
    for (const w of ['HTTP/1.1 204 No Content\r\n\r\n', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n']) {
      const e = parse(w);
      expect(e.ended).toBe(true);
      expect(e.body.length).toBe(0);
    }
  });

  it('connection: close and HTTP/1.0 are not kept alive; repeated headers are joined', () => {
    expect(parse('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive).toBe(false);
    expect(parse('HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n').heads[0]!.keepAlive).toBe(true);
    expect(parse('HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n').heads[0]!.headers['x-a']).toBe('1, 2');
  });

  it('bytes after the framed body are counted, never delivered', () => {
    const s = parse('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA');
    expect(s.body.toString()).toBe('ok');
    expect(s.parser.extra).toBe(5);
  });

  for (const [what, wire, msg] of [
    ['a status line that is not HTTP/1.x', 'HTTP/2 200\r\n\r\n', /status line/],
    ['a bad Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n', /Content-Length/],
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', /Content-Length/],
    ['a folded header line', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\nContent-Length: 0\r\n\r\n', /header line/],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /chunk size/],
    ['chunk data not followed by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY', /CRLF/],
    ['a protocol switch', 'HTTP/1.1 101 Switching Protocols\r\n\r\n', /101/],
  ] as const) {
    it(`refuses ${what}`, () => {
      expect(() => parse(wire)).toThrow(msg);
    });
  }

  it('refuses a head larger than 64 KiB, however it is split', () => {
    const big = `HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    expect(() => parse(big)).toThrow(/larger than 65536 bytes/);
    expect(() => parse(big, [1000, 1000, 1000])).toThrow(/larger than 65536 bytes/);
  });
});
