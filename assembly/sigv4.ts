// AWS Signature Version 4 in WASM: signing-key derivation (cached in slots), canonical request,
// string to sign, signature, presigned query and aws-chunked chunk/trailer signatures.
//
// The host packs the request into the I/O region (format in docs/WASM-ABI.md, "SigV4") and reads
// the results from SIGV4_OUT. Everything that decides what is signed — URI encoding, query
// sorting, header lower-casing/trimming/joining, the signed-header list — happens here, so the
// strings the host puts on the wire are byte-for-byte the ones that were signed.
//
// S3 rules baked in: the path is encoded exactly once with '/' kept and is never normalised (no
// dot-segment removal, no '//' collapse); query names and values are encoded with '/' → %2F.

import { IO_PTR } from './memory';
import { sha256 } from './sha256';
import { hmacSha256, hmacSha256Init, hmacSha256Update, hmacSha256Final, HMAC_CTX_SIZE } from './hmac';
import { toHexLower } from './hex';
import { uriEncode } from './uri';
import { ENTRY_SIZE, sortEntries } from './sort';

/** Bytes of packed input one call accepts; the host checks before packing. */
export const SIGV4_MAX_INPUT: i32 = 32 * 1024;
/** Query parameters, and header lines, per request. */
export const SIGV4_MAX_ENTRIES: i32 = 512;
/** Cached signing keys (32 bytes each); the host assigns slots to signers. */
export const SIGV4_KEY_SLOTS: i32 = 16;

export const SIGV4_ERR_INPUT: i32 = -1;
export const SIGV4_ERR_ENTRIES: i32 = -2;
export const SIGV4_ERR_SLOT: i32 = -3;

const MAX_IN: usize = <usize>SIGV4_MAX_INPUT;
// Bound: each input byte lands in the output at most ~10 times once %XX-expanded (header names
// appear in the canonical headers, the signed list, X-Amz-SignedHeaders and Authorization).
const OUT_SIZE: usize = 16 * MAX_IN;
const SIGV4_OUT: usize = memory.data(<i32>OUT_SIZE, 16);
const KEYS: usize = memory.data(32 * SIGV4_KEY_SLOTS, 16);
// Per slot, the HMAC state right after absorbing kSigning's ipad/opad blocks: every signature
// then starts from a copy and skips those two compressions (a third of a chunk signature's work).
const KEY_CTX: usize = memory.data(HMAC_CTX_SIZE * SIGV4_KEY_SLOTS, 16);
const WORK_CTX: usize = memory.data(HMAC_CTX_SIZE, 16);
const QTEXT: usize = memory.data(3 * SIGV4_MAX_INPUT + 1024, 16); // encoded query names/values
const HNAMES: usize = memory.data(<i32>MAX_IN, 16);             // lower-cased header names
const SIGNED: usize = memory.data(<i32>MAX_IN, 16);             // "a;b;c"
const RAW: usize = memory.data(<i32>(MAX_IN + 64), 16);         // scratch for unencoded values
const QENT: usize = memory.data(<i32>(ENTRY_SIZE * (SIGV4_MAX_ENTRIES + 8)), 16);
const HENT: usize = memory.data(<i32>(ENTRY_SIZE * SIGV4_MAX_ENTRIES), 16);
const DIGEST: usize = memory.data(32, 16);
const DIGEST_HEX: usize = memory.data(64, 16);
const SIG_HEX: usize = memory.data(64, 16);
const AWS4_REQUEST: usize = memory.data<u8>([0x61, 0x77, 0x73, 0x34, 0x5f, 0x72, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74]);

// ---- packed-input reader -------------------------------------------------------------------

let cur: usize = 0;
let bad: bool = false;
let sPtr: usize = 0;
let sLen: usize = 0;

function readU32(): usize {
  if (cur + 4 > IO_PTR + MAX_IN) { bad = true; return 0; }
  const v = <usize>load<u32>(cur);
  cur += 4;
  return v;
}

