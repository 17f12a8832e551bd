/**
 * Damage an object where a failing disk or a buggy gateway would: in RADOS, under RadosGW, so the
 * object keeps its size, ETag and metadata and only its bytes change. S3 offers no way to do that
 * (a PUT makes a new object with a new ETag), and a check that compared ETags would catch a PUT
 * without reading a byte.
 *
 * RadosGW's layout (Ceph 16, default placement; `radosgw-admin object stat` prints the manifest
 * this follows): the data pool holds, per multipart part, `<marker>__multipart_<prefix>.<part>`
 * (the part's first stripe, `stripe_max_size` bytes) and `<marker>__shadow_<prefix>.<part>_<n>`
 * (stripe n); a single PUT keeps its first `head_size` bytes in the head object `<marker>_<key>`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';

const DATA_POOL = 'default.rgw.buckets.data';

function conf(): string {
  const s = inject('pveS3Rgw');
  if (!s) throw new Error("no test RadosGW settings: this helper needs the 'integration' vitest project");
  return s.cephConf;
}

function tool(cmd: 'rados' | 'radosgw-admin', args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, ['-c', conf(), ...args], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

interface Rule {
  key: number;
  val: { start_part_num: number; start_ofs: number; part_size: number; stripe_max_size: number; override_prefix: string };
}

/** The RADOS object holding byte `offset` of the S3 object, and where in it. */
async function locate(bucket: string, key: string, offset: number): Promise<{ oid: string; at: number }> {
  const stat = JSON.parse(await tool('radosgw-admin', ['object', 'stat', `--bucket=${bucket}`, `--object=${key}`])) as {
    size: number;
    manifest: { head_size: number; prefix: string; rules: Rule[]; tail_placement: { bucket: { marker: string } } };
  };
  const m = stat.manifest;
  if (offset < 0 || offset >= stat.size) throw new Error(`offset ${offset} is outside '${key}' (${stat.size} bytes)`);
  const marker = m.tail_placement.bucket.marker;
  if (offset < m.head_size) {
    if (key.startsWith('_')) throw new Error(`keys starting with '_' are escaped in RADOS names; not supported here`);
    return { oid: `${marker}_${key}`, at: offset };
  }
  const rule = [...m.rules].reverse().find((r) => r.key <= offset);
  if (!rule || rule.val.part_size === 0 || rule.val.override_prefix !== '') throw new Error(`'${key}' is not a plain multipart object: layout not supported here`);
  const inRule = offset - rule.val.start_ofs;
  const part = rule.val.start_part_num + Math.floor(inRule / rule.val.part_size);
  const inPart = inRule % rule.val.part_size;
  const stripe = Math.floor(inPart / rule.val.stripe_max_size);
  const oid = stripe === 0 ? `${marker}__multipart_${m.prefix}.${part}` : `${marker}__shadow_${m.prefix}.${part}_${stripe}`;
  return { oid, at: inPart % rule.val.stripe_max_size };
}

/** Flips every bit of byte `offset` of the stored object (or XORs it with `mask`), in RADOS. */
export async function flipStoredByte(bucket: string, key: string, offset: number, mask = 0xff): Promise<void> {
  await xorStoredBytes(bucket, key, offset, Uint8Array.of(mask));
}

/** XORs `mask` into the stored bytes from `offset` on (within one RADOS object), in RADOS. */
export async function xorStoredBytes(bucket: string, key: string, offset: number, mask: Uint8Array): Promise<void> {
  const { oid, at } = await locate(bucket, key, offset);
  const { oid: lastOid } = await locate(bucket, key, offset + mask.length - 1);
  if (lastOid !== oid) throw new Error(`bytes ${offset}..${offset + mask.length - 1} of '${key}' span two RADOS objects`);
  const dir = await mkdtemp(join(tmpdir(), 'pve-s3-rados-'));
  try {
    await tool('rados', ['-p', DATA_POOL, 'get', oid, join(dir, 'obj')]);
    const stored = await readFile(join(dir, 'obj'));
    const patch = Buffer.alloc(mask.length);
    for (let i = 0; i < mask.length; i++) patch[i] = stored[at + i]! ^ mask[i]!;
    await writeFile(join(dir, 'patch'), patch);
    await tool('rados', ['-p', DATA_POOL, 'put', oid, join(dir, 'patch'), '--offset', String(at)]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
