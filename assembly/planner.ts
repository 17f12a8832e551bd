// Multipart upload planning. Sizes reach 5 TiB, beyond i32 (and beyond what a JS number can
// carry through an i32 ABI), so every size here is a u64; the host passes them as BigInt.
//
// S3 limits: at most 10,000 parts; every part but the last 5 MiB..5 GiB; object ≤ 5 TiB.
// Some providers allow fewer parts (1,000) or smaller parts (5 GB): the host passes the
// provider's part count and part size limits (host/src/s3/providers.ts), at most these.
// The configured chunk size (MiB) is the preferred part size; it is raised — to a whole MiB, or
// to the provider's largest part — only when maxParts parts of it would not hold the object (or
// the stream's declared maximum).

export const MIB: u64 = 1048576;
export const MAX_PARTS: u64 = 10000;
export const MIN_PART: u64 = 5 * MIB;
export const MAX_PART: u64 = 5 * 1024 * MIB;
export const MAX_OBJECT: u64 = 5 * 1024 * 1024 * MIB;
export const MIN_CHUNK_MB: i32 = 5;
export const MAX_CHUNK_MB: i32 = 5120;

/** Sentinel for "unknown" size / "no maximum" (the host passes -1n). */
const UNKNOWN: i64 = -1;

export const PLAN_OK: i32 = 0;
export const PLAN_ERR_CHUNK: i32 = 1;
export const PLAN_ERR_TOO_LARGE: i32 = 2;
export const PLAN_ERR_SIZE: i32 = 3;
export const PLAN_ERR_LIMITS: i32 = 4;

// Result record, read by the host after planUpload(): see docs/WASM-ABI.md ("Planner").
//   +0 u64 partSize · +8 u64 partCount · +16 u64 multipart (0/1) · +24 u64 capacity
//   +32 u64 part offset · +40 u64 part length  (written by planPart)
const PLAN: usize = memory.data(64, 16);

export function planPtr(): usize { return PLAN; }

@inline function ceilDiv(a: u64, b: u64): u64 { return (a + b - 1) / b; }

/**
 * Smallest whole-MiB part size ≥ `chunk` with which `parts` parts hold `bytes`, capped at
 * `maxPart` (a provider's largest part need not be a whole MiB); 0 when even that is too small.
 */
function raisedPartSize(bytes: u64, chunk: u64, parts: u64, maxPart: u64): u64 {
  if (bytes <= chunk * parts) return chunk;
  let size = ceilDiv(ceilDiv(bytes, parts), MIB) * MIB;
  if (size > maxPart) size = maxPart;
  return size * parts >= bytes ? size : 0;
}

/**
 * size: object size in bytes or -1 (unknown-size stream); maxSize: the stream's declared upper
 * bound or -1; chunkMB: multipart_chunk_size; maxParts, maxPart: the provider's most parts
 * (1..10,000) and largest part (5 MiB..5 GiB, ≥ the chunk). Returns PLAN_OK or a PLAN_ERR_* code.
 */
export function planUpload(size: i64, maxSize: i64, chunkMB: i32, maxParts: i32, maxPart: i64): i32 {
  if (chunkMB < MIN_CHUNK_MB || chunkMB > MAX_CHUNK_MB) return PLAN_ERR_CHUNK;
  if (size < UNKNOWN || maxSize < UNKNOWN) return PLAN_ERR_SIZE;
  const chunk = <u64>chunkMB * MIB;
  if (maxParts < 1 || <u64>maxParts > MAX_PARTS || maxPart < <i64>MIN_PART || <u64>maxPart > MAX_PART) return PLAN_ERR_LIMITS;
  if (chunk > <u64>maxPart) return PLAN_ERR_CHUNK;
  const parts = <u64>maxParts;
  let partSize: u64;
  let count: u64;
  let multipart: u64 = 1;
  let capacity: u64;
  if (size != UNKNOWN) {
    const n = <u64>size;
    if (n > MAX_OBJECT) return PLAN_ERR_TOO_LARGE;
    if (n <= chunk) {
      // One PUT carries it (chunk ≤ 5 GiB, the single-PUT limit); an empty object is one empty
      // PUT. partSize stays the chunk size so readers sized by it never get a 0-byte buffer;
      // planPart(1) clips the length to the object.
      multipart = 0;
      partSize = chunk;
      count = 1;
    } else {
      partSize = raisedPartSize(n, chunk, parts, <u64>maxPart);
      if (partSize == 0) return PLAN_ERR_TOO_LARGE;
      count = ceilDiv(n, partSize);
    }
    capacity = n;
  } else {
    if (maxSize != UNKNOWN) {
      const m = <u64>maxSize;
      if (m > MAX_OBJECT) return PLAN_ERR_TOO_LARGE;
      partSize = raisedPartSize(m, chunk, parts, <u64>maxPart);
      if (partSize == 0) return PLAN_ERR_TOO_LARGE;
      count = m == 0 ? 1 : ceilDiv(m, partSize);
    } else {
      partSize = chunk;
      count = parts;
    }
    capacity = partSize * count;
    if (capacity > MAX_OBJECT) capacity = MAX_OBJECT;
  }
  store<u64>(PLAN, partSize, 0);
  store<u64>(PLAN, count, 8);
  store<u64>(PLAN, multipart, 16);
  store<u64>(PLAN, capacity, 24);
  return PLAN_OK;
}

/** Offset and length of part `n` (1-based) of a plan into PLAN+32/+40; false if n is out of
 *  range. Stateless (the host passes the plan back) so plans may interleave. For an unknown size
 *  (-1) every part is reported full-length: the stream decides where it ends. */
export function planPart(size: i64, partSize: i64, partCount: i32, n: i32): bool {
  if (n < 1 || n > partCount || partSize < 0) return false;
  const offset = <u64>(n - 1) * <u64>partSize;
  let length = <u64>partSize;
  if (size != UNKNOWN) {
    if (size < 0 || offset > <u64>size) return false;
    const rest = <u64>size - offset;
    if (rest < length) length = rest;
  }
  store<u64>(PLAN, offset, 32);
  store<u64>(PLAN, length, 40);
  return true;
}
