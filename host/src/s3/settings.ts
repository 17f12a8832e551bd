/** S3Settings (docs/ARCHITECTURE.md): what config resolution hands to the S3 client. */
import type { Credentials } from '../wasm/signer.js';
import type { ProviderId } from './providers.js';

export type { Credentials };

export interface S3Settings {
  /** "https://host[:port]" (scheme always present after config resolution) */
  endpoint: string;
  region: string;
  bucket: string;
  credentials: Credentials;
  /** undefined = auto (path-style for IPs, ports and providers other than AWS) */
  forcePathStyle?: boolean;
  connectTimeoutMs: number;
  /** no response headers, or no body bytes, for this long fails the attempt */
  requestTimeoutMs: number;
  /** the endpoint silent this long across every request and retry ends the operation (Stalled,
   *  s3/stall.ts); default requestTimeoutMs */
  stallTimeoutMs?: number;
  /** what set stallTimeoutMs, for the Stalled message when it is not the storage's stall_timeout */
  stallReason?: string;
  tls?: { caFile?: string; insecure?: boolean; fingerprint?: string /* sha256 hex of the leaf cert */ };
  /** default 5 */
  maxRetries?: number;
  /** off by default: x-amz-checksum-* headers are never sent unless set */
  checksumAlgorithm?: 'CRC32C' | 'CRC64NVME';
  /** 'v1' for gateways without ListObjectsV2; undefined = V2, falling back to V1 when refused */
  listApi?: 'v1' | 'v2';
  /** the provider (host/src/s3/providers.ts) whose rules apply; undefined = detected from the endpoint host */
  provider?: ProviderId;
}
