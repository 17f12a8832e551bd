// vitest globalSetup of the integration projects: brings up (or reuses) the throw-away RadosGW
// via test/s3/rgw-up.sh and hands its settings to the tests (read them with testS3()). Shared
// between test runs by the lease protocol of gateway-lease.ts; PVE_S3_RGW_KEEP=1 keeps it.
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { GatewayLease, need } from './gateway-lease.js';
import type { RgwSettings } from './rgw.js';

const lease = new GatewayLease({
  name: 'rgw',
  dir: resolve(process.env.PVE_S3_RGW_DIR ?? '/tmp/pve-s3-rgw'),
  startedVar: 'RGW_STARTED',
  keepVar: 'PVE_S3_RGW_KEEP',
});

export async function setup(project: TestProject): Promise<void> {
  const out = await lease.acquire();
  const v = (k: string) => need(out, 'rgw-up.sh', k);
  const settings: RgwSettings = {
    endpoint: v('S3_ENDPOINT'),
    region: v('S3_REGION'),
    accessKeyId: v('S3_ACCESS_KEY'),
    secretAccessKey: v('S3_SECRET_KEY'),
    cephConf: v('PVE_S3_RGW_CONF'),
  };
  project.provide('pveS3Rgw', settings);
}

export async function teardown(): Promise<void> {
  await lease.release();
}
