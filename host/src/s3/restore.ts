/**
 * The wire shapes of restoring an archived object: the RestoreObject request body and HEAD's
 * `x-amz-restore` answer. The rules about which objects need a restore live in
 * store/archive-state.ts; this file only reads and writes S3's syntax.
 *
 * AWS: RestoreObject https://docs.aws.amazon.com/AmazonS3/latest/API/API_RestoreObject.html,
 * HeadObject (x-amz-restore, x-amz-archive-status)
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html
 */
import { escapeXml } from './xml.js';

/** RestoreObject's GlacierJobParameters/Tier values (AWS spells them with a capital letter). */
export const RESTORE_TIERS = ['Standard', 'Bulk', 'Expedited'] as const;
export type RestoreTier = (typeof RESTORE_TIERS)[number];

/** What HEAD's `x-amz-restore` says: a restore is running, or a restored copy exists until `expiry`. */
export interface RestoreHeader {
  ongoing: boolean;
  /** expiry-date: when S3 deletes the restored copy (absent while ongoing, and for
   *  INTELLIGENT_TIERING, whose restore moves the object back instead of copying it) */
  expiry?: Date;
}

/**
 * Parses `x-amz-restore`. AWS documents two shapes (HeadObject, "x-amz-restore"):
 *   ongoing-request="true"
 *   ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"
 * The pairs are read by name, so an extra pair (some gateways add restore-tier or use ISO dates)
 * does not break it. Undefined when the value has no ongoing-request pair: an answer we cannot
 * read is treated as "no restore known", never as a restored copy.
 */
export function parseRestoreHeader(v: string | undefined): RestoreHeader | undefined {
  if (v === undefined) return undefined;
  const pairs = new Map<string, string>();
  for (const m of v.matchAll(/([A-Za-z-]+)\s*=\s*"([^"]*)"/g)) pairs.set(m[1]!.toLowerCase(), m[2]!);
  const ongoing = pairs.get('ongoing-request')?.trim().toLowerCase();
  if (ongoing !== 'true' && ongoing !== 'false') return undefined;
  const r: RestoreHeader = { ongoing: ongoing === 'true' };
  const exp = pairs.get('expiry-date');
  if (exp !== undefined) {
    const d = new Date(exp);
    if (!Number.isNaN(d.getTime())) r.expiry = d;
  }
  return r;
}

/** The `x-amz-restore` value S3 sends for `h` (the fault proxy answers with it). */
export function formatRestoreHeader(h: RestoreHeader): string {
  if (h.ongoing) return 'ongoing-request="true"';
  return h.expiry ? `ongoing-request="false", expiry-date="${h.expiry.toUTCString()}"` : 'ongoing-request="false"';
}

/**
 * The RestoreRequest body. `days` is left out for INTELLIGENT_TIERING objects: AWS "restore
 * requests for S3 Intelligent-Tiering objects don't accept the days value"
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects.html); Tier is
 * accepted for both (GlacierJobParameters, API_RestoreObject.html).
 */
export function buildRestoreRequest(o: { days?: number; tier?: RestoreTier }): string {
  let s = '<?xml version="1.0" encoding="UTF-8"?><RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/">';
  if (o.days !== undefined) s += `<Days>${Math.trunc(o.days)}</Days>`;
  if (o.tier !== undefined) s += `<GlacierJobParameters><Tier>${escapeXml(o.tier)}</Tier></GlacierJobParameters>`;
  return s + '</RestoreRequest>';
}
