// check-integrity --parallel reads volumes at once: their progress must stay readable on a
// terminal (one finish line per volume above one live line of the run) and, without one, each
// line must say whose it is.
import { describe, expect, it } from 'vitest';
import { progressBoard } from '../../host/src/cli/progress.js';
import type { Progress } from '../../host/src/transfer/progress.js';
import { screen } from '../helpers/terminal.js';

const MiB = 1024 * 1024;

function sink(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = { isTTY, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

const at = (bytes: number, total: number): Progress => ({ bytes, total, parts: 0, partsTotal: null, rate: 0 });

/** two volumes read at once, as check-integrity --parallel 2 reports them; a clock that moves 1 s per event */
function twoVolumes(isTTY: boolean, forced: boolean): string {
  const out = sink(isTTY);
  let t = 0;
  const b = progressBoard(forced, out.stream, () => (t += 1000));
  b.plan(2, 300 * MiB);
  for (let i = 1; i <= 4; i++) {
    b.update('dump/a.vma.zst', 'a.vma.zst', at(i * 25 * MiB, 100 * MiB));
    b.update('dump/b.vma.zst', 'b.vma.zst', at(i * 25 * MiB, 200 * MiB));
  }
  b.finish('dump/a.vma.zst', 100 * MiB, 'checked backup/a.vma.zst: good');
  for (let i = 5; i <= 8; i++) b.update('dump/b.vma.zst', 'b.vma.zst', at(i * 25 * MiB, 200 * MiB));
  b.finish('dump/b.vma.zst', 200 * MiB, 'checked backup/b.vma.zst: corrupt');
  b.done();
  return out.text();
}

describe('progress of volumes read at once (progressBoard)', () => {
  it('on a terminal: each finished volume on its own line, above one live line of the whole run', () => {
    const s = screen(twoVolumes(true, false));
    expect(s).toEqual(['checked backup/a.vma.zst: good', 'checked backup/b.vma.zst: corrupt', expect.stringMatching(/^2\/2 volumes \[#{24}\] 100% 300 MiB \/ 300 MiB  [\d.]+ MiB\/s  ETA 00:00$/), '']);
  });

  it('on a terminal, while volumes are read: the live line counts bytes of all of them against the total', () => {
    const out = sink(true);
    let t = 0;
    const b = progressBoard(false, out.stream, () => (t += 1000));
    b.plan(3, 400 * MiB);
    b.update('k/a', 'a', at(50 * MiB, 100 * MiB));
    b.update('k/b', 'b', at(50 * MiB, 100 * MiB));
    expect(screen(out.text())).toEqual([expect.stringMatching(/^0\/3 volumes \[#{6}\.{18}\]  25% 100 MiB \/ 400 MiB  /)]);
    // an archived volume is done without being read: it counts as done, its bytes never in the rate
    b.finish('k/c', 200 * MiB, 'checked backup/c: archived');
    const s = screen(out.text());
    expect(s[0]).toBe('checked backup/c: archived');
    expect(s[1]).toMatch(/^1\/3 volumes \[#{18}\.{6}\]  75% 300 MiB \/ 400 MiB  /);
    expect(s).toHaveLength(2);
  });

  it('--progress without a terminal: every line starts with its volume, finish lines after its last one', () => {
    const lines = twoVolumes(false, true).split('\n');
    expect(lines.at(-1)).toBe('');
    const body = lines.slice(0, -1);
    for (const l of body) expect(l).toMatch(/^(a\.vma\.zst|b\.vma\.zst) \[|^checked backup\/[ab]\.vma\.zst: /);
    expect(body.filter((l) => l.startsWith('a.vma.zst'))).toHaveLength(4);
    expect(body.filter((l) => l.startsWith('b.vma.zst'))).toHaveLength(8);
    const aDone = body.indexOf('checked backup/a.vma.zst: good');
    expect(body[aDone - 1]).toMatch(/^b\.vma\.zst .* 50%/);
    expect(body.slice(0, aDone).filter((l) => l.startsWith('a.vma.zst')).at(-1)).toMatch(/^a\.vma\.zst \[#{24}\] 100% 100 MiB \/ 100 MiB/);
    expect(body.at(-1)).toBe('checked backup/b.vma.zst: corrupt');
    expect(body.join('\n')).not.toMatch(/volumes/);
  });

  it('neither a terminal nor --progress: the finish lines only', () => {
    expect(twoVolumes(false, false)).toBe('checked backup/a.vma.zst: good\nchecked backup/b.vma.zst: corrupt\n');
  });
});
