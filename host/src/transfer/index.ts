// The transfer layer's public surface (docs/ARCHITECTURE.md, "Transfer layer").
export { uploadObject, type UploadOptions, type UploadResult, type UploadSource } from './upload.js';
export { downloadObject, verifyObject, checksOf, type Check, type DownloadDest, type DownloadOptions, type DownloadResult, type Verdict, type VerifyMode } from './download.js';
export { readManifest, manifestKey, parseManifest, compositeDigest, MANIFEST_SUFFIX, type Manifest, type ManifestPart } from './manifest.js';
export { ProgressTracker, type Progress } from './progress.js';
export { TEMP_MARK } from './temp-file.js';
export type { TransferClient } from './transfer-client.js';
