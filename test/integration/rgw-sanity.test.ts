// The test gateway itself: reachable, enforcing authentication, and holding the test user.
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { runRgwAdmin, testS3 } from '../helpers/rgw.js';
import { signV4 } from '../helpers/sigv4-reference.js';

describe('test RadosGW', () => {
  it('answers S3 on loopback', async () => {
    const { endpoint } = testS3();
    expect(new URL(endpoint).hostname).toBe('127.0.0.1');
    const res = await request(`${endpoint}/`);
    const body = await res.body.text();
    expect(res.headers['x-amz-request-id']).toMatch(/^tx/);
    expect(body).toContain('ListAllMyBucketsResult');
  });

  it('treats an unsigned ListBuckets as the anonymous user and shows it nothing', async () => {
    // RadosGW answers anonymous ListBuckets with 200 and an empty list owned by "anonymous"
    // (AWS would say 403); what matters is that the test user's buckets stay invisible.
    const s3 = testS3();
    const bucket = `sanity-${Date.now().toString(36)}`;
    const put = await request(`${s3.endpoint}/${bucket}`, { method: 'PUT', headers: signV4({ ...s3, method: 'PUT', url: `${s3.endpoint}/${bucket}` }) });
    expect(put.statusCode, await put.body.text()).toBe(200);

    const res = await request(`${s3.endpoint}/`);
    const body = await res.body.text();
    expect(body).toContain('<ID>anonymous</ID>');
    expect(body).not.toContain(bucket);

    const del = await request(`${s3.endpoint}/${bucket}`, { method: 'DELETE', headers: signV4({ ...s3, method: 'DELETE', url: `${s3.endpoint}/${bucket}` }) });
    expect(del.statusCode).toBe(204);
    await del.body.dump();
  });

  it('rejects anonymous writes with 403 AccessDenied', async () => {
    const res = await request(`${testS3().endpoint}/anonymous-should-not-create`, { method: 'PUT' });
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toContain('<Code>AccessDenied</Code>');
  });

  it('rejects a wrong secret with SignatureDoesNotMatch', async () => {
    const s3 = testS3();
    const url = `${s3.endpoint}/`;
    const res = await request(url, { headers: signV4({ ...s3, secretAccessKey: `${s3.secretAccessKey}x`, method: 'GET', url }) });
    expect(res.statusCode).toBe(403);
    expect(await res.body.text()).toContain('<Code>SignatureDoesNotMatch</Code>');
  });

  it('knows the configured user and lists its buckets for a signed request', async () => {
    const s3 = testS3();
    const info = JSON.parse(await runRgwAdmin(['user', 'info', '--uid=tester'])) as {
      user_id: string;
      suspended: number;
      keys: { access_key: string }[];
    };
    expect(info.user_id).toBe('tester');
    expect(info.suspended).toBe(0);
    expect(info.keys.map((k) => k.access_key)).toContain(s3.accessKeyId);

    const url = `${s3.endpoint}/`;
    const res = await request(url, { headers: signV4({ ...s3, method: 'GET', url }) });
    const body = await res.body.text();
    expect(res.statusCode, body).toBe(200);
    expect(body).toContain('<ID>tester</ID>');
  });
});
