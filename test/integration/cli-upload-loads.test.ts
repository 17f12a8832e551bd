// What an upload loads (issue 13: the fixed CPU of a pve-s3-backup): it reads every S3 answer it
// gets — the multipart results, the 404 of a backup's .notes when it has none — without
// fast-xml-parser (s3/flat-xml.ts), whose load alone cost a process ~60 ms of CPU and ~1,200 page
// faults, and sends every request through the lean path (s3/lean-http.ts), not undici, whose
// Agent and first request cost about as much; the bytes still arrive and the upload is still
// checked against its manifest.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { closeTestClients, dropBucket, freshBucket } from '../helpers/s3.js';
import { BIN, MiB, body, cfgEnv, requireBuild, run, s3Section } from './cli-helpers.js';

const RECORD = resolve(import.meta.dirname, '../helpers/record-loads.mjs');

let c: S3Client;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  requireBuild();
  c = await freshBucket('cli-upload-loads');
  dir = await mkdtemp(join(tmpdir(), 'pve-s3-upload-loads-'));
  env = await cfgEnv(dir, [s3Section('s3l', c.bucket, { multipart_chunk_size: '5' })]);
});

afterAll(async () => {
  await dropBucket(c);
  await closeTestClients();
  await rm(dir, { recursive: true, force: true });
});

describe('an upload from a checkout', () => {
  it("loads no fast-xml-parser and no undici Agent: one PUT of a backup without notes, and one in parts", async () => {
    for (const [name, size] of [
      ['vzdump-qemu-100-2024_05_06-07_08_09.vma.zst', 1000],
      ['vzdump-qemu-101-2024_05_06-07_08_09.vma.zst', 6 * MiB + 1],
    ] as const) {
      const data = randomBytes(size);
      await writeFile(join(dir, name), data);
      const loads = join(dir, `${name}.loads`);
      const r = await run(`${process.execPath} --import ${RECORD} ${join(BIN, 'pve-s3-backup.js')} --storage s3l --source ${join(dir, name)} --json`, [], {
        env: { ...env, PVE_S3_TEST_LOADS: loads },
        shell: true,
      });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject([{ key: `dump/${name}`, size, notes: false }]);
      expect((await body(c, `dump/${name}`)).equals(data)).toBe(true);
      const urls = (await readFile(loads, 'utf8')).split('\n');
      expect(urls.filter((u) => u.includes('fast-xml-parser'))).toEqual([]);
      // undici's Agent side (its pool, client and llhttp) is loaded through this one module
      expect(urls.filter((u) => u.includes('undici-agent') || /undici\/lib\/(dispatcher|api)\//.test(u))).toEqual([]);
      // the hook saw the command's modules, so its silence about fast-xml-parser means something
      expect(urls.filter((u) => u.endsWith('/host/dist/s3/request.js'))).toHaveLength(1);
    }
    // and the store's own upload of the second one went in parts
    expect((await c.headObject('dump/vzdump-qemu-101-2024_05_06-07_08_09.vma.zst')).etag).toMatch(/-2"?$/);
  });
});
