// The fault proxy's archive-tier mode (test/helpers/fault-proxy.ts `archive()`): RadosGW 16.2 has
// no archive storage classes, so chosen keys are made to answer as AWS documents an archived
// object, in front of the real gateway that stores their bytes. Each behaviour and its source:
//
// - HEAD and ListObjects show the archive class: x-amz-storage-class / <StorageClass> GLACIER,
//   DEEP_ARCHIVE or INTELLIGENT_TIERING, and for the latter x-amz-archive-status ARCHIVE_ACCESS |
//   DEEP_ARCHIVE_ACCESS on HEAD (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html;
//   ListObjectsV2 Contents/StorageClass, https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
// - GET of an archived object that is not restored: 403 InvalidObjectState, "Object is archived
//   and inaccessible until restored", with StorageClass and AccessTier
//   (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, error InvalidObjectState).
// - RestoreObject (POST ?restore): 202 Accepted when a restore starts, 200 OK when a restored copy
//   exists (its expiry is then reset from now), 409 RestoreAlreadyInProgress while one is running
//   (https://docs.aws.amazon.com/AmazonS3/latest/API/API_RestoreObject.html); Days is not accepted
//   for INTELLIGENT_TIERING (https://docs.aws.amazon.com/AmazonS3/latest/userguide/restoring-objects.html);
//   an object not in an archive class is refused with 403 InvalidObjectState.
// - While the restore runs HEAD shows x-amz-restore: ongoing-request="true"; once done,
//   ongoing-request="false", expiry-date="<RFC 1123 date>" and GET works (API_HeadObject.html).
//   The expiry is the completion time plus Days, rounded up to the next midnight UTC
//   (restoring-objects.html). An INTELLIGENT_TIERING restore moves the object back to the
//   Frequent Access tier: its archive status goes and there is no expiry.
//
// Restores take `restoreMs` (default 1 s) instead of AWS's hours.

export type ArchiveClass = 'GLACIER' | 'DEEP_ARCHIVE' | 'INTELLIGENT_TIERING';

export interface ArchiveMark {
  storageClass: ArchiveClass;
  /** INTELLIGENT_TIERING only (default ARCHIVE_ACCESS) */
  accessTier?: 'ARCHIVE_ACCESS' | 'DEEP_ARCHIVE_ACCESS';
  /** how long a restore runs before the object is readable (default 1000 ms) */
  restoreMs?: number;
}

export interface RestoreRecord {
  key: string;
  tier: string;
  days?: number;
  /** when the proxy accepted it */
  at: number;
}

interface Entry {
  mark: ArchiveMark;
  restore?: { at: number; doneAt: number; tier: string; days?: number; expiry?: number };
}

const DAY_MS = 86_400_000;
// GetObject subresources that are not the object's data (an archived object answers them)
const NOT_DATA = /^(tagging|acl|retention|legal-hold|attributes|torrent|uploadId|restore|select)$/;

/** What kind of exchange a request is, for the archive mode; undefined: not its business. */
export type ArchiveRoute =
  | { kind: 'head' | 'get' | 'restore'; bucket: string; key: string }
  | { kind: 'list'; bucket: string; urlEncoded: boolean };

export class ArchiveTiers {
  private marks: { match: string | RegExp; mark: ArchiveMark }[] = [];
  private entries = new Map<string, Entry>();
  readonly restores: RestoreRecord[] = [];

  /** Keys equal to `match` (or matching it) answer as archived from now on. */
  mark(match: string | RegExp, mark: ArchiveMark): void {
    this.marks.push({ match, mark });
  }

  /** Forget every mark and restore. */
  clear(): void {
    this.marks = [];
    this.entries.clear();
    this.restores.length = 0;
  }

  /** Ends a running restore of `key` now (tests that must not wait restoreMs). */
  finish(key: string): void {
    for (const [id, e] of this.entries) if (id.endsWith(`/${key}`) && e.restore) e.restore.doneAt = Math.min(e.restore.doneAt, Date.now());
  }

  get active(): boolean {
    return this.marks.length > 0;
  }

  private entry(bucket: string, key: string): Entry | undefined {
    const id = `${bucket}/${key}`;
    let e = this.entries.get(id);
    if (e) return e;
    const m = this.marks.find((x) => (typeof x.match === 'string' ? x.match === key : x.match.test(key)));
    if (!m) return undefined;
    e = { mark: m.mark };
    this.entries.set(id, e);
    return e;
  }

