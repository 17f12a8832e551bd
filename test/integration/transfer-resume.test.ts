import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import type { TransferClient } from '../../host/src/transfer/transfer-client.js';
import { verifyObject } from '../../host/src/transfer/download.js';
import { readManifest } from '../../host/src/transfer/manifest.js';
import { uploadObject } from '../../host/src/transfer/upload.js';
import type { Progress } from '../../host/src/transfer/progress.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../helpers/s3.js';
import { refCrc64Hex } from '../helpers/crc64.js';
import { MiB, journaledPartsIn, payload, sha256, wrapClient } from './transfer-helpers.js';

let c: S3Client;
let dir: string;
let journalDir: string;
let src: string;
const data = payload(31 * MiB + 3, 77); // 7 parts of 5 MiB

beforeAll(async () => {
  c = await freshBucket('transfer-resume');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-resume-'));
  journalDir = join(dir, 'journal');
  src = join(dir, 'src.bin');
  await writeFile(src, data);
});
afterAll(async () => {
  await dropBucket(c).catch(() => undefined);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

const journaledParts = (): Promise<number> => journaledPartsIn(journalDir);

/**
 * A run that "dies" at part `n`: that part never returns, so the run never reaches its clean-up,
 * as when the process is killed. `end()` lets it fail once the test is done with it, so it closes
 * its source file (left open, node closed it on garbage collection with a warning) and sends no
 * request after the test.
 */
function dyingAt(n: number): { client: TransferClient; end(run: Promise<unknown>): Promise<void> } {
  const ac = new AbortController();
  const hang = () => new Promise<never>((_, reject) => ac.signal.addEventListener('abort', () => reject(new Error('run 1 ended by the test')), { once: true }));
  return {
    client: wrapClient(c, { uploadPart: (k, id, m, body, sha, o) => (m === n ? hang() : c.uploadPart(k, id, m, body, sha, o)) }),
    end: async (run) => {
      ac.abort();
      await run.catch(() => undefined);
    },
  };
}

describe('resumable uploads', () => {
  it('an upload whose process died continues from the parts already stored', async () => {
    const key = 'resume/obj';
    // Run 1 "dies" at part 4. The server keeps the upload and the parts that made it.
    const dead = dyingAt(4);
    // With 2 workers, one hangs on part 4 and the other stores 1-3 and 5-7, then run 1 is still.
    const run1 = uploadObject(dead.client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, journalDir });
    for (let i = 0; i < 600 && (await journaledParts()) < 6; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await journaledParts()).toBe(6);

    // Run 2 with the same file and journal: only the missing parts go up again
    const sent: number[] = [];
    const counting = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        sent.push(n);
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    const events: Progress[] = [];
    const up = await uploadObject(counting, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3, journalDir, onProgress: (p) => events.push(p) });
    expect(up.partCount).toBe(7);
    expect(sent).toEqual([4]);
    // the stored parts count as done from the first event, but never as moved: no rate out of
    // them (a resumed 16 GiB upload showed 2,000,000 MiB/s and ETA 00:00), and the callers learn
    // how much was resumed
    const kept = data.length - 5 * MiB;
    expect(events[0]).toMatchObject({ bytes: kept, parts: 6, total: data.length, rate: 0, resumed: kept });
    expect(events.at(-1)).toMatchObject({ bytes: data.length, parts: 7, resumed: kept });

    const { body } = await c.getObject(key);
    expect(sha256(await readAll(body))).toBe(sha256(data));
    const m = await readManifest(c, key);
    m!.parts.forEach((p, i) => expect(p.sha256).toBe(sha256(data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB))));
    // the kept parts' CRCs come from the journal, the resent part's from this run
    m!.parts.forEach((p, i) => expect(p.crc64).toBe(refCrc64Hex(data.subarray(i * 5 * MiB, (i + 1) * 5 * MiB))));
    expect(m!.crc64).toBe(refCrc64Hex(data));
    expect(await verifyObject(c, key)).toBe('good');
    expect(await readdir(journalDir)).toEqual([]); // done: nothing to resume
    expect((await c.listMultipartUploads({ prefix: key })).filter((u) => u.key === key)).toEqual([]);
    await dead.end(run1);
  });

  it('parts journaled before CRCs were recorded are sent again, into the same upload', async () => {
    const key = 'resume/old-journal';
    const dead = dyingAt(4);
    const run1 = uploadObject(dead.client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, journalDir });
    for (let i = 0; i < 600 && (await journaledParts()) < 6; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await journaledParts()).toBe(6);
    // what an earlier release wrote: one JSON object (version 1), its parts without CRCs
    const [file] = await readdir(journalDir);
    const [head, ...lines] = (await readFile(join(journalDir, file!), 'utf8')).trimEnd().split('\n');
    const j = { ...JSON.parse(head!), version: 1, parts: {} as Record<string, unknown> };
    for (const l of lines) {
      const { n, crc64: _, ...p } = JSON.parse(l);
      j.parts[String(n)] = p;
    }
    expect(Object.keys(j.parts)).toHaveLength(6);
    await writeFile(join(journalDir, file!), JSON.stringify(j));
    const sent: number[] = [];
    const counting = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        expect(id).toBe(j.uploadId);
        sent.push(n);
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    const up = await uploadObject(counting, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3, journalDir });
    expect(sent.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(up.manifest.crc64).toBe(refCrc64Hex(data));
    expect(await verifyObject(c, key)).toBe('good');
    expect((await c.listMultipartUploads({ prefix: key })).filter((u) => u.key === key)).toEqual([]);
    await dead.end(run1);
  });

  it('a journal whose last line the kill tore still resumes from the parts before it', async () => {
    const key = 'resume/torn';
    const dead = dyingAt(4);
    const run1 = uploadObject(dead.client, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 2, journalDir });
    for (let i = 0; i < 600 && (await journaledParts()) < 6; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await journaledParts()).toBe(6);
    // a part is one appended line (the journal is never rewritten while the upload runs): a
    // process killed in the middle of one leaves half a line
    const [file] = await readdir(journalDir);
    const text = await readFile(join(journalDir, file!), 'utf8');
    expect(text.split('\n').filter((l) => l !== '')).toHaveLength(7);
    await writeFile(join(journalDir, file!), `${text}{"n":4,"etag":"\\"abc`);
    const sent: number[] = [];
    const counting = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        sent.push(n);
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    const up = await uploadObject(counting, key, { path: src }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3, journalDir });
    expect(sent).toEqual([4]);
    expect(up.manifest.crc64).toBe(refCrc64Hex(data));
    expect(await verifyObject(c, key)).toBe('good');
    expect(await readdir(journalDir)).toEqual([]);
    await dead.end(run1);
  });

  it('a journal for a file that changed since is not trusted', async () => {
    const key = 'resume/changed';
    const dead = dyingAt(3);
    const other = join(dir, 'other.bin');
    await writeFile(other, data);
    const run1 = uploadObject(dead.client, key, { path: other }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 1, journalDir });
    for (let i = 0; i < 600 && (await journaledParts()) < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await journaledParts()).toBeGreaterThanOrEqual(2);

    const changed = Buffer.from(data);
    changed[0] ^= 0xff; // same size, new content and mtime
    await writeFile(other, changed);
    const sent: number[] = [];
    const counting = wrapClient(c, {
      uploadPart: async (k, id, n, body, sha, o) => {
        sent.push(n);
        return c.uploadPart(k, id, n, body, sha, o);
      },
    });
    await uploadObject(counting, key, { path: other }, { manifestSigner: null, chunkSizeMB: 5, concurrency: 3, journalDir });
    expect(sent.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const { body } = await c.getObject(key);
    expect(sha256(await readAll(body))).toBe(sha256(changed));
    await dead.end(run1);
    // the dead run's upload is left for maintenance's stale-upload cleanup
    for (const u of await c.listMultipartUploads({ prefix: key })) await c.abortMultipartUpload(u.key, u.uploadId);
  });
});
