/**
 * An NBD client for one export of a unix-socket server — what a backup provider of mechanism
 * `nbd` is handed (Base.pm `backup_vm`: `nbd-path`, export name = device name; qemu-server
 * `archive_external` exports each device with `block-export-add`, writable for discard).
 *
 * Fixed newstyle negotiation, structured replies and the `base:allocation` context are required
 * of the server (QEMU has them); several requests may be in flight, replies are matched by cookie.
 * Every request has a reply timeout: the protocol cannot cancel one request, so a timeout closes
 * the connection and fails everything in flight.
 */
import { createConnection, type Socket } from 'node:net';
import { PveS3Error } from '../util/errors.js';
import { ByteQueue } from './byte-queue.js';
import * as P from './protocol.js';

export interface NbdExtent {
  offset: number;
  length: number;
  /** base:allocation flags: STATE_HOLE, STATE_ZERO */
  flags: number;
}

export interface NbdConnectOptions {
  socket: string;
  exportName: string;
  /** ms to wait for the connection, the negotiation and each reply (default 300 s) */
  timeoutMs?: number;
  signal?: AbortSignal;
}

interface Pending {
  kind: 'read' | 'status' | 'trim' | 'disc';
  offset: number;
  length: number;
  buf?: Buffer;
  extents?: NbdExtent[];
  error?: string;
  timer: NodeJS.Timeout;
  resolve(v: unknown): void;
  reject(e: Error): void;
}

const MAX_REQUEST = 0xffffffff;

export class NbdClient {
  private readonly q: ByteQueue;
  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private broken: PveS3Error | null = null;
  private closing = false;
  private readonly onAbort: () => void;

  private constructor(
    private readonly sock: Socket,
    private readonly o: NbdConnectOptions,
    readonly size: number,
    readonly transmissionFlags: number,
    private readonly contextId: number,
    q: ByteQueue,
  ) {
    this.q = q;
    sock.on('close', () => this.fail(this.closing ? 'connection closed' : 'connection closed by the server'));
    sock.on('error', (e) => this.fail(e.message));
    this.onAbort = () => this.fail('cancelled', 'Aborted');
    o.signal?.addEventListener('abort', this.onAbort, { once: true });
    void this.readReplies();
  }

  get canTrim(): boolean {
    return (this.transmissionFlags & P.TFLAG_SEND_TRIM) !== 0 && (this.transmissionFlags & P.TFLAG_READ_ONLY) === 0;
  }

  private get timeoutMs(): number {
    return this.o.timeoutMs ?? 300_000;
  }

