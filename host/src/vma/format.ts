/**
 * The VMA format (pve-qemu vma_spec.txt; layout details as pve-qemu's vma-writer.c and
 * vma-reader.c use them): a 12288-byte header plus blob buffer, then extents of a 512-byte
 * header and the stored 4 KiB blocks. Big-endian, except the blob lengths (little-endian, as the
 * C reader decodes them).
 */
import { Md5 } from '../wasm/digests.js';

export const CLUSTER_SIZE = 65536;
export const BLOCK_SIZE = 4096;
export const BLOCKS_PER_CLUSTER = 16;
export const EXTENT_HEADER_SIZE = 512;
export const CLUSTERS_PER_EXTENT = 59;
export const HEADER_FIXED_SIZE = 12288;
export const MAX_BLOB = 65535;
export const MAX_DEVICES = 254;
export const MAX_EXTENT_SIZE = EXTENT_HEADER_SIZE + CLUSTERS_PER_EXTENT * CLUSTER_SIZE;

export const VMA_MAGIC = Buffer.from('VMA\0', 'latin1');
export const EXTENT_MAGIC = Buffer.from('VMAE', 'latin1');

/** header field offsets */
export const H = {
  version: 4,
  uuid: 8,
  ctime: 24,
  md5: 32,
  blobOffset: 48,
  blobSize: 52,
  headerSize: 56,
  configNames: 2044,
  configData: 3068,
  devInfo: 4096,
  devInfoSize: 32,
} as const;

/** extent header field offsets */
export const E = { blockCount: 6, uuid: 8, md5: 24, blockinfo: 40 } as const;

export interface VmaConfig {
  name: string;
  data: Buffer;
}

export interface VmaDevice {
  /** 1..254 */
  id: number;
  name: string;
  size: number;
}

/** MD5 of a header whose md5 field (16 bytes at `at`) is taken as zero. */
export function md5WithZeroField(buf: Uint8Array, at: number): Buffer {
  const m = new Md5();
  m.update(buf.subarray(0, at));
  m.update(new Uint8Array(16));
  m.update(buf.subarray(at + 16));
  return Buffer.from(m.digest());
}

export function clusterCount(size: number): number {
  return Math.ceil(size / CLUSTER_SIZE);
}

export function blockinfo(mask: number, devId: number, cluster: number): bigint {
  return (BigInt(mask) << 48n) | (BigInt(devId) << 32n) | BigInt(cluster);
}
