// Static buffer layout of the WASM core. Everything lives in linear memory reserved at compile
// time (memory.data), so no GC allocation ever happens: the runtime is "stub" and hot loops only
// load/store. The host reads the addresses through the exported *Ptr() getters rather than
// hard-coding offsets, so the layout may change between builds without breaking the ABI.

/** Bytes the host may copy in per update() call. 1 MiB: large enough to amortise the JS→WASM
 *  call, small enough to keep the copy in L2. */
export const IO_SIZE: i32 = 1 << 20;
export const IO_PTR: usize = memory.data(IO_SIZE, 64);

/** Context slot sizes (bytes). Layouts are documented in docs/WASM-ABI.md. */
export const SHA256_CTX_SIZE: i32 = 128;
export const MD5_CTX_SIZE: i32 = 128;
/** 4-lane SHA-256 work area: [0,128) the v128 state, then four scalar SHA-256 contexts (128 bytes
 *  each, at +128 + 128·lane) in which each lane's tail is finished. */
export const SHA256X4_CTX_SIZE: i32 = 640;
/** HMAC-SHA256 streaming context (inner + outer SHA-256 ctx). */
export const HMAC_CTX_SIZE: i32 = 256;

/** Number of context slots per algorithm the host can have live at once before it spills a
 *  slot's state to JS. */
export const SLOT_COUNT: i32 = 64;
export const SHA256_SLOTS: usize = memory.data(SHA256_CTX_SIZE * SLOT_COUNT, 16);
export const MD5_SLOTS: usize = memory.data(MD5_CTX_SIZE * SLOT_COUNT, 16);
// sha256x4() and hmacSha256() are synchronous one-shots on the host, so one context each is
// enough: no other caller can interleave with them.
export const SHA256X4_CTX: usize = memory.data(SHA256X4_CTX_SIZE, 16);
export const HMAC_CTX: usize = memory.data(HMAC_CTX_SIZE, 16);

/** Output area for one-shot exports (HMAC, digests) — 64 bytes covers any digest we produce. */
export const OUT_PTR: usize = memory.data(64, 16);
/** Key input area for the host's HMAC: 64 bytes, since longer keys are first replaced by their
 *  SHA-256 (RFC 2104), which the host does before copying. */
export const KEY_PTR: usize = memory.data(64, 16);

// Getters the host calls once at load time (docs/WASM-ABI.md, "Buffer regions").
export function ioPtr(): usize { return IO_PTR; }
export function ioSize(): i32 { return IO_SIZE; }
export function outPtr(): usize { return OUT_PTR; }
export function keyPtr(): usize { return KEY_PTR; }
export function sha256SlotsPtr(): usize { return SHA256_SLOTS; }
export function md5SlotsPtr(): usize { return MD5_SLOTS; }
export function sha256x4CtxPtr(): usize { return SHA256X4_CTX; }
export function hmacCtxPtr(): usize { return HMAC_CTX; }
export function slotCount(): i32 { return SLOT_COUNT; }
