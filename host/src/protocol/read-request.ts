/**
 * Reads the one request document from stdin. A request is normally the whole of stdin, but an
 * upload from a stream sends its JSON on the first line and the data right after it; so we parse
 * at each newline and hand the rest of stdin, untouched, to the operation.
 */
import { readSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { EXIT, PveS3Error } from '../util/errors.js';

/** A request larger than this is not a request (notes are the biggest legitimate field). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface RawRequest {
  doc: unknown;
  /** the bytes of stdin after the request line (only meaningful for streaming uploads) */
  readonly rest: Readable;
}

const badRequest = (msg: string) => new PveS3Error('BadRequest', msg, { exitCode: EXIT.usage });

/** Collects stdin's bytes and says when they hold a request, whichever way they are read. */
class RequestScanner {
  private chunks: Buffer[] = [];
  private size = 0;
  private scanFrom = 0;

  /** The request and the bytes after its line, once a complete line parses. */
  push(buf: Buffer): { doc: unknown; tail: Buffer } | undefined {
    this.chunks.push(buf);
    this.size += buf.length;
    const all = this.bytes();
    // Try each complete line: a pretty-printed document only parses at EOF, which is fine.
    for (let nl = all.indexOf(0x0a, this.scanFrom); nl !== -1; nl = all.indexOf(0x0a, nl + 1)) {
      const doc = tryParse(all.subarray(0, nl));
      if (doc !== undefined) return { doc, tail: all.subarray(nl + 1) };
    }
    this.scanFrom = all.length;
    if (this.size > MAX_REQUEST_BYTES) throw badRequest(`request on stdin exceeds ${MAX_REQUEST_BYTES} bytes without a complete JSON document: send one JSON object`);
    return undefined;
  }

  /** Everything pushed so far, as one buffer. */
  bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** At EOF: the whole input as one document. */
  finish(): unknown {
    const all = this.bytes();
    const text = all.toString('utf8').trim();
    if (text === '') throw badRequest('no request on stdin: send one JSON object {"v":1,"op":...,"storage":{...},"args":{...}}');
    try {
      return JSON.parse(text);
    } catch {
      // Node's parser quotes the input around the error, and the input holds the secret: say
      // nothing about the content.
      throw badRequest(`malformed JSON request on stdin (${all.length} bytes, not a JSON document): send one JSON object {"v":1,"op":...}`);
    }
  }
}

export function readRequest(input: Readable): Promise<RawRequest> {
  return readFrom(input, new RequestScanner());
}

async function readFrom(input: Readable, scanner: RequestScanner): Promise<RawRequest> {
  const it = input[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = await it.next();
    if (done) break;
    const found = scanner.push(Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array));
    if (found) {
      const rest = new PassThrough();
      void pump(found.tail, it, rest);
      return { doc: found.doc, rest };
    }
  }
  return { doc: scanner.finish(), rest: endedStream() };
}

/**
 * The host's own stdin (fd 0), read with plain blocking reads: the Perl plugin writes the request
 * into a pipe at once, and process.stdin (a stream over a pipe handle) costs a `status` about
 * 2 ms to set up. The rest of stdin becomes a stream only when an operation asks for it. A
 * descriptor that will not block (EAGAIN) is read the usual way from where we stopped.
 */
export async function readStdinRequest(stdin: () => Readable = () => process.stdin): Promise<RawRequest> {
  const scanner = new RequestScanner();
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return readFrom(stdin(), scanner);
      throw e;
    }
    if (n === 0) break;
    const found = scanner.push(Buffer.from(buf.subarray(0, n)));
    if (found) return lazyRest(found.doc, () => pumped(found.tail, stdin()));
  }
  // the whole of stdin was the request (the usual case): nothing comes after it
  return lazyRest(scanner.finish(), endedStream);
}

/** stdin after the request, made into a stream only when an operation reads it. (Not through an
 *  object spread: spreading copies a getter's value, which made every request build the stream.) */
function lazyRest(doc: unknown, make: () => Readable): RawRequest {
  let rest: Readable | undefined;
  return {
    doc,
    get rest(): Readable {
      return (rest ??= make());
    },
  };
}

/** the bytes already read after the request line, then whatever fd 0 still holds */
function pumped(tail: Buffer, input: Readable): Readable {
  const out = new PassThrough();
  void pump(tail, input[Symbol.asyncIterator](), out);
  return out;
}

function tryParse(line: Buffer): unknown {
  const text = line.toString('utf8').trim();
  if (!text.startsWith('{')) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function endedStream(): Readable {
  const s = new PassThrough();
  s.end();
  return s;
}

async function pump(head: Buffer, it: AsyncIterator<unknown>, out: PassThrough): Promise<void> {
  try {
    if (head.length > 0 && !out.write(head)) await new Promise((r) => out.once('drain', r));
    for (;;) {
      const { value, done } = await it.next();
      if (done) break;
      if (!out.write(value as Buffer)) await new Promise((r) => out.once('drain', r));
    }
    out.end();
  } catch (e) {
    out.destroy(e as Error);
  }
}
