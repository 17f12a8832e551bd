/**
 * The frame index of a provider-made `.vma.zst` (docs/BACKUP-PROVIDER.md §4): where each
 * independent zstd frame lies in the object and which device clusters it holds, so a restore can
 * fetch any part of a device with ranged GETs and answer zero ranges without reading. Binary,
 * big-endian, fixed-size records (a 1 TiB disk has ~65 536 frames: a 5 MiB index).
 *
 * Version 2 records a CRC-64/NVME of each frame beside its SHA-256, in the 8 bytes version 1 left
 * zero: restores check the CRC (issue 13: ~5x less CPU than SHA-256, and what they have to
 * catch is damage, not forgery — the manifest's HMAC covers the index, the index every frame).
 * Version 1 indexes (written before) still read; their frames are checked by SHA-256.
 */
import { PveS3Error } from '../util/errors.js';
import type { VmaDevice } from './format.js';

export const INDEX_TYPE = 'vma-zstd-frames-1';
export const INDEX_MAGIC = Buffer.from('PS3FIDX1', 'latin1');
/** what encodeIndex writes; decodeIndex reads 1 and 2 */
export const INDEX_VERSION = 2;
const HEADER = 64;
const DEVICE = 64;
const RECORD = 80;
const NAME_MAX = 48;

