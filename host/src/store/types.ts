/**
 * Shapes shared by every store operation. The store is handed a ready client and the storage's
 * settings by its front door (CLI or protocol); it never reads storage.cfg or the environment, so
 * both doors get the same rules from the same inputs.
 */
import type {
  DeleteResult,
  LifecycleRule,
  ObjectLockConfig,
  ListPage,
  ObjectInfo,
  ObjectSummary,
  PartInfo,
  PutOptions,
  SseOptions,
  UploadInfo,
} from '../s3/types.js';
import type { Logger } from '../util/log.js';
import { PROVIDERS, type Provider, type ProviderId } from '../s3/providers.js';

/** What the store needs from S3Client (host/src/s3/client.ts), spelled out so the store states
 *  its own dependency and tests can wrap a real client. */
export interface StoreClient {
  /** scheme://host[:port] of the endpoint (the notes cache keeps it with its entries) */
  readonly endpoint?: string;
  /** the endpoint has been silent for stall_timeout: a request now gets only its last try */
  readonly silent?: boolean;
  /** `sse`: an SSE-C object answers HEAD only with its key */
  headObject(key: string, o?: { sse?: SseOptions; signal?: AbortSignal }): Promise<ObjectInfo>;
  getObject(key: string, o?: { range?: [number, number]; signal?: AbortSignal; sse?: SseOptions }): Promise<{ body: AsyncIterable<Uint8Array>; info: ObjectInfo }>;
  putObject(key: string, body: Uint8Array, o?: PutOptions): Promise<{ etag: string }>;
  deleteObject(key: string): Promise<void>;
  deleteObjects(keys: readonly string[]): Promise<DeleteResult>;
  listObjects(o: { prefix?: string; delimiter?: string; continuationToken?: string; maxKeys?: number }): Promise<ListPage>;
  listAll(o: { prefix?: string; delimiter?: string }): AsyncIterable<ObjectSummary>;
  listRange(o: { prefix?: string; after?: string; through?: string; signal?: AbortSignal }): Promise<ObjectSummary[]>;
  /** every page, already followed */
  listMultipartUploads(o?: { prefix?: string; signal?: AbortSignal }): Promise<UploadInfo[]>;
  /** every page, already followed */
  listParts(key: string, uploadId: string, o?: { signal?: AbortSignal }): Promise<PartInfo[]>;
  abortMultipartUpload(key: string, uploadId: string, o?: { signal?: AbortSignal }): Promise<void>;
  headBucket(): Promise<unknown>;
  /** no configuration reads as [] */
  getBucketLifecycle(): Promise<LifecycleRule[]>;
  /** [] deletes the configuration (S3 refuses an empty one) */
  putBucketLifecycle(rules: readonly LifecycleRule[]): Promise<void>;
  getObjectTagging(key: string, o?: { signal?: AbortSignal }): Promise<Record<string, string>>;
  /** replaces all of the object's tags */
  putObjectTagging(key: string, tags: Record<string, string>, o?: { signal?: AbortSignal }): Promise<void>;
  /** Object Lock of the bucket (not enabled when it has no configuration) */
  getObjectLockConfiguration(o?: { signal?: AbortSignal }): Promise<ObjectLockConfig>;
  getBucketVersioning(o?: { signal?: AbortSignal }): Promise<'Enabled' | 'Suspended' | 'Off'>;
  /** RestoreObject of an archived object; 409 RestoreAlreadyInProgress answers 'in-progress' */
  restoreObject(
    key: string,
    o?: { days?: number; tier?: import('../s3/restore.js').RestoreTier; versionId?: string; signal?: AbortSignal },
  ): Promise<'accepted' | 'restored' | 'in-progress'>;
}

export type { ContentType as Content } from '../pve/content.js';
import type { ContentType as Content } from '../pve/content.js';

