// What a terminal shows after some output: enough of one for progress lines (carriage return,
// line feed, ESC [ 2 K erasing the line); any other escape sequence is an error here, so a test
// notices output it does not understand instead of reading it wrong.
export function screen(output: string): string[] {
  const rows: string[][] = [[]];
  let row = 0;
  let col = 0;
  for (let i = 0; i < output.length; i++) {
    const ch = output[i]!;
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      col = 0;
      rows[row] ??= [];
    } else if (ch === '\x1b') {
      if (output.slice(i, i + 4) !== '\x1b[2K') throw new Error(`escape sequence not understood at ${i}: ${JSON.stringify(output.slice(i, i + 8))}`);
      rows[row] = [];
      i += 3;
    } else {
      const r = rows[row]!;
      while (r.length < col) r.push(' ');
      r[col++] = ch;
    }
  }
  return rows.map((r) => r.join('').trimEnd());
}
