// What the benchmarks that talk to a gateway share: its S3_* settings (the environment, else the
// test gateway's s3.env from test/s3/rgw-up.sh) and a client of the built host for a bucket.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** process.env with S3_* filled from $PVE_S3_RGW_DIR/s3.env (/tmp/pve-s3-rgw) when not set. */
export function gatewayEnv() {
  const env = { ...process.env };
  if (env.S3_ENDPOINT) return env;
  const f = join(env.PVE_S3_RGW_DIR || '/tmp/pve-s3-rgw', 's3.env');
  if (!existsSync(f)) throw new Error(`no S3_ENDPOINT and no ${f}: start a gateway (test/s3/rgw-up.sh, ../shared/bench/rgw-env.sh) or set S3_*`);
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    const m = /^(?:export )?([A-Z0-9_]+)=(.*)$/.exec(l.trim());
    if (m && !env[m[1]]) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
  }
  return env;
}

/** The environment a pve-s3 command gets to reach `bucket` on that gateway: PATH and S3_* only
 *  (nothing else of the caller's, so no storage.cfg or credentials file of this machine leaks in). */
export function gatewayCommandEnv(env, bucket) {
  return {
    PATH: env.PATH,
    S3_ENDPOINT: env.S3_ENDPOINT,
    S3_REGION: env.S3_REGION || 'us-east-1',
    S3_ACCESS_KEY: env.S3_ACCESS_KEY,
    S3_SECRET_KEY: env.S3_SECRET_KEY,
    S3_BUCKET: bucket,
  };
}

/** An S3Client (the class from the built host) for `bucket` on that gateway. */
export function gatewayClient(S3Client, env, bucket, o = {}) {
  return new S3Client(
    {
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION || 'us-east-1',
      bucket,
      credentials: { accessKeyId: env.S3_ACCESS_KEY, secretAccessKey: env.S3_SECRET_KEY },
      forcePathStyle: true,
      connectTimeoutMs: 10_000,
      requestTimeoutMs: o.requestTimeoutMs ?? 120_000,
    },
    o.logger ? { logger: o.logger } : {},
  );
}

/**
 * What a benchmark of the pve-s3 commands starts from: a fresh bucket `bench-<tag>-…` on that
 * gateway with a client of `root`'s built host, a scratch directory, and a manifest key file in
 * it (the commands sign with it, as a node's storage would). `drop()` removes all three.
 */
export async function benchBucket(root, env, tag) {
  const { S3Client } = await import(pathToFileURL(join(root, 'host/dist/s3/client.js')).href);
  const { keyIdOf } = await import(pathToFileURL(join(root, 'host/dist/config/manifest-key.js')).href);
  const bucket = `bench-${tag}-${Date.now().toString(36)}`;
  const client = gatewayClient(S3Client, env, bucket, { requestTimeoutMs: 300_000 });
  await client.createBucket();
  const work = mkdtempSync(join(tmpdir(), `pve-s3-bench-${tag}-`));
  const key = randomBytes(32);
  const keyFile = join(work, 'manifest.key');
  writeFileSync(keyFile, `${keyIdOf(key)} ${key.toString('hex')}\n`, { mode: 0o600 });
  const drop = async () => {
    try {
      const keys = [];
      for await (const o of client.listAll({})) keys.push(o.key);
      if (keys.length) await client.deleteObjects(keys);
      await client.deleteBucket();
    } catch {
      // left for the gateway's next purge
    }
    rmSync(work, { recursive: true, force: true });
  };
  return { client, bucket, work, keyFile, drop };
}

/**
 * A function giving the CPU seconds (user + sys) the local test gateway's processes (radosgw,
 * ceph-osd, ceph-mon started from $PVE_S3_RGW_DIR) used so far; NaN when there are none (another
 * gateway). Processes are found once, when this is called.
 */
export function gatewayCpuReader(env) {
  const rgwDir = `${env.PVE_S3_RGW_DIR || '/tmp/pve-s3-rgw'}/`;
  const pids = readdirSync('/proc').filter((p) => {
    if (!/^[0-9]+$/.test(p)) return false;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      return /^(radosgw|ceph-osd|ceph-mon)\0/.test(cmd) && cmd.includes(rgwDir);
    } catch {
      return false;
    }
  });
  const ticks = 100; // USER_HZ
  const read = () => {
    if (pids.length === 0) return NaN;
    let s = 0;
    for (const p of pids) {
      try {
        const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
        s += (Number(f[11]) + Number(f[12])) / ticks;
      } catch {
        // a process gone meanwhile: its time is lost, the figure is a lower bound
      }
    }
    return s;
  };
  // what it reads, for the bench's header line
  read.describe = () => (pids.length ? `processes ${pids.join(',')} under ${rgwDir}` : 'not on this machine (-)');
  return read;
}
