// Archived objects (issue 14 §1): HEAD's x-amz-restore in the shapes AWS documents
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html), the RestoreRequest body,
// and the state every front door reads from store/archive-state.ts.
import { describe, expect, it } from 'vitest';
import { objectInfo } from '../../host/src/s3/objects.js';
import { buildRestoreRequest, formatRestoreHeader, parseRestoreHeader } from '../../host/src/s3/restore.js';
import { messageFor } from '../../host/src/s3/errors.js';
import {
  archiveState,
  checkTier,
  describeArchiveState,
  restorePendingError,
  typicalRestoreTime,
} from '../../host/src/store/archive-state.js';
import { EXIT } from '../../host/src/util/errors.js';

describe('x-amz-restore', () => {
  it('reads the ongoing shape', () => {
    expect(parseRestoreHeader('ongoing-request="true"')).toEqual({ ongoing: true });
  });
  it('reads the restored shape with its RFC 1123 expiry date', () => {
    expect(parseRestoreHeader('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"')).toEqual({
      ongoing: false,
      expiry: new Date(Date.UTC(2012, 11, 21)),
    });
  });
  it('tolerates other spacing, case and extra pairs', () => {
    expect(parseRestoreHeader(' ongoing-request = "FALSE" ,expiry-date="2012-12-21T00:00:00.000Z", restore-tier="Bulk"')).toEqual({
      ongoing: false,
      expiry: new Date(Date.UTC(2012, 11, 21)),
    });
  });
  it('refuses what it cannot read instead of calling it restored', () => {
    for (const v of ['', 'garbage', 'ongoing-request="maybe"', 'expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"']) {
      expect(parseRestoreHeader(v), v).toBeUndefined();
    }
    expect(parseRestoreHeader(undefined)).toBeUndefined();
    // a bad date keeps the restored state without a date
    expect(parseRestoreHeader('ongoing-request="false", expiry-date="soon"')).toEqual({ ongoing: false });
  });
  it('formats what it parses', () => {
    const h = { ongoing: false, expiry: new Date(Date.UTC(2026, 11, 9, 0, 0, 0)) };
    expect(formatRestoreHeader(h)).toBe('ongoing-request="false", expiry-date="Wed, 09 Dec 2026 00:00:00 GMT"');
    expect(parseRestoreHeader(formatRestoreHeader(h))).toEqual(h);
    expect(formatRestoreHeader({ ongoing: true })).toBe('ongoing-request="true"');
  });
  it('objectInfo carries it with the storage class and archive status', () => {
    const i = objectInfo('k', {
      'content-length': '5',
      etag: '"abc"',
      'x-amz-storage-class': 'INTELLIGENT_TIERING',
      'x-amz-archive-status': 'DEEP_ARCHIVE_ACCESS',
      'x-amz-restore': 'ongoing-request="true"',
    });
    expect([i.storageClass, i.archiveStatus, i.restore]).toEqual(['INTELLIGENT_TIERING', 'DEEP_ARCHIVE_ACCESS', { ongoing: true }]);
  });
});

describe('RestoreRequest', () => {
  it('has Days and GlacierJobParameters/Tier', () => {
    expect(buildRestoreRequest({ days: 3, tier: 'Bulk' })).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><RestoreRequest xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Days>3</Days><GlacierJobParameters><Tier>Bulk</Tier></GlacierJobParameters></RestoreRequest>',
    );
  });
  it('leaves Days out (INTELLIGENT_TIERING accepts none)', () => {
    expect(buildRestoreRequest({ tier: 'Standard' })).not.toContain('<Days>');
  });
});

const head = (h: Record<string, string>) => objectInfo('k', { 'content-length': '1', etag: '"e"', ...h });

