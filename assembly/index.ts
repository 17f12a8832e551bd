// The export hub of build/core.wasm: a plain list of re-exports (see docs/WASM-ABI.md).
export { ioPtr, ioSize, outPtr, keyPtr, sha256SlotsPtr, md5SlotsPtr, sha256x4SlotsPtr, slotCount } from './memory';
export { sha256Init, sha256Update, sha256Final, sha256 } from './sha256';
export { hmacSha256, hmacSha256Init, hmacSha256Update, hmacSha256Final } from './hmac';
export { md5Init, md5Update, md5Final, md5 } from './md5';
export { crc32cUpdate, crc32cCombine } from './crc32c';
export { crc64nvmeUpdate, crc64nvmeCombine } from './crc64nvme';
