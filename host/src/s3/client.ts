/**
 * S3Client: the operations pve-s3 needs, on top of S3Transport (sign, send, retry). Contract in
 * docs/ARCHITECTURE.md (S3 layer).
 */
import { ConfigError } from '../util/errors.js';
import { S3Error, serverError } from './errors.js';
import type { Provider } from './providers.js';
import { checksumHeader, copySource, contentMd5, objectInfo, putHeaders, readSseHeaders, sseCHeaders } from './objects.js';
import { S3Transport, type BufferedResponse, type S3Request, type TransportOptions } from './request.js';
import { buildRestoreRequest, type RestoreTier } from './restore.js';
import type { S3Settings } from './settings.js';
import type {
  DeleteResult,
  LifecycleRule,
  ListPage,
  ObjectInfo,
  ObjectLockConfig,
  ObjectSummary,
  PartInfo,
  PutOptions,
  Retention,
  SseOptions,
  UploadInfo,
} from './types.js';
import {
  XmlError,
  buildCompleteMultipartUpload,
  buildCreateBucket,
  buildDeleteObjects,
  buildLifecycle,
  buildRetention,
  buildTagging,
  parseCompleteMultipartUpload,
  parseCopyObjectResult,
  parseDeleteResult,
  parseErrorNode,
  parseInitiateMultipartUpload,
  parseLifecycle,
  parseObjectLockConfiguration,
  parseVersioning,
  parseListMultipartUploads,
  parseListObjectsV1,
  parseListObjectsV2,
  parseListParts,
  parseTagging,
  normalizeETag,
  GENERAL_XML_MAX,
  loadXmlParser,
  parseXml,
  partsFromETag,
  isV1Listing,
  rawListPage,
  type RawListPage,
  type XmlDocument,
} from './xml.js';
import { compareKeys } from './key-order.js';
import { scanFlat } from './flat-xml.js';
import { EMPTY_PAGES_MAX, ListAdvance } from './list-advance.js';
import { scanListPage } from './list-xml.js';

/** The client adds nothing of its own: everything goes to its transport. */
export type ClientOptions = TransportOptions;

export interface ReadOptions {
  signal?: AbortSignal;
  /** a version other than the current one (versioned buckets) */
  versionId?: string;
  /** SSE-C objects can only be read with their key */
  sse?: SseOptions;
}

export interface CopyOptions extends Omit<PutOptions, 'contentMd5' | 'sha256Hex'> {
  /** replace metadata/content type instead of copying them (implied when metadata is given) */
  replaceMetadata?: boolean;
  /** SSE-C key of the source */
  sourceSse?: SseOptions;
  sourceBucket?: string;
}

export const MAX_DELETE_BATCH = 1000;
// characters XML 1.0 forbids even as references; lone surrogates cannot be UTF-8 either (in a
// /u regex a pair is one code point: the range matches lone halves only, as \p{Cs} would, without
// loading ICU's property data when the module loads)
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udfff]/u;
const utf8 = new TextEncoder();
const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
const EMPTY_BODY = new Uint8Array(0);

export class S3Client {
  readonly transport: S3Transport;
  readonly bucket: string;
  private listApi: 'v1' | 'v2';

  constructor(s: S3Settings, o: ClientOptions = {}) {
    this.transport = new S3Transport(s, o);
    this.bucket = s.bucket;
    this.listApi = s.listApi ?? this.transport.provider.listApi;
  }

  get endpoint(): string {
    return this.transport.endpoint.origin;
  }

  /** the endpoint has been silent for stall_timeout: a request now gets only its last try (stall.ts) */
  get silent(): boolean {
    return this.transport.silent;
  }

