/**
 * Text from the bucket (object keys, notes, a server's error message, lifecycle rule ids) is
 * written by whoever can write to the bucket. Printed raw, an ESC sequence in it would drive the
 * terminal of the administrator reading it: retitle the window, hide or forge lines, on some
 * terminals write to the clipboard. Every human output shows such characters as visible escapes
 * instead; JSON output is left exact (JSON.stringify escapes C0 controls itself).
 *
 * Escaped: C0 controls, DEL, C1 controls (U+0080–U+009F, some terminals act on them in UTF-8
 * too), the line/paragraph separators, and the bidirectional overrides and isolates that make a
 * name read differently from what it is.
 */

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function escapeChar(c: string): string {
  const cp = c.codePointAt(0)!;
  if (c === '\n') return '\\n';
  if (c === '\r') return '\\r';
  if (c === '\t') return '\\t';
  return cp < 0x100 ? `\\x${cp.toString(16).padStart(2, '0')}` : `\\u{${cp.toString(16)}}`;
}

/** One value shown on one line: every control character (newlines too) becomes a visible escape. */
export function printable(s: string): string {
  return s.replace(UNSAFE, escapeChar);
}

/** Text we laid out ourselves (several lines, tab-separated columns): newlines and tabs stay,
 *  everything else that could drive a terminal is escaped. */
export function printableLines(s: string): string {
  return s.replace(UNSAFE_BUT_LAYOUT, escapeChar);
}
