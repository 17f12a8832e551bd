/**
 * copyUploaded: an object this engine uploaded (with its manifest) copied to another key inside
 * the bucket, server side, then given its own manifest. The store stages a replacement under a
 * name of its own and switches it into place with this (store/transfer.ts), so an older object of
 * that name survives every failure before the switch, and the new bytes survive every failure
 * after it.
 *
 * A multipart object is copied part for part (UploadPartCopy) with the manifest's part layout,
 * so the copy has the same parts, digests and ETag construction; a single PUT object with one
 * CopyObject. Nothing travels through this host.
 */
import { asPveS3Error } from '../util/errors.js';
import { manifestKey, type Manifest, type ManifestSigner } from './manifest.js';
import { abortedError } from './transfer-errors.js';
import type { TransferClient, TransferPutOptions } from './transfer-client.js';
import { writeManifest, type UploadResult } from './upload.js';

export interface CopyOptions {
  /** the destination's write options (metadata, content type, tags, storage class, SSE) */
  put?: TransferPutOptions;
  concurrency: number;
  signal?: AbortSignal;
  /** signs the destination's manifest (it names the destination, so it is signed anew) */
  manifestSigner: ManifestSigner | null;
}

export async function copyUploaded(client: TransferClient, from: UploadResult, dstKey: string, o: CopyOptions): Promise<UploadResult> {
  if (o.signal?.aborted) throw abortedError(dstKey, 'copy', o.signal.reason);
  const sourceSse = o.put?.sse?.type === 'SSE-C' ? o.put.sse : undefined;
  let etag: string;
  if (!from.multipart) {
    ({ etag } = await client.copyObject(from.key, dstKey, { ...o.put, ...(sourceSse ? { sourceSse } : {}), signal: o.signal }));
  } else {
    etag = await copyParts(client, from.manifest, from.key, dstKey, o, sourceSse);
  }
  const manifest: Manifest = { ...from.manifest, key: dstKey, etag };
  // the object of that name is already the new one: removing it would lose the bytes the
  // caller asked to store, and the staged source still holds them verified
  await writeManifest(client, dstKey, manifest, o.put, { onFailure: 'keep-object', keptAs: from.key, signer: o.manifestSigner });
  return { ...from, key: dstKey, etag, manifest, manifestKey: manifestKey(dstKey) };
}

async function copyParts(
  client: TransferClient,
  m: Manifest,
  srcKey: string,
  dstKey: string,
  o: CopyOptions,
  sourceSse: TransferPutOptions['sse'],
): Promise<string> {
  const uploadId = await client.createMultipartUpload(dstKey, { ...o.put, signal: o.signal });
  const parts = [...m.parts].sort((a, b) => a.n - b.n);
  const offsets: number[] = [];
  let at = 0;
  for (const p of parts) {
    offsets.push(at);
    at += p.size;
  }
  const etags: string[] = new Array<string>(parts.length);
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < parts.length) {
      const i = next++;
      const p = parts[i]!;
      try {
        if (o.signal?.aborted) throw abortedError(dstKey, 'copy', o.signal.reason);
        const r = await client.uploadPartCopy(dstKey, uploadId, p.n, srcKey, [offsets[i]!, offsets[i]! + p.size - 1], {
          sse: o.put?.sse,
          ...(sourceSse ? { sourceSse } : {}),
          signal: o.signal,
        });
        etags[i] = r.etag;
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, parts.length)) }, worker));
  try {
    if (failure !== null) throw asPveS3Error(failure);
    const { etag } = await client.completeMultipartUpload(
      dstKey,
      uploadId,
      parts.map((p, i) => ({ partNumber: p.n, etag: etags[i]! })),
      { sse: o.put?.sse, signal: o.signal, ...(o.put?.objectLock ? { objectLock: o.put.objectLock } : {}) },
    );
    return etag || (await client.headObject(dstKey, { sse: o.put?.sse })).etag;
  } catch (e) {
    // never Completed: the destination keeps whatever it held
    await client.abortMultipartUpload(dstKey, uploadId).catch(() => undefined);
    throw e;
  }
}
