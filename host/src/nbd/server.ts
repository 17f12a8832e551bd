/**
 * A read-only NBD server on a unix socket, serving one export — what a restore hands to
 * `nbdfuse` (and to anything else speaking NBD, e.g. `qemu-img` with an nbd+unix URI).
 *
 * Fixed newstyle negotiation (EXPORT_NAME, INFO, GO, LIST, ABORT), structured replies with
 * holes, the `base:allocation` context, READ / BLOCK_STATUS / CACHE / FLUSH / DISC; writes are
 * refused (EPERM). The export also answers to the empty (default) name, which nbdfuse's
 * `--unix` mode asks for. Several connections may be open (multi-conn: the export never
 * changes). Requests are handled concurrently, each reply written whole; memory is bounded by
 * the bytes of the reads in flight.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import { ByteQueue } from './byte-queue.js';
import * as P from './protocol.js';

/** a piece of a read: bytes, or a run of zeros */
export type ReadPiece = { offset: number; data: Buffer } | { offset: number; zero: number };

export interface NbdExport {
  name: string;
  size: number;
  /** pieces covering [offset, offset + length) in order; an Error fails the request (EIO) */
  read(offset: number, length: number): Promise<ReadPiece[]>;
  /** base:allocation extents from offset on, covering at least one byte of the range */
  blockStatus(offset: number, length: number): Array<{ length: number; flags: number }>;
}

export interface NbdServerOptions {
  /** a read that failed: the server answers EIO and goes on */
  onError?(e: Error): void;
}

/** largest request we take (advertised as the maximum block size) */
export const MAX_REQUEST = 32 << 20;
/** bytes of reads in flight per connection before we stop reading requests */
const MAX_IN_FLIGHT = 64 << 20;
const CONTEXT_ID = 1;

export class NbdServer {
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    readonly path: string,
    private readonly exp: NbdExport,
    private readonly o: NbdServerOptions,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  static async listen(path: string, exp: NbdExport, o: NbdServerOptions = {}): Promise<NbdServer> {
    await rm(path, { force: true });
    const server = createServer();
    const srv = new NbdServer(server, path, exp, o);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ path, readableAll: false, writableAll: false }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return srv;
  }

  get connections(): number {
    return this.sockets.size;
  }

  /** stops listening and drops every connection */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    await rm(this.path, { force: true });
  }

  private accept(sock: Socket): void {
    if (this.closed) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    const q = new ByteQueue(sock);
    sock.on('close', () => q.fail(new Error('closed')));
    void new Connection(sock, q, this.exp, this.o).run().finally(() => sock.destroy());
  }
}

class Connection {
  private structured = false;
  private metaContext = false;
  private inFlight = 0;
  private drained: (() => void) | null = null;

  constructor(
    private readonly sock: Socket,
    private readonly q: ByteQueue,
    private readonly exp: NbdExport,
    private readonly o: NbdServerOptions,
  ) {}

  async run(): Promise<void> {
    try {
      const hello = Buffer.allocUnsafe(18);
      hello.writeBigUInt64BE(P.NBDMAGIC, 0);
      hello.writeBigUInt64BE(P.IHAVEOPT, 8);
      hello.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
      this.sock.write(hello);
      const clientFlags = (await this.q.take(4)).readUInt32BE(0);
      if (!(clientFlags & P.FLAG_FIXED_NEWSTYLE)) return;
      const noZeroes = (clientFlags & P.FLAG_NO_ZEROES) !== 0;
      if (!(await this.negotiate(noZeroes))) return;
      await this.transmission();
    } catch {
      // the client went away or spoke garbage: nothing to answer
    }
  }

  private get flags(): number {
    return P.TFLAG_HAS_FLAGS | P.TFLAG_READ_ONLY | P.TFLAG_SEND_FLUSH | P.TFLAG_SEND_DF | P.TFLAG_CAN_MULTI_CONN | P.TFLAG_SEND_CACHE;
  }

  private knows(name: string): boolean {
    return name === '' || name === this.exp.name;
  }

