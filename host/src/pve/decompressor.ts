/**
 * The programs that decompress a backup archive: PVE's `decompressor_info` (pve-storage
 * Storage.pm) for VMA archives — the same programs, so whatever PVE can read, a restore from the
 * bucket reads too. They write the plain stream to stdout.
 */
import { EXIT, PveS3Error } from '../util/errors.js';
import type { Compression } from './volname.js';

const PROGRAMS: Partial<Record<Compression, { argv: string[]; pkg: string }>> = {
  zst: { argv: ['zstd', '-q', '-d', '-c'], pkg: 'zstd' },
  gz: { argv: ['gzip', '-d', '-c'], pkg: 'gzip' },
  lzo: { argv: ['lzop', '-d', '-c'], pkg: 'lzop' },
  bz2: { argv: ['bzip2', '-q', '-d', '-c'], pkg: 'bzip2' },
};

/** argv of the decompressor for `compression`, or null for an uncompressed archive */
export function decompressorFor(compression: Compression | undefined, name: string): { argv: string[]; pkg: string } | null {
  if (compression === undefined) return null;
  const p = PROGRAMS[compression];
  if (!p) throw new PveS3Error('NotSupported', `'${name}': PVE backups are not compressed with ${compression}`, { exitCode: EXIT.usage });
  return p;
}
