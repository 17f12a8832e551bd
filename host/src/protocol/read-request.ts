/**
 * Reads the one request document from stdin. A request is normally the whole of stdin, but an
 * upload from a stream sends its JSON on the first line and the data right after it; so we parse
 * at each newline and hand the rest of stdin, untouched, to the operation.
 */
import { PassThrough, type Readable } from 'node:stream';
import { EXIT, PveS3Error } from '../util/errors.js';

/** A request larger than this is not a request (notes are the biggest legitimate field). */
export const MAX_REQUEST_BYTES = 4 * 1024 * 1024;

export interface RawRequest {
  doc: unknown;
  /** the bytes of stdin after the request line (only meaningful for streaming uploads) */
  rest: Readable;
}

const badRequest = (msg: string) => new PveS3Error('BadRequest', msg, { exitCode: EXIT.usage });

export async function readRequest(input: Readable): Promise<RawRequest> {
  const chunks: Buffer[] = [];
  let size = 0;
  let scanFrom = 0;
  const it = input[Symbol.asyncIterator]();
  for (;;) {
    const { value, done } = await it.next();
    if (done) break;
    const buf = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    chunks.push(buf);
    size += buf.length;
    const all = chunks.length === 1 ? buf : Buffer.concat(chunks);
    if (chunks.length > 1) chunks.splice(0, chunks.length, all);
    // Try each complete line: a pretty-printed document only parses at EOF, which is fine.
    for (let nl = all.indexOf(0x0a, scanFrom); nl !== -1; nl = all.indexOf(0x0a, nl + 1)) {
      const doc = tryParse(all.subarray(0, nl));
      if (doc !== undefined) {
        const rest = new PassThrough();
        const tail = all.subarray(nl + 1);
        void pump(tail, it, rest);
        return { doc, rest };
      }
    }
    scanFrom = all.length;
    if (size > MAX_REQUEST_BYTES) throw badRequest(`request on stdin exceeds ${MAX_REQUEST_BYTES} bytes without a complete JSON document: send one JSON object`);
  }
  const all = chunks.length === 0 ? Buffer.alloc(0) : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  const text = all.toString('utf8').trim();
  if (text === '') throw badRequest('no request on stdin: send one JSON object {"v":1,"op":...,"storage":{...},"args":{...}}');
  try {
    return { doc: JSON.parse(text), rest: endedStream() };
  } catch {
    // Node's parser quotes the input around the error, and the input holds the secret: say
    // nothing about the content.
    throw badRequest(`malformed JSON request on stdin (${all.length} bytes, not a JSON document): send one JSON object {"v":1,"op":...}`);
  }
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
