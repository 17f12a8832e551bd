// The protocol's request side without network: stdin framing, request shape, argument checks,
// error envelopes and exit codes (docs/PROTOCOL.md §1-§3, §5).
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { bool, int, str, strList } from '../../host/src/protocol/args.js';
import { errorReply, okReply } from '../../host/src/protocol/envelope.js';
import { handle } from '../../host/src/protocol/main.js';
import { readRequest } from '../../host/src/protocol/read-request.js';
import { parseRequest } from '../../host/src/protocol/request.js';
import { PveS3Error } from '../../host/src/util/errors.js';

const input = (...chunks: string[]) => Readable.from(chunks.map((c) => Buffer.from(c)));
const OPS = ['version', 'status', 'list'];
const SECRET = 'uNiQuE-SeCrEt-1234567890';

describe('readRequest', () => {
  it('parses a whole-stdin document, pretty-printed or not', async () => {
    expect((await readRequest(input('{"v":1,\n "op":"list"}'))).doc).toEqual({ v: 1, op: 'list' });
    expect((await readRequest(input('{"v":1,', '"op":"x"}\n'))).doc).toEqual({ v: 1, op: 'x' });
  });

  it('hands the bytes after the request line to the operation', async () => {
    const r = await readRequest(input('{"v":1,"op":"upload"}\nDATA', 'MORE'));
    expect(r.doc).toEqual({ v: 1, op: 'upload' });
    const rest: Buffer[] = [];
    for await (const c of r.rest) rest.push(c as Buffer);
    expect(Buffer.concat(rest).toString()).toBe('DATAMORE');
  });

  it('refuses empty and malformed input without quoting it', async () => {
    await expect(readRequest(input(''))).rejects.toMatchObject({ code: 'BadRequest' });
    const e = await readRequest(input(`{"storage":{"secret_key":"${SECRET}"`)).then(
      () => expect.fail('malformed JSON was accepted'),
      (x: unknown) => x as PveS3Error,
    );
    expect(e).toMatchObject({ code: 'BadRequest' });
    expect(e.message).not.toContain(SECRET);
    expect(e.message).toMatch(/malformed JSON/);
  });
});

describe('parseRequest', () => {
  const storage = { id: 'my-s3', bucket: 'b', secret_key: SECRET };

  it('accepts the documented shape; args default to {}', () => {
    expect(parseRequest({ v: 1, op: 'list', storage }, OPS)).toEqual({ v: 1, op: 'list', storage, args: {} });
  });

  it.each([
    [{ v: 2, op: 'list', storage }, 'ProtocolVersion', /version 1/],
    [{ op: 'list', storage }, 'ProtocolVersion', /invalid v/],
    [{ v: 1, op: 'frobnicate', storage }, 'UnknownOp', /frobnicate.*must be one of version, status, list/],
    [{ v: 1, op: 'list' }, 'BadRequest', /storage/],
    [{ v: 1, op: 'list', storage: { bucket: 'b' } }, 'BadRequest', /storage\.id/],
    [{ v: 1, op: 'list', storage: { id: '1bad' } }, 'BadRequest', /storage\.id '1bad'/],
    [{ v: 1, op: 'list', storage, args: [1] }, 'BadRequest', /args/],
    [[1, 2], 'BadRequest', /array/],
  ])('%j → %s', (doc, code, msg) => {
    let err: PveS3Error | undefined;
    try {
      parseRequest(doc, OPS);
    } catch (e) {
      err = e as PveS3Error;
    }
    expect(err).toBeInstanceOf(PveS3Error);
    expect(err!.code).toBe(code);
    expect(err!.message).toMatch(msg);
    expect(err!.message).not.toContain(SECRET);
    expect(err!.exitCode).toBe(2);
  });
});

describe('args', () => {
  it('reads typed fields, accepting Perl-style booleans and numbers in strings', () => {
    const a = { s: 'x', n: '12', b: '1', f: 0, l: 'a,b', one: 'a' };
    expect(str(a, 's')).toBe('x');
    expect(int(a, 'n', { min: 1 })).toBe(12);
    expect(bool(a, 'b')).toBe(true);
    expect(bool(a, 'f')).toBe(false);
    expect(strList(a, 'l', { commas: true })).toEqual(['a', 'b']);
    expect(strList(a, 'one')).toEqual(['a']);
    expect(str(a, 'missing', true)).toBeUndefined();
  });

  it('names the field, the value and what is allowed', () => {
    expect(() => str({}, 'volname')).toThrow(/invalid args\.volname '': required/);
    expect(() => int({ vmid: 'abc' }, 'vmid')).toThrow(/invalid args\.vmid 'abc': must be an integer/);
    expect(() => int({ vmid: 0 }, 'vmid', { min: 1 })).toThrow(/must be an integer 1\.\./);
    expect(() => bool({ dryrun: 'maybe' }, 'dryrun')).toThrow(/invalid args\.dryrun 'maybe'/);
  });
});

