/**
 * Where upload parts come from: a file (size known, positional reads) or a stream such as stdin
 * (size unknown, arbitrary chunk sizes reassembled into exactly part-sized pieces). Either way the
 * caller supplies the buffer to fill, so memory is owned by the caller's pool, and parts are handed
 * out strictly in order (part n covers bytes (n-1)·partSize …), which also lets a whole-object
 * digest be computed in the same pass.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { PveS3Error } from '../util/errors.js';
import { isByteSource, iterableSource, type ByteSource } from './byte-source.js';

export interface PartSlice {
  /** 1-based part number */
  n: number;
  offset: number;
  length: number;
  /** true when no byte follows this part: lets a stream that ends early go up as a single PUT */
  last: boolean;
}

export interface ChunkSource {
  /** Total size when known up front (files), null for streams. */
  readonly size: number | null;
  /** Fills buf[0..partSize) with the next part; null once everything was handed out. */
  read(buf: Buffer): Promise<PartSlice | null>;
  /** Bytes handed out so far. */
  readonly consumed: number;
  /** Throws if the input changed under us (a file that grew or shrank while being uploaded). */
  checkUnchanged(): Promise<void>;
  close(): Promise<void>;
}

/** S3's limit on parts per upload. */
export const MAX_PARTS = 10_000;

/** Serialises async calls: parts must be produced one after another, whoever asks. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const r = this.tail.then(fn, fn);
    this.tail = r.catch(() => undefined);
    return r;
  }
}

export interface OpenedFile {
  fh: FileHandle;
  path: string;
  size: number;
  mtimeMs: number;
}

/** Opens an upload source; the size decides the plan before any part is read. */
export async function openSourceFile(path: string): Promise<OpenedFile> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw fileError(path, e);
  }
  const st = await fh.stat().catch(async (e: unknown) => {
    await fh.close();
    throw fileError(path, e);
  });
  if (!st.isFile()) {
    await fh.close();
    throw new PveS3Error('InvalidSource', `upload source '${path}' is not a regular file`);
  }
  return { fh, path, size: st.size, mtimeMs: st.mtimeMs };
}

/** Reads buf[0..length) from `at`; a file that ends early has shrunk since it was opened. */
export async function readFully(fh: FileHandle, buf: Uint8Array, length: number, at: number, path: string, size: number): Promise<void> {
  for (let got = 0; got < length; ) {
    const { bytesRead } = await fh.read(buf, got, length - got, at + got);
    if (bytesRead === 0) {
      throw new PveS3Error('SourceChanged', `upload source '${path}' shrank while being read (expected ${size} bytes); nothing was stored`);
    }
    got += bytesRead;
  }
}

export class FileChunkSource implements ChunkSource {
  private nextPart = 1;
  consumed = 0;
  private readonly lock = new Lock();

  private readonly fh: FileHandle;
  readonly path: string;
  readonly size: number;
  private readonly mtimeMs: number;

  /** `skip(n)`: parts already on the server (a resumed upload) are not read again. */
  constructor(
    file: OpenedFile,
    private readonly partSize: number,
    private readonly skip: (n: number) => boolean = () => false,
  ) {
    this.fh = file.fh;
    this.path = file.path;
    this.size = file.size;
    this.mtimeMs = file.mtimeMs;
  }

  read(buf: Buffer): Promise<PartSlice | null> {
    return this.lock.run(async () => {
      while (this.nextPart * this.partSize < this.size && this.skip(this.nextPart)) this.nextPart++;
      if (this.skip(this.nextPart)) return null;
      const offset = (this.nextPart - 1) * this.partSize;
      if (offset >= this.size && !(this.size === 0 && this.nextPart === 1)) return null;
      const length = Math.min(this.partSize, this.size - offset);
      await readFully(this.fh, buf, length, offset, this.path, this.size);
      const n = this.nextPart++;
      this.consumed += length;
      return { n, offset, length, last: offset + length >= this.size };
    });
  }

  async checkUnchanged(): Promise<void> {
    const st = await this.fh.stat();
    if (st.size !== this.size || st.mtimeMs !== this.mtimeMs) {
      throw new PveS3Error(
        'SourceChanged',
        `upload source '${this.path}' changed while being uploaded (size ${this.size} → ${st.size}); nothing was stored, retry once it is complete`,
      );
    }
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export class StreamChunkSource implements ChunkSource {
  readonly size = null;
  consumed = 0;
  private nextPart = 1;
  private readonly input: ByteSource;
  private readonly lock = new Lock();

  constructor(
    stream: Readable | AsyncIterable<Uint8Array> | ByteSource,
    private readonly partSize: number,
    private readonly maxSize?: number,
  ) {
    this.input = isByteSource(stream) ? stream : iterableSource(stream);
  }

  read(buf: Buffer): Promise<PartSlice | null> {
    return this.lock.run(async () => {
      const filled = await this.input.fill(buf.subarray(0, this.partSize));
      if (filled === 0 && this.nextPart > 1) return null;
      // Looking ahead tells the caller whether this was the last part (a stream that ends within
      // its first part goes up as a plain PUT).
      const last = filled < this.partSize || (await this.input.peek()).length === 0;
      const n = this.nextPart++;
      if (n > MAX_PARTS) {
        throw new PveS3Error(
          'EntityTooLarge',
          `stream is longer than ${MAX_PARTS} parts of ${this.partSize} bytes: raise multipart_chunk_size or declare the maximum size`,
        );
      }
      const offset = this.consumed;
      this.consumed += filled;
      if (this.maxSize !== undefined && this.consumed > this.maxSize) {
        throw new PveS3Error('EntityTooLarge', `stream is longer than its declared maximum size ${this.maxSize}`);
      }
      return { n, offset, length: filled, last };
    });
  }

  async checkUnchanged(): Promise<void> {}

  close(): Promise<void> {
    return this.input.close();
  }
}

function fileError(path: string, e: unknown): PveS3Error {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return new PveS3Error('NotFound', `upload source '${path}' does not exist`, { exitCode: 3, cause: e });
  if (code === 'EACCES') return new PveS3Error('AccessDenied', `upload source '${path}' is not readable (permission denied)`, { cause: e });
  if (code === 'EISDIR') return new PveS3Error('InvalidSource', `upload source '${path}' is a directory, not a file`, { cause: e });
  return new PveS3Error('InvalidSource', `cannot open upload source '${path}': ${code ?? String(e)}`, { cause: e });
}
