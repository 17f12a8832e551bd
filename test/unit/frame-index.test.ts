// The frame index's versions (docs/BACKUP-PROVIDER.md §4): version 2 carries a CRC-64/NVME per
// frame in the bytes version 1 left zero; a version 1 index (written before) still reads, without
// CRCs, so its frames are checked by SHA-256; a newer version asks for an update instead of
// calling the archive damaged.
import { describe, expect, it } from 'vitest';
import { decodeIndex, encodeIndex, FrameKind, INDEX_VERSION, type FrameIndex } from '../../host/src/vma/frame-index.js';

function sample(): FrameIndex {
  const sha = (n: number): Buffer => Buffer.alloc(32, n);
  return {
    uuid: Buffer.alloc(16, 9),
    archiveSize: 300,
    devices: [{ id: 1, name: 'drive-scsi0', size: 3 * 65536 }],
    frames: [
      { offset: 0, clen: 100, ulen: 12288, voffset: 0, devId: 0, kind: FrameKind.header, firstCluster: 0, clusterCount: 0, storedBlocks: 0, sha256: sha(1), crc64: 0xfedcba9876543210n },
      { offset: 100, clen: 150, ulen: 70000, voffset: 12288, devId: 1, kind: FrameKind.data, firstCluster: 0, clusterCount: 2, storedBlocks: 17, sha256: sha(2), crc64: 1n },
      { offset: 250, clen: 50, ulen: 512, voffset: 82288, devId: 1, kind: FrameKind.zero, firstCluster: 2, clusterCount: 1, storedBlocks: 0, sha256: sha(3), crc64: 0n },
    ],
  };
}

/** what a version 1 writer left: version 1, the CRC bytes zero */
function asVersion1(b: Buffer): Buffer {
  const v1 = Buffer.from(b);
  v1.writeUInt32BE(1, 8);
  const records = 64 + 64 * v1.readUInt32BE(52);
  for (let at = records; at < v1.length; at += 80) v1.fill(0, at + 40, at + 48);
  return v1;
}

describe('frame index', () => {
  it('writes version 2 with each frame\'s CRC-64/NVME and SHA-256, and reads them back', () => {
    const ix = sample();
    const b = encodeIndex(ix);
    expect(b.readUInt32BE(8)).toBe(INDEX_VERSION);
    expect(INDEX_VERSION).toBe(2);
    const back = decodeIndex(b);
    expect(back.frames.map((f) => f.crc64)).toEqual([0xfedcba9876543210n, 1n, 0n]);
    expect(back.frames.map((f) => f.sha256)).toEqual(ix.frames.map((f) => f.sha256));
    expect(back).toEqual(ix);
  });

  it('reads a version 1 index: the same frames, no CRCs (their frames are checked by SHA-256)', () => {
    const back = decodeIndex(asVersion1(encodeIndex(sample())));
    expect(back.frames.every((f) => f.crc64 === undefined)).toBe(true);
    expect(back.frames.map((f) => [f.offset, f.clen, f.sha256[0]])).toEqual([[0, 100, 1], [100, 150, 2], [250, 50, 3]]);
  });

  it('refuses a frame without a CRC when writing', () => {
    const ix = sample();
    delete ix.frames[1]!.crc64;
    expect(() => encodeIndex(ix)).toThrow(/frame at 100 has no CRC-64\/NVME/);
  });

  it('a newer version asks for an update; version 0 is invalid', () => {
    const b = encodeIndex(sample());
    b.writeUInt32BE(3, 8);
    expect(() => decodeIndex(b)).toThrow(expect.objectContaining({ code: 'NotSupported', message: expect.stringMatching(/version 3 is newer .*update pve-s3/) }));
    b.writeUInt32BE(0, 8);
    expect(() => decodeIndex(b)).toThrow(expect.objectContaining({ code: 'IntegrityError' }));
  });
});
