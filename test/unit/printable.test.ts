// Issue 10 §11: the one escaping rule for human output (util/printable.ts), and that the paths
// which do not go through the CLI's output helpers use it too: the logger (file and debug echo)
// and the protocol's last stderr line, which PVE shows in the task log.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { printable, printableLines } from '../../host/src/util/printable.js';
import { createLogger } from '../../host/src/util/logger.js';

// eslint-disable-next-line no-control-regex
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
const ROOT = resolve(import.meta.dirname, '..', '..');

describe('printable', () => {
  it('shows every control character as a visible escape and leaves other text alone', () => {
    expect(printable('a\x1b[31mb\x07c\u009bd\u202ee\nf\tg\rh\x7f')).toBe('a\\x1b[31mb\\x07c\\x9bd\\u{202e}e\\nf\\tg\\rh\\x7f');
    expect(printable('vzdump-qemu-100 – notes: ünïcödé ✓ 日本')).toBe('vzdump-qemu-100 – notes: ünïcödé ✓ 日本');
  });

  it('printableLines keeps the layout (newline, tab) and escapes the rest', () => {
    expect(printableLines('a\tb\nc\x1b[2Jd\re')).toBe('a\tb\nc\\x1b[2Jd\\re');
  });
});

describe('outputs outside the CLI helpers', () => {
  it('the logger writes no raw control character, whatever the message and fields hold', () => {
    const lines: string[] = [];
    const log = createLogger({ file: null, echo: true, stderr: { write: (s: string) => lines.push(s) }, level: 'DEBUG' });
    log.warn('bad key \x1b]0;x\x07', { key: 'dump/\x1b[2Jx\u009b', note: 'a\u202eb' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.trimEnd()).not.toMatch(RAW);
    expect(lines[0]).toContain('\\x1b]0;x\\x07');
  });

  it("the protocol's message line is escaped (a volume name quoted in an error)", () => {
    const host = join(ROOT, 'host', 'bin', 'pve-s3-host.js');
    if (!existsSync(join(ROOT, 'host', 'dist', 'protocol', 'main.js'))) throw new Error('run `npm run build` first');
    const storage = { id: 'store1', bucket: 'bucket1', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', access_key: 'a', secret_key: 'secret-not-used' };
    const r = spawnSync(process.execPath, [host], {
      input: JSON.stringify({ v: 1, op: 'stat', storage, args: { volname: 'backup/vzdump-qemu-100-\x1b[2J\x1b]0;x\x07.vma' } }),
      encoding: 'utf8',
      env: { ...process.env, PVE_S3_LOG_FILE: '/dev/null', PVE_S3_DEBUG: '' },
    });
    expect(r.status).toBe(2);
    const envelope = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
    expect(envelope.error.code).toBe('InvalidVolname');
    // JSON stays exact: the plugin gets the name as it was
    expect(envelope.error.message).toContain('\x1b[2J');
    expect(r.stderr.trimEnd()).not.toMatch(RAW);
    expect(r.stderr).toContain('vzdump-qemu-100-\\x1b[2J\\x1b]0;x\\x07.vma');
  });
});
