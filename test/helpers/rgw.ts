// The test RadosGW's settings as provided by rgw-global-setup.ts (integration project only).
import { execFile } from 'node:child_process';
import { inject } from 'vitest';

export interface TestS3 {
  endpoint: string; // http://127.0.0.1:PORT, path-style only
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface RgwSettings extends TestS3 {
  cephConf: string; // for radosgw-admin / ceph against the test cluster
}

declare module 'vitest' {
  export interface ProvidedContext {
    pveS3Rgw: RgwSettings;
  }
}

function settings(): RgwSettings {
  const s = inject('pveS3Rgw');
  if (!s) {
    throw new Error(
      "no test RadosGW settings: this test needs the 'integration' vitest project (its globalSetup starts the gateway)",
    );
  }
  return s;
}

/** Endpoint and credentials of the test gateway's user `tester`. */
export function testS3(): TestS3 {
  const { endpoint, region, accessKeyId, secretAccessKey } = settings();
  return { endpoint, region, accessKeyId, secretAccessKey };
}

/** Runs `radosgw-admin -c <test cluster conf> ...args` and resolves with its stdout (JSON for most commands). */
export function runRgwAdmin(args: string[]): Promise<string> {
  const conf = settings().cephConf;
  return new Promise((resolve, reject) => {
    execFile('radosgw-admin', ['-c', conf, ...args], { timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      // key values must not end up in test output
      const shown = args.map((a) => a.replace(/^(--(?:secret|secret-key|access-key)=).*/, '$1***')).join(' ');
      if (err) reject(new Error(`radosgw-admin ${shown} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}
