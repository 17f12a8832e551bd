// A restore to a pipe, as PVE restores stream archives (pve-s3-restore --destination - | zstd -d |
// qmrestore - VMID): the bytes arrive intact when the reader is slower than the download (the
// restore waits for it, holding a bounded number of parts), and a damaged part never reaches the
// reader: what it got is whole parts that verified, then the restore fails naming the part.
// Also check-integrity reading volumes at once, its progress drawn on a terminal (a pty).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { crcKeepingMask } from '../helpers/crc64.js';
import { rssProbe } from '../helpers/max-rss.js';
import { flipStoredByte, xorStoredBytes } from '../helpers/rados.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { screen } from '../helpers/terminal.js';
import { BIN, MiB, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('restore-pipe');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-restore-pipe-'));
  // 5 MiB parts, two in flight: a restore to a pipe holds at most three parts
  env = await cfgEnv(dir, [s3Section('s3p', c.bucket, { multipart_chunk_size: '5', max_concurrent_uploads: '2' })]);
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

async function backup(name: string, data: Buffer): Promise<string> {
  await writeFile(join(dir, name), data);
  const r = await run('pve-s3-backup', ['--storage', 's3p', '--source', join(dir, name)], { env });
  expect(r.code, r.stderr).toBe(0);
  return `dump/${name}`;
}

/**
 * pve-s3-restore --destination - with its stdout a pipe this test reads from, slowly: after each
 * read it stops reading for `pauseMs`, so the pipe fills and the restore has to wait for it.
 */
function restoreToSlowReader(name: string, extra: string[], pauseMs: number, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: Buffer; stderr: string; reads: number }> {
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, [join(BIN, 'pve-s3-restore.js'), '--storage', 's3p', '--source', name, '--destination', '-', ...extra], {
      env: { ...env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    let reads = 0;
    p.stdout.on('data', (d: Buffer) => {
      out.push(d);
      reads++;
      p.stdout.pause();
      setTimeout(() => p.stdout.resume(), pauseMs);
    });
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code, out: Buffer.concat(out), stderr, reads }));
  });
}

describe('restore to a pipe', () => {
  it('a reader slower than the download gets every byte, in order, from a restore holding a few parts only', async () => {
    const name = 'vzdump-qemu-801-2025_01_01-00_00_00.vma.zst';
    const data = randomBytes(64 * MiB + 7); // 13 parts, the last one short
    await backup(name, data);
    const small = 'vzdump-qemu-800-2025_01_01-00_00_00.vma.zst';
    await backup(small, randomBytes(MiB));
    // 64 KiB a read (the pipe's size) every 2 ms: about 30 MiB/s, far below the local gateway's rate
    const base = await rssProbe(dir, 'restore-pipe-small');
    expect((await restoreToSlowReader(small, [], 2, base.env)).code).toBe(0);
    const probe = await rssProbe(dir, 'restore-pipe-slow');
    const r = await restoreToSlowReader(name, [], 2, probe.env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.out.length).toBe(data.length);
    expect(r.out.equals(data)).toBe(true);
    expect(r.reads).toBeGreaterThan(100); // it was read piece by piece, not in one go at the end
    expect(r.stderr).toMatch(/restored s3p:backup\/\S+ to stdout .* CRC-64\/NVME verified against the manifest/);
    // it waited for the reader with at most three 5 MiB parts (two fetched ahead, one being
    // written), not with what the gateway had sent meanwhile: well under the 64 MiB archive
    expect((await probe.peakMiB()) - (await base.peakMiB())).toBeLessThan(32);
  });

  it('a damaged part (CRC-64/NVME, the default): the reader gets only whole parts before it; exit 5 names the part', async () => {
    const name = 'vzdump-qemu-802-2025_01_01-00_00_00.vma.zst';
    const data = randomBytes(23 * MiB);
    const key = await backup(name, data);
    await flipStoredByte(c.bucket, key, 12 * MiB + 5); // part 3
    for (const pauseMs of [0, 2]) {
      const r = await restoreToSlowReader(name, [], pauseMs);
      expect(r.code, r.stderr).toBe(5);
      expect(r.stderr).toMatch(/part 3 \(bytes 10485760\.\.15728639\) does not match its CRC-64\/NVME in the manifest/);
      // parts 1 and 2 may have gone out (they verified), never a byte of part 3
      expect([0, 5 * MiB, 10 * MiB]).toContain(r.out.length);
      expect(r.out.equals(data.subarray(0, r.out.length))).toBe(true);
      expect(r.stderr).not.toMatch(/restored /);
    }
  });

  it('a change that keeps every CRC: --verify sha256 stops before the part, through the pipe too', async () => {
    const name = 'vzdump-qemu-803-2025_01_01-00_00_00.vma.zst';
    const data = randomBytes(18 * MiB);
    const key = await backup(name, data);
    await xorStoredBytes(c.bucket, key, 6 * MiB + 11, crcKeepingMask(0x5a)); // part 2
    const r = await restoreToSlowReader(name, ['--verify', 'sha256'], 1);
    expect(r.code, r.stderr).toBe(5);
    expect(r.stderr).toMatch(/part 2 \(bytes 5242880\.\.10485759\) does not match its SHA-256 in the manifest/);
    expect([0, 5 * MiB]).toContain(r.out.length);
    expect(r.out.equals(data.subarray(0, r.out.length))).toBe(true);
  });
});