  /** the provider whose rules apply (host/src/s3/providers.ts) */
  get provider(): Provider {
    return this.transport.provider;
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /**
   * A 200 answer whose body is <Error> (CompleteMultipartUpload, CopyObject and UploadPartCopy
   * report late failures this way) is an error; otherwise parse must accept the body.
   */
  /**
   * An XML answer through `parse`. `scan`, for listing pages: the answer read without a tree
   * (list-xml.ts), or undefined when the body is outside what the scanner reads; then the
   * general parser reads it, unless the body is a flat document (flat-xml.ts: the multipart
   * results, an <Error>), which is read without loading fast-xml-parser.
   */
  private async xml<T>(
    r: Pick<S3Request, 'operation' | 'key'>,
    res: BufferedResponse,
    parse: (doc: XmlDocument) => T,
    scan?: (body: string) => T | undefined,
  ): Promise<T> {
    const body = text(res.body);
    // the bytes are garbage once decoded: a page is held once (as text) while it is parsed
    res.body = EMPTY_BODY;
    if (scan !== undefined) {
      const quick = this.answer(r, res, () => scan(body));
      if (quick !== undefined) return quick;
    }
    const flat = scanFlat(body);
    if (flat === undefined) {
      if (body.length > GENERAL_XML_MAX) {
        const what = r.key !== undefined ? ` for '${r.key}'` : '';
        throw new S3Error(
          'ResponseTooLarge',
          `${r.operation} answer${what} from ${this.endpoint} is ${body.length} bytes of XML in a form S3 does not write (only the general parser reads it), more than the ${GENERAL_XML_MAX} bytes it is given: not parsed (is endpoint an S3 server?)`,
          { status: res.status, key: r.key, retryable: false },
        );
      }
      await loadXmlParser();
    }
    return this.answer(r, res, () => {
      const doc = flat ?? parseXml(body);
      if (doc.root === 'Error') {
        const e = parseErrorNode(doc.node);
        throw serverError(e.code, res.status, e.message, e.requestId ?? res.headers['x-amz-request-id'], this.transport.context(r));
      }
      return parse(doc);
    });
  }

  /** read(), its bad-XML errors as the InvalidResponse that names the endpoint and operation. */
  private answer<T>(r: Pick<S3Request, 'operation' | 'key'>, res: BufferedResponse, read: () => T): T {
    try {
      return read();
    } catch (e) {
      if (e instanceof S3Error) throw e;
      const why = e instanceof XmlError ? e.message : String(e);
      throw new S3Error('InvalidResponse', `unexpected answer from ${this.endpoint} to ${r.operation}: ${why} (is endpoint an S3 server?)`, {
        status: res.status,
        key: r.key,
        retryable: false,
      });
    }
  }

  // --- objects -------------------------------------------------------------------------------

  async headObject(key: string, o: ReadOptions = {}): Promise<ObjectInfo> {
    const headers: Record<string, string> = {};
    readSseHeaders(o.sse, headers);
    const query: Array<[string, string]> = o.versionId !== undefined ? [['versionId', o.versionId]] : [];
    const res = await this.transport.request({ operation: 'HeadObject', method: 'HEAD', key, query, headers, idempotent: true, signal: o.signal });
    return objectInfo(key, res.headers);
  }

  /**
   * Sets an object version's Object Lock retention. AWS requires Content-MD5 (or a checksum) on
   * it. Extending a retention needs nothing more; shortening a GOVERNANCE one needs
   * `bypassGovernance`, which nothing in pve-s3 sends (only tests).
   */
  async putObjectRetention(key: string, retention: Retention, o: { versionId?: string; bypassGovernance?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const body = utf8.encode(buildRetention(retention.mode, retention.retainUntil));
    const headers: Record<string, string> = { 'content-md5': contentMd5(body), 'content-type': 'application/xml' };
    if (o.bypassGovernance) headers['x-amz-bypass-governance-retention'] = 'true';
    const query: Array<[string, string]> = [['retention', '']];
    if (o.versionId !== undefined) query.push(['versionId', o.versionId]);
    await this.transport.request({ operation: 'PutObjectRetention', method: 'PUT', key, query, headers, body, idempotent: true, signal: o.signal });
  }

  /**
   * A completed multipart upload's retention as asked on CreateMultipartUpload. RadosGW 16.2
   * accepts the x-amz-object-lock-* headers there but stores the object without them (observed:
   * test/integration/store-object-lock.test.ts), so the version just written gets its retention
   * by PutObjectRetention when HEAD does not show it (never shortened: that would need bypass).
   */
  private async ensureRetention(key: string, versionId: string | undefined, want: Retention, o: { sse?: SseOptions; signal?: AbortSignal }): Promise<void> {
    const info = await this.headObject(key, { ...o, ...(versionId !== undefined ? { versionId } : {}) });
    const have = info.objectLock?.retainUntil?.getTime();
    if (info.objectLock?.mode === want.mode && have !== undefined && have >= want.retainUntil.getTime() - 1000) return;
    await this.putObjectRetention(key, want, { versionId: versionId ?? info.versionId, signal: o.signal });
  }

  async getObjectTagging(key: string, o: { signal?: AbortSignal } = {}): Promise<Record<string, string>> {
    const r = { operation: 'GetObjectTagging', key };
    const res = await this.transport.request({ ...r, method: 'GET', query: [['tagging', '']], idempotent: true, signal: o.signal });
    // RadosGW 16.2 answers 200 with an empty body for an object completed from a multipart upload
    // that has no tags (it drops CreateMultipartUpload's x-amz-tagging): no tag set at all
    if (res.status === 200 && res.body.byteLength === 0) return {};
    return await this.xml(r, res, parseTagging);
  }

  /** Replaces all of the object's tags. */
  async putObjectTagging(key: string, tags: Record<string, string>, o: { signal?: AbortSignal } = {}): Promise<void> {
    const body = utf8.encode(buildTagging(tags));
    await this.transport.request({
      operation: 'PutObjectTagging',
      method: 'PUT',
      key,
      query: [['tagging', '']],
      headers: { 'content-md5': contentMd5(body), 'content-type': 'application/xml' },
      body,
      idempotent: true,
      signal: o.signal,
    });
  }

  /**
   * RestoreObject (POST ?restore) of an archived object. AWS answers 202 Accepted when it starts
   * a restore, 200 OK when a restored copy exists already (its expiry is then reset to `days`
   * from now), and 409 RestoreAlreadyInProgress while one is running
   * (https://docs.aws.amazon.com/AmazonS3/latest/API/API_RestoreObject.html): all three mean
   * "requested", so the 409 is an answer here, not an error. Not idempotent in cost (each
   * accepted request is billed), so callers HEAD first and a lost answer is not resent blindly.
   */
  async restoreObject(
    key: string,
    o: { days?: number; tier?: RestoreTier; versionId?: string; signal?: AbortSignal } = {},
  ): Promise<'accepted' | 'restored' | 'in-progress'> {
    const body = utf8.encode(buildRestoreRequest(o));
    const query: Array<[string, string]> = [['restore', '']];
    if (o.versionId !== undefined) query.push(['versionId', o.versionId]);
    try {
      const res = await this.transport.request({
        operation: 'RestoreObject',
        method: 'POST',
        key,
        query,
        headers: { 'content-md5': contentMd5(body), 'content-type': 'application/xml' },
        body,
        idempotent: false,
        signal: o.signal,
      });
      return res.status === 202 ? 'accepted' : 'restored';
    } catch (e) {
      if (e instanceof S3Error && e.code === 'RestoreAlreadyInProgress') return 'in-progress';
      throw e;
    }
  }

  /** range: [first, last] byte, both inclusive (HTTP's bytes=first-last). */
  async getObject(key: string, o: ReadOptions & { range?: [number, number] } = {}): Promise<{ body: AsyncIterable<Uint8Array>; info: ObjectInfo }> {
    const headers = getHeaders(o);
    const res = await this.transport.stream({ operation: 'GetObject', method: 'GET', key, headers, idempotent: true, signal: o.signal });
    return { body: res.body, info: objectInfo(key, res.headers) };
  }

  /**
   * GetObject for bulk data (downloads): the body goes to `onData` piece by piece as it arrives,
   * each piece a view of a reused buffer valid only during the call (transport.receive, the lean
   * path). Resolves once the whole body has been handed on.
   */
  async getObjectInto(key: string, o: ReadOptions & { range?: [number, number] }, onData: (chunk: Uint8Array) => void): Promise<ObjectInfo> {
    const headers = getHeaders(o);
    const res = await this.transport.receive({ operation: 'GetObject', method: 'GET', key, headers, idempotent: true, signal: o.signal }, onData);
    return objectInfo(key, res.headers);
  }

  async putObject(key: string, body: Uint8Array, o: PutOptions = {}): Promise<{ etag: string; versionId?: string }> {
    const headers = putHeaders(o);
    if (o.contentMd5 || o.objectLock) headers['content-md5'] = contentMd5(body);
    const alg = this.transport.settings.checksumAlgorithm;
    if (alg) {
      const [name, value] = checksumHeader(alg, body);
      headers[name] = value;
    }
    const res = await this.transport.request({
      operation: 'PutObject',
      method: 'PUT',
      key,
      headers,
      body,
      sha256Hex: o.sha256Hex,
      idempotent: true,
      signal: o.signal,
      ...(o.pace ? { pace: o.pace } : {}),
    });
    return { etag: normalizeETag(res.headers['etag'] ?? ''), versionId: res.headers['x-amz-version-id'] };
  }

  async copyObject(srcKey: string, dstKey: string, o: CopyOptions = {}): Promise<{ etag: string }> {
    const headers = putHeaders(o);
    headers['x-amz-copy-source'] = copySource(o.sourceBucket ?? this.bucket, srcKey);
    if (o.replaceMetadata || o.metadata || o.contentType) headers['x-amz-metadata-directive'] = 'REPLACE';
    // without the directive S3 copies the source's tags and ignores the ones given
    if (headers['x-amz-tagging'] !== undefined) headers['x-amz-tagging-directive'] = 'REPLACE';
    if (o.sourceSse?.type === 'SSE-C') sseCHeaders(o.sourceSse.key, headers, 'x-amz-copy-source-server-side-encryption-customer-');
    const r = { operation: 'CopyObject', key: dstKey };
    const res = await this.transport.request({ ...r, method: 'PUT', headers, idempotent: true, slowAnswer: true, signal: o.signal });
    return { etag: (await this.xml(r, res, parseCopyObjectResult)).etag };
  }

  async deleteObject(key: string, o: { signal?: AbortSignal } = {}): Promise<void> {
    await this.transport.request({ operation: 'DeleteObject', method: 'DELETE', key, idempotent: true, signal: o.signal });
  }

  /**
   * Deletes in batches of 1000 (Quiet mode: the server lists only failures). Keys XML 1.0 cannot
   * carry (control characters other than tab/LF/CR) are deleted one by one instead.
   */
  async deleteObjects(allKeys: readonly string[], o: { signal?: AbortSignal } = {}): Promise<DeleteResult> {
    const out: DeleteResult = { deleted: [], errors: [] };
    const keys: string[] = [];
    for (const k of allKeys) {
      if (!NOT_XML.test(k)) {
        keys.push(k);
        continue;
      }
      try {
        await this.deleteObject(k, o);
        out.deleted.push(k);
      } catch (e) {
        if (!(e instanceof S3Error) || e.retryable) throw e;
        out.errors.push({ key: k, code: e.code, message: e.message });
      }
    }
    for (let i = 0; i < keys.length; i += MAX_DELETE_BATCH) {
      const batch = keys.slice(i, i + MAX_DELETE_BATCH);
      const body = utf8.encode(buildDeleteObjects(batch, true));
      const r = { operation: 'DeleteObjects', subject: batch[0]! };
      const res = await this.transport.request({
        ...r,
        method: 'POST',
        query: [['delete', '']],
        headers: { 'content-md5': contentMd5(body), 'content-type': 'application/xml' },
        body,
        idempotent: true,
        signal: o.signal,
      });
      const result = await this.xml(r, res, parseDeleteResult);
      const failed = new Set(result.errors.map((e) => e.key));
      out.errors.push(...result.errors);
      for (const k of batch) if (!failed.has(k)) out.deleted.push(k);
    }
    return out;
  }

  // --- listing -------------------------------------------------------------------------------

  async listObjects(
    o: { prefix?: string; delimiter?: string; continuationToken?: string; startAfter?: string; maxKeys?: number; signal?: AbortSignal } = {},
  ): Promise<ListPage> {
    if (this.listApi === 'v1') return this.listObjectsV1(o);
    const query: Array<[string, string]> = [
      ['list-type', '2'],
      ['encoding-type', 'url'],
    ];
    if (o.prefix) query.push(['prefix', o.prefix]);
    if (o.delimiter) query.push(['delimiter', o.delimiter]);
    if (o.continuationToken) query.push(['continuation-token', o.continuationToken]);
    else if (o.startAfter !== undefined) query.push(['start-after', o.startAfter]);
    if (o.maxKeys !== undefined) query.push(['max-keys', String(o.maxKeys)]);
    const r = { operation: 'ListObjectsV2' };
    let res: BufferedResponse;
    try {
      res = await this.transport.request({ ...r, method: 'GET', query, idempotent: true, signal: o.signal });
    } catch (e) {
      // only a refusal of the API itself: other errors (a bad max-keys, say) must not switch APIs for good
      if (e instanceof S3Error && !o.continuationToken && (e.code === 'NotImplemented' || e.status === 501)) {
        this.transport.logger.info('ListObjectsV2 refused; using ListObjects (V1)', { endpoint: this.endpoint, code: e.code });
        this.listApi = 'v1';
        return this.listObjectsV1(o);
      }
      throw e;
    }
    // gateways that ignore list-type=2 answer a V1 listing (Marker, no KeyCount)
    // null: the gateway answered a V1 listing (its first page tells)
    const v2 = (raw: RawListPage) => (!o.continuationToken && isV1Listing(raw) ? null : parseListObjectsV2(raw));
    const page = await this.xml(
      r,
      res,
      (doc) => v2(rawListPage(doc)),
      (body) => {
        const raw = scanListPage(body);
        return raw === undefined ? undefined : v2(raw);
      },
    );
    if (!page) {
      this.transport.logger.info('gateway answered ListObjectsV2 with a V1 listing; using ListObjects (V1)', { endpoint: this.endpoint });
      this.listApi = 'v1';
      return this.listObjectsV1(o);
    }
    return { objects: page.objects, prefixes: page.prefixes, isTruncated: page.isTruncated, nextContinuationToken: page.nextContinuationToken };
  }

  /** V1: the continuation token handed out is the marker. */
  private async listObjectsV1(o: {
    prefix?: string;
    delimiter?: string;
    continuationToken?: string;
    startAfter?: string;
    maxKeys?: number;
    signal?: AbortSignal;
  }): Promise<ListPage> {
    const query: Array<[string, string]> = [['encoding-type', 'url']];
    if (o.prefix) query.push(['prefix', o.prefix]);
    if (o.delimiter) query.push(['delimiter', o.delimiter]);
    // the marker is where V1 starts after: the token handed out, else startAfter
    const marker = o.continuationToken ?? o.startAfter;
    if (marker) query.push(['marker', marker]);
    if (o.maxKeys !== undefined) query.push(['max-keys', String(o.maxKeys)]);
    const r = { operation: 'ListObjects' };
    const res = await this.transport.request({ ...r, method: 'GET', query, idempotent: true, signal: o.signal });
    const page = await this.xml(r, res, parseListObjectsV1, (body) => {
      const raw = scanListPage(body);
      return raw === undefined ? undefined : parseListObjectsV1(raw);
    });
    return { objects: page.objects, prefixes: page.prefixes, isTruncated: page.isTruncated, nextContinuationToken: page.nextMarker };
  }

  async *listAll(o: { prefix?: string; delimiter?: string; signal?: AbortSignal } = {}): AsyncIterable<ObjectSummary> {
    for await (const page of this.listPages(o)) yield* page.objects;
  }

  /** Every page, for callers that also need the common prefixes. */
  async *listPages(o: { prefix?: string; delimiter?: string; maxKeys?: number; signal?: AbortSignal } = {}): AsyncIterable<ListPage> {
    let token: string | undefined;
    const advance = new ListAdvance(this.endpoint);
    for (;;) {
      const page = await this.listObjects({ ...o, continuationToken: token });
      advance.page(page);
      yield page;
      if (!page.isTruncated) return;
      if (!page.nextContinuationToken || page.nextContinuationToken === token) {
        throw new S3Error('InvalidResponse', `${this.endpoint} returned a truncated listing without a way to continue: listing stopped`, { retryable: false });
      }
      token = page.nextContinuationToken;
    }
  }

  /**
   * The keys k under `prefix` with after < k <= through (either end open when not given), in
   * key order: pages from start-after `after` until one reaches past `through`. Ranges that
   * share their ends (one's through, the next one's after) list every key exactly once.
   */
  async listRange(o: { prefix?: string; after?: string; through?: string; signal?: AbortSignal }): Promise<ObjectSummary[]> {
    const out: ObjectSummary[] = [];
    let token: string | undefined;
    const advance = new ListAdvance(this.endpoint, o.after);
    for (;;) {
      const page = await this.listObjects({ prefix: o.prefix, startAfter: o.after, continuationToken: token, signal: o.signal });
      advance.page(page);
      for (const x of page.objects) {
        if (o.through !== undefined && compareKeys(x.key, o.through) > 0) return out;
        out.push(x);
      }
      if (!page.isTruncated) return out;
      const last = page.objects.at(-1);
      if (o.through !== undefined && last !== undefined && compareKeys(last.key, o.through) >= 0) return out;
      if (!page.nextContinuationToken || page.nextContinuationToken === token) {
        throw new S3Error('InvalidResponse', `${this.endpoint} returned a truncated listing without a way to continue: listing stopped`, { retryable: false });
      }
      token = page.nextContinuationToken;
    }
  }

  // --- multipart -----------------------------------------------------------------------------

  async createMultipartUpload(key: string, o: PutOptions = {}): Promise<string> {
    const headers = putHeaders(o);
    const alg = this.transport.settings.checksumAlgorithm;
    if (alg) headers['x-amz-checksum-algorithm'] = alg;
    const r = { operation: 'CreateMultipartUpload', key };
    const res = await this.transport.request({ ...r, method: 'POST', query: [['uploads', '']], headers, idempotent: false, signal: o.signal });
    return (await this.xml(r, res, parseInitiateMultipartUpload)).uploadId;
  }

  async uploadPart(
    key: string,
    uploadId: string,
    partNumber: number,
    body: Uint8Array,
    sha256Hex: string,
    o: { signal?: AbortSignal; sse?: SseOptions; contentMd5?: boolean; pace?: S3Request['pace'] } = {},
  ): Promise<{ etag: string; checksum?: string }> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw new ConfigError('partNumber', partNumber, 'must be an integer 1..10000');
    }
    const headers: Record<string, string> = {};
    readSseHeaders(o.sse, headers);
    if (o.contentMd5) headers['content-md5'] = contentMd5(body);
    const alg = this.transport.settings.checksumAlgorithm;
    let checksum: string | undefined;
    if (alg) {
      const [name, value] = checksumHeader(alg, body);
      headers[name] = checksum = value;
    }
    const res = await this.transport.request({
      operation: 'UploadPart',
      method: 'PUT',
      key,
      query: [
        ['partNumber', String(partNumber)],
        ['uploadId', uploadId],
      ],
      headers,
      body,
      sha256Hex,
      idempotent: true,
      signal: o.signal,
      ...(o.pace ? { pace: o.pace } : {}),
    });
    const etag = res.headers['etag'];
    if (!etag) throw new S3Error('InvalidResponse', `${this.endpoint} answered UploadPart ${partNumber} of '${key}' without an ETag`, { key, retryable: true });
    return checksum === undefined ? { etag: normalizeETag(etag) } : { etag: normalizeETag(etag), checksum };
  }

