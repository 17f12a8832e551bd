// Object Lock rules without a gateway (issue 14 §2): the keys, the retention they ask for, what
// counts as held, the bucket's answers and the retention body. The behaviour against a real
// gateway is test/integration/store-object-lock.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { storageConfigFromSection } from '../../host/src/config/resolve.js';
import { validateStorage } from '../../host/src/config/validate.js';
import { buildRetention, loadXmlParser, parseObjectLockConfiguration, parseVersioning } from '../../host/src/s3/xml.js';
import { bucketLockProblem, describeHold, heldBy, retentionFor } from '../../host/src/store/object-lock.js';
import { storeSettingsFrom } from '../../host/src/store/settings.js';
import type { StoreContext } from '../../host/src/store/types.js';
import { ConfigError } from '../../host/src/util/errors.js';
import { nullLogger } from '../../host/src/util/log.js';

const base = { bucket: 'b-1', endpoint: 'rgw:7480', access_key: 'K' };
const NOW = new Date('2026-12-05T13:00:00.250Z');

function ctx(lock?: { days: number; mode: 'governance' | 'compliance' }): StoreContext {
  return {
    client: {} as StoreContext['client'],
    settings: { storageId: 's', bucket: 'b-1', prefix: '', chunkSizeMB: 5, concurrency: 1, ...(lock ? { lock } : {}) },
    logger: nullLogger,
    now: () => NOW,
  };
}

beforeAll(() => loadXmlParser());

describe('lock_days and lock_mode', () => {
  it('map to the store: governance by default, compliance when asked', () => {
    const g = storageConfigFromSection('s3lock', { ...base, lock_days: '30' }, { secret: 'S' });
    expect(g.lock).toEqual({ days: 30, mode: 'governance' });
    expect(storeSettingsFrom(g).lock).toEqual({ days: 30, mode: 'governance' });
    expect(storageConfigFromSection('s3lock', { ...base, lock_days: '7', lock_mode: 'compliance' }, { secret: 'S' }).lock).toEqual({ days: 7, mode: 'compliance' });
    expect(storageConfigFromSection('s3lock', base, { secret: 'S' }).lock).toBeUndefined();
  });

  it('refuse bad values, lock_mode alone and a provider without Object Lock, naming key and value', () => {
    const refuse = (p: Record<string, string>): ConfigError => {
      try {
        validateStorage(p);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return e as ConfigError;
      }
      throw new Error('accepted');
    };
    expect(refuse({ ...base, lock_days: '0' }).message).toContain('lock_days');
    expect(refuse({ ...base, lock_mode: 'legal' }).message).toMatch(/lock_mode.*governance, compliance/);
    expect(refuse({ ...base, lock_mode: 'compliance' }).message).toContain('only meaningful with lock_days');
    const swift = refuse({ ...base, lock_days: '3', provider: 'swift' });
    expect(swift.message).toMatch(/lock_days.*3.*has no S3 Object Lock: remove lock_days/);
  });
});

describe('retention and holds', () => {
  it('retentionFor: now + days, whole seconds, S3 mode names', () => {
    expect(retentionFor(ctx())).toBeUndefined();
    const r = retentionFor(ctx({ days: 2, mode: 'compliance' }))!;
    expect(r.mode).toBe('COMPLIANCE');
    expect(r.retainUntil.toISOString()).toBe('2026-12-07T13:00:01.000Z');
    expect(retentionFor(ctx({ days: 1, mode: 'governance' }))!.mode).toBe('GOVERNANCE');
  });

  it('heldBy: a future retention or a legal hold holds; a past retention does not', () => {
    const later = new Date(NOW.getTime() + 1000);
    expect(heldBy({ objectLock: { mode: 'GOVERNANCE', retainUntil: later } }, NOW)).toEqual({ until: later, mode: 'GOVERNANCE', legalHold: false });
    expect(heldBy({ objectLock: { mode: 'GOVERNANCE', retainUntil: new Date(NOW.getTime() - 1) } }, NOW)).toBeNull();
    expect(heldBy({}, NOW)).toBeNull();
    expect(describeHold({ until: new Date('2026-12-06T13:00:00Z'), mode: 'COMPLIANCE', legalHold: false })).toBe('locked until 2026-12-06T13:00:00Z (COMPLIANCE)');
    expect(describeHold(heldBy({ objectLock: { legalHold: true } as never }, NOW)!)).toBe('under a legal hold');
  });

  it('bucketLockProblem: no Object Lock, versioning suspended, or fine', () => {
    const c = ctx({ days: 1, mode: 'governance' });
    expect(bucketLockProblem(c, { objectLock: false, versioning: 'Off' })).toMatch(/bucket 'b-1' has no S3 Object Lock, so lock_days 1/);
    expect(bucketLockProblem(c, { objectLock: true, versioning: 'Suspended' })).toMatch(/versioning is suspended/);
    expect(bucketLockProblem(c, { objectLock: true, versioning: 'Enabled' })).toBeUndefined();
    expect(bucketLockProblem(ctx(), { objectLock: false, versioning: 'Off' })).toBeUndefined();
  });
});

describe('XML', () => {
  it('reads GetObjectLockConfiguration and GetBucketVersioning as AWS documents them', () => {
    expect(parseObjectLockConfiguration('<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled></ObjectLockConfiguration>')).toEqual({ enabled: true });
    expect(
      parseObjectLockConfiguration(
        '<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>5</Days></DefaultRetention></Rule></ObjectLockConfiguration>',
      ),
    ).toEqual({ enabled: true, defaultRetention: { mode: 'COMPLIANCE', days: 5 } });
    expect(parseVersioning('<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')).toBe('Off');
    expect(parseVersioning('<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>')).toBe('Suspended');
    expect(buildRetention('GOVERNANCE', new Date('2026-12-06T00:00:00Z'))).toBe(
      '<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>GOVERNANCE</Mode><RetainUntilDate>2026-12-06T00:00:00.000Z</RetainUntilDate></Retention>',
    );
  });
});
