/**
 * The head of an archive without a frame index or guest texts in its manifest (pve-s3-backup
 * uploads, PVE-made archives, older uploads): ranged GETs from byte 0 — 64 KiB, then twice as
 * much each time — and after each one the decompressor PVE uses run over what has been read so
 * far, until what it gives holds the VMA header or the first tar members; never the whole archive
 * (docs/BACKUP-PROVIDER.md §3.3). A decompressor stops with an error at the end of a truncated
 * input, after writing out what it could decode: that output is all a head needs.
 */
import { spawn } from 'node:child_process';
import { decompressorFor } from '../pve/decompressor.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { headerSizeOf, parseHeader, type VmaHeaderInfo } from '../vma/reader.js';
import { collect, type OpenArchive } from './restore-archive.js';
import { readSse, type StoreContext } from './types.js';

const FIRST_RANGE = 64 << 10;
/** compressed bytes read at most: a VMA header is at most a few hundred KiB, vzdump's tar
 *  writes the guest config first */
export const HEAD_LIMIT = 16 << 20;
/** decompressed bytes looked at most */
const OUT_LIMIT = 64 << 20;

/** what a parser says when the bytes it has end too early */
const NEED_MORE = Symbol('need more');

/**
 * Reads the head until `parse` finds what it wants in the decompressed bytes. `parse` returns
 * NEED_MORE when they end too early and throws when they are not what it expected.
 */
async function fromHead<T>(ctx: StoreContext, a: OpenArchive, parse: (out: Buffer, complete: boolean) => T | typeof NEED_MORE): Promise<T> {
  const prog = decompressorFor(a.v.compression, a.v.name);
  const chunks: Buffer[] = [];
  let have = 0;
  let step = FIRST_RANGE;
  while (have < a.size) {
    if (have >= HEAD_LIMIT) break;
    const end = Math.min(a.size, have + step) - 1;
    const { body } = await ctx.client.getObject(a.key, { range: [have, end], ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    const got = await collect(body, end - have + 1);
    chunks.push(got);
    have += got.length;
    a.archiveBytes += got.length;
    step *= 2;
    const input = Buffer.concat(chunks, have);
    const complete = have >= a.size;
    const out = prog ? await decompressPrefix(prog, input, complete, a) : input;
    const r = parse(out, complete);
    if (r !== NEED_MORE) return r;
  }
  throw new PveS3Error('VmaInvalid', `'${a.v.name}': no configuration within its first ${Math.min(have, HEAD_LIMIT) >> 10} KiB; not a vzdump archive?`, { exitCode: EXIT.integrity });
}

/** the decompressor's output for `input` (a prefix of the archive unless `complete`) */
function decompressPrefix(p: { argv: string[]; pkg: string }, input: Buffer, complete: boolean, a: OpenArchive): Promise<Buffer> {
  const [cmd, ...args] = p.argv;
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let n = 0;
    let err = '';
    proc.stdout.on('data', (b: Buffer) => {
      n += b.length;
      out.push(b);
      // enough to judge: a head bigger than this is no vzdump head
      if (n >= OUT_LIMIT) proc.kill('SIGKILL');
    });
    proc.stderr.on('data', (b: Buffer) => {
      if (err.length < 2048) err += b.toString('utf8');
    });
    proc.stdin.on('error', () => undefined);
    proc.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new PveS3Error('NotSupported', `'${cmd}' is needed to read '${a.v.name}' and is not installed: apt install ${p.pkg}`) : e),
    );
    proc.once('close', (code) => {
      // a prefix ends in the middle of the stream: the error that says so is expected
      if (code !== 0 && complete && n < OUT_LIMIT) {
        reject(new PveS3Error('IntegrityError', `${p.argv.join(' ')} failed on '${a.v.name}': ${err.trim().split('\n').pop() ?? `exit code ${code}`}`, { exitCode: EXIT.integrity }));
        return;
      }
      resolve(Buffer.concat(out, n));
    });
    proc.stdin.end(input);
  });
}

