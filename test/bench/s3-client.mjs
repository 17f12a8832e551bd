#!/usr/bin/env node
// S3 client micro-benchmark against a real RadosGW: small HEADs per second (sequential and with
// 8 in flight; TCP connections opened shows whether keep-alive works) and one 64 MiB object by a
// single PUT and a single GET (MB/s, median of ROUNDS). Not run by npm test.
//
//   npm run build:ts && node test/bench/s3-client.mjs
//   env: HEADS (2000) SIZE_MB (64) ROUNDS (3)
//        S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY [S3_REGION] (default: $PVE_S3_RGW_DIR/s3.env,
//        /tmp/pve-s3-rgw by default)
import { createHash, randomFillSync } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gatewayEnv } from './gateway.mjs';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const dist = process.env.PVE_S3_DIST || join(root, 'host/dist');
const { S3Client } = await import(pathToFileURL(join(dist, 's3/client.js')).href);
const { createDispatcher } = await import(pathToFileURL(join(dist, 's3/dispatcher.js')).href);

const env = gatewayEnv();
const HEADS = Number(env.HEADS || 2000);
const SIZE = Number(env.SIZE_MB || 64) * 1024 * 1024;
const ROUNDS = Number(env.ROUNDS || 3);

const dispatcher = await createDispatcher({ connectTimeoutMs: 5000 });
let connects = 0;
dispatcher.on('connect', () => connects++);
const bucket = `bench-${Date.now().toString(36)}`;
const c = new S3Client(
  {
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION || 'us-east-1',
    bucket,
    credentials: { accessKeyId: env.S3_ACCESS_KEY, secretAccessKey: env.S3_SECRET_KEY },
    forcePathStyle: true,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 120_000,
  },
  { dispatcher },
);
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

await c.createBucket();
try {
  await c.putObject('small', new Uint8Array(100));
  for (let i = 0; i < 50; i++) await c.headObject('small'); // warm-up
  for (const inflight of [1, 8]) {
    connects = 0;
    const t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        while (next++ < HEADS) await c.headObject('small');
      }),
    );
    const s = (performance.now() - t0) / 1000;
    console.log(`HEAD x${HEADS}, ${inflight} in flight: ${(HEADS / s).toFixed(0)} req/s, ${connects} new TCP connections`);
  }

  const data = randomFillSync(Buffer.allocUnsafe(SIZE));
  const sha = createHash('sha256').update(data).digest('hex');
  const put = [];
  const putHashed = [];
  const get = [];
  for (let r = 0; r < ROUNDS; r++) {
    let t0 = performance.now();
    await c.putObject('big', data);
    putHashed.push(SIZE / 1e6 / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    await c.putObject('big', data, { sha256Hex: sha });
    put.push(SIZE / 1e6 / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    const g = await c.getObject('big');
    let n = 0;
    for await (const chunk of g.body) n += chunk.byteLength;
    if (n !== SIZE) throw new Error(`GET returned ${n} bytes, expected ${SIZE}`);
    get.push(SIZE / 1e6 / ((performance.now() - t0) / 1000));
  }
  const mb = SIZE / 1024 / 1024;
  console.log(`PUT ${mb} MiB single request, hash given: ${median(put).toFixed(0)} MB/s (median of ${ROUNDS})`);
  console.log(`PUT ${mb} MiB single request, hashed by the client (WASM SHA-256): ${median(putHashed).toFixed(0)} MB/s`);
  console.log(`GET ${mb} MiB single request: ${median(get).toFixed(0)} MB/s`);
} finally {
  await c.deleteObjects(['small', 'big']);
  await c.deleteBucket();
  await dispatcher.close();
}