function readStr(): void {
  const n = readU32();
  if (bad || n > MAX_IN || cur + n > IO_PTR + MAX_IN) { bad = true; sPtr = cur; sLen = 0; return; }
  sPtr = cur;
  sLen = n;
  cur += n;
}

// ---- output writer -------------------------------------------------------------------------

let w: usize = 0;
let fieldStart: usize = 0;

@inline function put(c: u32): void { store<u8>(w, <u8>c); w += 1; }
@inline function putBytes(p: usize, n: usize): void { memory.copy(w, p, n); w += n; }
function putLit(s: string): void {
  for (let i = 0; i < s.length; i++) store<u8>(w + <usize>i, <u8>s.charCodeAt(i));
  w += <usize>s.length;
}
function litAt(dst: usize, s: string): usize {
  for (let i = 0; i < s.length; i++) store<u8>(dst + <usize>i, <u8>s.charCodeAt(i));
  return <usize>s.length;
}
function beginField(): usize { fieldStart = w; w += 4; return w; }
function endField(): void { store<u32>(fieldStart, <u32>(w - fieldStart - 4)); }

// ---- headers -------------------------------------------------------------------------------

@inline function isSpace(c: u32): bool { return c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d; }

/** Reads `n` raw header pairs: names lower-cased into HNAMES, values left in place. */
function readHeaders(n: usize): bool {
  let np = HNAMES;
  for (let i: usize = 0; i < n; i++) {
    readStr();
    const nameLen = sLen;
    if (np + nameLen > HNAMES + MAX_IN) bad = true;
    if (bad) return false;
    for (let k: usize = 0; k < nameLen; k++) {
      let c = <u32>load<u8>(sPtr + k);
      if (c >= 0x41 && c <= 0x5a) c += 0x20;
      store<u8>(np + k, <u8>c);
    }
    const e = HENT + i * ENTRY_SIZE;
    store<u32>(e, <u32>np);
    store<u32>(e, <u32>nameLen, 4);
    np += nameLen;
    readStr();
    if (bad) return false;
    store<u32>(e, <u32>sPtr, 8);
    store<u32>(e, <u32>sLen, 12);
  }
  sortEntries(HENT, n, false);
  return true;
}

/** Value trimmed, inner whitespace runs (incl. obs-fold line breaks) collapsed to one space. */
function putHeaderValue(p: usize, n: usize): void {
  let a: usize = 0;
  let b = n;
  while (a < b && isSpace(<u32>load<u8>(p + a))) a++;
  while (b > a && isSpace(<u32>load<u8>(p + b - 1))) b--;
  let inSpace = false;
  for (let i = a; i < b; i++) {
    const c = <u32>load<u8>(p + i);
    if (isSpace(c)) { inSpace = true; continue; }
    if (inSpace) { put(0x20); inSpace = false; }
    put(c);
  }
}

@inline function sameName(e: usize, f: usize): bool {
  const n = <usize>load<u32>(e, 4);
  if (n != <usize>load<u32>(f, 4)) return false;
  return memory.compare(<usize>load<u32>(e), <usize>load<u32>(f), n) == 0;
}

/** "name:v1,v2\n" per distinct name, in sorted order, at w. */
function putCanonicalHeaders(n: usize): void {
  for (let i: usize = 0; i < n; i++) {
    const e = HENT + i * ENTRY_SIZE;
    const first = i == 0 || !sameName(e - ENTRY_SIZE, e);
    if (first) {
      if (i > 0) put(0x0a);
      putBytes(<usize>load<u32>(e), <usize>load<u32>(e, 4));
      put(0x3a);
    } else {
      put(0x2c);
    }
    putHeaderValue(<usize>load<u32>(e, 8), <usize>load<u32>(e, 12));
  }
  if (n > 0) put(0x0a);
}

/** Distinct sorted names joined by ';' into SIGNED; returns its length. */
function buildSignedHeaders(n: usize): usize {
  let p = SIGNED;
  for (let i: usize = 0; i < n; i++) {
    const e = HENT + i * ENTRY_SIZE;
    if (i > 0 && sameName(e - ENTRY_SIZE, e)) continue;
    if (p > SIGNED) { store<u8>(p, 0x3b); p++; }
    const len = <usize>load<u32>(e, 4);
    memory.copy(p, <usize>load<u32>(e), len);
    p += len;
  }
  return p - SIGNED;
}

