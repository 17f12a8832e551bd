#!/usr/bin/env node
// SigV4 signatures per second: the WASM signer (canonical request, hashing and HMACs in
// core.wasm, host-side validation and packing included) next to a plain JS signer built on
// node:crypto's native SHA-256/HMAC, measured in the same run on the same UploadPart request.
// Not a test: figures depend on the machine and its load.
//
//   npm run bench:sign [-- --json] [--seconds=N]
//
// Uses the compiled wrapper in host/dist, so run `npm run build` first.
import { createHash, createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = resolve(root, 'host', 'dist', 'wasm', 'signer.js');
if (!existsSync(dist)) {
  console.error(`bench:sign: ${dist} is missing; run 'npm run build' first`);
  process.exit(2);
}
const { SigV4Signer } = await import(pathToFileURL(dist).href);

const args = process.argv.slice(2);
const json = args.includes('--json');
const secArg = args.find((a) => a.startsWith('--seconds='));
const seconds = secArg ? Number(secArg.slice('--seconds='.length)) : 1;

const credentials = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const region = 'us-east-1';
const date = new Date(Date.UTC(2026, 10, 26, 5, 0, 0));
const body = createHash('sha256').update('part').digest('hex');
const request = {
  method: 'PUT',
  path: '/pve-backups/dump/vzdump-qemu-100-2026_11_26-05_00_00.vma.zst',
  query: [['partNumber', '17'], ['uploadId', '2~aBcDeFgHiJkLmNoPqRsTuVwXyZ012345']],
  headers: { host: 's3.example.net:7480', 'content-length': '67108864', 'x-amz-meta-vmid': '100' },
  payloadHash: body,
  date,
};

// Baseline: the same algorithm in JS with node:crypto, signing key cached like the WASM signer.
const enc = (s, slash) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
  .replace(slash ? /%2F/g : /$^/, '/');
const hmac = (k, m) => createHmac('sha256', k).update(m).digest();
let cachedKey = null;
let cachedFor = '';
function nodeSign(r) {
  const amz = r.date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
  const d8 = amz.slice(0, 8);
  if (cachedFor !== d8) {
    cachedKey = hmac(hmac(hmac(hmac('AWS4' + credentials.secretAccessKey, d8), region), 's3'), 'aws4_request');
    cachedFor = d8;
  }
  const q = r.query.map(([k, v]) => [enc(k), enc(v)]).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`).join('&');
  const h = Object.entries({ ...r.headers, 'x-amz-date': amz, 'x-amz-content-sha256': r.payloadHash })
    .map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, ' ')]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const signed = h.map(([k]) => k).join(';');
  const creq = `${r.method}\n${enc(r.path, true)}\n${q}\n${h.map(([k, v]) => `${k}:${v}\n`).join('')}\n${signed}\n${r.payloadHash}`;
  const scope = `${d8}/${region}/s3/aws4_request`;
  const sts = `AWS4-HMAC-SHA256\n${amz}\n${scope}\n${createHash('sha256').update(creq).digest('hex')}`;
  return createHmac('sha256', cachedKey).update(sts).digest('hex');
}

const wasm = new SigV4Signer({ credentials, region });
const wasmSig = wasm.sign(request).signature;
if (wasmSig !== nodeSign(request)) {
  console.error('bench:sign: WASM and node:crypto signatures differ; refusing to compare speeds');
  process.exit(1);
}

/** Signatures per second: best of 3 slices of `seconds`/3 each (the machine is shared). */
function rate(fn) {
  for (let i = 0; i < 2000; i++) fn();
  let best = 0;
  for (let s = 0; s < 3; s++) {
    const until = performance.now() + (seconds * 1000) / 3;
    let n = 0;
    const t0 = performance.now();
    let t = t0;
    while (t < until) {
      for (let i = 0; i < 200; i++) fn();
      n += 200;
      t = performance.now();
    }
    best = Math.max(best, n / ((t - t0) / 1000));
  }
  return best;
}

const chunkSigner = wasm.chunkSigner(wasmSig, date);
const figures = {
  sign: { wasm: rate(() => wasm.sign(request)), node: rate(() => nodeSign(request)) },
  presign: { wasm: rate(() => wasm.presign({ ...request, expiresIn: 3600 })) },
  chunk: { wasm: rate(() => chunkSigner.sign(body)) },
};
if (json) {
  console.log(JSON.stringify(figures));
} else {
  const f = (x) => Math.round(x).toLocaleString('en-US').padStart(10);
  console.log(`SigV4 signatures/s (UploadPart request, best of 3 × ${(seconds / 3).toFixed(2)} s)`);
  console.log(`  sign     WASM ${f(figures.sign.wasm)}   node:crypto JS ${f(figures.sign.node)}   ratio ${(figures.sign.wasm / figures.sign.node).toFixed(2)}`);
  console.log(`  presign  WASM ${f(figures.presign.wasm)}`);
  console.log(`  chunk    WASM ${f(figures.chunk.wasm)}`);
}
