import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileHandle } from 'node:fs/promises';
import { FlushBehind, checkDestination, commitTemp, createTemp, discardTemp, tempPathFor, type TempFile } from '../../host/src/transfer/temp-file.js';

describe('temp files beside the destination', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pve-s3-temp-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names the temp file .<name>.pve-s3-tmp-<random> in the same directory', () => {
    const p = tempPathFor('/var/lib/vz/dump/vzdump-qemu-100.vma.zst');
    expect(p).toMatch(/^\/var\/lib\/vz\/dump\/\.vzdump-qemu-100\.vma\.zst\.pve-s3-tmp-[0-9a-f]{12}$/);
    expect(tempPathFor('/x/a')).not.toBe(tempPathFor('/x/a'));
  });

  it('commits by rename and leaves only the final file', async () => {
    const dest = join(dir, 'a.bin');
    const t = await createTemp(dest, 5);
    await t.fh.write(Buffer.from('hello'), 0, 5, 0);
    await commitTemp(t, dest, false);
    expect(await readFile(dest, 'utf8')).toBe('hello');
    expect((await readdir(dir)).filter((n) => n.includes('pve-s3-tmp'))).toEqual([]);
  });

  it('does not replace an existing file without force, and cleans up', async () => {
    const dest = join(dir, 'b.bin');
    await writeFile(dest, 'old');
    await expect(checkDestination(dest, false)).rejects.toMatchObject({ code: 'DestinationExists', exitCode: 2 });
    await expect(checkDestination(dest, true)).resolves.toBeUndefined();
    // a file that appears while the download runs is not clobbered either
    const t = await createTemp(dest, 3);
    await t.fh.write(Buffer.from('new'), 0, 3, 0);
    await expect(commitTemp(t, dest, false)).rejects.toMatchObject({ code: 'DestinationExists' });
    await discardTemp(t);
    expect(await readFile(dest, 'utf8')).toBe('old');
    expect((await readdir(dir)).filter((n) => n.includes('pve-s3-tmp'))).toEqual([]);
  });

  it('replaces with force', async () => {
    const dest = join(dir, 'c.bin');
    await writeFile(dest, 'old');
    const t = await createTemp(dest, 3);
    await t.fh.write(Buffer.from('new'), 0, 3, 0);
    await commitTemp(t, dest, true);
    expect(await readFile(dest, 'utf8')).toBe('new');
  });

  it('refuses a directory as destination', async () => {
    await expect(checkDestination(dir, true)).rejects.toMatchObject({ code: 'InvalidDestination' });
  });

  it('refuses up front when the filesystem cannot hold the object, leaving nothing', async () => {
    const dest = join(dir, 'huge.bin');
    // sizes people read (a 16 GiB restore said 'need 17179869184 bytes, 15326646272 available')
    await expect(createTemp(dest, 2 ** 52)).rejects.toMatchObject({
      code: 'NoSpace',
      message: expect.stringMatching(/^not enough free space in '.+' for 'huge\.bin': it needs 4\.0 PiB \(4503599627370496 bytes\), [\d.]+ (B|KiB|MiB|GiB|TiB|PiB) \(\d+ bytes\) are free$/),
    });
    expect((await readdir(dir)).filter((n) => n.includes('huge.bin'))).toEqual([]);
  });

  it('discard removes the temp file', async () => {
    const dest = join(dir, 'd.bin');
    const t = await createTemp(dest, 1000);
    await discardTemp(t);
    expect((await readdir(dir)).filter((n) => n.startsWith('.d.bin'))).toEqual([]);
  });

  describe('flush behind a download', () => {
    /** a temp file whose fdatasync calls are counted and finish when the test says so */
    function syncs(fail?: Error): { t: TempFile; calls: () => number; finish: () => void } {
      let calls = 0;
      const pending: Array<() => void> = [];
      const fh = {
        datasync: () =>
          new Promise<void>((res, rej) => {
            calls++;
            pending.push(() => (fail ? rej(fail) : res()));
          }),
      } as unknown as FileHandle;
      return { t: { path: '/srv/.x.pve-s3-tmp-0', fh }, calls: () => calls, finish: () => pending.splice(0).forEach((f) => f()) };
    }
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

    it('runs one flush at a time: kicks meanwhile ask for one more, done() waits for it', async () => {
      const s = syncs();
      const f = new FlushBehind(s.t);
      f.kick();
      f.kick();
      f.kick();
      expect(s.calls()).toBe(1);
      let settled = false;
      const done = f.done().then(() => (settled = true));
      s.finish();
      await turn();
      expect(s.calls()).toBe(2);
      expect(settled).toBe(false);
      s.finish();
      await done;
      expect(s.calls()).toBe(2);
      await f.done();
    });

    it('a failed flush fails the download with WriteFailed naming the file, and stops flushing', async () => {
      const s = syncs(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
      const f = new FlushBehind(s.t);
      f.kick();
      s.finish();
      await expect(f.done()).rejects.toMatchObject({ code: 'WriteFailed', message: expect.stringMatching(/\.x\.pve-s3-tmp-0.*EIO/) });
      f.kick();
      expect(s.calls()).toBe(1);
    });

    it('flushes a real temp file that is then committed whole', async () => {
      const dest = join(dir, 'f.bin');
      const t = await createTemp(dest, 6);
      const f = new FlushBehind(t);
      await t.fh.write(Buffer.from('abc'), 0, 3, 0);
      f.kick();
      await t.fh.write(Buffer.from('def'), 0, 3, 3);
      f.kick();
      await f.done();
      await commitTemp(t, dest, false);
      expect(await readFile(dest, 'utf8')).toBe('abcdef');
    });
  });
});