  static async connect(o: NbdConnectOptions): Promise<NbdClient> {
    const what = `NBD export '${o.exportName}' at ${o.socket}`;
    if (o.signal?.aborted) throw new PveS3Error('Aborted', `${what}: cancelled`);
    const sock = createConnection({ path: o.socket });
    const q = new ByteQueue(sock);
    let timer: NodeJS.Timeout | undefined;
    const fail = (m: string, code = 'NbdError'): void => {
      q.fail(new PveS3Error(code, `${what}: ${m}`, { retryable: code !== 'Aborted' }));
      sock.destroy();
    };
    const onError = (e: Error): void => fail(e.message);
    const onClose = (): void => fail('connection closed by the server during negotiation');
    const onAbort = (): void => fail('cancelled', 'Aborted');
    sock.on('error', onError);
    sock.on('close', onClose);
    o.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(() => fail(`no answer within ${Math.round((o.timeoutMs ?? 300_000) / 1000)} s during negotiation`), o.timeoutMs ?? 300_000);
    try {
      const r = await negotiate(sock, q, o.exportName, what);
      sock.off('error', onError);
      sock.off('close', onClose);
      return new NbdClient(sock, o, r.size, r.flags, r.contextId, q);
    } catch (e) {
      sock.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
      timer = undefined;
      o.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** base:allocation extents from offset on (the server may describe less than asked) */
  async blockStatus(offset: number, length: number): Promise<NbdExtent[]> {
    const p = (await this.request('status', P.CMD_BLOCK_STATUS, offset, Math.min(length, MAX_REQUEST))) as Pending;
    return p.extents ?? [];
  }

  /** length bytes at offset; holes the server reports come back as zeros */
  async read(offset: number, length: number): Promise<Buffer> {
    const p = (await this.request('read', P.CMD_READ, offset, length)) as Pending;
    return p.buf!;
  }

  /** discards the range on the export (after its data is safely stored) */
  async trim(offset: number, length: number): Promise<void> {
    while (length > 0) {
      const n = Math.min(length, 0x40000000);
      await this.request('trim', P.CMD_TRIM, offset, n);
      offset += n;
      length -= n;
    }
  }

  /** NBD_CMD_DISC, then the socket closes; requests still in flight fail */
  async close(): Promise<void> {
    this.o.signal?.removeEventListener('abort', this.onAbort);
    if (this.broken || this.closing) {
      this.sock.destroy();
      return;
    }
    this.closing = true;
    const hdr = requestHeader(0, P.CMD_DISC, this.nextCookie++, 0, 0);
    await new Promise<void>((resolve) => {
      this.sock.end(hdr, () => resolve());
      setTimeout(resolve, 1000).unref();
    });
    this.sock.destroy();
  }

  private request(kind: Pending['kind'], type: number, offset: number, length: number): Promise<unknown> {
    if (this.broken) return Promise.reject(this.broken);
    if (offset < 0 || length <= 0 || offset + length > this.size) {
      return Promise.reject(new PveS3Error('InternalError', `${this.what}: request ${offset}+${length} outside the export's ${this.size} bytes`));
    }
    const cookie = this.nextCookie++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(`no reply within ${Math.round(this.timeoutMs / 1000)} s`), this.timeoutMs);
      const p: Pending = { kind, offset, length, timer, resolve, reject };
      if (kind === 'read') p.buf = Buffer.alloc(length);
      if (kind === 'status') p.extents = [];
      this.pending.set(cookie, p);
      this.sock.write(requestHeader(0, type, cookie, offset, length));
    });
  }

  private get what(): string {
    return `NBD export '${this.o.exportName}' at ${this.o.socket}`;
  }

  private fail(msg: string, code = 'NbdError'): void {
    if (!this.broken) this.broken = new PveS3Error(code, `${this.what}: ${msg}`, { retryable: code !== 'Aborted' });
    this.q.fail(this.broken);
    for (const [c, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.broken);
      this.pending.delete(c);
    }
    this.sock.destroy();
  }

  private async readReplies(): Promise<void> {
    try {
      for (;;) {
        const magic = (await this.q.take(4)).readUInt32BE(0);
        if (magic === P.STRUCTURED_REPLY_MAGIC) await this.structuredChunk();
        else if (magic === P.SIMPLE_REPLY_MAGIC) await this.simpleReply();
        else throw new Error(`protocol error: reply magic 0x${magic.toString(16)}`);
      }
    } catch (e) {
      this.fail(e instanceof PveS3Error ? e.message.slice(this.what.length + 2) : (e as Error).message);
    }
  }

  private take(cookie: bigint): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw new Error(`protocol error: reply to unknown cookie ${cookie}`);
    return p;
  }

  private settle(cookie: bigint, p: Pending): void {
    clearTimeout(p.timer);
    this.pending.delete(cookie);
    if (p.error) p.reject(new PveS3Error('NbdError', `${this.what}: ${p.kind} of ${p.length} bytes at ${p.offset} failed: ${p.error}`, { retryable: false }));
    else p.resolve(p);
  }

  private async simpleReply(): Promise<void> {
    const h = await this.q.take(12);
    const err = h.readUInt32BE(0);
    const cookie = h.readBigUInt64BE(4);
    const p = this.take(cookie);
    if (err) p.error = P.errnoName(err);
    else if (p.kind === 'read') (await this.q.take(p.length)).copy(p.buf!);
    else if (p.kind === 'status') p.error = 'server sent no block status (simple reply)';
    this.settle(cookie, p);
  }

  private async structuredChunk(): Promise<void> {
    const h = await this.q.take(16);
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const cookie = h.readBigUInt64BE(4);
    const len = h.readUInt32BE(12);
    const p = this.take(cookie);
    const body = len > 0 ? await this.q.take(len) : Buffer.alloc(0);
    if (type & P.REPLY_TYPE_ERROR_BIT) {
      const errno = body.length >= 4 ? body.readUInt32BE(0) : 0;
      const mlen = body.length >= 6 ? body.readUInt16BE(4) : 0;
      const msg = body.subarray(6, 6 + mlen).toString('utf8');
      p.error = msg ? `${P.errnoName(errno)}: ${msg}` : P.errnoName(errno);
    } else if (type === P.REPLY_TYPE_OFFSET_DATA && p.kind === 'read') {
      const at = Number(body.readBigUInt64BE(0)) - p.offset;
      const n = body.length - 8;
      if (at < 0 || at + n > p.length) throw new Error('protocol error: read data outside the request');
      body.copy(p.buf!, at, 8);
    } else if (type === P.REPLY_TYPE_OFFSET_HOLE && p.kind === 'read') {
      const at = Number(body.readBigUInt64BE(0)) - p.offset;
      const n = body.readUInt32BE(8);
      if (at < 0 || at + n > p.length) throw new Error('protocol error: hole outside the request');
      // the buffer starts zeroed: nothing to do
    } else if (type === P.REPLY_TYPE_BLOCK_STATUS && p.kind === 'status') {
      if (body.readUInt32BE(0) === this.contextId) {
        let off = p.offset + p.extents!.reduce((s, e) => s + e.length, 0);
        for (let i = 4; i + 8 <= body.length; i += 8) {
          const length = body.readUInt32BE(i);
          p.extents!.push({ offset: off, length, flags: body.readUInt32BE(i + 4) });
          off += length;
        }
      }
    } else if (type !== P.REPLY_TYPE_NONE) {
      throw new Error(`protocol error: reply chunk type ${type} to a ${p.kind} request`);
    }
    if (flags & P.REPLY_FLAG_DONE) this.settle(cookie, p);
  }
}

