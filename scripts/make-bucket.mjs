#!/usr/bin/env node
// Creates the bucket S3_BUCKET on S3_ENDPOINT for trying pve-s3 against a test gateway (README
// "Try it"). pve-s3 itself never creates buckets: on a real provider the bucket's region, policy,
// versioning and Object Lock are the administrator's choice. Settings come from the environment
// only (never argv: the secret would show in ps).
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const e = process.env;
const missing = ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY', 'S3_SECRET_KEY'].filter((k) => !e[k]);
if (missing.length > 0 || process.argv.length > 2) {
  process.stderr.write(
    `make-bucket: ${missing.length > 0 ? `${missing.join(', ')} not set` : 'takes no arguments'}; ` +
      'usage: S3_ENDPOINT=… S3_BUCKET=… S3_ACCESS_KEY=… S3_SECRET_KEY=… [S3_REGION=…] node scripts/make-bucket.mjs\n',
  );
  process.exit(2);
}
const { S3Client } = await import(pathToFileURL(join(root, 'host/dist/s3/client.js')).href);
const client = new S3Client({
  endpoint: /^https?:\/\//.test(e.S3_ENDPOINT) ? e.S3_ENDPOINT : `https://${e.S3_ENDPOINT}`,
  region: e.S3_REGION || 'us-east-1',
  bucket: e.S3_BUCKET,
  credentials: { accessKeyId: e.S3_ACCESS_KEY, secretAccessKey: e.S3_SECRET_KEY },
  forcePathStyle: true,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
});
try {
  await client.createBucket();
  process.stdout.write(`bucket ${e.S3_BUCKET} ready on ${e.S3_ENDPOINT}\n`);
} catch (err) {
  process.stderr.write(`make-bucket: creating ${e.S3_BUCKET} on ${e.S3_ENDPOINT} failed: ${err?.code ?? ''} ${err?.message ?? err}\n`);
  process.exitCode = 1;
} finally {
  await client.close?.();
}