describe('check-integrity --parallel 2 --progress', () => {
  const names = ['vzdump-qemu-811-2025_01_01-00_00_00.vma.zst', 'vzdump-qemu-812-2025_01_01-00_00_00.vma.zst'];

  beforeAll(async () => {
    await backup(names[0]!, randomBytes(21 * MiB));
    await backup(names[1]!, randomBytes(16 * MiB));
  });

  it('on a terminal: one line per volume as it is checked, then the whole run, none drawn over another', async () => {
    // script(1) runs the command on a pty: stderr is a terminal there, as an administrator sees it
    const cmd = `${process.execPath} ${join(BIN, 'pve-s3-maintenance.js')} --storage s3p --action check-integrity --parallel 2 --source ${names[0]} --source ${names[1]}`;
    const r = await run(`script -qfec ${JSON.stringify(cmd)} /dev/null`, [], { env, shell: true });
    expect(r.code, r.stderr).toBe(0);
    const lines = screen(r.stdout).filter((l) => l !== '');
    expect(lines.filter((l) => l.startsWith('checked ')).sort()).toEqual(names.map((n) => `checked backup/${n}: good`));
    expect(lines).toContainEqual(expect.stringMatching(/^2\/2 volumes \[#{24}\] 100% 37\.0 MiB \/ 37\.0 MiB  [\d.]+ MiB\/s  ETA 00:00$/));
    // the verdicts on stdout, after the progress
    expect(lines.filter((l) => /^GOOD\s/.test(l))).toHaveLength(2);
    expect(lines).toContain('integrity: 2 good, 0 corrupt');
  });

  it('into a log (no terminal): each progress line starts with its volume, its verdict line after its last one', async () => {
    const r = await run('pve-s3-maintenance', ['--storage', 's3p', '--action', 'check-integrity', '--parallel', '2', '--progress', '--source', names[0]!, '--source', names[1]!], { env });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l !== '');
    for (const n of names) {
      const done = lines.indexOf(`checked backup/${n}: good`);
      expect(done, r.stderr).toBeGreaterThan(0);
      const own = lines.slice(0, done).filter((l) => l.startsWith(`${n} [`));
      expect(own.at(-1)).toMatch(/ 100% /);
    }
    for (const l of lines) expect(l).toMatch(new RegExp(`^(${names.map((n) => n.replaceAll('.', '\\.')).join('|')}) \\[|^checked backup/|^pve-s3-maintenance: compared`));
    expect(r.stdout).not.toMatch(/\[#/);
  });
});
