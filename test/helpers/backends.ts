// The S3 implementations the `backends` project runs its tests against: the test RadosGW
// (rgw-global-setup.ts) and the test OpenStack Swift with s3api (swift-global-setup.ts).
// describe.each(backends()) runs a suite once per gateway, with the provider pve-s3 would be
// configured with for it (host/src/s3/providers.ts).
import { inject } from 'vitest';
import type { S3Settings } from '../../host/src/s3/settings.js';
import type { ProviderId } from '../../host/src/s3/providers.js';
import { testS3, type TestS3 } from './rgw.js';

export type SwiftSettings = TestS3;

declare module 'vitest' {
  export interface ProvidedContext {
    pveS3Swift: SwiftSettings;
  }
}

export interface Backend {
  name: 'rgw' | 'swift';
  provider: ProviderId;
  s3: TestS3;
}

/** Endpoint and credentials of the test Swift's tempauth user `pves3:tester`. */
export function testSwift(): SwiftSettings {
  const s = inject('pveS3Swift');
  if (!s) throw new Error("no test Swift settings: this test needs the 'backends' vitest project (its globalSetup starts Swift)");
  return s;
}

export function backends(): Backend[] {
  return [
    { name: 'rgw', provider: 'ceph', s3: testS3() },
    { name: 'swift', provider: 'swift', s3: testSwift() },
  ];
}

/** Client settings for a backend, to pass as freshBucket()/testClient() overrides. */
export function backendSettings(b: Backend): Partial<S3Settings> {
  return {
    endpoint: b.s3.endpoint,
    region: b.s3.region,
    credentials: { accessKeyId: b.s3.accessKeyId, secretAccessKey: b.s3.secretAccessKey },
    provider: b.provider,
  };
}
