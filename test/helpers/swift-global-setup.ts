// vitest globalSetup of the `backends` project: brings up (or reuses) the throw-away OpenStack
// Swift with s3api via test/s3/swift-up.sh, the second real S3 implementation the core round
// trip runs against (read its settings with backends() / testSwift()). Shared between test runs
// by the lease protocol of gateway-lease.ts; PVE_S3_SWIFT_KEEP=1 keeps it.
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';
import { GatewayLease, need } from './gateway-lease.js';
import type { SwiftSettings } from './backends.js';

const lease = new GatewayLease({
  name: 'swift',
  dir: resolve(process.env.PVE_S3_SWIFT_DIR ?? '/tmp/pve-s3-swift'),
  startedVar: 'SWIFT_STARTED',
  keepVar: 'PVE_S3_SWIFT_KEEP',
});

export async function setup(project: TestProject): Promise<void> {
  const t0 = Date.now();
  const out = await lease.acquire();
  const v = (k: string) => need(out, 'swift-up.sh', k);
  const settings: SwiftSettings = {
    endpoint: v('S3_ENDPOINT'),
    region: v('S3_REGION'),
    accessKeyId: v('S3_ACCESS_KEY'),
    secretAccessKey: v('S3_SECRET_KEY'),
  };
  // what Swift adds to a test run, for CI's time budget
  process.stderr.write(`[swift] ready for the tests after ${((Date.now() - t0) / 1000).toFixed(1)} s (${out.get('SWIFT_STARTED') === '1' ? 'started' : 'already running'})\n`);
  project.provide('pveS3Swift', settings);
}

export async function teardown(): Promise<void> {
  await lease.release();
}
