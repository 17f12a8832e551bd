/**
 * A backup archive opened for reading parts of it (docs/BACKUP-PROVIDER.md §6): its HEAD, its
 * manifest when that describes this very object, and — for a provider-made `.vma.zst` — the
 * frame index, trusted through the manifest's SHA-256 of it. Frames are fetched with ranged GETs
 * and checked against their index record before anything of them is used.
 */
import { parseVolname, type VolumeInfo } from '../pve/volname.js';
import type { Manifest } from '../transfer/manifest.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { Crc64Nvme, Sha256 } from '../wasm/digests.js';
import { toHex } from '../wasm/encoding.js';
import { decodeIndex, INDEX_TYPE, type FrameIndex, type FrameRecord } from '../vma/frame-index.js';
import { parseHeader, type VmaHeaderInfo } from '../vma/reader.js';
import { DecompressError, type FrameDecompressor } from '../zstd/frame-decompressor.js';
import { zstd } from '../zstd/native.js';
import { isNotFound } from './objects.js';
import { readSse, transferClient, type StoreContext } from './types.js';

export interface OpenArchive {
  v: VolumeInfo;
  key: string;
  size: number;
  etag: string;
  /** the manifest, only when it is verified: signed with this storage's key, describing this
   *  object (size and ETag) */
  manifest: Manifest | null;
  /** bytes of the archive object itself read so far (manifest and index not counted) */
  archiveBytes: number;
}

/**
 * `purpose` restore: a volume that is not verified is refused (Unverified, naming adopt and
 * pve-s3-restore --allow-unverified) before anything of it is read. inspect (Show Configuration):
 * it is opened without its manifest, so its configuration comes from the archive's own head, never
 * from texts someone else wrote into a manifest.
 */
export async function openArchive(ctx: StoreContext, volname: string, o: { purpose: 'restore' | 'inspect' }): Promise<OpenArchive> {
  const v = parseVolname(volname);
  if (v.content !== 'backup') throw new PveS3Error('InvalidArgument', `'${volname}' is not a backup archive`, { exitCode: EXIT.usage });
  // one verdict for every reader (store/trust.ts): a manifest vouches for the archive, and its
  // frame index and guest texts are used, only when it is signed with this storage's key; the
  // archive's HEAD and its manifest come in one round (volume-look.ts)
  const { objectAndManifest } = await import('./volume-look.js');
  const { unverifiedError } = await import('./trust.js');
  const { key, info, trusted: { manifest: read, verdict } } = await objectAndManifest(ctx, v.volname);
  if (verdict.trust !== 'verified' && o.purpose === 'restore') throw unverifiedError(ctx, v.volname, verdict);
  const manifest = verdict.trust === 'verified' ? read : null;
  return { v, key, size: info.size, etag: info.etag, manifest, archiveBytes: 0 };
}

