/**
 * Hashes upload parts (and download ranges) with the WASM SHA-256. All hashing runs on the one JS
 * thread, so a 100 MiB part hashed in one call would freeze every socket for a third of a second:
 * parts are fed in slices with a yield to the event loop between them, which keeps the other
 * parts' uploads streaming while one is hashed.
 */
import { Sha256 } from '../wasm/digests.js';

/** Bytes hashed between two yields: a few ms of work. */
export const HASH_SLICE = 2 << 20;

export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * SHA-256 of `data`; `also` (e.g. the whole-object digest) is fed the same slices in the same
 * pass while they are hot in the cache.
 */
export async function hashPart(data: Uint8Array, also?: Sha256): Promise<Uint8Array> {
  const h = new Sha256();
  for (let off = 0; off < data.length; off += HASH_SLICE) {
    const s = data.subarray(off, Math.min(off + HASH_SLICE, data.length));
    h.update(s);
    also?.update(s);
    if (off + HASH_SLICE < data.length) await yieldToLoop();
  }
  return h.digest();
}
