/**
 * Hashes upload parts (and download ranges) with the WASM SHA-256 and CRC-64/NVME. All hashing
 * runs on the one JS thread, so a 100 MiB part hashed in one call would freeze every socket for a
 * third of a second: parts are fed in slices with a yield to the event loop between them, which
 * keeps the other parts' uploads streaming while one is hashed.
 */
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';

/** Bytes hashed between two yields: a few ms of work. */
export const HASH_SLICE = 2 << 20;

export const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** What the manifest records of a part: the SHA-256 signing needs anyway, and the CRC restores check. */
export interface PartSums {
  sha256: Uint8Array;
  crc64: bigint;
}

/** SHA-256 of `data`. */
export async function hashPart(data: Uint8Array): Promise<Uint8Array> {
  const h = new Sha256();
  await sliced(data, (s) => h.update(s));
  return h.digest();
}

/**
 * SHA-256 and CRC-64/NVME of `data` in one pass over the same slices while they are hot in the
 * cache; `also` (e.g. the whole-object digest) is fed the same slices.
 */
export async function sumPart(data: Uint8Array, also?: Sha256): Promise<PartSums> {
  const h = new Sha256();
  const c = new Crc64Nvme();
  await sliced(data, (s) => {
    h.update(s);
    c.update(s);
    also?.update(s);
  });
  return { sha256: h.digest(), crc64: c.digest() };
}

async function sliced(data: Uint8Array, each: (s: Uint8Array) => void): Promise<void> {
  for (let off = 0; off < data.length; off += HASH_SLICE) {
    each(data.subarray(off, Math.min(off + HASH_SLICE, data.length)));
    if (off + HASH_SLICE < data.length) await yieldToLoop();
  }
}
