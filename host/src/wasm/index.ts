// The WASM layer's public surface: a plain list of re-exports.
export { Sha256, Md5, Crc32c, Crc64Nvme, hmacSha256, sha256x4, Sha256x4, type Bytes } from './digests.js';
export { toHex, toBase64, crc32cBase64, crc64Base64 } from './encoding.js';
export { loadCore, corePath, wasmCandidates } from './load.js';
