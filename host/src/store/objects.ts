/** Small-object helpers for sidecars: notes text, empty markers, existence checks. */
import { readSse, type StoreContext } from './types.js';

const NOT_FOUND = new Set(['NoSuchKey', 'NotFound']);

export function isNotFound(e: unknown): boolean {
  const err = e as { code?: string; status?: number };
  return NOT_FOUND.has(err?.code ?? '') || (err?.status === 404 && err?.code !== 'NoSuchBucket');
}

/** The object's body as UTF-8, or null when it does not exist (sidecars carry the SSE-C key like the archive). */
export async function readText(ctx: StoreContext, key: string): Promise<string | null> {
  try {
    const { body } = await ctx.client.getObject(key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const chunks: Uint8Array[] = [];
    for await (const c of body) chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
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