// ---- query ---------------------------------------------------------------------------------

let qText: usize = 0;
let qCount: usize = 0;

function addQuery(namePtr: usize, nameLen: usize, valPtr: usize, valLen: usize, encodeName: bool): void {
  const e = QENT + qCount * ENTRY_SIZE;
  let n = nameLen;
  store<u32>(e, <u32>qText);
  if (encodeName) n = uriEncode(namePtr, nameLen, qText, false); else memory.copy(qText, namePtr, nameLen);
  store<u32>(e, <u32>n, 4);
  qText += n;
  store<u32>(e, <u32>qText, 8);
  const v = uriEncode(valPtr, valLen, qText, false);
  store<u32>(e, <u32>v, 12);
  qText += v;
  qCount++;
}

/** Presign parameter: the name is plain ASCII (no encoding needed), the value is encoded. */
function addParam(name: string, valPtr: usize, valLen: usize): void {
  const n = litAt(RAW + MAX_IN, name);
  addQuery(RAW + MAX_IN, n, valPtr, valLen, false);
}

function putCanonicalQuery(): void {
  for (let i: usize = 0; i < qCount; i++) {
    const e = QENT + i * ENTRY_SIZE;
    if (i > 0) put(0x26);
    putBytes(<usize>load<u32>(e), <usize>load<u32>(e, 4));
    put(0x3d);
    putBytes(<usize>load<u32>(e, 8), <usize>load<u32>(e, 12));
  }
}

// ---- signing -------------------------------------------------------------------------------

/** Output area: a sequence of (u32 length, bytes) fields, see docs/WASM-ABI.md. */
export function sigv4OutPtr(): usize { return SIGV4_OUT; }
export function sigv4MaxInput(): i32 { return SIGV4_MAX_INPUT; }
export function sigv4MaxEntries(): i32 { return SIGV4_MAX_ENTRIES; }
export function sigv4KeySlots(): i32 { return SIGV4_KEY_SLOTS; }

/**
 * Derives kSigning = HMAC chain over ("AWS4"+secret, date, region, service, "aws4_request") into
 * key slot `slot`. Input: str secret, str yyyymmdd, str region, str service. The secret is wiped
 * from the I/O region and scratch afterwards.
 */
export function sigv4DeriveKey(slot: i32): i32 {
  if (slot < 0 || slot >= SIGV4_KEY_SLOTS) return SIGV4_ERR_SLOT;
  cur = IO_PTR; bad = false;
  readStr(); const secP = sPtr, secL = sLen;
  readStr(); const dP = sPtr, dL = sLen;
  readStr(); const rP = sPtr, rL = sLen;
  readStr(); const svP = sPtr, svL = sLen;
  if (bad) { memory.fill(IO_PTR, 0, MAX_IN); return SIGV4_ERR_INPUT; }
  const k = KEYS + (<usize>slot << 5);
  litAt(RAW, 'AWS4');
  memory.copy(RAW + 4, secP, secL);
  hmacSha256(RAW, secL + 4, dP, dL, k);
  hmacSha256(k, 32, rP, rL, k);
  hmacSha256(k, 32, svP, svL, k);
  hmacSha256(k, 32, AWS4_REQUEST, 12, k);
  hmacSha256Init(KEY_CTX + <usize>slot * <usize>HMAC_CTX_SIZE, k, 32);
  memory.fill(RAW, 0, secL + 4);
  memory.fill(IO_PTR, 0, cur - IO_PTR);
  return 0;
}

/** Signs the string at (p, n) with the slot key; lower-case hex into SIG_HEX. */
function signWithSlot(slot: i32, p: usize, n: usize): void {
  memory.copy(WORK_CTX, KEY_CTX + <usize>slot * <usize>HMAC_CTX_SIZE, <usize>HMAC_CTX_SIZE);
  hmacSha256Update(WORK_CTX, p, n);
  hmacSha256Final(WORK_CTX, DIGEST);
  toHexLower(DIGEST, 32, SIG_HEX);
}