/** The storage settings the store's rules depend on (derived from StorageConfig by the caller). */
export interface StoreSettings {
  /** storage id, for volids ("<id>:backup/…") and rule ids */
  storageId: string;
  bucket: string;
  /** key prefix: '' or ending in '/' */
  prefix: string;
  chunkSizeMB: number;
  concurrency: number;
  storageClass?: string;
  put?: Pick<PutOptions, 'sse' | 'contentMd5'>;
  /** the storage's local cache dir (PVE `path`); needed by sync-local and pending attributes */
  cacheDir?: string;
  lifecycle?: LifecycleSettings;
  /** keep the local file after sync-local uploaded it (storage's keep-local setting; default true) */
  keepLocal?: boolean;
  /** node name written into x-amz-meta-node (default: os.hostname()) */
  node?: string;
  /** KiB/s for downloads (restores, cache fills): the storage's bwlimit `restore`, else `default`;
   *  absent or 0 = unlimited */
  downloadBwlimitKiB?: number;
  /** KiB/s for uploads: the storage's bwlimit `default` (PVE has no upload/backup key; see
   *  settings.ts); absent or 0 = unlimited */
  uploadBwlimitKiB?: number;
  /** resume journals for multipart uploads from files (under the cache dir's state dir) */
  journalDir?: string;
  /** the S3 implementation (host/src/s3/providers.ts); detected: by `provider auto` from the endpoint host.
   *  Absent: the client's own (detected from its endpoint) */
  provider?: { id: ProviderId; detected: boolean };
  /** S3 Object Lock retention for archives and manifests (lock_days, lock_mode; object-lock.ts) */
  lock?: { days: number; mode: 'governance' | 'compliance' };
  /** defaults for restores of archived objects (restore_tier, restore_days; archive-state.ts) */
  restore?: { tier: import('../s3/restore.js').RestoreTier; days: number };
  /** the storage's manifest key file (store/trust.ts); absent: nothing can be verified */
  manifestKey?: import('../config/manifest-key-location.js').ManifestKeyLocation;
}

export interface LifecycleSettings {
  enabled: boolean;
  transitionDays?: number;
  glacierDays?: number;
  abortIncompleteDays?: number;
}

export interface StoreContext {
  client: StoreClient;
  settings: StoreSettings;
  logger: Logger;
  /** injectable for tests of age rules; defaults to the wall clock */
  now?: () => Date;
  /** something the operator should read now (a command's stderr), besides the log */
  notice?(message: string): void;
  signal?: AbortSignal;
}

export type GuestType = 'qemu' | 'lxc' | 'openvz' | 'unknown';

export type Trust = 'verified' | 'unverified' | 'incomplete';

/** One volume as PVE's list_volumes wants it, plus what the tools show. */
export interface Volume {
  volid: string;
  volname: string;
  content: Content;
  name: string;
  key: string;
  size: number;
  /** epoch seconds: from a standard backup name, else LastModified */
  ctime: number;
  format?: string;
  vmid?: number;
  subtype?: GuestType;
  /** first line only (PVE's list semantics); full text through getAttribute */
  notes?: string;
  protected: boolean;
  /** integrity manifest present (a backup without one is incomplete, never good) */
  manifest: boolean;
  /** trust === 'verified': a manifest signed with this storage's key vouches for this object
   *  (store/trust.ts) */
  verified?: boolean;
  /** verified | unverified (intact as far as its manifest says, but not signed by us) |
   *  incomplete (no manifest, or one that does not match the object) */
  trust?: Trust;
  /** why it is not verified, for messages and listings */
  trustNote?: string;
  /** the object's LastModified, epoch seconds */
  mtime?: number;
  /** the vzdump log sidecar is present */
  log?: boolean;
  /** present only in the local cache dir, not yet in the bucket */
  pending?: boolean;
  /** why it cannot be given a local copy (a name too long, stored by another tool): pve/volname.ts */
  unusable?: string;
  etag?: string;
  storageClass?: string;
  /** S3 Object Lock: "locked until DATE (MODE)" while its archive is retained (listVolumes `locks`) */
  locked?: string;
  /** set only for an object in a class that needs a restore before a GET (GLACIER, DEEP_ARCHIVE,
   *  INTELLIGENT_TIERING's archive tiers): archived, restoring or restored until a date
   *  (store/archive-state.ts); a listing HEADs such objects for it (store/list.ts) */
  archive?: import('./archive-state.js').ArchiveState;
}

export const nowOf = (ctx: StoreContext): Date => (ctx.now ? ctx.now() : new Date());

/** PVE's volume id, `<storage>:<volname>` */
export const volid = (ctx: StoreContext, volname: string): string => `${ctx.settings.storageId}:${volname}`;

type TransferClient = import('../transfer/transfer-client.js').TransferClient;
/** one client per context, and one per writer lock (a lock belongs to one context's upload) */
const tracked = new WeakMap<object, TransferClient>();

