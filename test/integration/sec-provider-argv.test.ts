// The Backup Provider's VM backup runs for as long as the guest's disks take to read, beside
// qemu-storage-daemon and any other process on the node: neither the storage's secret nor its
// manifest key is ever in a process's argv (`ps`, /proc/<pid>/cmdline, world-readable) or in the
// environment of the host or anything it starts, while the backup runs (docs/SECURITY.md).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readKeyring } from '../../host/src/config/manifest-key.js';
import type { S3Client } from '../../host/src/s3/client.js';
import { hostOp, storageSection } from '../helpers/host-op.js';
import { testManifestKey } from '../helpers/manifest-key.js';
import { haveQsd, makeImage, servedCopy, startQsd, tempDir } from '../helpers/qsd.js';
import { closeTestClients, dropBucket, freshBucket, testS3 } from '../helpers/s3.js';

const tmp = tempDir('sec-provider-argv');
let c: S3Client;

beforeAll(async () => {
  c = await freshBucket('sec-pargv');
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  tmp.remove();
});

/** every process's argv, and the environment of the host processes and their children */
function sample(): string {
  let out = '';
  const hosts = new Set<string>();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      out += argv.replace(/\0/g, ' ') + '\n';
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]!;
      if (argv.includes('pve-s3-host') || hosts.has(ppid)) {
        hosts.add(pid);
        out += readFileSync(`/proc/${pid}/environ`, 'utf8').replace(/\0/g, '\n');
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('a provider VM backup under way', () => {
  (haveQsd() ? it : it.skip)('shows neither the secret nor the manifest key in any argv or in the environment of what it runs', async () => {
    const priv = join(tmp.dir, 'priv');
    const key = testManifestKey(priv, 'pa');
    const hex = Buffer.from(readKeyring(key.file)!.current.key).toString('hex');
    const storage = storageSection('pa', c.bucket, { prefix: 'pve/', path: join(tmp.dir, 'cache') });
    const env = { PVE_S3_PRIV_DIR: priv, PVE_S3_LOG_FILE: join(tmp.dir, 'host.log') };
    const img = join(tmp.dir, 'disk.raw');
    const size = makeImage(img, [{ kind: 'data', length: 12 << 20 }], 11);
    const init = await hostOp('backup-init', storage, { vmid: 300, type: 'qemu', time: 1764982800 }, { env });
    const { volname, run } = init.result as { volname: string; run: string };
    const qsd = await startQsd(tmp.dir, [servedCopy({ name: 'drive-scsi0', path: img, size }, tmp.dir)]);
    let seen = '';
    let samples = 0;
    try {
      // 12 MiB of random data at 2 MiB/s: several seconds to look while it runs
      const backup = hostOp('backup-vm', storage, {
        volname, run, time: 1764982800, bwlimit_kib: 2048, config_b64: Buffer.from('memory: 512\n').toString('base64'), devices: [{ name: 'drive-scsi0', size, nbd_path: qsd.socket }],
      }, { env });
      let finished = false;
      void backup.finally(() => (finished = true));
      while (!finished) {
        const s = sample();
        if (s.includes('pve-s3-host')) samples++;
        seen += s;
        await new Promise((r) => setTimeout(r, 200));
      }
      const b = await backup;
      expect(b.ok, JSON.stringify(b.error)).toBe(true);
      seen += b.stderr + (existsSync(join(tmp.dir, 'host.log')) ? readFileSync(join(tmp.dir, 'host.log'), 'utf8') : '');
    } finally {
      await qsd.stop();
    }
    expect(samples).toBeGreaterThan(3);
    expect(seen).toContain('qemu-storage-daemon');
    expect(seen).not.toContain(testS3().secretAccessKey);
    expect(seen).not.toContain(hex);
    expect(seen).not.toContain(hex.slice(0, 16));
  }, 120_000);
});
