// The provider table (host/src/s3/providers.ts) and what it changes: detection, region, config
// refusals, the planner's part limits, lifecycle rules and tags. docs/PROVIDERS.md is the source
// of every value; this checks that the code does what that page says.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { resolveStorage, storageConfigFromSection } from '../../host/src/config/resolve.js';
import { OWN_KEYS, SCHEMA } from '../../host/src/config/schema.js';
import { toS3Settings } from '../../host/src/config/s3-settings.js';
import { detectProvider, PROVIDER_IDS, PROVIDER_KEY_VALUES, PROVIDERS, regionFor, resolveProvider } from '../../host/src/s3/providers.js';
import { S3Client } from '../../host/src/s3/client.js';
import { archiveTags, assertLifecycleSupported, desiredRules, ruleIds } from '../../host/src/store/lifecycle.js';
import { MIB as MiB, planUpload } from '../../host/src/wasm/planner.js';

const section = (o: Record<string, string>) =>
  storageConfigFromSection('st', { bucket: 'bkt', access_key: 'AK', ...o }, { secret: 'not-a-real-secret' });

describe('detection from the endpoint host', () => {
  it.each([
    ['s3.amazonaws.com', 'aws'],
    ['s3.eu-central-1.amazonaws.com', 'aws'],
    ['s3.cn-north-1.amazonaws.com.cn', 'aws'],
    ['s3.eu-central-2.wasabisys.com', 'wasabi'],
    ['s3.us-west-004.backblazeb2.com', 'b2'],
    ['0123abcd.r2.cloudflarestorage.com', 'r2'],
    ['0123abcd.eu.r2.cloudflarestorage.com', 'r2'],
    ['s3.gra.io.cloud.ovh.net', 'ovh'],
    ['s3.rbx.perf.cloud.ovh.net', 'ovh'],
    ['s3.fr-par.scw.cloud', 'scaleway'],
    ['S3.NL-AMS.SCW.CLOUD.', 'scaleway'],
    ['rgw.example.com', 'other'],
    ['minio.local', 'other'],
    ['127.0.0.1', 'other'],
    ['amazonaws.com.evil.example', 'other'],
    ['notwasabisys.com', 'other'],
  ])('%s → %s', (host, id) => {
    expect(detectProvider(host)).toBe(id);
  });

  it('auto resolves by host, an explicit id is kept even where the host says otherwise', () => {
    expect(resolveProvider('auto', 's3.fr-par.scw.cloud')).toEqual({ provider: PROVIDERS.scaleway, detected: true });
    expect(resolveProvider(undefined, 'rgw.lan')).toEqual({ provider: PROVIDERS.other, detected: true });
    expect(resolveProvider('swift', 's3.amazonaws.com')).toEqual({ provider: PROVIDERS.swift, detected: false });
  });

  it('the key offers auto and one value per row of the table', () => {
    expect(PROVIDER_KEY_VALUES).toEqual(['auto', ...PROVIDER_IDS]);
    expect(Object.keys(PROVIDERS).sort()).toEqual([...PROVIDER_IDS].sort());
    for (const id of PROVIDER_IDS) expect(PROVIDERS[id].id).toBe(id);
    expect(SCHEMA.get('provider')!.default).toBe('auto');
    expect(OWN_KEYS).toContain('provider');
  });
});

describe('region', () => {
  it('comes from the host name when unset', () => {
    expect(regionFor(PROVIDERS.aws, 's3.eu-central-1.amazonaws.com')).toBe('eu-central-1');
    expect(regionFor(PROVIDERS.aws, 's3.amazonaws.com')).toBeUndefined();
    expect(regionFor(PROVIDERS.wasabi, 's3.ap-northeast-1.wasabisys.com')).toBe('ap-northeast-1');
    expect(regionFor(PROVIDERS.b2, 's3.us-west-004.backblazeb2.com')).toBe('us-west-004');
    expect(regionFor(PROVIDERS.scaleway, 's3.nl-ams.scw.cloud')).toBe('nl-ams');
    expect(regionFor(PROVIDERS.ovh, 's3.gra.io.cloud.ovh.net')).toBe('gra');
    expect(regionFor(PROVIDERS.r2, 'acc.r2.cloudflarestorage.com')).toBe('auto');

    const c = section({ endpoint: 's3.eu-central-2.wasabisys.com' });
    expect(c.region).toBe('eu-central-2');
    expect(c.provider).toEqual({ id: 'wasabi', detected: true });
    expect(section({ endpoint: 'acc.r2.cloudflarestorage.com' }).region).toBe('auto');
    expect(section({ endpoint: 'rgw.example.com' }).region).toBe('us-east-1');
  });

  it('a region that contradicts the host name is refused; R2 accepts its us-east-1 alias', () => {
    expect(() => section({ endpoint: 's3.eu-central-1.amazonaws.com', region: 'us-east-1' })).toThrow(
      "invalid region 'us-east-1': the endpoint s3.eu-central-1.amazonaws.com is in region eu-central-1: set region eu-central-1, or leave region unset",
    );
    expect(section({ endpoint: 's3.eu-central-1.amazonaws.com', region: 'eu-central-1' }).region).toBe('eu-central-1');
    expect(section({ endpoint: 'acc.r2.cloudflarestorage.com', region: 'us-east-1' }).region).toBe('us-east-1');
  });
});

