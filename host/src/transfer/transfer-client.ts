/**
 * The part of S3Client (host/src/s3/client.ts, docs/ARCHITECTURE.md) the transfer engine uses,
 * spelled out structurally so tests can wrap a real client (count calls, fail a part) without a
 * stand-in server, and so this layer states exactly what it needs from the one below.
 */
export interface TransferPutOptions {
  contentType?: string;
  metadata?: Record<string, string>;
  storageClass?: string;
  sha256Hex?: string;
  signal?: AbortSignal;
  [k: string]: unknown;
}

export interface TransferObjectInfo {
  size: number;
  etag: string;
  [k: string]: unknown;
}

export interface TransferClient {
  headObject(key: string): Promise<TransferObjectInfo>;
  getObject(
    key: string,
    o?: { range?: [number, number]; signal?: AbortSignal },
  ): Promise<{ body: AsyncIterable<Uint8Array>; info: TransferObjectInfo }>;
  putObject(key: string, body: Uint8Array, o?: TransferPutOptions): Promise<{ etag: string }>;
  createMultipartUpload(key: string, o?: TransferPutOptions): Promise<string>;
  uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array,
    sha256Hex: string,
    o?: { signal?: AbortSignal },
  ): Promise<{ etag: string }>;
  completeMultipartUpload(
    key: string,
    uploadId: string,
    parts: Array<{ partNumber: number; etag: string }>,
  ): Promise<{ etag: string }>;
  deleteObject(key: string): Promise<void>;
  abortMultipartUpload(key: string, uploadId: string): Promise<void>;
  listMultipartUploads(o?: { prefix?: string }): Promise<{ uploads: Array<{ key: string; uploadId: string }> }>;
}
