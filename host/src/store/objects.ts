/** Small-object helpers for sidecars: notes text, empty markers, existence checks. */
import { PveS3Error } from '../util/errors.js';
import { readSse, transferClient, type StoreContext } from './types.js';

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound']);

export function isNotFound(e: unknown): boolean {
  const err = e as { code?: string; status?: number };
  return NOT_FOUND.has(err?.code ?? '') || (err?.status === 404 && err?.code !== 'NoSuchBucket');
}

/**
 * At most `maxBytes` of the object (sidecars carry the SSE-C key like the archive), and whether
 * that was all of it; null when it does not exist. Whoever writes to the bucket decides how big a
 * sidecar is: nothing past the bound is read (the connection is dropped).
 *
 * Read through the lean GET path (getObjectInto) like manifests: an upload, which reads its
 * backup's `.notes` back, then sends nothing through undici (~60 ms of CPU to load and run its
 * first request). An object past the bound, which that path cannot stop at without losing its
 * ETag, is read again as a stream, up to the bound.
 */
export async function readCapped(ctx: StoreContext, key: string, maxBytes: number): Promise<{ bytes: Buffer; complete: boolean; etag: string } | null> {
  const chunks: Buffer[] = [];
  let n = 0;
  let info;
  try {
    info = await transferClient(ctx).getObjectInto(key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) }, (c) => {
      n += c.byteLength;
      if (n > maxBytes) throw TOO_BIG;
      // a view of a reused buffer: copied
      chunks.push(Buffer.from(c));
    });
  } catch (e) {
    if (isNotFound(e)) return null;
    if (e !== TOO_BIG) throw e;
    return readStreamCapped(ctx, key, maxBytes);
  }
  return { bytes: Buffer.concat(chunks, n), complete: true, etag: info.etag };
}

const TOO_BIG = new Error('larger than the bound');

async function readStreamCapped(ctx: StoreContext, key: string, maxBytes: number): Promise<{ bytes: Buffer; complete: boolean; etag: string } | null> {
  const chunks: Buffer[] = [];
  let n = 0;
  let complete = true;
  let etag: string;
  try {
    const { body, info } = await ctx.client.getObject(key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    etag = info.etag;
    for await (const c of body) {
      chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      n += c.byteLength;
      if (n > maxBytes) {
        complete = false;
        break; // ends the body's iterator, which destroys the stream
      }
    }
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  const bytes = Buffer.concat(chunks, n);
  return { bytes: complete ? bytes : bytes.subarray(0, maxBytes), complete, etag };
}

/** A small object's body as UTF-8 (our own test objects), or null when it does not exist. */
export async function readText(ctx: StoreContext, key: string, maxBytes: number): Promise<string | null> {
  const r = await readCapped(ctx, key, maxBytes);
  if (r === null) return null;
  if (!r.complete) throw new PveS3Error('ResponseTooLarge', `object '${key}' is larger than ${maxBytes} bytes, more than it can be: not read`, { key });
  return r.bytes.toString('utf8');
}

/** By its name (HEAD). With SSE-C the storage writes sidecars with its key too, so HEAD carries it. */
export async function exists(ctx: StoreContext, key: string): Promise<boolean> {
  try {
    await ctx.client.headObject(key, readSse(ctx));
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/** Sidecars are tiny and rewritten whole: a single PUT with the storage's encryption settings. */
export async function putSmall(ctx: StoreContext, key: string, text: string, contentType = 'text/plain; charset=utf-8'): Promise<void> {
  await ctx.client.putObject(key, Buffer.from(text, 'utf8'), { contentType, ...(ctx.settings.put ?? {}) });
}

/** Delete that treats "already gone" as done. */
export async function deleteQuiet(ctx: StoreContext, key: string): Promise<void> {
  try {
    await ctx.client.deleteObject(key);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}
