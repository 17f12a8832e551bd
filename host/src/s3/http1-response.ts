/**
 * An HTTP/1.1 response parser for the lean GET path (lean-http.ts): the status line and headers,
 * then the body framed by Content-Length, the chunked transfer coding, or the end of the
 * connection (RFC 9112 §6). Body bytes are handed on as views of the caller's buffer, never
 * copied or collected; only the head becomes strings. Anything it cannot frame exactly is a
 * ProtocolError: a body of unknown length is never delivered as if it were complete.
 */

export interface ResponseHead {
  status: number;
  /** lower-case names; repeated fields joined with ", " */
  headers: Record<string, string>;
  /** the connection may carry another request after this response */
  keepAlive: boolean;
}

export interface ResponseEvents {
  head(h: ResponseHead): void;
  /** a view of the buffer given to feed(), valid only during the call */
  body(chunk: Uint8Array): void;
  end(): void;
}

export class ProtocolError extends Error {
  readonly code = 'HTTP_PROTOCOL_ERROR';
}

/** Bigger heads are refused: S3 answers carry a few hundred bytes of headers. */
export const MAX_HEAD_BYTES = 64 * 1024;
const MAX_CHUNK_LINE = 1024;

const enum State {
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkEnd,
  Trailers,
  UntilClose,
  Done,
}

const CR = 13;
const LF = 10;

export class ResponseParser {
  private state = State.Head;
  private text = '';
  private left = 0;
  private head: ResponseHead | null = null;
  /** bytes seen after the response ended (a server that sent more than it framed) */
  extra = 0;

  /** `bodiless`: the answer to a HEAD, which has no body whatever its Content-Length says (RFC 9112 §6.3) */
  constructor(
    private readonly on: ResponseEvents,
    private readonly o: { bodiless?: boolean } = {},
  ) {}

  /** Any byte of a response has arrived (a connection that dies before this never answered). */
  get started(): boolean {
    return this.state !== State.Head || this.text.length > 0;
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  feed(buf: Uint8Array, off: number, end: number): void {
    while (off < end) {
      switch (this.state) {
        case State.Head:
          off = this.readHead(buf, off, end);
          break;
        case State.Length: {
          const n = Math.min(this.left, end - off);
          this.left -= n;
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.on.body(chunk);
          if (this.left === 0) this.finish();
          break;
        }
        case State.UntilClose:
          this.on.body(buf.subarray(off, end));
          off = end;
          break;
        case State.ChunkSize:
        case State.Trailers:
          off = this.readLine(buf, off, end);
          break;
        case State.ChunkData: {
          const n = Math.min(this.left, end - off);
          this.left -= n;
          const chunk = buf.subarray(off, off + n);
          off += n;
          this.on.body(chunk);
          if (this.left === 0) {
            this.state = State.ChunkEnd;
            this.left = 2;
          }
          break;
        }
        case State.ChunkEnd:
          // the CRLF after a chunk's data, possibly split between reads
          if (buf[off] !== (this.left === 2 ? CR : LF)) throw new ProtocolError('chunk data not followed by CRLF');
          off++;
          if (--this.left === 0) this.state = State.ChunkSize;
          break;
        case State.Done:
          this.extra += end - off;
          return;
      }
    }
  }

  /** The connection ended: completes a body framed by the end, otherwise the response was cut short. */
  eof(): void {
    if (this.state === State.UntilClose) return this.finish();
    if (this.state !== State.Done) throw new ProtocolError(this.state === State.Head ? 'connection closed before a complete response head' : 'connection closed in the middle of the response body');
  }

  private finish(): void {
    this.state = State.Done;
    this.on.end();
  }

  private readHead(buf: Uint8Array, off: number, end: number): number {
    // decode as latin1 (every byte one char), search from just before the new bytes
    const from = Math.max(0, this.text.length - 3);
    const take = Math.min(end - off, MAX_HEAD_BYTES + 4 - this.text.length);
    this.text += Buffer.from(buf.buffer, buf.byteOffset + off, take).toString('latin1');
    const at = this.text.indexOf('\r\n\r\n', from);
    if (at < 0) {
      if (this.text.length > MAX_HEAD_BYTES) throw new ProtocolError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      return off + take;
    }
    const used = at + 4 - (this.text.length - take);
    const headText = this.text.slice(0, at);
    this.text = '';
    this.startBody(parseHead(headText));
    return off + used;
  }

  private startBody(h: ResponseHead): void {
    // informational answers (100 Continue, 103 Early Hints) precede the real one
    if (h.status >= 100 && h.status < 200 && h.status !== 101) return;
    if (h.status === 101) throw new ProtocolError('unexpected protocol switch (101)');
    const te = h.headers['transfer-encoding'];
    const cl = h.headers['content-length'];
    if (this.o.bodiless) {
      this.head = h;
      this.state = State.Done;
    } else if (te !== undefined) {
      const codings = te.split(',').map((x) => x.trim().toLowerCase());
      if (codings[codings.length - 1] === 'chunked') {
        this.head = { ...h, keepAlive: h.keepAlive && cl === undefined };
        this.state = State.ChunkSize;
      } else {
        this.head = { ...h, keepAlive: false };
        this.state = State.UntilClose;
      }
    } else if (h.status === 204 || h.status === 304) {
      this.head = h;
      this.state = State.Done;
    } else if (cl !== undefined) {
      const values = new Set(cl.split(',').map((x) => x.trim()));
      const [v] = values;
      if (values.size !== 1 || !/^\d{1,15}$/.test(v!)) throw new ProtocolError(`invalid Content-Length '${cl}'`);
      this.head = h;
      this.left = Number(v);
      this.state = this.left === 0 ? State.Done : State.Length;
    } else {
      this.head = { ...h, keepAlive: false };
      this.state = State.UntilClose;
    }
    this.on.head(this.head);
    if (this.state === State.Done) this.on.end();
  }

  private readLine(buf: Uint8Array, off: number, end: number): number {
    let i = off;
    while (i < end && buf[i] !== LF) i++;
    this.text += Buffer.from(buf.buffer, buf.byteOffset + off, i - off).toString('latin1');
    if (this.text.length > MAX_CHUNK_LINE) throw new ProtocolError('chunk size or trailer line too long');
    if (i === end) return end;
    const line = this.text.endsWith('\r') ? this.text.slice(0, -1) : this.text;
    this.text = '';
    if (this.state === State.Trailers) {
      if (line === '') this.finish();
      return i + 1;
    }
    const m = /^([0-9a-fA-F]{1,12})[ \t]*(;.*)?$/.exec(line);
    if (!m) throw new ProtocolError(`invalid chunk size line '${line.slice(0, 40)}'`);
    this.left = parseInt(m[1]!, 16);
    this.state = this.left === 0 ? State.Trailers : State.ChunkData;
    return i + 1;
  }
}

function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]!);
  if (!m) throw new ProtocolError(`not an HTTP/1.x status line: '${lines[0]!.slice(0, 60)}'`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    // obsolete line folding (a continuation line) is refused, as RFC 9112 allows
    if (colon <= 0 || line[0] === ' ' || line[0] === '\t') throw new ProtocolError(`invalid header line '${line.slice(0, 60)}'`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const conn = (headers['connection'] ?? '').toLowerCase();
  const keepAlive = m[1] === '1' ? !/\bclose\b/.test(conn) : /\bkeep-alive\b/.test(conn);
  return { status: Number(m[2]), headers, keepAlive };
}
