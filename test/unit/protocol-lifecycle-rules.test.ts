// The lifecycle rules a storage asks for (pure: no bucket). Merging with a bucket's own rules is
// tested against RadosGW in test/integration/store-maintenance.test.ts.
import { describe, expect, it } from 'vitest';
import { archiveTags, desiredRules, isOurRule, ruleIds } from '../../host/src/store/lifecycle.js';

const FOLDERS = ['dump/', 'template/iso/', 'template/cache/', 'snippets/', '.pve-s3-staging/'];

describe('desiredRules', () => {
  it('off → no rules at all', () => {
    expect(desiredRules('pve/', { enabled: false, transitionDays: 30 })).toEqual([]);
    expect(desiredRules('pve/', undefined)).toEqual([]);
  });

  it('transition_days → STANDARD_IA, glacier_days → GLACIER (tagged backup archives only), plus abort-incomplete for the prefix', () => {
    expect(desiredRules('pve/', { enabled: true, transitionDays: 30, glacierDays: 365, abortIncompleteDays: 2 })).toEqual([
      {
        id: 'pve-s3-transition:pve/',
        status: 'Enabled',
        // sidecars share dump/ but carry no tag: notes and manifests never become unreadable
        filter: { prefix: 'pve/dump/', tags: [{ key: 'pve-s3', value: 'archive' }] },
        transitions: [
          { days: 30, storageClass: 'STANDARD_IA' },
          { days: 365, storageClass: 'GLACIER' },
        ],
      },
      // one per folder of ours, not the whole prefix: a storage below pve/ keeps its uploads
      ...FOLDERS.map((f) => ({ id: `pve-s3-abort-mpu:pve/${f}`, status: 'Enabled', filter: { prefix: `pve/${f}` }, abortIncompleteMultipartUpload: { daysAfterInitiation: 2 } })),
    ]);
  });

  it('archives are tagged only while a transition is configured', () => {
    expect(archiveTags({ enabled: true, transitionDays: 30 })).toEqual({ 'pve-s3': 'archive' });
    expect(archiveTags({ enabled: true, glacierDays: 365 })).toEqual({ 'pve-s3': 'archive' });
    expect(archiveTags({ enabled: true })).toBeUndefined();
    expect(archiveTags({ enabled: false, transitionDays: 30 })).toBeUndefined();
    expect(archiveTags(undefined)).toBeUndefined();
  });

  it('abort-incomplete defaults to 7 days; 0 turns it off', () => {
    expect(desiredRules('', { enabled: true })).toEqual(
      FOLDERS.map((f) => ({ id: `pve-s3-abort-mpu:${f}`, status: 'Enabled', filter: { prefix: f }, abortIncompleteMultipartUpload: { daysAfterInitiation: 7 } })),
    );
    expect(desiredRules('', { enabled: true, abortIncompleteDays: 0 })).toEqual([]);
  });

  it('glacier only is allowed; glacier not after transition is refused naming the key', () => {
    expect(desiredRules('p/', { enabled: true, glacierDays: 90, abortIncompleteDays: 0 })[0]!.transitions).toEqual([{ days: 90, storageClass: 'GLACIER' }]);
    expect(() => desiredRules('p/', { enabled: true, transitionDays: 60, glacierDays: 60 })).toThrow(/invalid glacier_days '60': must be greater than transition_days \(60\)/);
  });

  it('our rules are recognised by id and prefix only (the single abort rule of earlier versions too)', () => {
    const ids = ruleIds('a/');
    expect(isOurRule({ id: 'pve-s3-abort-multipart:a/', status: 'Enabled' }, 'a/')).toBe(true);
    expect(isOurRule({ id: ids.abort[0]!, status: 'Enabled' }, 'a/')).toBe(true);
    // the outer storage 'a/' never claims the rules of a storage at 'a/b/'
    for (const id of [...ruleIds('a/b/').abort, ruleIds('a/b/').legacyAbort, ruleIds('a/b/').transition]) expect(isOurRule({ id, status: 'Enabled' }, 'a/')).toBe(false);
    expect(isOurRule({ id: ids.transition, status: 'Enabled' }, 'a/')).toBe(true);
    expect(isOurRule({ id: ids.transition, status: 'Enabled' }, 'b/')).toBe(false);
    expect(isOurRule({ id: 'pve-s3-custom', status: 'Enabled' }, 'a/')).toBe(false);
  });
});