describe('envelopes', () => {
  it('ok → exit 0 with result; errors → the error object and its exit code, one line', () => {
    expect(okReply({ a: 1 }, 'done')).toEqual({ envelope: { ok: true, result: { a: 1 } }, message: 'done', exitCode: 0 });
    const r = errorReply(new PveS3Error('NoSuchBucket', 'bucket x\ndoes not exist', { status: 404, exitCode: 3 }));
    expect(r.envelope).toEqual({ ok: false, error: { code: 'NoSuchBucket', message: 'bucket x does not exist', status: 404, retryable: false } });
    expect(r.exitCode).toBe(3);
    expect(errorReply(new Error('boom\nstack')).envelope).toMatchObject({ ok: false, error: { code: 'InternalError', message: 'boom' } });
  });
});

describe('handle (in process, no network)', () => {
  it('answers version without a storage', async () => {
    const r = await handle(input('{"v":1,"op":"version"}'));
    expect(r.exitCode).toBe(0);
    expect(r.envelope).toMatchObject({ ok: true, result: { protocol: 1 } });
    const ops = (r.envelope as { result: { ops: string[] } }).result.ops;
    for (const op of ['status', 'activate', 'list', 'stat', 'download', 'upload', 'delete', 'get-attr', 'set-attr', 'abort-stale-uploads', 'sync-local']) {
      expect(ops).toContain(op);
    }
    // removed: the plugin never sent them (docs/PROTOCOL.md §4.3)
    for (const op of ['check', 'prune-plan', 'prune', 'lifecycle']) {
      expect(ops).not.toContain(op);
    }
  });

  it('maps a bad storage value to ConfigInvalid naming the key, and a bad volname to InvalidVolname, before any request', async () => {
    const storage = { id: 'my-s3', bucket: 'my-bucket', endpoint: '127.0.0.1:9', access_key: 'AK', secret_key: SECRET, multipart_chunk_size: '2' };
    const r = await handle(input(JSON.stringify({ v: 1, op: 'list', storage })));
    expect(r.envelope).toMatchObject({ ok: false, error: { code: 'ConfigInvalid' } });
    expect(r.message).toMatch(/multipart_chunk_size '2'/);
    expect(r.exitCode).toBe(2);
    const ok = { ...storage, multipart_chunk_size: '100' };
    const v = await handle(input(JSON.stringify({ v: 1, op: 'stat', storage: ok, args: { volname: 'backup/../../etc/passwd' } })));
    expect(v.envelope).toMatchObject({ ok: false, error: { code: 'InvalidVolname' } });
    expect(JSON.stringify(v)).not.toContain(SECRET);
  });

  it('a missing secret is ConfigMissing (not a bad value: the plugin tells them apart by code) telling how to set it', async () => {
    const storage = { id: 'my-s3', bucket: 'my-bucket', endpoint: '127.0.0.1:9', access_key: 'AK' };
    const r = await handle(input(JSON.stringify({ v: 1, op: 'status', storage })));
    expect(r.envelope).toMatchObject({ ok: false, error: { code: 'ConfigMissing' } });
    expect(r.message).toMatch(/secret_key/);
    expect((r.envelope as { error: object }).error).not.toHaveProperty('quiet');
    // a storage added disabled without it (pvesm add --disable 1): the failure is what the admin asked for
    const off = await handle(input(JSON.stringify({ v: 1, op: 'manifest-key', storage: { ...storage, disable: '1' }, args: { action: 'create' } })));
    expect(off.envelope).toMatchObject({ ok: false, error: { code: 'ConfigMissing', quiet: true } });
    expect(off.message).toBe(r.message);
  });

  it('refuses a bad deadline_ms and bad args with BadRequest/InvalidArgument', async () => {
    const storage = { id: 'my-s3', bucket: 'my-bucket', endpoint: '127.0.0.1:9', access_key: 'AK', secret_key: SECRET };
    const d = await handle(input(JSON.stringify({ v: 1, op: 'status', deadline_ms: -5, storage })));
    expect(d.envelope).toMatchObject({ ok: false, error: { code: 'BadRequest' } });
    expect(d.message).toMatch(/deadline_ms/);
    const a = await handle(input(JSON.stringify({ v: 1, op: 'get-attr', storage, args: { volname: 'backup/vzdump-qemu-100-2024_01_01-00_00_00.vma', attr: 'color' } })));
    expect(a.envelope).toMatchObject({ ok: false, error: { code: 'BadRequest' } });
    expect(a.message).toMatch(/args\.attr 'color': must be one of notes, protected/);
  });
});
