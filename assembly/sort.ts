// Ordering of canonical query parameters and header names: plain byte order (what AWS calls
// "sorted by character code point"), over fixed-size entries so no allocation is needed.
//
// An entry is 4 × u32: aPtr, aLen, bPtr, bLen — sorted by bytes of a, then bytes of b when
// `useSecond`. The sort is stable (insertion sort): duplicate header names must keep the order
// in which the caller gave their values. Entry counts are small (the host caps them), so the
// quadratic worst case is irrelevant next to the hashing.

export const ENTRY_SIZE: usize = 16;

/** memcmp with length as the tie-break: <0, 0, >0. */
export function compareBytes(a: usize, aLen: usize, b: usize, bLen: usize): i32 {
  const n = aLen < bLen ? aLen : bLen;
  for (let i: usize = 0; i < n; i++) {
    const x = <i32>load<u8>(a + i);
    const y = <i32>load<u8>(b + i);
    if (x != y) return x - y;
  }
  return aLen == bLen ? 0 : (aLen < bLen ? -1 : 1);
}

function compareEntries(p: usize, q: usize, useSecond: bool): i32 {
  const c = compareBytes(load<u32>(p), load<u32>(p, 4), load<u32>(q), load<u32>(q, 4));
  if (c != 0 || !useSecond) return c;
  return compareBytes(load<u32>(p, 8), load<u32>(p, 12), load<u32>(q, 8), load<u32>(q, 12));
}

const TMP: usize = memory.data(16, 16);

export function sortEntries(base: usize, count: usize, useSecond: bool): void {
  for (let i: usize = 1; i < count; i++) {
    const cur = base + i * ENTRY_SIZE;
    let j = i;
    if (compareEntries(cur - ENTRY_SIZE, cur, useSecond) <= 0) continue;
    memory.copy(TMP, cur, ENTRY_SIZE);
    while (j > 0 && compareEntries(base + (j - 1) * ENTRY_SIZE, TMP, useSecond) > 0) {
      memory.copy(base + j * ENTRY_SIZE, base + (j - 1) * ENTRY_SIZE, ENTRY_SIZE);
      j--;
    }
    memory.copy(base + j * ENTRY_SIZE, TMP, ENTRY_SIZE);
  }
}