/** The frame index the manifest names, checked against the manifest and the object. */
export async function readFrameIndex(ctx: StoreContext, a: OpenArchive): Promise<{ index: FrameIndex; raw: Buffer } | null> {
  const ref = a.manifest?.index;
  if (!ref) return null;
  if (ref.type !== INDEX_TYPE) {
    throw new PveS3Error('NotSupported', `'${a.v.volname}' has a frame index of type '${ref.type}', this version reads '${INDEX_TYPE}': update pve-s3`);
  }
  let raw: Buffer;
  try {
    const { body } = await ctx.client.getObject(ref.key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    raw = await collect(body, ref.size + 1);
  } catch (e) {
    if (isNotFound(e)) throw damaged(a, `its frame index '${ref.key}' is missing`);
    throw e;
  }
  if (raw.length !== ref.size || toHex(Sha256.hash(raw)) !== ref.sha256) throw damaged(a, `its frame index '${ref.key}' does not match the SHA-256 in its manifest`);
  const index = decodeIndex(raw);
  if (index.archiveSize !== a.size) throw damaged(a, `its frame index describes ${index.archiveSize} bytes, the object has ${a.size}`);
  return { index, raw };
}

function damaged(a: OpenArchive, why: string): PveS3Error {
  return new PveS3Error('IntegrityError', `backup '${a.v.volname}' is damaged: ${why}`, { exitCode: EXIT.integrity, retryable: false, key: a.key });
}

export async function collect(body: AsyncIterable<Uint8Array>, max: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > max) throw new PveS3Error('IntegrityError', `the server sent more than the ${max} bytes asked for`, { exitCode: EXIT.integrity });
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

/** where fetchFrame gets the buffer for a frame's compressed bytes and gives it back once done */
export interface FrameBuffers {
  /** a buffer of at least `size` bytes that owns its memory (it may travel to a zstd thread) */
  take(size: number): Buffer;
  give(b: Buffer): void;
}

/**
 * One frame's compressed bytes by a ranged GET, verified against its index record — its
 * CRC-64/NVME (index version 2), or its SHA-256 in an index written before frames had CRCs —,
 * then decompressed (zstd checks its own content checksum too), on a zstd thread when a
 * decompressor is given. The body goes straight into one buffer of the frame's size and into the
 * check as it arrives (the lean GET path: no stream, no chunk list to join), so the verdict is
 * ready when the last byte is. A mismatch is fetched once more (a broken transfer), then it is the
 * archive that is damaged.
 */
export async function fetchFrame(
  ctx: StoreContext,
  a: { key: string; v: VolumeInfo },
  f: FrameRecord,
  signal?: AbortSignal,
  o: { buffers?: FrameBuffers; decompressor?: FrameDecompressor } = {},
): Promise<Buffer> {
  let own: Buffer | null = o.buffers?.take(f.clen) ?? Buffer.allocUnsafeSlow(f.clen);
  try {
    const bytes = own.subarray(0, f.clen);
    const byCrc = f.crc64 !== undefined;
    let last: PveS3Error | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      const check = byCrc ? new Crc64Nvme() : new Sha256();
      let n = 0;
      let good = false;
      try {
        await transferClient(ctx).getObjectInto(a.key, { range: [f.offset, f.offset + f.clen - 1], ...readSse(ctx), ...(signal ? { signal } : {}) }, (piece) => {
          if (n + piece.length > f.clen) throw new PveS3Error('IntegrityError', `the server sent more than the ${f.clen} bytes asked for`, { exitCode: EXIT.integrity });
          bytes.set(piece, n);
          check.update(piece);
          n += piece.length;
        });
      } catch (e) {
        if ((e as PveS3Error).retryable && attempt === 0) continue;
        throw e;
      } finally {
        // also after a failure: the digest gives the hash's slot back
        const d = check.digest();
        good = n === f.clen && (typeof d === 'bigint' ? d === f.crc64 : Buffer.from(d).equals(f.sha256));
      }
      if (!good) {
        last = new PveS3Error(
          'IntegrityError',
          `backup '${a.v.volname}' is damaged: the ${f.clen} bytes at ${f.offset} of '${a.key}' do not match the ${byCrc ? 'CRC-64/NVME' : 'SHA-256'} their frame index records`,
          { exitCode: EXIT.integrity, key: a.key },
        );
        continue;
      }
      let out: Buffer;
      let len: number;
      try {
        if (o.decompressor) {
          const src = own;
          own = null; // with the zstd thread until it answers
          const d = await o.decompressor.decompress(src, f.clen, f.ulen);
          own = d.input;
          ({ out, len } = d);
        } else {
          out = Buffer.allocUnsafe(f.ulen);
          len = zstd().decompress(out, bytes);
        }
      } catch (e) {
        if (e instanceof DecompressError) own = e.input;
        else if (e instanceof PveS3Error) throw e; // the zstd thread itself failed
        throw new PveS3Error('IntegrityError', `backup '${a.v.volname}': the frame at byte ${f.offset} does not decompress (${(e as Error).message})`, { exitCode: EXIT.integrity });
      }
      if (len !== f.ulen) throw new PveS3Error('IntegrityError', `backup '${a.v.volname}': the frame at byte ${f.offset} decompressed to ${len} bytes, its index record says ${f.ulen}`, { exitCode: EXIT.integrity });
      return out;
    }
    throw last!;
  } finally {
    if (own) o.buffers?.give(own);
  }
}

/** The VMA header of an indexed archive: frame 0 alone holds it. */
export async function headerFromIndex(ctx: StoreContext, a: OpenArchive, index: FrameIndex): Promise<VmaHeaderInfo> {
  const f0 = index.frames[0]!;
  const h = parseHeader(await fetchFrame(ctx, a, f0, ctx.signal));
  a.archiveBytes += f0.clen;
  if (!h.uuid.equals(index.uuid)) throw damaged(a, 'its VMA header belongs to another archive than its frame index (uuid differs)');
  return h;
}
