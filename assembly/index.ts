// The export hub of build/core.wasm: a plain list of re-exports (see docs/WASM-ABI.md).
export { ioPtr, ioSize, outPtr, keyPtr, sha256SlotsPtr, md5SlotsPtr, sha256x4CtxPtr, hmacCtxPtr, slotCount } from './memory';
export { sha256Init, sha256Update, sha256Final, sha256 } from './sha256';
export { hmacSha256, hmacSha256Init, hmacSha256Update, hmacSha256Final } from './hmac';
export { md5Init, md5Update, md5Final, md5 } from './md5';
export { crc32cUpdate, crc32cCombine } from './crc32c';
export { crc64nvmeUpdate, crc64nvmeCombine } from './crc64nvme';
export { sha256x4Init, sha256x4Blocks, sha256x4Extract, sha256x4Load } from './sha256x4';
export { sigv4DeriveKey, sigv4Sign, sigv4ChunkSign, sigv4UriEncode, sigv4OutPtr, sigv4MaxInput, sigv4MaxEntries, sigv4KeySlots } from './sigv4';
export { planUpload, planPart, planPtr } from './planner';
