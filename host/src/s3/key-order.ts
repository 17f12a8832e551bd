/**
 * S3's order of keys, for code that cuts listings into ranges: their UTF-8 bytes, which is code
 * point order. JavaScript's `<` compares UTF-16 units, which puts a character beyond U+FFFF (a
 * surrogate pair) before U+E000–U+FFFF; where the first difference lies between such units they
 * are mapped into code point order.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
