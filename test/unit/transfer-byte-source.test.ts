// The stream-upload input: a FIFO read straight into the caller's buffers (the --from-command
// producer, like stdin from a shell pipe), a regular file, any Readable. Each must deliver every
// byte in order whatever the split, report the end only at the end, and fail — never end — when
// stopped midway or when the producer fails.
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProducer } from '../../host/src/cli/producer.js';
import { fdSource, iterableSource, type ByteSource } from '../../host/src/transfer/byte-source.js';
import { StreamChunkSource } from '../../host/src/transfer/chunk-source.js';
import { oddStream } from '../integration/transfer-helpers.js';

let dir: string;
let file: string;
const data = randomBytes(3 * 1024 * 1024 + 12345);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-bytes-'));
  file = join(dir, 'data');
  await writeFile(file, data);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Reads everything with fills of the given sizes (cycled), peeking now and then. */
async function readAll(src: ByteSource, sizes: number[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for (let i = 0; ; i++) {
    if (i % 3 === 1) {
      const head = await src.peek();
      if (head.length === 0) break;
    }
    const t = Buffer.alloc(sizes[i % sizes.length]!);
    const n = await src.fill(t);
    out.push(t.subarray(0, n));
    if (n < t.length) {
      expect((await src.peek()).length).toBe(0);
      break;
    }
  }
  return Buffer.concat(out);
}

const SPLITS = [1, 65_536, 1_000_000, 7, 2 * 1024 * 1024];

describe('a FIFO (the --from-command producer)', () => {
  it('delivers every byte in order, whatever the fills', async () => {
    const p = startProducer(`cat '${file}'`);
    expect((await readAll(p.output, SPLITS)).equals(data)).toBe(true);
    expect(await p.done).toBe(0);
  });

  it('a fill spans the producer\'s separate writes and waits for them', async () => {
    const p = startProducer(`printf abc; sleep 0.2; printf def; sleep 0.2; printf g`);
    const t = Buffer.alloc(5);
    expect(await p.output.fill(t)).toBe(5);
    expect(t.toString()).toBe('abcde');
    const rest = Buffer.alloc(10);
    expect(await p.output.fill(rest)).toBe(2);
    expect(rest.subarray(0, 2).toString()).toBe('fg');
    expect((await p.output.peek()).length).toBe(0);
  });

  it('an empty output that ends with a failure is SourceFailed, not an end', async () => {
    const p = startProducer('exit 3');
    await expect(p.output.peek()).rejects.toMatchObject({ code: 'SourceFailed', message: expect.stringMatching(/'exit 3' exited with status 3/) });
  });

  it('output that stops with a failure fails the fill that reaches the end', async () => {
    const p = startProducer(`head -c 1000 '${file}'; kill -9 $$`);
    const t = Buffer.alloc(4096);
    await expect(p.output.fill(t)).rejects.toMatchObject({ code: 'SourceFailed', message: expect.stringMatching(/was killed by SIGKILL/) });
    expect(t.subarray(0, 1000).equals(data.subarray(0, 1000))).toBe(true);
  });

  it('close() while a fill waits for a silent producer fails that fill with Aborted', async () => {
    const p = startProducer('printf x; exec sleep 30');
    const pending = p.output.fill(Buffer.alloc(10));
    setTimeout(() => void p.output.close(), 100);
    await expect(pending).rejects.toMatchObject({ code: 'Aborted' });
    await expect(p.output.peek()).rejects.toMatchObject({ code: 'Aborted' });
    p.stop();
    expect(await p.done).toBe('SIGTERM');
  });
});

describe('a regular file descriptor (stdin redirected from a file)', () => {
  it('delivers every byte in order, whatever the fills', async () => {
    const fd = openSync(file, 'r');
    try {
      expect((await readAll(fdSource(fd), SPLITS)).equals(data)).toBe(true);
    } finally {
      closeSync(fd);
    }
  });
});

describe('any Readable', () => {
  it('delivers every byte in order, whatever the chunks and fills', async () => {
    expect((await readAll(iterableSource(oddStream(data)), SPLITS)).equals(data)).toBe(true);
  });

  it('close() destroys the stream and a later fill fails with Aborted', async () => {
    const r = oddStream(data);
    const src = iterableSource(r);
    await src.fill(Buffer.alloc(10));
    await src.close();
    expect(r.destroyed).toBe(true);
    await expect(src.fill(Buffer.alloc(10))).rejects.toMatchObject({ code: 'Aborted' });
  });
});

describe('StreamChunkSource over a FIFO', () => {
  it('cuts exact parts and marks the last one', async () => {
    const p = startProducer(`cat '${file}'`);
    const P = 1024 * 1024;
    const src = new StreamChunkSource(p.output, P);
    const buf = Buffer.alloc(P);
    const got: Buffer[] = [];
    const lasts: boolean[] = [];
    for (;;) {
      const s = await src.read(buf);
      if (!s) break;
      got.push(Buffer.from(buf.subarray(0, s.length)));
      lasts.push(s.last);
    }
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(got.map((b) => b.length)).toEqual([P, P, P, data.length - 3 * P]);
    expect(lasts).toEqual([false, false, false, true]);
  });
});