/** the VMA header from the archive's head */
export function vmaHeaderFromHead(ctx: StoreContext, a: OpenArchive): Promise<VmaHeaderInfo> {
  return fromHead(ctx, a, (out, complete) => {
    if (out.length < 60) return complete ? parseHeader(out) : NEED_MORE;
    const n = headerSizeOf(out);
    if (out.length < n) return complete ? parseHeader(out) : NEED_MORE;
    return parseHeader(out.subarray(0, n));
  });
}

/**
 * The wanted members among the first ones of a tar stream (vzdump puts `./etc/vzdump/pct.conf`
 * and `./etc/vzdump/pct.fw` first): done at the first other regular member once `first` was
 * seen, or a few members into the archive.
 */
export function tarMembersFromHead(ctx: StoreContext, a: OpenArchive, wanted: string[], first: string): Promise<Map<string, Buffer>> {
  return fromHead(ctx, a, (out, complete) => {
    const found = new Map<string, Buffer>();
    let at = 0;
    let longName: string | null = null;
    let paxPath: string | null = null;
    for (let members = 0; members < 64; members++) {
      if (at + 512 > out.length) return complete ? found : NEED_MORE;
      const h = out.subarray(at, at + 512);
      if (h.every((b) => b === 0)) return found;
      if (!tarChecksumOk(h)) throw new PveS3Error('VmaInvalid', `'${a.v.name}' is not a tar archive (header checksum wrong at byte ${at})`, { exitCode: EXIT.integrity });
      const type = String.fromCharCode(h[156]!);
      const size = tarNumber(h.subarray(124, 136));
      const dataAt = at + 512;
      const next = dataAt + Math.ceil(size / 512) * 512;
      const regular = type === '0' || type === '\0';
      if (type === 'L' || type === 'x' || type === 'g') {
        if (size > 1 << 20) break;
        if (dataAt + size > out.length) return complete ? found : NEED_MORE;
        const data = out.subarray(dataAt, dataAt + size);
        if (type === 'L') longName = cstr(data);
        else if (type === 'x') paxPath = paxValue(data, 'path') ?? paxPath;
        at = next;
        continue;
      }
      const name = normalise(paxPath ?? longName ?? ustarName(h));
      longName = null;
      paxPath = null;
      if (regular && wanted.includes(name)) {
        if (size > 1 << 20) break;
        if (dataAt + size > out.length) return complete ? found : NEED_MORE;
        found.set(name, Buffer.from(out.subarray(dataAt, dataAt + size)));
      } else if (regular && found.has(first)) {
        return found;
      } else if (members >= 16) {
        return found;
      }
      at = next;
    }
    return found;
  });
}

function normalise(n: string): string {
  return n.startsWith('./') ? n : `./${n.replace(/^\/+/, '')}`;
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
}

function ustarName(h: Buffer): string {
  const name = cstr(h.subarray(0, 100));
  const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\0' ? cstr(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** octal, or base-256 when the high bit is set (GNU, for large values) */
function tarNumber(f: Buffer): number {
  if (f[0]! & 0x80) {
    let n = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    return n;
  }
  const s = cstr(f).trim();
  return s ? parseInt(s, 8) : 0;
}

function tarChecksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return tarNumber(h.subarray(148, 156)) === sum;
}

/** a pax extended header's records: "<len> <key>=<value>\n" */
function paxValue(data: Buffer, key: string): string | null {
  let at = 0;
  let value: string | null = null;
  while (at < data.length) {
    const sp = data.indexOf(0x20, at);
    if (sp < 0) break;
    const len = parseInt(data.subarray(at, sp).toString('latin1'), 10);
    if (!(len > 0) || at + len > data.length) break;
    const rec = data.subarray(sp + 1, at + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0 && rec.slice(0, eq) === key) value = rec.slice(eq + 1);
    at += len;
  }
  return value;
}