function requestHeader(flags: number, type: number, cookie: bigint, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(28);
  b.writeUInt32BE(P.REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

function option(opt: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(16 + data.length);
  b.writeBigUInt64BE(P.IHAVEOPT, 0);
  b.writeUInt32BE(opt, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, 16);
  return b;
}

function lenString(s: string): Buffer {
  const v = Buffer.from(s, 'utf8');
  const b = Buffer.allocUnsafe(4 + v.length);
  b.writeUInt32BE(v.length, 0);
  v.copy(b, 4);
  return b;
}

interface OptionReply {
  type: number;
  data: Buffer;
}

async function optionReply(q: ByteQueue, opt: number, what: string): Promise<OptionReply> {
  const h = await q.take(20);
  if (h.readBigUInt64BE(0) !== P.OPT_REPLY_MAGIC) throw new PveS3Error('NbdError', `${what}: not an NBD server (bad option reply magic)`);
  if (h.readUInt32BE(8) !== opt) throw new PveS3Error('NbdError', `${what}: reply to option ${h.readUInt32BE(8)}, expected ${opt}`);
  const type = h.readUInt32BE(12);
  const len = h.readUInt32BE(16);
  const data = len ? await q.take(len) : Buffer.alloc(0);
  return { type, data };
}

function refused(what: string, opt: string, r: OptionReply): PveS3Error {
  const text = r.data.toString('utf8');
  return new PveS3Error('NbdError', `${what}: the server refused ${opt}${text ? `: ${text}` : ''}`);
}

async function negotiate(sock: Socket, q: ByteQueue, exportName: string, what: string): Promise<{ size: number; flags: number; contextId: number }> {
  const hello = await q.take(18);
  if (hello.readBigUInt64BE(0) !== P.NBDMAGIC || hello.readBigUInt64BE(8) !== P.IHAVEOPT) {
    throw new PveS3Error('NbdError', `${what}: not a newstyle NBD server`);
  }
  const serverFlags = hello.readUInt16BE(16);
  if (!(serverFlags & P.FLAG_FIXED_NEWSTYLE)) throw new PveS3Error('NbdError', `${what}: the server does not speak fixed newstyle NBD`);
  const cf = Buffer.allocUnsafe(4);
  cf.writeUInt32BE(P.FLAG_FIXED_NEWSTYLE | (serverFlags & P.FLAG_NO_ZEROES), 0);
  sock.write(cf);

  sock.write(option(P.OPT_STRUCTURED_REPLY, Buffer.alloc(0)));
  const sr = await optionReply(q, P.OPT_STRUCTURED_REPLY, what);
  if (sr.type !== P.REP_ACK) throw refused(what, 'structured replies', sr);

  const query = Buffer.concat([lenString(exportName), Buffer.from([0, 0, 0, 1]), lenString(P.BASE_ALLOCATION)]);
  sock.write(option(P.OPT_SET_META_CONTEXT, query));
  let contextId = -1;
  for (;;) {
    const r = await optionReply(q, P.OPT_SET_META_CONTEXT, what);
    if (r.type === P.REP_ACK) break;
    if (r.type & P.REP_FLAG_ERROR) throw refused(what, `the '${P.BASE_ALLOCATION}' context`, r);
    if (r.type === P.REP_META_CONTEXT && r.data.subarray(4).toString('utf8') === P.BASE_ALLOCATION) contextId = r.data.readUInt32BE(0);
  }
  if (contextId < 0) throw new PveS3Error('NbdError', `${what}: the server has no '${P.BASE_ALLOCATION}' context for this export`);

  const name = lenString(exportName);
  const go = Buffer.concat([name, Buffer.from([0, 1, 0, P.INFO_EXPORT])]);
  sock.write(option(P.OPT_GO, go));
  let size = -1;
  let flags = 0;
  for (;;) {
    const r = await optionReply(q, P.OPT_GO, what);
    if (r.type === P.REP_ACK) break;
    if (r.type & P.REP_FLAG_ERROR) throw refused(what, 'the export (is the export name right?)', r);
    if (r.type === P.REP_INFO && r.data.readUInt16BE(0) === P.INFO_EXPORT) {
      size = Number(r.data.readBigUInt64BE(2));
      flags = r.data.readUInt16BE(10);
    }
  }
  if (size < 0) throw new PveS3Error('NbdError', `${what}: the server did not tell the export's size`);
  return { size, flags, contextId };
}
