#!/usr/bin/env node
// Throughput of the WASM digest core next to node:crypto (native) and @aws-crypto/sha256-js,
// measured in the same run. Not a test: numbers depend on the machine and its load.
//
//   npm run bench:core              human-readable table with ratios
//   npm run bench:core -- --json    one JSON object: {"sha256":{"wasm":…,"wasm4lane":…,"node":…,"awsCryptoJs":…},…} (MB/s)
//   --seconds=N                     measuring time per figure (default 1; best of 3 slices)
//   --wall                          divide by wall-clock time instead of this process's CPU time
//
// CPU time is the default because the machine is shared: descheduled time would otherwise be
// charged to whichever implementation happened to be running. On an idle machine the two agree
// (everything measured here runs synchronously on the main thread).
//
// Uses the compiled wrappers in host/dist (what the product runs), so run `npm run build` first.
// hash-wasm is compared too when it is installed (see below); it is not a dependency.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = resolve(root, 'host', 'dist', 'wasm', 'index.js');
if (!existsSync(dist)) {
  console.error(`bench:core: ${dist} is missing; run 'npm run build' first`);
  process.exit(2);
}
const { Sha256, Md5, Crc32c, Crc64Nvme, sha256x4 } = await import(pathToFileURL(dist).href);
const { Sha256: AwsSha256 } = await import('@aws-crypto/sha256-js');
// Optional comparison: hash-wasm from node_modules, or from PVE_S3_BENCH_HASH_WASM (a path to
// its package directory, e.g. after `npm install --prefix /tmp/hw hash-wasm`); skipped if absent.
let hashWasm = null;
for (const spec of [process.env.PVE_S3_BENCH_HASH_WASM, 'hash-wasm']) {
  if (!spec) continue;
  try {
    hashWasm = await import(spec.startsWith('/') ? pathToFileURL(resolve(spec, 'dist', 'index.esm.js')).href : spec);
    break;
  } catch {
    // not installed: compare without it
  }
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const secArg = args.find((a) => a.startsWith('--seconds='));
const seconds = secArg ? Number(secArg.slice('--seconds='.length)) : 1;
const wall = args.includes('--wall');
/** Milliseconds on the chosen clock. */
const clock = wall ? () => performance.now() : () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
if (!(seconds > 0)) {
  console.error(`bench:core: invalid --seconds '${secArg}': must be a positive number`);
  process.exit(2);
}

const MiB = 1 << 20;
const buf = randomBytes(8 * MiB);
const lanes = [0, 1, 2, 3].map(() => randomBytes(8 * MiB));

/** MB/s of `fn` (which processes `bytes` per call): best of 3 slices of seconds/3 each, after a
 *  warm-up call so the JIT and the WASM tier-up are done. */
async function measure(bytes, fn) {
  await fn();
  let best = 0;
  for (let s = 0; s < 3; s++) {
    let n = 0;
    const t0 = clock();
    let dt = 0;
    do {
      await fn();
      n++;
      dt = clock() - t0;
    } while (dt < (seconds * 1000) / 3);
    best = Math.max(best, (n * bytes) / 1e6 / (dt / 1000));
  }
  return Math.round(best);
}

const small = buf.subarray(0, MiB); // the pure-JS implementation is slow; 1 MiB per call is plenty
const r = {
  sha256: {
    wasm: await measure(buf.length, () => new Sha256().update(buf).digest()),
    wasm4lane: await measure(4 * lanes[0].length, () => sha256x4(lanes)),
    node: await measure(buf.length, () => createHash('sha256').update(buf).digest()),
    awsCryptoJs: await measure(small.length, async () => {
      const h = new AwsSha256();
      h.update(small);
      await h.digest();
    }),
  },
  md5: {
    wasm: await measure(buf.length, () => new Md5().update(buf).digest()),
    node: await measure(buf.length, () => createHash('md5').update(buf).digest()),
  },
  crc32c: {
    wasm: await measure(buf.length, () => new Crc32c().update(buf).digest()),
    // Node has no CRC32C; its native CRC-32 (zlib, same table/fold cost class) is the reference.
    ...(typeof zlib.crc32 === 'function' ? { nodeZlibCrc32: await measure(buf.length, () => zlib.crc32(buf)) } : {}),
  },
  crc64nvme: {
    wasm: await measure(buf.length, () => new Crc64Nvme().update(buf).digest()),
  },
};
if (hashWasm) {
  r.sha256.hashWasm = await measure(buf.length, () => hashWasm.sha256(buf));
  r.md5.hashWasm = await measure(buf.length, () => hashWasm.md5(buf));
  r.crc32c.hashWasm = await measure(buf.length, () => hashWasm.crc32(buf, 0x82f63b78));
  r.crc64nvme.hashWasm = await measure(buf.length, () => hashWasm.crc64(buf, '9a6c9329ac4bc9b5'));
}

if (json) {
  console.log(JSON.stringify(r));
} else {
  const ratio = (a, b) => (b ? `${(a / b).toFixed(2)}×` : 'n/a');
  const line = (name, mbs, note = '') => console.log(`  ${name.padEnd(24)} ${String(mbs).padStart(6)} MB/s  ${note}`);
  console.log(`bench:core — node ${process.version}, ${seconds}s ${wall ? 'wall' : 'CPU'} time per figure (best of 3), 8 MiB buffers`);
  console.log('SHA-256');
  line('wasm (single stream)', r.sha256.wasm, `= ${ratio(r.sha256.wasm, r.sha256.node)} node:crypto, ${ratio(r.sha256.wasm, r.sha256.awsCryptoJs)} @aws-crypto/sha256-js`);
  line('wasm 4-lane (aggregate)', r.sha256.wasm4lane, `= ${ratio(r.sha256.wasm4lane, r.sha256.wasm)} wasm single, ${ratio(r.sha256.wasm4lane, r.sha256.node)} node:crypto`);
  line('node:crypto (native)', r.sha256.node);
  line('@aws-crypto/sha256-js', r.sha256.awsCryptoJs);
  if (r.sha256.hashWasm) {
    line('hash-wasm', r.sha256.hashWasm,
      `(wasm single = ${ratio(r.sha256.wasm, r.sha256.hashWasm)} hash-wasm, wasm 4-lane = ${ratio(r.sha256.wasm4lane, r.sha256.hashWasm)} hash-wasm)`);
  }
  console.log('MD5');
  line('wasm', r.md5.wasm, `= ${ratio(r.md5.wasm, r.md5.node)} node:crypto`);
  line('node:crypto (native)', r.md5.node);
  if (r.md5.hashWasm) line('hash-wasm', r.md5.hashWasm, `(wasm = ${ratio(r.md5.wasm, r.md5.hashWasm)} hash-wasm)`);
  console.log('CRC32C (Node has no CRC32C; node:zlib crc32 is native CRC-32, the nearest reference)');
  line('wasm', r.crc32c.wasm, r.crc32c.nodeZlibCrc32 ? `= ${ratio(r.crc32c.wasm, r.crc32c.nodeZlibCrc32)} node:zlib crc32` : '');
  if (r.crc32c.nodeZlibCrc32) line('node:zlib crc32 (native)', r.crc32c.nodeZlibCrc32);
  if (r.crc32c.hashWasm) line('hash-wasm', r.crc32c.hashWasm, `(wasm = ${ratio(r.crc32c.wasm, r.crc32c.hashWasm)} hash-wasm)`);
  console.log('CRC64NVME');
  line('wasm', r.crc64nvme.wasm, r.crc32c.nodeZlibCrc32 ? `= ${ratio(r.crc64nvme.wasm, r.crc32c.nodeZlibCrc32)} node:zlib crc32` : '');
  if (r.crc64nvme.hashWasm) line('hash-wasm', r.crc64nvme.hashWasm, `(wasm = ${ratio(r.crc64nvme.wasm, r.crc64nvme.hashWasm)} hash-wasm)`);
}
