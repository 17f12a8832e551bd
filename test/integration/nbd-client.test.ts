/**
 * The project's NBD client against QEMU's own NBD server (qemu-storage-daemon), several exports
 * on one unix socket as qemu-server's archive_external sets them up.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdClient } from '../../host/src/nbd/client.js';
import { STATE_ZERO } from '../../host/src/nbd/protocol.js';
import { allocatedBytes, haveQsd, servedCopy, standardImages, startQsd, tempDir, type Qsd, type TestImage } from '../helpers/qsd.js';

const d = haveQsd() ? describe : describe.skip;

d('NBD client against qemu-storage-daemon', () => {
  const tmp = tempDir('nbd');
  let images: TestImage[];
  let qsd: Qsd;
  beforeAll(async () => {
    images = standardImages(tmp.dir, 7);
    qsd = await startQsd(tmp.dir, images.map((i) => servedCopy(i, tmp.dir)));
  });
  afterAll(async () => {
    await qsd?.stop();
    tmp.remove();
  });

  it('negotiates each export by name and reads it back byte for byte, pipelined', async () => {
    for (const img of images) {
      const c = await NbdClient.connect({ socket: qsd.socket, exportName: img.name });
      expect(c.size).toBe(img.size);
      expect(c.canTrim).toBe(true);
      const want = readFileSync(img.path);
      const step = 1 << 20;
      const parts = [];
      for (let off = 0; off < c.size; off += step) parts.push(c.read(off, Math.min(step, c.size - off)));
      const got = Buffer.concat(await Promise.all(parts));
      expect(got.equals(want)).toBe(true);
      await c.close();
    }
  });

  it('reports holes through base:allocation block status', async () => {
    const img = images[0]!;
    const c = await NbdClient.connect({ socket: qsd.socket, exportName: img.name });
    const ext = [];
    for (let off = 0; off < c.size; ) {
      const e = await c.blockStatus(off, c.size - off);
      expect(e.length).toBeGreaterThan(0);
      ext.push(...e);
      off = e[e.length - 1]!.offset + e[e.length - 1]!.length;
    }
    const zeroBytes = ext.filter((e) => e.flags & STATE_ZERO).reduce((s, e) => s + Math.min(e.length, img.size - e.offset), 0);
    // the 20 MiB hole at least is reported as zero
    expect(zeroBytes).toBeGreaterThanOrEqual(20 << 20);
    expect(ext[0]).toMatchObject({ offset: 0 });
    await c.close();
  });

  it('discards: TRIM punches the range out of the served image', async () => {
    const img = images[1]!;
    const served = `${tmp.dir}/${img.name}.served`;
    const before = allocatedBytes(served);
    const c = await NbdClient.connect({ socket: qsd.socket, exportName: img.name });
    await c.trim(0, 4 << 20);
    await c.close();
    expect(allocatedBytes(served)).toBeLessThanOrEqual(before - (4 << 20));
  });

  it('names a wrong export clearly', async () => {
    await expect(NbdClient.connect({ socket: qsd.socket, exportName: 'drive-nope' })).rejects.toThrow(
      /NBD export 'drive-nope' at .*nbd\.sock: the server refused .*export 'drive-nope' not present/,
    );
  });

  it('fails every request in flight when the server goes away', async () => {
    const t2 = tempDir('nbd-kill');
    const img = images[1]!;
    const q2 = await startQsd(t2.dir, [servedCopy(img, t2.dir)]);
    const c = await NbdClient.connect({ socket: q2.socket, exportName: img.name });
    await c.read(0, 65536);
    q2.proc.kill('SIGKILL');
    await q2.stop();
    await expect(c.read(0, 65536)).rejects.toMatchObject({ code: 'NbdError', message: expect.stringMatching(/connection closed by the server/) });
    t2.remove();
  });
});
