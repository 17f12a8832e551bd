/**
 * One data frame of an indexed archive (docs/BACKUP-PROVIDER.md §4), decompressed, mapped onto
 * the device bytes it covers: the frame's extents are checked as the stream reader checks them
 * (magic, MD5, uuid, devices) and must hold exactly the clusters the index record names, each
 * once; blocks the masks leave out are zeros.
 */
import { BLOCK_SIZE, BLOCKS_PER_CLUSTER, CLUSTER_SIZE, EXTENT_HEADER_SIZE, type VmaDevice } from './format.js';
import type { FrameRecord } from './frame-index.js';
import { parseExtentHeader, vmaInvalid } from './reader.js';

/** bytes of the device from cluster f.firstCluster on that the frame covers (cut at the device end) */
export function frameSpan(f: FrameRecord, dev: VmaDevice): number {
  return Math.min(f.clusterCount * CLUSTER_SIZE, dev.size - f.firstCluster * CLUSTER_SIZE);
}

/**
 * A frame's device bytes as runs over its decompressed VMA, in device order: `src` is where a
 * run's bytes lie in `vma`, or -1 for zeros (blocks the masks leave out). Nothing is copied:
 * a read hands out views of `vma`.
 */
export interface FrameRuns {
  vma: Buffer;
  /** run starts (bytes from the frame's first cluster), lengths, sources */
  at: number[];
  len: number[];
  src: number[];
}

export function frameRuns(f: FrameRecord, vma: Buffer, dev: VmaDevice, devices: Map<number, VmaDevice>, uuid: Buffer): FrameRuns {
  const where = `frame at archive byte ${f.offset} ('${dev.name}' clusters ${f.firstCluster}–${f.firstCluster + f.clusterCount - 1})`;
  if (vma.length !== f.ulen) throw vmaInvalid(`${where} decompressed to ${vma.length} bytes, the index says ${f.ulen}`);
  const span = frameSpan(f, dev);
  const blocks: Array<[number, number, number]> = [];
  const seen = new Uint8Array(Math.ceil(f.clusterCount / 8));
  let covered = 0;
  let pos = 0;
  while (pos < vma.length) {
    const eh = vma.subarray(pos, pos + EXTENT_HEADER_SIZE);
    const { blockCount, entries } = parseExtentHeader(eh, uuid, devices, f.voffset + pos);
    pos += EXTENT_HEADER_SIZE;
    if (pos + blockCount * BLOCK_SIZE > vma.length) throw vmaInvalid(`${where} ends inside an extent`);
    for (const e of entries) {
      const c = e.cluster - f.firstCluster;
      if (e.dev.id !== dev.id || c < 0 || c >= f.clusterCount) {
        throw vmaInvalid(`${where} holds cluster ${e.cluster} of '${e.dev.name}', which its index record does not name`);
      }
      if (seen[c >> 3]! & (1 << (c & 7))) throw vmaInvalid(`duplicated cluster ${e.cluster} of '${dev.name}' in ${where}`);
      seen[c >> 3]! |= 1 << (c & 7);
      covered++;
      for (let b = 0; b < BLOCKS_PER_CLUSTER; b++) {
        const at = c * CLUSTER_SIZE + b * BLOCK_SIZE;
        const stored = (e.mask & (1 << b)) !== 0;
        // past the device's end: a stored block still takes its place in the extent
        if (at < span) blocks.push([at, Math.min(BLOCK_SIZE, span - at), stored ? pos : -1]);
        if (stored) pos += BLOCK_SIZE;
      }
    }
  }
  if (covered !== f.clusterCount) throw vmaInvalid(`${where} holds ${covered} of its ${f.clusterCount} clusters`);
  // extents keep clusters in order, so this is almost always sorted already
  blocks.sort((x, y) => x[0] - y[0]);
  const r: FrameRuns = { vma, at: [], len: [], src: [] };
  for (const [at, len, src] of blocks) {
    const k = r.at.length - 1;
    const joins = k >= 0 && r.at[k]! + r.len[k]! === at && (src < 0 ? r.src[k]! < 0 : r.src[k]! >= 0 && r.src[k]! + r.len[k]! === src);
    if (joins) r.len[k]! += len;
    else {
      r.at.push(at);
      r.len.push(len);
      r.src.push(src);
    }
  }
  return r;
}