/**
 * The same client seen through the transfer engine's structural interface (S3Client has both),
 * with the storage's abandoned uploads kept (store/abandoned-uploads.ts): an abort that fails is
 * remembered, and the first multipart upload of this client aborts what is abandoned first.
 * `writer`: the volume lock (volume-lock.ts) of an upload that cannot be resumed (a stream's, a
 * server-side copy's): each multipart upload it creates is remembered with that lock until it
 * completes or is aborted, so that one whose writer was killed is aborted by the next. Uploads
 * from files are not given one: their resume journal continues them, and an abort would lose that.
 * The module is loaded only then: a status never gets here.
 */
export const transferClient = (ctx: StoreContext, writer?: { readonly path: string }): TransferClient => {
  const slot: object = writer ?? ctx;
  let c = tracked.get(slot);
  if (c !== undefined) return c;
  const client = ctx.client as unknown as TransferClient;
  const records = (): Promise<typeof import('./abandoned-uploads.js')> => import('./abandoned-uploads.js');
  let swept: Promise<unknown> | undefined;
  const create: TransferClient['createMultipartUpload'] = async (key, put) => {
    swept ??= records().then((m) => m.abortAbandoned(ctx)).catch(() => 0);
    await swept;
    const uploadId = await client.createMultipartUpload(key, put);
    if (writer !== undefined) await (await records()).rememberUpload(ctx, key, uploadId, writer.path);
    return uploadId;
  };
  const complete: TransferClient['completeMultipartUpload'] = async (key, uploadId, ...rest) => {
    const r = await client.completeMultipartUpload(key, uploadId, ...rest);
    if (writer !== undefined) await (await records()).forgetUpload(ctx, uploadId);
    return r;
  };
  const abort: TransferClient['abortMultipartUpload'] = async (key, uploadId, ...rest) => {
    try {
      await client.abortMultipartUpload(key, uploadId, ...rest);
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'Error';
      // gone already is what an abort wants: forgotten like an aborted one
      if (code !== 'NoSuchUpload') {
        // the log's warning and the upload engine's message say the same (LATER_ABORT)
        const later = await records().then((m) => m.rememberAbandoned(ctx, key, uploadId, code), () => undefined);
        if (later !== undefined && e instanceof Object) (e as Record<symbol, unknown>)[(await import('../transfer/transfer-client.js')).LATER_ABORT] = later;
      } else if (writer !== undefined) await (await records()).forgetUpload(ctx, uploadId);
      throw e;
    }
    if (writer !== undefined) await (await records()).forgetUpload(ctx, uploadId);
  };
  c = new Proxy(client, {
    get(target, prop) {
      if (prop === 'createMultipartUpload') return create;
      if (prop === 'completeMultipartUpload') return complete;
      if (prop === 'abortMultipartUpload') return abort;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  tracked.set(slot, c);
  return c;
};

/**
 * The client an upload of `src` goes through: a stream's cannot be resumed, so it is remembered
 * with its writer's lock (to be aborted if the writer is killed); a file's is resumed by its
 * journal instead, which an abort would lose.
 */
export const uploadClient = (ctx: StoreContext, src: object, writer: { readonly path: string }): TransferClient =>
  'stream' in src ? transferClient(ctx, writer) : transferClient(ctx);

/** What reads need of the storage's SSE: only an SSE-C key (S3 refuses SSE-S3/KMS headers on GET). */
export const readSse = (ctx: StoreContext): { sse?: SseOptions } =>
  ctx.settings.put?.sse?.type === 'SSE-C' ? { sse: ctx.settings.put.sse } : {};

/** The provider whose rules apply to this storage. */
export const providerOf = (ctx: StoreContext): Provider =>
  (ctx.settings.provider && PROVIDERS[ctx.settings.provider.id]) || ((ctx.client as { provider?: Provider }).provider ?? PROVIDERS.other);

/** The engine options every store upload shares: the storage's upload bwlimit, resume journal and
 *  the provider's part limits. */
export const uploadLimits = (
  ctx: StoreContext,
): { bwlimitKiB?: number; journalDir?: string; partLimits: { maxParts: number; maxPartBytes: number } } => {
  const p = providerOf(ctx);
  return {
    ...(ctx.settings.uploadBwlimitKiB ? { bwlimitKiB: ctx.settings.uploadBwlimitKiB } : {}),
    ...(ctx.settings.journalDir !== undefined ? { journalDir: ctx.settings.journalDir } : {}),
    partLimits: { maxParts: p.maxParts, maxPartBytes: p.maxPartBytes },
  };
};