export const FrameKind = { header: 0, data: 1, zero: 2 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface FrameRecord {
  /** where the compressed frame starts in the object */
  offset: number;
  clen: number;
  ulen: number;
  /** where its bytes start in the VMA stream */
  voffset: number;
  /** 0 for the header frame */
  devId: number;
  kind: FrameKind;
  firstCluster: number;
  clusterCount: number;
  storedBlocks: number;
  /** SHA-256 of the compressed frame bytes */
  sha256: Buffer;
  /** CRC-64/NVME of the compressed frame bytes; absent in a version 1 index */
  crc64?: bigint;
}

export interface FrameIndex {
  uuid: Buffer;
  archiveSize: number;
  devices: VmaDevice[];
  frames: FrameRecord[];
}

export function encodeIndex(ix: FrameIndex): Buffer {
  const b = Buffer.alloc(HEADER + DEVICE * ix.devices.length + RECORD * ix.frames.length);
  INDEX_MAGIC.copy(b, 0);
  b.writeUInt32BE(INDEX_VERSION, 8);
  b.writeUInt32BE(RECORD, 12);
  b.writeBigUInt64BE(BigInt(ix.frames.length), 16);
  b.writeBigUInt64BE(BigInt(ix.archiveSize), 24);
  ix.uuid.copy(b, 32);
  b.writeUInt32BE(65536, 48);
  b.writeUInt32BE(ix.devices.length, 52);
  let at = HEADER;
  for (const d of ix.devices) {
    const name = Buffer.from(d.name, 'utf8');
    if (name.length > NAME_MAX) throw new PveS3Error('InvalidArgument', `device name '${d.name}' is longer than ${NAME_MAX} bytes`);
    b.writeUInt8(d.id, at);
    b.writeUInt8(name.length, at + 1);
    b.writeBigUInt64BE(BigInt(d.size), at + 8);
    name.copy(b, at + 16);
    at += DEVICE;
  }
  for (const f of ix.frames) {
    b.writeBigUInt64BE(BigInt(f.offset), at);
    b.writeUInt32BE(f.clen, at + 8);
    b.writeUInt32BE(f.ulen, at + 12);
    b.writeBigUInt64BE(BigInt(f.voffset), at + 16);
    b.writeUInt8(f.devId, at + 24);
    b.writeUInt8(f.kind, at + 25);
    b.writeUInt32BE(f.firstCluster, at + 28);
    b.writeUInt32BE(f.clusterCount, at + 32);
    b.writeUInt32BE(f.storedBlocks, at + 36);
    if (f.crc64 === undefined) throw new PveS3Error('InternalError', `frame at ${f.offset} has no CRC-64/NVME`);
    b.writeBigUInt64BE(f.crc64, at + 40);
    f.sha256.copy(b, at + 48);
    at += RECORD;
  }
  return b;
}

function bad(what: string): PveS3Error {
  return new PveS3Error('IntegrityError', `frame index invalid: ${what}`, { exitCode: 5 });
}

/** Parses and checks an index: frames contiguous from 0 to the archive size, each device's
 *  clusters covered exactly once and in order. */
export function decodeIndex(b: Buffer): FrameIndex {
  if (b.length < HEADER || !b.subarray(0, 8).equals(INDEX_MAGIC)) throw bad('wrong magic');
  const version = b.readUInt32BE(8);
  if (version > INDEX_VERSION) {
    throw new PveS3Error('NotSupported', `frame index version ${version} is newer than this pve-s3 reads (1..${INDEX_VERSION}): update pve-s3`);
  }
  if (version < 1 || b.readUInt32BE(12) !== RECORD) throw bad(`version ${version} / record size ${b.readUInt32BE(12)} not supported`);
  const nFrames = Number(b.readBigUInt64BE(16));
  const archiveSize = Number(b.readBigUInt64BE(24));
  const nDev = b.readUInt32BE(52);
  if (b.length !== HEADER + DEVICE * nDev + RECORD * nFrames) throw bad('size does not match its counts');
  const devices: VmaDevice[] = [];
  let at = HEADER;
  for (let i = 0; i < nDev; i++, at += DEVICE) {
    const len = b.readUInt8(at + 1);
    if (len > NAME_MAX) throw bad('device name too long');
    devices.push({ id: b.readUInt8(at), size: Number(b.readBigUInt64BE(at + 8)), name: b.subarray(at + 16, at + 16 + len).toString('utf8') });
  }
  const next = new Map(devices.map((d) => [d.id, 0]));
  const frames: FrameRecord[] = [];
  let offset = 0;
  let voffset = 0;
  for (let i = 0; i < nFrames; i++, at += RECORD) {
    const f: FrameRecord = {
      offset: Number(b.readBigUInt64BE(at)),
      clen: b.readUInt32BE(at + 8),
      ulen: b.readUInt32BE(at + 12),
      voffset: Number(b.readBigUInt64BE(at + 16)),
      devId: b.readUInt8(at + 24),
      kind: b.readUInt8(at + 25) as FrameKind,
      firstCluster: b.readUInt32BE(at + 28),
      clusterCount: b.readUInt32BE(at + 32),
      storedBlocks: b.readUInt32BE(at + 36),
      sha256: Buffer.from(b.subarray(at + 48, at + 80)),
      ...(version >= 2 ? { crc64: b.readBigUInt64BE(at + 40) } : {}),
    };
    if (f.offset !== offset || f.voffset !== voffset) throw bad(`frame ${i} is not where the previous one ends`);
    if (i === 0 ? f.kind !== FrameKind.header || f.devId !== 0 : f.kind === FrameKind.header) throw bad(`frame ${i} has the wrong kind`);
    if (i > 0) {
      const n = next.get(f.devId);
      if (n === undefined) throw bad(`frame ${i} names unknown device ${f.devId}`);
      if (f.firstCluster !== n) throw bad(`frame ${i} starts at cluster ${f.firstCluster} of device ${f.devId}, expected ${n}`);
      next.set(f.devId, n + f.clusterCount);
    }
    offset += f.clen;
    voffset += f.ulen;
    frames.push(f);
  }
  if (offset !== archiveSize) throw bad(`frames end at ${offset}, the archive is ${archiveSize} bytes`);
  for (const d of devices) if (next.get(d.id) !== Math.ceil(d.size / 65536)) throw bad(`device '${d.name}' is not covered completely`);
  return { uuid: Buffer.from(b.subarray(32, 48)), archiveSize, devices, frames };
}
