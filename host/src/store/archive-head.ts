/**
 * The head of an archive without a frame index or guest texts in its manifest (pve-s3-backup
 * uploads, PVE-made archives, older uploads): ranged GETs from byte 0, growing from 64 KiB,
 * through the decompressor PVE uses, only until the caller has what it wants — the VMA header,
 * or the first tar members — never the whole archive (docs/BACKUP-PROVIDER.md §3.3).
 */
import { once } from 'node:events';
import { decompressorFor } from '../pve/decompressor.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { parseHeader, headerSizeOf, StreamTaker, type VmaHeaderInfo } from '../vma/reader.js';
import { startDecompressor } from './decompress.js';
import type { OpenArchive } from './restore-archive.js';
import { readSse, type StoreContext } from './types.js';

const FIRST_RANGE = 64 << 10;
const MAX_RANGE = 4 << 20;
/** compressed bytes read at most: a VMA header is at most a few hundred KiB, vzdump's tar
 *  writes the guest config first */
export const HEAD_LIMIT = 16 << 20;

function notFoundInHead(a: OpenArchive, what: string): PveS3Error {
  return new PveS3Error('VmaInvalid', `'${a.v.name}': ${what} within its first ${HEAD_LIMIT >> 20} MiB; not a vzdump archive?`, { exitCode: EXIT.integrity });
}

/** the archive's bytes from the start, decompressed; reading stops when the consumer stops */
export async function* archiveHead(ctx: StoreContext, a: OpenArchive): AsyncGenerator<Buffer> {
  const ac = new AbortController();
  const onAbort = (): void => ac.abort(ctx.signal?.reason);
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  async function* ranges(): AsyncGenerator<Buffer> {
    let pos = 0;
    let step = FIRST_RANGE;
    while (pos < a.size) {
      if (pos >= HEAD_LIMIT) throw notFoundInHead(a, 'no configuration');
      const end = Math.min(a.size, pos + step) - 1;
      const { body } = await ctx.client.getObject(a.key, { range: [pos, end], signal: ac.signal, ...readSse(ctx) });
      for await (const c of body) {
        a.archiveBytes += c.length;
        yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      }
      pos = end + 1;
      step = Math.min(step * 2, MAX_RANGE);
    }
  }
  const prog = decompressorFor(a.v.compression, a.v.name);
  try {
    if (!prog) {
      yield* ranges();
      return;
    }
    const d = startDecompressor(prog, `'${a.v.name}'`);
    let pumpError: unknown = null;
    const pump = (async () => {
      for await (const c of ranges()) {
        if (!d.input.write(c)) await Promise.race([once(d.input, 'drain'), once(d.input, 'close'), d.done]);
        if (d.input.destroyed) return;
      }
      d.input.end();
    })().catch((e: unknown) => {
      pumpError = e;
      d.stop();
    });
    try {
      for await (const c of d.output) yield c as Buffer;
      await pump;
      if (pumpError) throw pumpError;
      await d.done;
    } finally {
      d.stop();
    }
  } finally {
    ac.abort();
    ctx.signal?.removeEventListener('abort', onAbort);
  }
}

/** the VMA header from the archive's head */
export async function vmaHeaderFromHead(ctx: StoreContext, a: OpenArchive): Promise<VmaHeaderInfo> {
  const t = new StreamTaker(archiveHead(ctx, a));
  try {
    const head = await t.take(60);
    const rest = await t.take(headerSizeOf(head) - 60);
    return parseHeader(Buffer.concat([head, rest]));
  } finally {
    await t.close();
  }
}

/**
 * The wanted members among the first ones of a tar stream (vzdump puts `./etc/vzdump/pct.conf`
 * and `./etc/vzdump/pct.fw` first): stops at the first other regular member once `first` was
 * seen, and refuses to wander further than a few members into the archive.
 */
export async function tarMembersFromHead(ctx: StoreContext, a: OpenArchive, wanted: string[], first: string): Promise<Map<string, Buffer>> {
  const t = new StreamTaker(archiveHead(ctx, a));
  const found = new Map<string, Buffer>();
  try {
    let longName: string | null = null;
    let paxPath: string | null = null;
    for (let members = 0; members < 64; members++) {
      const h = await t.take(512);
      if (h.length < 512) break;
      if (h.every((b) => b === 0)) break;
      if (!tarChecksumOk(h)) throw new PveS3Error('VmaInvalid', `'${a.v.name}' is not a tar archive (header checksum wrong at byte ${t.consumed - 512})`, { exitCode: EXIT.integrity });
      const type = String.fromCharCode(h[156]!);
      const size = tarNumber(h.subarray(124, 136));
      const padded = Math.ceil(size / 512) * 512;
      const small = size <= 1 << 20;
      if (type === 'L' || type === 'x' || type === 'g') {
        if (!small) throw notFoundInHead(a, 'an oversized tar header');
        const data = (await t.take(padded)).subarray(0, size);
        if (type === 'L') longName = cstr(data);
        else if (type === 'x') paxPath = paxValue(data, 'path');
        continue;
      }
      const name = normalise(paxPath ?? longName ?? ustarName(h));
      longName = null;
      paxPath = null;
      if ((type === '0' || type === '\0') && wanted.includes(name)) {
        if (!small) throw notFoundInHead(a, `a sane '${name}'`);
        found.set(name, Buffer.from((await t.take(padded)).subarray(0, size)));
        continue;
      }
      if (found.has(first) && (type === '0' || type === '\0')) break;
      if (!small || members > 16) break;
      await t.take(padded);
    }
  } finally {
    await t.close();
  }
  return found;
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
  const magic = h.subarray(257, 263).toString('latin1');
  const prefix = magic === 'ustar\0' ? cstr(h.subarray(345, 500)) : '';
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
