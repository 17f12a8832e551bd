// Pure pieces of the commands: argument parsing errors, sizes, tables, the progress line.
import { describe, expect, it } from 'vitest';
import { parse, sizeOpt, UsageError } from '../../host/src/cli/args.js';
import { formatBytes, table } from '../../host/src/cli/output.js';
import { renderProgress } from '../../host/src/cli/progress.js';

describe('args', () => {
  const opts = { size: { type: 'string' }, n: { type: 'boolean' } } as const;

  it('unknown options and missing values are one-line usage errors (exit 2)', () => {
    for (const argv of [['--nope'], ['--size'], ['stray']]) {
      let err: unknown;
      try {
        parse('cmd', 'cmd [--size S]', argv, opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(2);
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).toMatch(/; usage: cmd \[--size S\] \(see cmd --help\)$/);
    }
  });

  it('an option without its value says which, what follows it, and how to give a value starting with -', () => {
    const msg = (argv: string[]) => {
      try {
        parse('cmd', 'cmd [--size S]', argv, opts);
      } catch (e) {
        return (e as Error).message;
      }
      return 'parsed';
    };
    expect(msg(['--size', '-1'])).toBe("--size needs a value, but '-1' follows it; if '-1' is the value, write --size=-1; usage: cmd [--size S] (see cmd --help)");
    expect(msg(['--size', '--n'])).toMatch(/^--size needs a value, but '--n' follows it; /);
    expect(msg(['--n', '--size'])).toMatch(/^--size needs a value, and none follows it; usage: /);
    // written with '=', a value starting with '-' reaches the option's own check
    expect(msg(['--size=-1'])).toBe('parsed');
  });

  it('sizes: binary units, plain bytes; anything else names the option and value', () => {
    const p = (v: string) => sizeOpt({ values: { size: v }, positionals: [] }, 'size');
    expect(p('1T')).toBe(1024 ** 4);
    expect(p('500G')).toBe(500 * 1024 ** 3);
    expect(p('64MiB')).toBe(64 * 1024 ** 2);
    expect(p('4096')).toBe(4096);
    for (const bad of ['0', '-1', '1.5G', '12Q', '']) expect(() => p(bad)).toThrow(/invalid --size '.*': must be a size such as 500G, 2T or a byte count/);
  });
});

describe('output', () => {
  it('bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(12 * 1024 * 1024 + 12345)).toBe('12.0 MiB');
    expect(formatBytes(150 * 1024 ** 3)).toBe('150 GiB');
  });

  it('tables align columns, right-align numbers, keep cells on one line', () => {
    const t = table(
      [
        { a: 'x', n: 5, note: 'two\nlines' },
        { a: 'longer', n: 100, note: '' },
      ],
      [
        { title: 'NAME', get: (r) => r.a },
        { title: 'N', get: (r) => String(r.n), right: true },
        { title: 'NOTE', get: (r) => r.note },
      ],
    );
    expect(t).toBe('NAME      N  NOTE\nx         5  two lines\nlonger  100\n');
  });
});

describe('progress line', () => {
  it('bar, percentage, bytes of total, rate and ETA; unknown totals have no bar and no ETA', () => {
    const MiB = 1024 * 1024;
    expect(renderProgress('a.vma', { bytes: 25 * MiB, total: 100 * MiB, parts: 1, partsTotal: 4, rate: 5 * MiB }, 10)).toBe(
      'a.vma [###.......]  25% 25.0 MiB / 100 MiB  5.0 MiB/s  ETA 00:15',
    );
    expect(renderProgress('s', { bytes: 3 * MiB, total: null, parts: 0, partsTotal: null, rate: 0 })).toBe('s 3.0 MiB  0.0 MiB/s  ETA --:--');
    expect(renderProgress('b', { bytes: 0, total: 7200 * MiB, parts: 0, partsTotal: 10, rate: MiB }, 4)).toMatch(/ETA 2:00:00$/);
  });

  it("a stream of expected size: bar and ETA against the estimate, marked '~', bytes only beyond it", () => {
    const MiB = 1024 * 1024;
    const at = (bytes: number) => renderProgress('s.vma', { bytes, total: null, parts: 0, partsTotal: null, rate: 5 * MiB }, 10, 100 * MiB);
    expect(at(25 * MiB)).toBe('s.vma [###.......] ~ 25% 25.0 MiB / ~100 MiB  5.0 MiB/s  ETA ~00:15');
    expect(at(100 * MiB)).toBe('s.vma 100 MiB  5.0 MiB/s  ETA --:--');
    expect(renderProgress('s.vma', { bytes: 0, total: null, parts: 0, partsTotal: null, rate: 0 }, 10, 100 * MiB)).toBe('s.vma [..........] ~  0% 0 B / ~100 MiB  0.0 MiB/s  ETA --:--');
  });
});

describe('verified source removal (store/local-files.ts)', () => {
  const vol = (o: Partial<import('../../host/src/store/types.js').Volume>) =>
    ({ volid: 's:backup/a.vma', volname: 'backup/a.vma', content: 'backup', name: 'a.vma', key: 'dump/a.vma', size: 4, ctime: 0, protected: false, manifest: true, verified: true, trust: 'verified', ...o }) as import('../../host/src/store/types.js').Volume;

  it('keeps the local files unless the upload is verified and of the local size', async () => {
    const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
    const { existsSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { removeVerifiedSource, assertUploadVerified } = await import('../../host/src/store/local-files.js');
    const d = await mkdtemp(join(tmpdir(), 'pve-s3-unit-rm-'));
    const f = join(d, 'a.vma');
    await writeFile(f, 'abcd');
    await writeFile(f + '.notes', 'n');
    const { stat } = await import('node:fs/promises');
    const uploaded = await stat(f);
    // intact means the manifest matches the object; an unsigned upload (no manifest key) is intact too
    for (const bad of [vol({ verified: false, trust: 'incomplete' }), vol({ manifest: false, verified: false, trust: 'incomplete' }), vol({ size: 5 }), vol({ trust: undefined })]) {
      await expect(removeVerifiedSource(bad, f, uploaded)).rejects.toMatchObject({ code: 'IntegrityError', exitCode: 5 });
      expect(existsSync(f) && existsSync(f + '.notes')).toBe(true);
    }
    expect(() => assertUploadVerified(vol({ verified: false, trust: 'incomplete' }))).toThrow(/could not be verified \(size 4, manifest present, not matching\)$/);
    expect(() => assertUploadVerified(vol({ verified: false, trust: 'unverified' }))).not.toThrow();
    await removeVerifiedSource(vol({}), f, uploaded);
    expect(existsSync(f) || existsSync(f + '.notes')).toBe(false);
    await rm(d, { recursive: true, force: true });
  });
});
