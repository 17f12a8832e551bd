import { defineConfig } from 'vitest/config';

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
          globalSetup: ['test/helpers/rgw-global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // one RadosGW on 2 cores: files run one after another so timings stay sane
          fileParallelism: false,
        },
      },
    ],
  },
});
