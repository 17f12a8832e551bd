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

/** Set on an abort's error by a client that remembered the upload for a later abort (the store's,
 *  store/abandoned-uploads.ts): the upload's message then says which later step aborts it. */
export const ABANDONED_KEPT = Symbol.for('pve-s3.abandoned-kept');
