import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../host/src/s3/client.js';
import { scanListPage } from '../../host/src/s3/list-xml.js';
import { loadXmlParser, parseListObjectsV2, rawListPage } from '../../host/src/s3/xml.js';
import { closeTestClients, dropBucket, freshBucket, pool, testClient } from '../helpers/s3.js';

// 2,500 keys: 2 × 1,000 under a/ (in 10 "folders"), 500 under b/
const keys = [
  ...Array.from({ length: 2000 }, (_, i) => `a/d${i % 10}/k${String(i).padStart(4, '0')}`),
  ...Array.from({ length: 500 }, (_, i) => `b/k${String(i).padStart(4, '0')}`),
];
const body = new Uint8Array([42]);

let c: S3Client;
beforeAll(async () => {
  c = await freshBucket('list');
  await pool(keys, 16, async (k) => {
    await c.putObject(k, body);
  });
});
afterAll(async () => {
  if (c) await dropBucket(c);
  await closeTestClients();
});

describe('listing 2,500 keys', () => {
  it('listAll pages through every key in order (ListObjectsV2, 1000 per page)', async () => {
    const pages: number[] = [];
    const got: string[] = [];
    for await (const p of c.listPages()) {
      pages.push(p.objects.length);
      got.push(...p.objects.map((o) => o.key));
    }
    expect(pages).toEqual([1000, 1000, 500]);
    expect(got).toEqual([...keys].sort());
  });

  it('small pages with a prefix', async () => {
    const got: string[] = [];
    let n = 0;
    for await (const p of c.listPages({ prefix: 'b/', maxKeys: 70 })) {
      n++;
      expect(p.objects.length).toBeLessThanOrEqual(70);
      got.push(...p.objects.map((o) => o.key));
    }
    expect(n).toBe(Math.ceil(500 / 70));
    expect(got).toEqual(keys.filter((k) => k.startsWith('b/')).sort());
  });

  it('delimiter: common prefixes instead of keys', async () => {
    const top = await c.listObjects({ delimiter: '/' });
    expect(top.objects).toEqual([]);
    expect(top.prefixes).toEqual(['a/', 'b/']);
    const sub = await c.listObjects({ prefix: 'a/', delimiter: '/' });
    expect(sub.prefixes).toEqual(Array.from({ length: 10 }, (_, i) => `a/d${i}/`));
    const leaf: string[] = [];
    for await (const o of c.listAll({ prefix: 'a/d3/', delimiter: '/' })) leaf.push(o.key);
    expect(leaf.length).toBe(200);
    expect(leaf.every((k) => k.startsWith('a/d3/'))).toBe(true);
  });

  it('delimiter with small pages: prefixes are paged too', async () => {
    const prefixes: string[] = [];
    for await (const p of c.listPages({ prefix: 'a/', delimiter: '/', maxKeys: 3 })) prefixes.push(...p.prefixes);
    expect(prefixes).toEqual(Array.from({ length: 10 }, (_, i) => `a/d${i}/`));
  });

  it('ListObjects V1 (forced, as for old gateways) gives the same keys, paged by marker', async () => {
    const v1 = testClient({ bucket: c.bucket, listApi: 'v1' });
    const got: string[] = [];
    let pages = 0;
    for await (const p of v1.listPages({ prefix: 'a/', maxKeys: 400 })) {
      pages++;
      got.push(...p.objects.map((o) => o.key));
    }
    expect(pages).toBe(5);
    expect(got).toEqual(keys.filter((k) => k.startsWith('a/')).sort());
    const top = await v1.listObjects({ delimiter: '/' });
    expect(top.prefixes).toEqual(['a/', 'b/']);
  });
});

describe('DeleteObjects with more than 1000 keys', () => {
  it('deletes 1,500 keys in two requests and reports them all', async () => {
    const del = keys.filter((k) => k.startsWith('a/')).slice(0, 1500);
    const r = await c.deleteObjects(del);
    expect(r.errors).toEqual([]);
    expect(r.deleted.sort()).toEqual([...del].sort());
    const left: string[] = [];
    for await (const o of c.listAll({ prefix: 'a/' })) left.push(o.key);
    expect(left.length).toBe(500);
    expect(left.some((k) => del.includes(k))).toBe(false);
  });

  it('keys needing XML escaping are deleted too', async () => {
    const odd = ['x&y<z>.bin', 'quote"apos\'.bin', 'cr\rkey', 'tab\tand\nlf', 'ü spaces  .bin', 'ctl\u0001char', 'ctl\u001fchar'];
    for (const k of odd) await c.putObject(k, body);
    const r = await c.deleteObjects(odd);
    expect(r.errors).toEqual([]);
    for (const k of odd) await expect(c.headObject(k)).rejects.toMatchObject({ code: 'NoSuchKey' });
  });

  it("RadosGW's listing pages read the same with the scanner as with the general parser (odd keys, url and plain encoding)", async () => {
    const odd = ['x&y<z>.bin', 'quote"apos\'.bin', 'cr\rkey', 'tab\tand\nlf', 'ü spaces  .bin', ' lead', 'trail ', 'plus+%25.bin', '日本😀', 'ctl\u0001char'];
    for (const k of odd) await c.putObject(`odd/${k}`, body);
    await loadXmlParser();
    try {
      for (const encoding of [[['encoding-type', 'url']], []] as Array<Array<[string, string]>>) {
        const got: string[] = [];
        let token: string | undefined;
        do {
          const query: Array<[string, string]> = [['list-type', '2'], ['prefix', 'odd/'], ['max-keys', '4'], ...encoding];
          if (token) query.push(['continuation-token', token]);
          const res = await c.transport.request({ operation: 'ListObjectsV2', method: 'GET', query, idempotent: true });
          const text = Buffer.from(res.body).toString('utf8');
          const raw = scanListPage(text);
          expect(raw, text).toBeDefined();
          expect(raw).toEqual(rawListPage(text));
          const page = parseListObjectsV2(raw!);
          expect(page).toEqual(parseListObjectsV2(text));
          got.push(...page.objects.map((o) => o.key));
          token = page.nextContinuationToken;
        } while (token);
        expect(got).toEqual(odd.map((k) => `odd/${k}`).sort());
      }
      // and through the client, as every listing reads them
      const listed: string[] = [];
      for await (const o of c.listAll({ prefix: 'odd/' })) listed.push(o.key);
      expect(listed).toEqual(odd.map((k) => `odd/${k}`).sort());
    } finally {
      await c.deleteObjects(odd.map((k) => `odd/${k}`));
    }
  });
});
