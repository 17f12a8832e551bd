// readVma hands stored blocks out in runs (host/src/vma/reader.ts): blocks that follow each other
// on the device and in the extent go out in one call, so a fully used extent is one call, not 944;
// zero blocks inside a cluster, another device, a device's cut-off last block end a run. Whatever
// the cut, the runs rebuild the devices byte for byte.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLUSTER_SIZE, CLUSTERS_PER_EXTENT } from '../../host/src/vma/format.js';
import { readVma } from '../../host/src/vma/reader.js';
import { buildHeader, ExtentBuilder, newUuid } from '../../host/src/vma/writer.js';

interface Dev { id: number; name: string; size: number }

function vmaOf(devs: Array<{ dev: Dev; data: Buffer }>): Buffer {
  const uuid = newUuid();
  const out = [buildHeader({ uuid, ctime: 1, configs: [{ name: 'qemu-server.conf', data: Buffer.from('memory: 1\n') }], devices: devs.map((d) => d.dev) })];
  for (const { dev, data } of devs) {
    const b = new ExtentBuilder(uuid, dev.id, dev.size);
    for (let c = 0; c * CLUSTER_SIZE < dev.size; c++) b.add(c, data.subarray(c * CLUSTER_SIZE, (c + 1) * CLUSTER_SIZE));
    b.flush();
    out.push(b.take());
  }
  return Buffer.concat(out);
}

async function read(vma: Buffer, devs: Dev[], chunk: number): Promise<{ calls: Array<[string, number, number]>; images: Map<string, Buffer> }> {
  const images = new Map(devs.map((d) => [d.name, Buffer.alloc(d.size)]));
  const calls: Array<[string, number, number]> = [];
  const pieces = (function* () {
    for (let at = 0; at < vma.length; at += chunk) yield vma.subarray(at, at + chunk);
  })();
  await readVma(pieces, {
    onData: async (dev, off, data) => {
      await Promise.resolve();
      calls.push([dev.name, off, data.length]);
      data.copy(images.get(dev.name)!, off);
    },
  });
  return { calls, images };
}

describe('readVma', () => {
  it('hands a fully used extent out as one run', async () => {
    const dev = { id: 1, name: 'drive-scsi0', size: CLUSTERS_PER_EXTENT * CLUSTER_SIZE };
    const data = randomBytes(dev.size);
    const { calls, images } = await read(vmaOf([{ dev, data }]), [dev], 65536);
    expect(calls).toEqual([['drive-scsi0', 0, dev.size]]);
    expect(images.get('drive-scsi0')!.equals(data)).toBe(true);
  });

  it('cuts runs at zero blocks, at the extent, at another device and at a device\'s cut-off end; the runs rebuild every device', async () => {
    const a = { id: 1, name: 'drive-scsi0', size: 70 * CLUSTER_SIZE };
    const b = { id: 2, name: 'drive-scsi1', size: 3 * CLUSTER_SIZE + 4096 + 100 };
    const da = randomBytes(a.size);
    da.fill(0, 5 * CLUSTER_SIZE + 8192, 5 * CLUSTER_SIZE + 12288); // one zero block inside cluster 5
    da.fill(0, 20 * CLUSTER_SIZE, 22 * CLUSTER_SIZE); // two zero clusters
    const db = randomBytes(b.size);
    const devs = [a, b];
    for (const chunk of [4096 + 7, 1 << 20]) {
      const { calls, images } = await read(vmaOf([{ dev: a, data: da }, { dev: b, data: db }]), devs, chunk);
      expect(images.get(a.name)!.equals(da)).toBe(true);
      expect(images.get(b.name)!.equals(db)).toBe(true);
      expect(calls).toEqual([
        ['drive-scsi0', 0, 5 * CLUSTER_SIZE + 8192],
        ['drive-scsi0', 5 * CLUSTER_SIZE + 12288, 15 * CLUSTER_SIZE - 12288],
        ['drive-scsi0', 22 * CLUSTER_SIZE, (59 - 22) * CLUSTER_SIZE],
        ['drive-scsi0', 59 * CLUSTER_SIZE, 11 * CLUSTER_SIZE],
        ['drive-scsi1', 0, 3 * CLUSTER_SIZE + 4096 + 100],
      ]);
    }
  });
});