describe('archiveState', () => {
  it('STANDARD, STANDARD_IA and GLACIER_IR are readable', () => {
    for (const c of [undefined, 'STANDARD', 'STANDARD_IA', 'GLACIER_IR', 'ONEZONE_IA']) {
      const s = archiveState(head(c ? { 'x-amz-storage-class': c } : {}));
      expect(s.state, c).toBe('available');
      expect(s.exact).toBe(true);
    }
  });
  it('GLACIER and DEEP_ARCHIVE: archived, restoring, restored until the expiry', () => {
    for (const c of ['GLACIER', 'DEEP_ARCHIVE']) {
      expect(archiveState(head({ 'x-amz-storage-class': c }))).toEqual({ storageClass: c, state: 'archived', exact: true });
      expect(archiveState(head({ 'x-amz-storage-class': c, 'x-amz-restore': 'ongoing-request="true"' })).state).toBe('restoring');
      const r = archiveState(head({ 'x-amz-storage-class': c, 'x-amz-restore': 'ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"' }));
      expect(r).toEqual({ storageClass: c, state: 'restored', restoredUntil: new Date(Date.UTC(2012, 11, 21)), exact: true });
      expect(describeArchiveState(r)).toBe(`restored until 2012-12-21T00:00:00Z (${c})`);
    }
  });
  it('INTELLIGENT_TIERING is archived only in an archive access tier', () => {
    expect(archiveState(head({ 'x-amz-storage-class': 'INTELLIGENT_TIERING' })).state).toBe('available');
    const a = archiveState(head({ 'x-amz-storage-class': 'INTELLIGENT_TIERING', 'x-amz-archive-status': 'ARCHIVE_ACCESS' }));
    expect(a).toMatchObject({ state: 'archived', accessTier: 'ARCHIVE_ACCESS' });
    expect(describeArchiveState(a)).toBe('archived (INTELLIGENT_TIERING (ARCHIVE_ACCESS))');
    const r = archiveState(head({ 'x-amz-storage-class': 'INTELLIGENT_TIERING', 'x-amz-archive-status': 'DEEP_ARCHIVE_ACCESS', 'x-amz-restore': 'ongoing-request="true"' }));
    expect(r.state).toBe('restoring');
  });
  it('a listing entry is exact only where the class alone decides', () => {
    const e = (storageClass: string) => ({ key: 'k', size: 1, etag: 'e', lastModified: new Date(), storageClass });
    expect(archiveState(e('GLACIER'))).toEqual({ storageClass: 'GLACIER', state: 'archived', exact: false });
    expect(archiveState(e('INTELLIGENT_TIERING'))).toEqual({ storageClass: 'INTELLIGENT_TIERING', state: 'available', exact: false });
    expect(archiveState(e('STANDARD')).exact).toBe(true);
  });
});

describe('tiers and times (AWS archive retrieval options)', () => {
  const glacier = archiveState(head({ 'x-amz-storage-class': 'GLACIER' }));
  const deep = archiveState(head({ 'x-amz-storage-class': 'DEEP_ARCHIVE' }));
  const itDeep = archiveState(head({ 'x-amz-storage-class': 'INTELLIGENT_TIERING', 'x-amz-archive-status': 'DEEP_ARCHIVE_ACCESS' }));
  it('names the documented times', () => {
    expect([typicalRestoreTime(glacier, 'Expedited'), typicalRestoreTime(glacier, 'Standard'), typicalRestoreTime(glacier, 'Bulk')]).toEqual([
      'in 1-5 minutes',
      'in 3-5 hours',
      'in 5-12 hours',
    ]);
    expect([typicalRestoreTime(deep, 'Standard'), typicalRestoreTime(deep, 'Bulk')]).toEqual(['within 12 hours', 'within 48 hours']);
  });
  it('refuses Expedited on the deep tiers, naming key, value and what is allowed', () => {
    for (const s of [deep, itDeep]) {
      expect(() => checkTier(s, 'Expedited')).toThrow(/^invalid restore_tier 'Expedited': .*offers no Expedited retrieval: use Standard .* or Bulk/);
    }
    expect(() => checkTier(glacier, 'Expedited')).not.toThrow();
  });
});

describe('the pending error', () => {
  it('has its own code and exit code, the tier, the time and what to run', () => {
    const e = restorePendingError('vzdump-qemu-100-2026_01_01-00_00_00.vma.zst', [{ key: 'a', result: 'requested', state: archiveState(head({ 'x-amz-storage-class': 'GLACIER' })) }], {
      tier: 'Standard',
      retry: 'run the same command again then',
    });
    expect(e.code).toBe('ArchiveRestorePending');
    expect(e.exitCode).toBe(EXIT.restorePending);
    expect(new Set(Object.values(EXIT)).size).toBe(Object.values(EXIT).length);
    expect(e.message).toBe(
      "backup 'vzdump-qemu-100-2026_01_01-00_00_00.vma.zst' is archived in GLACIER: it is not readable until restored; a restore was requested at tier Standard, typically ready in 3-5 hours; run the same command again then",
    );
  });
  it('InvalidObjectState says to restore first', () => {
    expect(messageFor('InvalidObjectState', 403, undefined, { endpoint: 'https://s3', bucket: 'b', key: 'k', operation: 'GetObject' })).toMatch(
      /archived .*InvalidObjectState.*restored from its archive storage class/,
    );
  });
});