/**
 * Signs one request. `presign` 0: Authorization-header mode; 1: query (presigned URL) mode.
 * Input: str method, path (decoded), amzDate, scope, accessKeyId, payloadHash, securityToken,
 * expires; u32 nQuery + nQuery × (str name, str value) decoded; u32 nHeaders + nHeaders × (str
 * name, str value) raw. Output fields: canonicalRequest, stringToSign, signature, signedHeaders,
 * wirePath, wireQuery, authorization (empty in presign mode). Returns the output length or < 0.
 */
export function sigv4Sign(slot: i32, presign: i32): i32 {
  if (slot < 0 || slot >= SIGV4_KEY_SLOTS) return SIGV4_ERR_SLOT;
  cur = IO_PTR; bad = false;
  readStr(); const mP = sPtr, mL = sLen;
  readStr(); const pP = sPtr, pL = sLen;
  readStr(); const dP = sPtr, dL = sLen;
  readStr(); const scP = sPtr, scL = sLen;
  readStr(); const akP = sPtr, akL = sLen;
  readStr(); const phP = sPtr, phL = sLen;
  readStr(); const tkP = sPtr, tkL = sLen;
  readStr(); const exP = sPtr, exL = sLen;
  const nq = readU32();
  if (bad) return SIGV4_ERR_INPUT;
  if (nq > <usize>SIGV4_MAX_ENTRIES) return SIGV4_ERR_ENTRIES;
  // Raw query pairs are remembered in place; they are encoded once the header list is known.
  for (let i: usize = 0; i < nq; i++) {
    const e = QENT + i * ENTRY_SIZE;
    readStr(); store<u32>(e, <u32>sPtr); store<u32>(e, <u32>sLen, 4);
    readStr(); store<u32>(e, <u32>sPtr, 8); store<u32>(e, <u32>sLen, 12);
  }
  const nh = readU32();
  if (bad) return SIGV4_ERR_INPUT;
  if (nh > <usize>SIGV4_MAX_ENTRIES) return SIGV4_ERR_ENTRIES;
  if (!readHeaders(nh)) return SIGV4_ERR_INPUT;
  const shLen = buildSignedHeaders(nh);

  qText = QTEXT; qCount = 0;
  for (let i: usize = 0; i < nq; i++) {
    const e = QENT + i * ENTRY_SIZE;
    addQuery(<usize>load<u32>(e), <usize>load<u32>(e, 4), <usize>load<u32>(e, 8), <usize>load<u32>(e, 12), true);
  }
  if (presign != 0) {
    let r = RAW;
    r += litAt(r, 'AWS4-HMAC-SHA256');
    addParam('X-Amz-Algorithm', RAW, r - RAW);
    r = RAW;
    memory.copy(r, akP, akL); r += akL;
    store<u8>(r, 0x2f); r++;
    memory.copy(r, scP, scL); r += scL;
    addParam('X-Amz-Credential', RAW, r - RAW);
    addParam('X-Amz-Date', dP, dL);
    addParam('X-Amz-Expires', exP, exL);
    if (tkL > 0) addParam('X-Amz-Security-Token', tkP, tkL);
    addParam('X-Amz-SignedHeaders', SIGNED, shLen);
  }
  sortEntries(QENT, qCount, true);

  // canonical request
  w = SIGV4_OUT;
  const crP = beginField();
  putBytes(mP, mL); put(0x0a);
  const wpP = w;
  w += uriEncode(pP, pL, w, true);
  const wpL = w - wpP;
  put(0x0a);
  const wqP = w;
  putCanonicalQuery();
  const wqL = w - wqP;
  put(0x0a);
  putCanonicalHeaders(nh);
  put(0x0a);
  putBytes(SIGNED, shLen); put(0x0a);
  putBytes(phP, phL);
  const crL = w - crP;
  endField();

  // string to sign
  sha256(crP, crL, DIGEST);
  toHexLower(DIGEST, 32, DIGEST_HEX);
  const stsP = beginField();
  putLit('AWS4-HMAC-SHA256\n');
  putBytes(dP, dL); put(0x0a);
  putBytes(scP, scL); put(0x0a);
  putBytes(DIGEST_HEX, 64);
  const stsL = w - stsP;
  endField();

  signWithSlot(slot, stsP, stsL);
  beginField(); putBytes(SIG_HEX, 64); endField();
  beginField(); putBytes(SIGNED, shLen); endField();
  beginField(); memory.copy(w, wpP, wpL); w += wpL; endField();
  beginField();
  memory.copy(w, wqP, wqL); w += wqL;
  if (presign != 0) { putLit('&X-Amz-Signature='); putBytes(SIG_HEX, 64); }
  endField();
  beginField();
  if (presign == 0) {
    putLit('AWS4-HMAC-SHA256 Credential=');
    putBytes(akP, akL); put(0x2f); putBytes(scP, scL);
    putLit(', SignedHeaders='); putBytes(SIGNED, shLen);
    putLit(', Signature='); putBytes(SIG_HEX, 64);
  }
  endField();
  return <i32>(w - SIGV4_OUT);
}