describe('what the configuration refuses, naming the provider', () => {
  it('a storage class the provider does not offer', () => {
    expect(() => section({ endpoint: 'acc.r2.cloudflarestorage.com', storage_class: 'GLACIER' })).toThrow(
      "invalid storage_class 'GLACIER': Cloudflare R2 (provider r2, detected from the endpoint) accepts STANDARD, STANDARD_IA; if the endpoint is not that, set provider other",
    );
    expect(() => section({ endpoint: 'garage.lan', provider: 'garage', storage_class: 'STANDARD' })).toThrow(
      "invalid storage_class 'STANDARD': Garage (provider garage) has no storage classes: leave storage_class unset",
    );
    expect(section({ endpoint: 'swift.lan', provider: 'swift', storage_class: 'STANDARD' }).storageClass).toBe('STANDARD');
    // unknown to the table: tried, the server answers
    expect(section({ endpoint: 'rgw.lan', storage_class: 'GLACIER' }).storageClass).toBe('GLACIER');
  });

  it('server-side encryption and checksums it does not take', () => {
    expect(() => section({ endpoint: 's3.us-west-004.backblazeb2.com', server_side_encryption: 'aws:kms' })).toThrow(
      "invalid server_side_encryption 'aws:kms': Backblaze B2 (provider b2, detected from the endpoint) accepts AES256",
    );
    expect(() => section({ endpoint: 'swift.lan', provider: 'swift', checksum_algorithm: 'CRC32C' })).toThrow(
      "invalid checksum_algorithm 'CRC32C': OpenStack Swift (s3api) (provider swift) does not verify x-amz-checksum-* headers: leave checksum_algorithm unset",
    );
    expect(section({ endpoint: 's3.amazonaws.com', checksum_algorithm: 'CRC64NVME' }).checksumAlgorithm).toBe('CRC64NVME');
  });

  it('a chunk size above the provider’s largest part', () => {
    expect(() => section({ endpoint: 's3.us-west-004.backblazeb2.com', multipart_chunk_size: '5000' })).toThrow(
      "invalid multipart_chunk_size '5000': Backblaze B2 (provider b2, detected from the endpoint) takes parts of at most 5000000000 bytes: at most 4768 (MiB)",
    );
    expect(() => section({ endpoint: 'acc.r2.cloudflarestorage.com', multipart_chunk_size: '5120' })).toThrow(/at most 5115 \(MiB\)/);
    expect(section({ endpoint: 's3.amazonaws.com', multipart_chunk_size: '5120' }).multipartChunkSizeMB).toBe(5120);
  });

  it('provider other takes the refusals away', () => {
    expect(section({ endpoint: 'acc.r2.cloudflarestorage.com', provider: 'other', storage_class: 'GLACIER' }).provider).toEqual({ id: 'other', detected: false });
    expect(() => section({ endpoint: 'h', provider: 'ibm' })).toThrow("invalid provider 'ibm': must be one of auto, aws, minio");
  });

  it('S3_PROVIDER sets it for the commands', () => {
    const c = resolveStorage({
      env: { S3_ENDPOINT: 'http://127.0.0.1:8480', S3_BUCKET: 'b-1', S3_ACCESS_KEY: 'a:b', S3_SECRET_KEY: 'x', S3_PROVIDER: 'swift', PVE_S3_STORAGE_CFG: '/nonexistent', PVE_S3_CREDENTIALS: '/nonexistent' },
    });
    expect(c.provider).toEqual({ id: 'swift', detected: false });
    expect(c.sources.provider).toBe('env S3_PROVIDER');
    expect(toS3Settings(c).provider).toBe('swift');
  });
});