  route(method: string, target: string): ArchiveRoute | undefined {
    if (!this.active) return undefined;
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : target.slice(q + 1));
    const slash = path.indexOf('/', 1);
    const bucket = decodeURIComponent(path.slice(1, slash < 0 ? undefined : slash));
    const key = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
    if (key === '') {
      if (method === 'GET' && !params.has('uploads') && !params.has('versions') && !params.has('lifecycle') && !params.has('location') && !params.has('versioning') && !params.has('object-lock')) {
        return { kind: 'list', bucket, urlEncoded: params.get('encoding-type') === 'url' };
      }
      return undefined;
    }
    if (method === 'POST' && params.has('restore')) return { kind: 'restore', bucket, key };
    if ([...params.keys()].some((k) => NOT_DATA.test(k))) return undefined;
    if (method === 'HEAD') return { kind: 'head', bucket, key };
    if (method === 'GET') return { kind: 'get', bucket, key };
    return undefined;
  }

  /** 'archived' | 'restoring' | 'restored' | undefined (not marked, or readable again) */
  private stateOf(e: Entry, now: number): 'archived' | 'restoring' | 'restored' | 'moved-back' {
    const r = e.restore;
    if (!r) return 'archived';
    if (now < r.doneAt) return 'restoring';
    if (e.mark.storageClass === 'INTELLIGENT_TIERING') return 'moved-back';
    if (r.expiry === undefined) r.expiry = nextMidnight(r.doneAt + (r.days ?? 1) * DAY_MS);
    if (now >= r.expiry) {
      e.restore = undefined; // the restored copy is gone: archived again
      return 'archived';
    }
    return 'restored';
  }

  /** Headers to add to a forwarded HEAD/GET answer of `key`; undefined when it is not marked. */
  objectHeaders(bucket: string, key: string): Record<string, string> | undefined {
    const e = this.entry(bucket, key);
    if (!e) return undefined;
    const st = this.stateOf(e, Date.now());
    const h: Record<string, string> = { 'x-amz-storage-class': e.mark.storageClass };
    if (e.mark.storageClass === 'INTELLIGENT_TIERING' && st !== 'moved-back') h['x-amz-archive-status'] = e.mark.accessTier ?? 'ARCHIVE_ACCESS';
    if (st === 'restoring') h['x-amz-restore'] = 'ongoing-request="true"';
    if (st === 'restored') h['x-amz-restore'] = `ongoing-request="false", expiry-date="${new Date(e.restore!.expiry!).toUTCString()}"`;
    return h;
  }

  /** The 403 of a GET that must not be answered; undefined when the GET may go through. */
  refuseGet(bucket: string, key: string): { status: number; code: string; message: string; extra: string } | undefined {
    const e = this.entry(bucket, key);
    if (!e) return undefined;
    const st = this.stateOf(e, Date.now());
    if (st === 'restored' || st === 'moved-back') return undefined;
    const tier = e.mark.storageClass === 'INTELLIGENT_TIERING' ? `<AccessTier>${e.mark.accessTier ?? 'ARCHIVE_ACCESS'}</AccessTier>` : '';
    return { status: 403, code: 'InvalidObjectState', message: 'The operation is not valid for the object\'s storage class', extra: `<StorageClass>${e.mark.storageClass}</StorageClass>${tier}` };
  }

  /** The answer to a RestoreObject POST with this body. */
  restore(bucket: string, key: string, body: string): { status: number; code?: string; message?: string } {
    const e = this.entry(bucket, key);
    if (!e) return { status: 403, code: 'InvalidObjectState', message: "Restore is not allowed for the object's current storage class" };
    const daysM = /<Days>\s*(\d+)\s*<\/Days>/.exec(body);
    const tier = /<Tier>\s*(\w+)\s*<\/Tier>/.exec(body)?.[1] ?? 'Standard';
    const days = daysM ? Number(daysM[1]) : undefined;
    if (!['Standard', 'Bulk', 'Expedited'].includes(tier)) return { status: 400, code: 'MalformedXML', message: `Tier ${tier} is not one of Standard, Bulk, Expedited` };
    if (e.mark.storageClass === 'INTELLIGENT_TIERING' && days !== undefined) {
      return { status: 400, code: 'InvalidArgument', message: 'Days is not accepted for objects in INTELLIGENT_TIERING' };
    }
    if (e.mark.storageClass !== 'INTELLIGENT_TIERING' && days === undefined) return { status: 400, code: 'InvalidArgument', message: 'Days is required' };
    const now = Date.now();
    const st = this.stateOf(e, now);
    if (st === 'restoring') return { status: 409, code: 'RestoreAlreadyInProgress', message: 'Object restore is already in progress' };
    if (st === 'restored') {
      e.restore!.expiry = nextMidnight(now + days! * DAY_MS);
      return { status: 200 };
    }
    if (st === 'moved-back') return { status: 200 };
    e.restore = { at: now, doneAt: now + (e.mark.restoreMs ?? 1000), tier, ...(days !== undefined ? { days } : {}) };
    this.restores.push({ key, tier, ...(days !== undefined ? { days } : {}), at: now });
    return { status: 202 };
  }

  /** A ListObjects (V1 or V2) answer with the marked keys' StorageClass replaced (keys are
   *  percent-encoded when the request asked for encoding-type=url). */
  rewriteList(bucket: string, xml: string, urlEncoded = false): string {
    return xml.replace(/<Contents>([\s\S]*?)<\/Contents>/g, (whole, inner: string) => {
      const k = /<Key>([\s\S]*?)<\/Key>/.exec(inner)?.[1];
      if (k === undefined) return whole;
      const raw = unescapeXml(k);
      const e = this.entry(bucket, urlEncoded ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw);
      if (!e) return whole;
      const cls = `<StorageClass>${e.mark.storageClass}</StorageClass>`;
      return `<Contents>${/<StorageClass>/.test(inner) ? inner.replace(/<StorageClass>[^<]*<\/StorageClass>/, cls) : inner + cls}</Contents>`;
    });
  }
}

function nextMidnight(t: number): number {
  return Math.ceil(t / DAY_MS) * DAY_MS;
}

function unescapeXml(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_m, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, h: string) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&amp;/g, '&');
}