/**
 * aws-chunked signatures. Input: str amzDate, str scope, str previousSignature, then for a data
 * chunk (`trailer` 0) str chunkSha256Hex, for the trailer (`trailer` 1) u32 n + n × (str name,
 * str value). Output fields: stringToSign, signature.
 */
export function sigv4ChunkSign(slot: i32, trailer: i32): i32 {
  if (slot < 0 || slot >= SIGV4_KEY_SLOTS) return SIGV4_ERR_SLOT;
  cur = IO_PTR; bad = false;
  readStr(); const dP = sPtr, dL = sLen;
  readStr(); const scP = sPtr, scL = sLen;
  readStr(); const pvP = sPtr, pvL = sLen;
  let hP: usize = 0;
  if (trailer == 0) {
    readStr(); hP = sPtr;
    if (sLen != 64) bad = true;
    if (bad) return SIGV4_ERR_INPUT;
  } else {
    const n = readU32();
    if (bad) return SIGV4_ERR_INPUT;
    if (n > <usize>SIGV4_MAX_ENTRIES) return SIGV4_ERR_ENTRIES;
    if (!readHeaders(n)) return SIGV4_ERR_INPUT;
    // Canonical trailing headers ("name:value\n" each) are hashed, not sent from here.
    w = RAW;
    putCanonicalHeaders(n);
    if (w > RAW + MAX_IN) return SIGV4_ERR_INPUT;
    sha256(RAW, w - RAW, DIGEST);
    toHexLower(DIGEST, 32, DIGEST_HEX);
    hP = DIGEST_HEX;
  }
  w = SIGV4_OUT;
  const stsP = beginField();
  if (trailer == 0) putLit('AWS4-HMAC-SHA256-PAYLOAD\n'); else putLit('AWS4-HMAC-SHA256-TRAILER\n');
  putBytes(dP, dL); put(0x0a);
  putBytes(scP, scL); put(0x0a);
  putBytes(pvP, pvL); put(0x0a);
  if (trailer == 0) {
    // sha256("") — the chunk-signing format reserves this line for (absent) chunk headers.
    putLit('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n');
  }
  putBytes(hP, 64);
  const stsL = w - stsP;
  endField();
  signWithSlot(slot, stsP, stsL);
  beginField(); putBytes(SIG_HEX, 64); endField();
  return <i32>(w - SIGV4_OUT);
}

/** The S3 encoding of `len` raw bytes at the I/O region into SIGV4_OUT (no length prefix). */
export function sigv4UriEncode(len: i32, keepSlash: i32): i32 {
  if (len < 0 || len > SIGV4_MAX_INPUT) return SIGV4_ERR_INPUT;
  return <i32>uriEncode(IO_PTR, <usize>len, SIGV4_OUT, keepSlash != 0);
}