  private reply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.allocUnsafe(20);
    h.writeBigUInt64BE(P.OPT_REPLY_MAGIC, 0);
    h.writeUInt32BE(opt, 8);
    h.writeUInt32BE(type >>> 0, 12);
    h.writeUInt32BE(data.length, 16);
    this.sock.write(data.length ? Buffer.concat([h, data]) : h);
  }

  private errorReply(opt: number, type: number, text: string): void {
    this.reply(opt, type, Buffer.from(text, 'utf8'));
  }

  /** option haggling; true when the client chose the export and transmission begins */
  private async negotiate(noZeroes: boolean): Promise<boolean> {
    for (;;) {
      const h = await this.q.take(16);
      if (h.readBigUInt64BE(0) !== P.IHAVEOPT) return false;
      const opt = h.readUInt32BE(8);
      const len = h.readUInt32BE(12);
      if (len > 65536) return false;
      const data = len ? await this.q.take(len) : Buffer.alloc(0);
      switch (opt) {
        case P.OPT_EXPORT_NAME: {
          if (!this.knows(data.toString('utf8'))) return false; // the protocol's only answer: hang up
          const b = Buffer.alloc(noZeroes ? 10 : 134);
          b.writeBigUInt64BE(BigInt(this.exp.size), 0);
          b.writeUInt16BE(this.flags, 8);
          this.sock.write(b);
          return true;
        }
        case P.OPT_ABORT:
          this.reply(opt, P.REP_ACK);
          return false;
        case P.OPT_LIST: {
          if (len) {
            this.errorReply(opt, P.REP_ERR_INVALID, 'NBD_OPT_LIST takes no data');
            break;
          }
          const name = Buffer.from(this.exp.name, 'utf8');
          const b = Buffer.allocUnsafe(4 + name.length);
          b.writeUInt32BE(name.length, 0);
          name.copy(b, 4);
          this.reply(opt, P.REP_SERVER, b);
          this.reply(opt, P.REP_ACK);
          break;
        }
        case P.OPT_INFO:
        case P.OPT_GO: {
          const name = parseNameWithInfo(data);
          if (name === null) {
            this.errorReply(opt, P.REP_ERR_INVALID, 'malformed request');
            break;
          }
          if (!this.knows(name)) {
            this.errorReply(opt, P.REP_ERR_UNKNOWN, `no export named '${name}'`);
            break;
          }
          const ex = Buffer.allocUnsafe(12);
          ex.writeUInt16BE(P.INFO_EXPORT, 0);
          ex.writeBigUInt64BE(BigInt(this.exp.size), 2);
          ex.writeUInt16BE(this.flags, 10);
          this.reply(opt, P.REP_INFO, ex);
          const bs = Buffer.allocUnsafe(14);
          bs.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
          bs.writeUInt32BE(1, 2);
          bs.writeUInt32BE(65536, 6);
          bs.writeUInt32BE(MAX_REQUEST, 10);
          this.reply(opt, P.REP_INFO, bs);
          this.reply(opt, P.REP_ACK);
          if (opt === P.OPT_GO) return true;
          break;
        }
        case P.OPT_STRUCTURED_REPLY:
          if (len) this.errorReply(opt, P.REP_ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
          else {
            this.structured = true;
            this.reply(opt, P.REP_ACK);
          }
          break;
        case P.OPT_LIST_META_CONTEXT:
        case P.OPT_SET_META_CONTEXT: {
          const m = parseMetaQuery(data);
          if (m === null) {
            this.errorReply(opt, P.REP_ERR_INVALID, 'malformed request');
            break;
          }
          if (opt === P.OPT_SET_META_CONTEXT && !this.structured) {
            this.errorReply(opt, P.REP_ERR_INVALID, 'structured replies first');
            break;
          }
          if (!this.knows(m.name)) {
            this.errorReply(opt, P.REP_ERR_UNKNOWN, `no export named '${m.name}'`);
            break;
          }
          const wanted = opt === P.OPT_LIST_META_CONTEXT && m.queries.length === 0 ? [P.BASE_ALLOCATION] : m.queries;
          const match = wanted.some((q) => q === P.BASE_ALLOCATION || (opt === P.OPT_LIST_META_CONTEXT && (q === 'base:' || q === 'base')));
          if (opt === P.OPT_SET_META_CONTEXT) this.metaContext = match;
          if (match) {
            const n = Buffer.from(P.BASE_ALLOCATION, 'utf8');
            const b = Buffer.allocUnsafe(4 + n.length);
            b.writeUInt32BE(opt === P.OPT_SET_META_CONTEXT ? CONTEXT_ID : 0, 0);
            n.copy(b, 4);
            this.reply(opt, P.REP_META_CONTEXT, b);
          }
          this.reply(opt, P.REP_ACK);
          break;
        }
        default:
          this.errorReply(opt, P.REP_ERR_UNSUP, `option ${opt} is not supported`);
      }
    }
  }

  private async transmission(): Promise<void> {
    const pending = new Set<Promise<void>>();
    for (;;) {
      while (this.inFlight > MAX_IN_FLIGHT) await new Promise<void>((r) => (this.drained = r));
      const h = await this.q.take(28);
      if (h.readUInt32BE(0) !== P.REQUEST_MAGIC) return;
      const flags = h.readUInt16BE(4);
      const type = h.readUInt16BE(6);
      const cookie = h.readBigUInt64BE(8);
      const offset = Number(h.readBigUInt64BE(16));
      const length = h.readUInt32BE(24);
      if (type === P.CMD_DISC) {
        await Promise.allSettled(pending);
        this.sock.end();
        return;
      }
      if (type === P.CMD_WRITE) {
        // the payload follows the header even though we refuse it
        if (length > MAX_REQUEST) return;
        await this.q.take(length);
        this.error(cookie, P.E.PERM, 'the export is read-only');
        continue;
      }
      if (type === P.CMD_TRIM || type === P.CMD_WRITE_ZEROES) {
        this.error(cookie, P.E.PERM, 'the export is read-only');
        continue;
      }
      if (type === P.CMD_FLUSH) {
        this.ok(cookie);
        continue;
      }
      const inRange = length > 0 && offset + length <= this.exp.size;
      if (type === P.CMD_CACHE) {
        if (inRange) this.ok(cookie);
        else this.error(cookie, P.E.INVAL, 'request outside the export');
        continue;
      }
      if (type === P.CMD_BLOCK_STATUS) {
        if (!this.metaContext) this.error(cookie, P.E.INVAL, 'no metadata context was negotiated');
        else if (!inRange) this.error(cookie, P.E.INVAL, 'request outside the export');
        else this.blockStatus(cookie, offset, length);
        continue;
      }
      if (type !== P.CMD_READ) {
        this.error(cookie, P.E.INVAL, `command ${type} is not supported`);
        continue;
      }
      if (!inRange) {
        this.error(cookie, P.E.INVAL, `read of ${length} bytes at ${offset} outside the export's ${this.exp.size} bytes`);
        continue;
      }
      if (length > MAX_REQUEST) {
        this.error(cookie, P.E.OVERFLOW, `read of ${length} bytes is larger than ${MAX_REQUEST}`);
        continue;
      }
      this.inFlight += length;
      const p: Promise<void> = this.read(cookie, offset, length, (flags & P.CMD_FLAG_DF) !== 0).finally(() => {
        pending.delete(p);
        this.inFlight -= length;
        if (this.inFlight <= MAX_IN_FLIGHT && this.drained) {
          const d = this.drained;
          this.drained = null;
          d();
        }
      });
      pending.add(p);
    }
  }

  private async read(cookie: bigint, offset: number, length: number, df: boolean): Promise<void> {
    let pieces: ReadPiece[];
    try {
      pieces = await this.exp.read(offset, length);
    } catch (e) {
      this.o.onError?.(e as Error);
      this.error(cookie, P.E.IO, (e as Error).message);
      return;
    }
    if (this.sock.destroyed) return;
    if (!this.structured) {
      const h = Buffer.allocUnsafe(16);
      h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
      h.writeUInt32BE(0, 4);
      h.writeBigUInt64BE(cookie, 8);
      this.write([h, ...pieces.map((p) => ('data' in p ? p.data : Buffer.alloc(p.zero)))]);
      return;
    }
    if (df) {
      // one chunk: the client asked not to fragment the reply
      const data = Buffer.concat(pieces.map((p) => ('data' in p ? p.data : Buffer.alloc(p.zero))), length);
      this.write([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, cookie, 8 + length), u64(offset), data]);
      return;
    }
    const out: Buffer[] = [];
    pieces.forEach((p, i) => {
      const last = i === pieces.length - 1 ? P.REPLY_FLAG_DONE : 0;
      if ('data' in p) out.push(chunkHeader(last, P.REPLY_TYPE_OFFSET_DATA, cookie, 8 + p.data.length), u64(p.offset), p.data);
      else {
        const b = Buffer.allocUnsafe(12);
        b.writeBigUInt64BE(BigInt(p.offset), 0);
        b.writeUInt32BE(p.zero, 8);
        out.push(chunkHeader(last, P.REPLY_TYPE_OFFSET_HOLE, cookie, 12), b);
      }
    });
    this.write(out);
  }

  private blockStatus(cookie: bigint, offset: number, length: number): void {
    const ext = this.exp.blockStatus(offset, length);
    const b = Buffer.allocUnsafe(4 + 8 * ext.length);
    b.writeUInt32BE(CONTEXT_ID, 0);
    ext.forEach((e, i) => {
      b.writeUInt32BE(e.length, 4 + 8 * i);
      b.writeUInt32BE(e.flags, 8 + 8 * i);
    });
    this.write([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, cookie, b.length), b]);
  }

  private ok(cookie: bigint): void {
    if (this.structured) this.write([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_NONE, cookie, 0)]);
    else this.write([simpleHeader(0, cookie)]);
  }

  private error(cookie: bigint, errno: number, message: string): void {
    if (!this.structured) {
      this.write([simpleHeader(errno, cookie)]);
      return;
    }
    const m = Buffer.from(message.slice(0, 4096), 'utf8');
    const b = Buffer.allocUnsafe(6 + m.length);
    b.writeUInt32BE(errno, 0);
    b.writeUInt16BE(m.length, 4);
    m.copy(b, 6);
    this.write([chunkHeader(P.REPLY_FLAG_DONE, P.REPLY_TYPE_ERROR, cookie, b.length), b]);
  }

  /** one reply, whole: chunks of concurrent replies must not interleave */
  private write(bufs: Buffer[]): void {
    if (this.sock.destroyed) return;
    this.sock.cork();
    for (const b of bufs) this.sock.write(b);
    this.sock.uncork();
  }
}

