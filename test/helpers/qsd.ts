/**
 * QEMU's own NBD server for tests: Debian's qemu-storage-daemon (package qemu-system-common)
 * serving several exports on one unix socket the way qemu-server's `archive_external` sets up a
 * VM for a backup provider — `nbd-server-start` on a unix socket, then one `block-export-add`
 * per device with `name` = the device name and `writable` (for discard).
 *
 * And test images: several devices with sizes that are not multiples of 64 KiB, holes (never
 * written: sparse in the file), random data, written all-zero regions and partial clusters.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, writeSync, ftruncateSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rng } from './random.js';

export const QSD = '/usr/bin/qemu-storage-daemon';

export function haveQsd(): boolean {
  return existsSync(QSD);
}

export interface QsdDevice {
  name: string;
  path: string;
}

export interface Qsd {
  socket: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startQsd(dir: string, devices: QsdDevice[], o: { readOnly?: boolean } = {}): Promise<Qsd> {
  const socket = join(dir, 'nbd.sock');
  const args: string[] = [];
  devices.forEach((d, i) => {
    args.push('--blockdev', `driver=file,node-name=file${i},filename=${d.path},discard=unmap`);
    args.push('--blockdev', `driver=raw,node-name=node${i},file=file${i},discard=unmap`);
  });
  args.push('--nbd-server', `addr.type=unix,addr.path=${socket}`);
  devices.forEach((d, i) => {
    args.push('--export', `type=nbd,id=${d.name},node-name=node${i},name=${d.name},writable=${o.readOnly ? 'off' : 'on'}`);
  });
  const proc = spawn(QSD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  for (let i = 0; i < 200 && !existsSync(socket); i++) {
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(socket)) {
    proc.kill('SIGKILL');
    throw new Error(`qemu-storage-daemon did not start: ${stderr.trim()}`);
  }
  return {
    socket,
    proc,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface TestImage {
  name: string;
  path: string;
  size: number;
}

/** One region of an image: `data` random bytes, `zero` written zeros (allocated), `hole` never written. */
export type Region = { kind: 'data' | 'zero' | 'hole'; length: number };

export function makeImage(path: string, regions: Region[], seed: number): number {
  const r = rng(seed);
  const fd = openSync(path, 'w');
  let off = 0;
  try {
    for (const g of regions) {
      if (g.kind !== 'hole') {
        for (let done = 0; done < g.length; ) {
          const n = Math.min(4 << 20, g.length - done);
          const buf = g.kind === 'data' ? r.bytes(n) : new Uint8Array(n);
          writeSync(fd, buf, 0, n, off + done);
          done += n;
        }
      }
      off += g.length;
    }
    ftruncateSync(fd, off);
  } finally {
    closeSync(fd);
  }
  return off;
}

const K = 1024;
const M = 1024 * 1024;

/** The standard device set of the provider tests: sizes are not multiples of 64 KiB, but of
 *  512 (QEMU's file driver rounds a file's size up to whole sectors, as real disks are). */
export function standardImages(dir: string, seed: number): TestImage[] {
  const specs: Array<[string, Region[]]> = [
    [
      'drive-scsi0',
      [
        { kind: 'data', length: 3 * M + 4 * K },
        { kind: 'hole', length: 20 * M },
        { kind: 'zero', length: 2 * M },
        { kind: 'data', length: 100 * K + 17 },
        { kind: 'hole', length: 1 * M + 333 },
        { kind: 'data', length: 5 * M },
        { kind: 'hole', length: 12450 },
      ],
    ],
    ['drive-virtio1', [{ kind: 'data', length: 7 * M + 4608 }]],
    ['drive-efidisk0', [{ kind: 'hole', length: 528 * K }]],
    [
      'drive-tpmstate0-backup',
      [
        { kind: 'zero', length: 8 * K },
        { kind: 'data', length: 3 * K + 512 },
      ],
    ],
  ];
  return specs.map(([name, regions], i) => {
    const path = join(dir, `${name}.raw`);
    const size = makeImage(path, regions, seed + i);
    return { name, path, size };
  });
}

/** A copy to serve (discard punches holes into it), keeping the original for comparisons. */
export function servedCopy(img: TestImage, dir: string): QsdDevice {
  const path = join(dir, `${img.name}.served`);
  // cp keeps the holes (a plain copy may fill them, and block status would see data)
  const r = spawnSync('cp', ['--sparse=always', img.path, path]);
  if (r.status !== 0) throw new Error(`cp ${img.path}: ${String(r.stderr)}`);
  return { name: img.name, path };
}

export function tempDir(tag: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), `pve-s3-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** allocated bytes of a file (st_blocks × 512): shows that discards punched holes */
export function allocatedBytes(path: string): number {
  const r = spawnSync('stat', ['-c', '%b %B', path], { encoding: 'utf8' });
  const [blocks, unit] = r.stdout.trim().split(' ').map(Number);
  return blocks! * unit!;
}

/**
 * Processes working under `dir`: by their working directory (a restore's NBD server runs in its
 * restore directory) or an argument naming a path in it (nbdfuse, qemu-img, a decompressor).
 */
export function processesIn(dir: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`);
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      if (cwd.startsWith(dir) || args.includes(dir)) out.push(`${pid} ${args}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