describe('the client and the planner follow the provider', () => {
  it('the client takes the configured provider, else the one its endpoint host names', async () => {
    const base = { region: 'r', bucket: 'bkt', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, connectTimeoutMs: 1000, requestTimeoutMs: 1000 };
    const a = new S3Client({ ...base, endpoint: 'https://s3.fr-par.scw.cloud' });
    const b = new S3Client({ ...base, endpoint: 'http://127.0.0.1:8480', provider: 'swift' });
    expect(a.provider.id).toBe('scaleway');
    expect(b.provider.id).toBe('swift');
    await Promise.all([a.close(), b.close()]);
    expect(() => new S3Client({ ...base, endpoint: 'http://h', provider: 'nope' as never })).toThrow("invalid provider 'nope'");
  });

  it('1,000 parts: the part size grows instead of the part count', () => {
    const limits = { maxParts: PROVIDERS.swift.maxParts, maxPartBytes: PROVIDERS.swift.maxPartBytes };
    const size = 100 * 1024 * MiB; // 100 GiB at 32 MiB would be 3,200 parts
    const p = planUpload({ size, chunkSizeMB: 32, limits });
    expect(p.partCount).toBeLessThanOrEqual(1000);
    expect(p.partSize % MiB).toBe(0);
    expect(p.partSize).toBe(103 * MiB);
    expect(p.part(p.partCount).offset + p.part(p.partCount).length).toBe(size);
    expect(planUpload({ size, chunkSizeMB: 32 }).partCount).toBe(3200);
    // a stream of unknown size can hold 1,000 parts of the chunk size
    expect(planUpload({ chunkSizeMB: 32, limits }).capacity).toBe(1000 * 32 * MiB);
  });

  it('a provider’s largest part caps the raised size, and what does not fit is refused up front', () => {
    const limits = { maxParts: PROVIDERS.scaleway.maxParts, maxPartBytes: PROVIDERS.scaleway.maxPartBytes };
    const p = planUpload({ size: 4_999_999_000_000, chunkSizeMB: 32, limits });
    expect(p.partSize).toBe(5_000_000_000);
    expect(p.partCount).toBe(1000);
    expect(() => planUpload({ size: 5_000_000_000_001, chunkSizeMB: 32, limits })).toThrow(
      'object size 5000000000001 bytes exceeds what this provider takes in one upload: 1000 parts of at most 5000000000 bytes',
    );
    expect(() => planUpload({ size: 1, chunkSizeMB: 5000, limits })).toThrow("invalid multipart_chunk_size '5000': must be an integer 5..4768 (MiB): the provider's largest part");
  });

  it('equal parts (R2): every part but the last has the plan’s size, the last is not larger', () => {
    const p = planUpload({ size: 3 * 5115 * MiB + 7, chunkSizeMB: 5115, limits: { maxParts: 10_000, maxPartBytes: PROVIDERS.r2.maxPartBytes } });
    const sizes = Array.from({ length: p.partCount }, (_, i) => p.part(i + 1).length);
    expect(new Set(sizes.slice(0, -1))).toEqual(new Set([p.partSize]));
    expect(sizes.at(-1)!).toBeLessThanOrEqual(p.partSize);
  });
});

describe('lifecycle by provider', () => {
  const l = { enabled: true, transitionDays: 30, glacierDays: 365, abortIncompleteDays: 7 };

  it('Swift has none: show and apply say so instead of reading a bucket listing as rules', () => {
    expect(() => assertLifecycleSupported(PROVIDERS.swift, l, { apply: false })).toThrow(
      "OpenStack Swift (s3api) (provider swift) has no bucket lifecycle over the S3 API: nothing to show; remove stale uploads with 'pve-s3-maintenance --action abort-uploads' instead",
    );
  });

  it('transitions are refused where objects cannot change class; abort-only rules still apply', () => {
    for (const p of [PROVIDERS.b2, PROVIDERS.garage]) {
      expect(() => assertLifecycleSupported(p, l, { apply: true })).toThrow(/cannot move objects between storage classes by lifecycle rules: unset transition_days and glacier_days/);
      expect(() => assertLifecycleSupported(p, { enabled: true, abortIncompleteDays: 7 }, { apply: true })).not.toThrow();
      expect(archiveTags(l, p)).toBeUndefined();
    }
    expect(archiveTags(l, PROVIDERS.aws)).toEqual({ 'pve-s3': 'archive' });
    expect(archiveTags(l, PROVIDERS.other)).toEqual({ 'pve-s3': 'archive' });
  });

  it('Wasabi aborts incomplete uploads itself and gets no rule for it', () => {
    expect(desiredRules('pve/', { enabled: true, abortIncompleteDays: 7 }, PROVIDERS.wasabi)).toEqual([]);
    expect(desiredRules('pve/', { enabled: true, abortIncompleteDays: 7 }, PROVIDERS.aws).map((r) => r.id)).toEqual(ruleIds('pve/').abort);
  });
});

describe('docs/PROVIDERS.md', () => {
  const doc = readFileSync(new URL('../../docs/PROVIDERS.md', import.meta.url), 'utf8');
  it.each(PROVIDER_IDS.filter((id) => id !== 'other'))('has a section for %s naming its provider value and limits', (id) => {
    const p = PROVIDERS[id];
    const sec = doc.split(/^## /m).find((s) => s.split('\n')[0]!.includes(`(\`provider ${id}\`)`));
    expect(sec, `a "## … (\`provider ${id}\`)" section`).toBeDefined();
    expect(sec!).toContain(p.maxParts.toLocaleString('en-US'));
  });
});
