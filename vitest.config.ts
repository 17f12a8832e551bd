import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// The listing caches of commands run from S3_* alone live under $XDG_CACHE_HOME/pve-s3 (default
// ~/.cache): the suites get a directory of this run's own, so that they neither leave files in the
// machine's home nor find another run's there. Set here, in the process that starts the workers,
// so that every worker and every command they spawn has it; removed when that process exits.
if (!process.env.PVE_S3_TEST_CACHE_HOME) {
  const dir = mkdtempSync(join(tmpdir(), 'pve-s3-test-cache-'));
  process.env.PVE_S3_TEST_CACHE_HOME = dir;
  process.env.XDG_CACHE_HOME = dir;
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
}

// Two projects so that pure unit suites never wait for Ceph: `vitest run --project unit`.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: ['test/integration/backends/**'],
          globalSetup: ['test/helpers/rgw-global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // one RadosGW on 2 cores: files run one after another so timings stay sane
          fileParallelism: false,
        },
      },
      {
        // the core round trip against every real S3 implementation: RadosGW and OpenStack Swift
        // (s3api). Its own project so that only these files pay for starting Swift.
        test: {
          name: 'backends',
          include: ['test/integration/backends/**/*.test.ts'],
          globalSetup: ['test/helpers/rgw-global-setup.ts', 'test/helpers/swift-global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          fileParallelism: false,
          // after the integration project, not beside it: two gateways' tests at once would
          // share 2 cores with both gateways
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
