/**
 * Multipart planning (single PUT or N parts, part size, each part's offset and length). The
 * arithmetic runs in core.wasm on u64; sizes come back as plain numbers, which stay exact because
 * every size involved is ≤ 5 TiB < 2^53.
 */
import { loadCore, type CoreExports } from './load.js';
import { EXIT, PveS3Error } from '../util/errors.js';

export const MIB = 1024 * 1024;
export const MAX_PARTS = 10_000;
export const MIN_PART_SIZE = 5 * MIB;
export const MAX_PART_SIZE = 5 * 1024 * MIB;
export const MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MIB;
export const MIN_CHUNK_MB = 5;
export const MAX_CHUNK_MB = 5120;

export interface PartPlan {
  partNumber: number;
  offset: number;
  length: number;
}

export interface UploadPlan {
  /** false: one PutObject with the whole body (size known and ≤ the chunk size). */
  multipart: boolean;
  /** Length of every part but the last. For a single PUT: the chunk size (part(1) has the real length). */
  partSize: number;
  /** Known size: the exact count. Unknown size: the most parts the plan allows. */
  partCount: number;
  size: number | null;
  /** The most bytes this plan can carry (= size when known). */
  capacity: number;
  /** Part n (1-based). For an unknown size each part is reported full-length: the stream ends it. */
  part(n: number): PartPlan;
}

export type PlanErrorCode = 'EntityTooLarge' | 'InvalidChunkSize' | 'InvalidSize';

export class PlanError extends PveS3Error {
  declare readonly code: PlanErrorCode;
  constructor(code: PlanErrorCode, message: string) {
    super(code, message, { exitCode: code === 'EntityTooLarge' ? EXIT.failure : EXIT.usage });
    this.name = 'PlanError';
  }
}

interface PlannerExports extends CoreExports {
  planUpload(size: bigint, maxSize: bigint, chunkMB: number, maxParts: number, maxPart: bigint): number;
  planPart(size: bigint, partSize: bigint, partCount: number, n: number): number;
  planPtr(): number;
}

const PLAN_ERR_CHUNK = 1;
const PLAN_ERR_TOO_LARGE = 2;
const PLAN_ERR_LIMITS = 4;

/** A provider's multipart limits (host/src/s3/providers.ts); S3's when absent. */
export interface PartLimits {
  /** 1..10,000 */
  maxParts: number;
  /** bytes, 5 MiB..5 GiB */
  maxPartBytes: number;
}

const S3_PART_LIMITS: PartLimits = { maxParts: MAX_PARTS, maxPartBytes: MAX_PART_SIZE };

function exports(): PlannerExports {
  return loadCore() as PlannerExports;
}

function readU64(x: PlannerExports, at: number): number {
  return Number(new DataView(x.memory.buffer).getBigUint64(x.planPtr() + at, true));
}

function checkSize(key: 'size' | 'maxSize', v: number | undefined): void {
  if (v === undefined) return;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new PlanError('InvalidSize', `invalid ${key} '${String(v)}': must be a whole number of bytes ≥ 0`);
  }
  if (v > MAX_OBJECT_SIZE) {
    const what = key === 'size' ? 'object size' : 'declared maximum stream size';
    throw new PlanError('EntityTooLarge',
      `${what} ${v} bytes exceeds the S3 maximum object size of 5 TiB (${MAX_OBJECT_SIZE} bytes); split the data into smaller objects`);
  }
}

/** A size beyond maxParts parts of the provider's largest part cannot be uploaded there. */
function checkFits(key: 'size' | 'maxSize', v: number | undefined, l: PartLimits): void {
  if (v === undefined || v <= l.maxParts * l.maxPartBytes) return;
  const what = key === 'size' ? 'object size' : 'declared maximum stream size';
  throw new PlanError('EntityTooLarge',
    `${what} ${v} bytes exceeds what this provider takes in one upload: ${l.maxParts} parts of at most ${l.maxPartBytes} bytes (${l.maxParts * l.maxPartBytes} bytes); split the data into smaller objects`);
}

export function planUpload(o: { size?: number; maxSize?: number; chunkSizeMB: number; limits?: PartLimits }): UploadPlan {
  const mb = o.chunkSizeMB;
  const limits = o.limits ?? S3_PART_LIMITS;
  const { maxParts, maxPartBytes } = limits;
  if (!Number.isInteger(maxParts) || maxParts < 1 || maxParts > MAX_PARTS || !Number.isInteger(maxPartBytes) || maxPartBytes < MIN_PART_SIZE || maxPartBytes > MAX_PART_SIZE) {
    throw new PlanError('InvalidSize', `invalid part limits ${maxParts} parts of ${maxPartBytes} bytes: must be 1..${MAX_PARTS} parts of ${MIN_PART_SIZE}..${MAX_PART_SIZE} bytes`);
  }
  const maxChunkMB = Math.min(MAX_CHUNK_MB, Math.floor(maxPartBytes / MIB));
  if (typeof mb !== 'number' || !Number.isInteger(mb) || mb < MIN_CHUNK_MB || mb > maxChunkMB) {
    throw new PlanError('InvalidChunkSize',
      `invalid multipart_chunk_size '${String(mb)}': must be an integer ${MIN_CHUNK_MB}..${maxChunkMB} (MiB)${maxChunkMB < MAX_CHUNK_MB ? ": the provider's largest part" : ''}`);
  }
  checkSize('size', o.size);
  checkSize('maxSize', o.maxSize);
  checkFits('size', o.size, limits);
  checkFits('maxSize', o.maxSize, limits);
  const x = exports();
  const size = o.size ?? null;
  const rc = x.planUpload(BigInt(size ?? -1), BigInt(o.maxSize ?? -1), mb, maxParts, BigInt(maxPartBytes));
  // The checks above mirror the WASM ones; these branches only fire if the two ever disagree.
  if (rc === PLAN_ERR_CHUNK) throw new PlanError('InvalidChunkSize', `invalid multipart_chunk_size '${mb}': rejected by core.wasm`);
  if (rc === PLAN_ERR_LIMITS) throw new PlanError('InvalidSize', `part limits ${maxParts} × ${maxPartBytes} bytes rejected by core.wasm`);
  if (rc === PLAN_ERR_TOO_LARGE) throw new PlanError('EntityTooLarge', `object exceeds the S3 maximum object size of 5 TiB (${MAX_OBJECT_SIZE} bytes)`);
  if (rc !== 0) throw new PlanError('InvalidSize', `upload plan rejected by core.wasm (code ${rc})`);

  const partSize = readU64(x, 0);
  const partCount = readU64(x, 8);
  const multipart = readU64(x, 16) === 1;
  const capacity = readU64(x, 24);
  return {
    multipart,
    partSize,
    partCount,
    size,
    capacity,
    part(n: number): PartPlan {
      if (!Number.isInteger(n) || n < 1 || n > partCount) {
        throw new PlanError('InvalidSize', `invalid part number '${n}': must be an integer 1..${partCount}`);
      }
      const px = exports();
      if (!px.planPart(BigInt(size ?? -1), BigInt(partSize), partCount, n)) {
        throw new PlanError('InvalidSize', `invalid part number '${n}': rejected by core.wasm`);
      }
      return { partNumber: n, offset: readU64(px, 32), length: readU64(px, 40) };
    },
  };
}
