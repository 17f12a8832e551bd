// The 2025 default-checksum change (docs/PROVIDERS.md): what the two gateways of Debian 12 do with
// x-amz-checksum-* headers pve-s3 sends only when checksum_algorithm is set. Neither verifies
// them (Ceph does from 19.2 on, ceph/ceph#55076): a wrong value is stored. The provider table
// refuses the setting for Swift, where no release verifies them, and leaves it to the operator
// on Ceph, where it depends on the release.
import { afterAll, describe, expect, it } from 'vitest';
import type { S3Client } from '../../../host/src/s3/client.js';
import { PROVIDERS } from '../../../host/src/s3/providers.js';
import { backendSettings, backends } from '../../helpers/backends.js';
import { closeTestClients, dropBucket, freshBucket, readAll } from '../../helpers/s3.js';

afterAll(closeTestClients);

describe.each(backends().map((b) => [b.name, b] as const))('x-amz-checksum-* on %s', (_name, backend) => {
  let c: S3Client;
  afterAll(async () => {
    if (c) await dropBucket(c);
  });

  it.each(['x-amz-checksum-crc32c', 'x-amz-checksum-crc64nvme'])('a wrong %s is accepted and the body stored as sent', async (header) => {
    c ??= await freshBucket(`ck-${backend.name}`, backendSettings(backend));
    const key = `ck/${header}`;
    const r = await c.transport.request({
      operation: 'PutObject',
      method: 'PUT',
      key,
      headers: { [header]: header.endsWith('crc32c') ? 'AAAAAA==' : 'AAAAAAAAAAA=' },
      body: Buffer.from('hello\n'),
      idempotent: true,
    });
    expect(r.status).toBe(200);
    expect((await readAll((await c.getObject(key)).body)).toString()).toBe('hello\n');
  });

  it('the provider table says so', () => {
    expect(PROVIDERS[backend.provider].checksumAlgorithms).toEqual(backend.provider === 'swift' ? [] : undefined);
  });
});
