/**
 * The part of S3Client the transfer engine uses. Spelled as a Pick so tests can hand in a real
 * client wrapped to count or fail calls (no stand-in server), and so this layer states exactly
 * what it needs from the one below.
 */
import type { S3Client } from '../s3/client.js';

export type { ObjectInfo as TransferObjectInfo, PutOptions as TransferPutOptions } from '../s3/types.js';

export type TransferClient = Pick<
  S3Client,
  | 'bucket'
  | 'headObject'
  | 'getObject'
  | 'getObjectInto'
  | 'putObject'
  | 'copyObject'
  | 'uploadPartCopy'
  | 'deleteObject'
  | 'createMultipartUpload'
  | 'uploadPart'
  | 'completeMultipartUpload'
  | 'abortMultipartUpload'
  | 'listMultipartUploads'
  | 'listParts'
>;

/** Set on an abort's error by the store's client (store/types.ts transferClient): what aborts the
 *  upload later, in laterAbort's words for the storage, which the upload's message then ends with. */
export const LATER_ABORT = Symbol.for('pve-s3.later-abort');

/**
 * What aborts an incomplete multipart upload whose abort failed, once the gateway answers: the one
 * wording of the log file's warning (store/abandoned-uploads.ts) and of the failed upload's message
 * (upload.ts). `remembered` under the storage's path, the next upload from this node aborts it, and
 * abort-uploads whatever its age; otherwise (no path, or one this process may not write: a
 * container's backup runs as the container's root) abort-uploads only takes it once it is an hour
 * old (its least --older-than), as any upload that may still be running.
 */
export function laterAbort(o: { remembered: boolean; storageId?: string | undefined }): string {
  const cmd = `pve-s3-maintenance${o.storageId ? ` --storage ${o.storageId}` : ''} --action abort-uploads`;
  return o.remembered
    ? `the next upload to this storage from this node aborts it once the gateway answers (or ${cmd})`
    : `${cmd} --older-than 1h aborts it once the gateway answers and the upload is an hour old`;
}