function u64(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

function simpleHeader(errno: number, cookie: bigint): Buffer {
  const h = Buffer.allocUnsafe(16);
  h.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  h.writeUInt32BE(errno, 4);
  h.writeBigUInt64BE(cookie, 8);
  return h;
}

function chunkHeader(flags: number, type: number, cookie: bigint, length: number): Buffer {
  const h = Buffer.allocUnsafe(20);
  h.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
  h.writeUInt16BE(flags, 4);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(cookie, 8);
  h.writeUInt32BE(length, 16);
  return h;
}

/** INFO/GO data: u32 name length, name, u16 count, count × u16 info requests */
function parseNameWithInfo(d: Buffer): string | null {
  if (d.length < 6) return null;
  const n = d.readUInt32BE(0);
  if (4 + n + 2 > d.length) return null;
  const count = d.readUInt16BE(4 + n);
  if (4 + n + 2 + 2 * count !== d.length) return null;
  return d.subarray(4, 4 + n).toString('utf8');
}

/** META_CONTEXT data: u32 name length, name, u32 count, count × (u32 length, query) */
function parseMetaQuery(d: Buffer): { name: string; queries: string[] } | null {
  if (d.length < 8) return null;
  const n = d.readUInt32BE(0);
  if (4 + n + 4 > d.length) return null;
  const name = d.subarray(4, 4 + n).toString('utf8');
  const count = d.readUInt32BE(4 + n);
  const queries: string[] = [];
  let at = 8 + n;
  for (let i = 0; i < count; i++) {
    if (at + 4 > d.length) return null;
    const l = d.readUInt32BE(at);
    if (at + 4 + l > d.length) return null;
    queries.push(d.subarray(at + 4, at + 4 + l).toString('utf8'));
    at += 4 + l;
  }
  return at === d.length ? { name, queries } : null;
}