  /**
   * UploadPartCopy: bytes `range` (both inclusive) of `srcKey` in this bucket become part
   * `partNumber` of the upload. `sse` is the destination's SSE-C key, `sourceSse` the source's.
   */
  async uploadPartCopy(
    key: string,
    uploadId: string,
    partNumber: number,
    srcKey: string,
    range: [number, number],
    o: { signal?: AbortSignal; sse?: SseOptions; sourceSse?: SseOptions } = {},
  ): Promise<{ etag: string }> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10000) {
      throw new ConfigError('partNumber', partNumber, 'must be an integer 1..10000');
    }
    const headers: Record<string, string> = {
      'x-amz-copy-source': copySource(this.bucket, srcKey),
      'x-amz-copy-source-range': `bytes=${range[0]}-${range[1]}`,
    };
    readSseHeaders(o.sse, headers);
    if (o.sourceSse?.type === 'SSE-C') sseCHeaders(o.sourceSse.key, headers, 'x-amz-copy-source-server-side-encryption-customer-');
    const r = { operation: 'UploadPartCopy', key };
    const res = await this.transport.request({
      ...r,
      method: 'PUT',
      query: [
        ['partNumber', String(partNumber)],
        ['uploadId', uploadId],
      ],
      headers,
      idempotent: true,
      slowAnswer: true,
      signal: o.signal,
    });
    return { etag: (await this.xml(r, res, parseCopyObjectResult)).etag };
  }

  async completeMultipartUpload(
    key: string,
    uploadId: string,
    parts: readonly { partNumber: number; etag: string; checksum?: string }[],
    o: { signal?: AbortSignal; sse?: SseOptions; objectLock?: Retention } = {},
  ): Promise<{ etag: string }> {
    const done = await this.completeMultipart(key, uploadId, parts, o);
    if (o.objectLock) await this.ensureRetention(key, done.versionId, o.objectLock, o);
    return { etag: done.etag };
  }

  private async completeMultipart(
    key: string,
    uploadId: string,
    parts: readonly { partNumber: number; etag: string; checksum?: string }[],
    o: { signal?: AbortSignal; sse?: SseOptions },
  ): Promise<{ etag: string; versionId?: string }> {
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const body = utf8.encode(buildCompleteMultipartUpload(sorted, this.transport.settings.checksumAlgorithm));
    const r = { operation: 'CompleteMultipartUpload', key };
    let attempts = 0;
    try {
      const res = await this.transport.request({
        ...r,
        method: 'POST',
        query: [['uploadId', uploadId]],
        headers: { 'content-type': 'application/xml' },
        body,
        slowAnswer: true,
        onAttempt: () => attempts++,
        idempotent: true,
        signal: o.signal,
      });
      const etag = (await this.xml(r, res, parseCompleteMultipartUpload)).etag;
      const versionId = res.headers['x-amz-version-id'];
      // RadosGW (16.x) answers an empty <ETag/>; the object's own ETag is the answer then
      if (etag === '') return { etag: (await this.headObject(key, { sse: o.sse, signal: o.signal }).catch(() => undefined))?.etag ?? '', versionId };
      return { etag, versionId };
    } catch (e) {
      // a retried Complete whose first attempt succeeded finds the upload gone: the object is there
      if (e instanceof S3Error && e.code === 'NoSuchUpload' && attempts > 1) {
        const info = await this.headObject(key, { sse: o.sse }).catch(() => undefined);
        if (info && partsFromETag(info.etag) === sorted.length) return { etag: info.etag, versionId: info.versionId };
      }
      throw e;
    }
  }

  /** Gone already (aborted or completed) counts as done. */
  async abortMultipartUpload(key: string, uploadId: string, o: { signal?: AbortSignal } = {}): Promise<void> {
    try {
      await this.transport.request({ operation: 'AbortMultipartUpload', method: 'DELETE', key, query: [['uploadId', uploadId]], idempotent: true, signal: o.signal });
    } catch (e) {
      if (e instanceof S3Error && e.code === 'NoSuchUpload') return;
      throw e;
    }
  }

  /** Every page followed; maxParts only sets the page size. */
  async listParts(key: string, uploadId: string, o: { signal?: AbortSignal; maxParts?: number } = {}): Promise<PartInfo[]> {
    const parts: PartInfo[] = [];
    let marker: number | undefined;
    for (;;) {
      const query: Array<[string, string]> = [['uploadId', uploadId]];
      if (o.maxParts !== undefined) query.push(['max-parts', String(o.maxParts)]);
      if (marker !== undefined) query.push(['part-number-marker', String(marker)]);
      const r = { operation: 'ListParts', key };
      const res = await this.transport.request({ ...r, method: 'GET', query, idempotent: true, signal: o.signal });
      const page = await this.xml(r, res, parseListParts);
      parts.push(...page.parts);
      if (!page.isTruncated) return parts;
      const next = page.nextPartNumberMarker ?? page.parts.at(-1)?.partNumber;
      if (next === undefined || next === marker) throw new S3Error('InvalidResponse', `${this.endpoint} returned a truncated ListParts page without a marker`, { key });
      marker = next;
    }
  }

  /** Every page followed; maxUploads only sets the page size. */
  async listMultipartUploads(o: { prefix?: string; signal?: AbortSignal; maxUploads?: number } = {}): Promise<UploadInfo[]> {
    const uploads: UploadInfo[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    // pages must move forward as a listing's do (list-advance.ts): markers never go back to a
    // key, never repeat, and one key's uploads end (EMPTY_PAGES_MAX pages of them at most)
    const seen = new Set<string>();
    let sameKey = 0;
    for (;;) {
      // no encoding-type=url here: RadosGW encodes the keys but does not say so (<EncodingType>
      // missing), and a decoder cannot tell an encoded key from a raw one with '%' in it
      const query: Array<[string, string]> = [['uploads', '']];
      if (o.prefix) query.push(['prefix', o.prefix]);
      if (o.maxUploads !== undefined) query.push(['max-uploads', String(o.maxUploads)]);
      if (keyMarker !== undefined) query.push(['key-marker', keyMarker]);
      if (idMarker !== undefined) query.push(['upload-id-marker', idMarker]);
      const r = { operation: 'ListMultipartUploads' };
      const res = await this.transport.request({ ...r, method: 'GET', query, idempotent: true, signal: o.signal });
      const page = await this.xml(r, res, parseListMultipartUploads);
      uploads.push(...page.uploads);
      if (!page.isTruncated) return uploads;
      const nk = page.nextKeyMarker ?? page.uploads.at(-1)?.key;
      const nu = page.nextUploadIdMarker ?? page.uploads.at(-1)?.uploadId;
      if (nk === undefined || (nk === keyMarker && nu === idMarker)) {
        throw new S3Error('InvalidResponse', `${this.endpoint} returned a truncated ListMultipartUploads page without markers`, {});
      }
      sameKey = nk === keyMarker ? sameKey + 1 : 0;
      const mark = `${nk}\u0000${nu ?? ''}`;
      if (seen.has(mark) || (keyMarker !== undefined && compareKeys(nk, keyMarker) < 0) || sameKey >= EMPTY_PAGES_MAX) {
        throw new S3Error('InvalidResponse', `${this.endpoint} returned ListMultipartUploads pages that do not advance (key marker '${nk}' after '${keyMarker}'): listing stopped`, {
          retryable: false,
        });
      }
      seen.add(mark);
      keyMarker = nk;
      idMarker = nu;
    }
  }

  // --- bucket --------------------------------------------------------------------------------

  async headBucket(o: { signal?: AbortSignal } = {}): Promise<{ region?: string }> {
    const res = await this.transport.request({ operation: 'HeadBucket', method: 'HEAD', idempotent: true, signal: o.signal });
    return { region: res.headers['x-amz-bucket-region'] };
  }

  /** Creating a bucket we already own is success. */
  async createBucket(o: { objectLock?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    const region = this.transport.settings.region;
    const body = region && region !== 'us-east-1' ? utf8.encode(buildCreateBucket(region)) : undefined;
    const headers: Record<string, string> = {};
    if (o.objectLock) headers['x-amz-bucket-object-lock-enabled'] = 'true';
    try {
      await this.transport.request({ operation: 'CreateBucket', method: 'PUT', headers, body, idempotent: true, signal: o.signal });
    } catch (e) {
      if (e instanceof S3Error && e.code === 'BucketAlreadyOwnedByYou') return;
      throw e;
    }
  }

  /** Object Lock of the bucket; a bucket created without it reads as not enabled. */
  async getObjectLockConfiguration(o: { signal?: AbortSignal } = {}): Promise<ObjectLockConfig> {
    const r = { operation: 'GetObjectLockConfiguration' };
    try {
      const res = await this.transport.request({ ...r, method: 'GET', query: [['object-lock', '']], idempotent: true, signal: o.signal });
      return await this.xml(r, res, parseObjectLockConfiguration);
    } catch (e) {
      if (e instanceof S3Error && e.code === 'ObjectLockConfigurationNotFoundError') return { enabled: false };
      throw e;
    }
  }

  async getBucketVersioning(o: { signal?: AbortSignal } = {}): Promise<'Enabled' | 'Suspended' | 'Off'> {
    const r = { operation: 'GetBucketVersioning' };
    const res = await this.transport.request({ ...r, method: 'GET', query: [['versioning', '']], idempotent: true, signal: o.signal });
    return await this.xml(r, res, parseVersioning);
  }

  /** The bucket must be empty. */
  async deleteBucket(o: { signal?: AbortSignal } = {}): Promise<void> {
    await this.transport.request({ operation: 'DeleteBucket', method: 'DELETE', idempotent: true, signal: o.signal });
  }

  /** No lifecycle configuration at all reads as no rules. */
  async getBucketLifecycle(o: { signal?: AbortSignal } = {}): Promise<LifecycleRule[]> {
    const r = { operation: 'GetBucketLifecycleConfiguration' };
    try {
      const res = await this.transport.request({ ...r, method: 'GET', query: [['lifecycle', '']], idempotent: true, signal: o.signal });
      return await this.xml(r, res, parseLifecycle);
    } catch (e) {
      if (e instanceof S3Error && e.code === 'NoSuchLifecycleConfiguration') return [];
      throw e;
    }
  }

  /** Replaces the whole configuration; no rules deletes it (S3 refuses an empty one). */
  async putBucketLifecycle(rules: readonly LifecycleRule[], o: { signal?: AbortSignal } = {}): Promise<void> {
    if (rules.length === 0) {
      await this.transport.request({ operation: 'DeleteBucketLifecycle', method: 'DELETE', query: [['lifecycle', '']], idempotent: true, signal: o.signal });
      return;
    }
    const body = utf8.encode(buildLifecycle(rules));
    await this.transport.request({
      operation: 'PutBucketLifecycleConfiguration',
      method: 'PUT',
      query: [['lifecycle', '']],
      headers: { 'content-md5': contentMd5(body), 'content-type': 'application/xml' },
      body,
      idempotent: true,
      signal: o.signal,
    });
  }
}

/** Range and SSE-C headers of a GetObject. */
function getHeaders(o: ReadOptions & { range?: [number, number] }): Record<string, string> {
  const headers: Record<string, string> = {};
  if (o.range) {
    const [a, b] = o.range;
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b) || a < 0 || b < a) {
      throw new ConfigError('range', `${a}-${b}`, 'must be [first, last] byte offsets with 0 <= first <= last');
    }
    headers.range = `bytes=${a}-${b}`;
  }
  readSseHeaders(o.sse, headers);
  return headers;
}
