// PVE's bwlimit (KiB/s) reaches the transfer engine for restores: `restore`, else `default`.
// The engine's throttle itself is tested in transfer-progress.test.ts; this proves the store
// hands the limit to it (it used to be parsed and then dropped).
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';

const calls: Array<Record<string, unknown>> = [];
vi.mock('../../host/src/transfer/download.js', () => ({
  downloadObject: async (_c: unknown, key: string, _d: unknown, o: Record<string, unknown>) => {
    calls.push(o);
    return { key, size: 0, etag: '"x"', verifiedBy: 'manifest', manifest: null };
  },
}));

const { storeSettingsFrom } = await import('../../host/src/store/settings.js');
const { streamVolume } = await import('../../host/src/store/transfer.js');
const { createLogger } = await import('../../host/src/util/logger.js');

const cfg = (bwlimit?: Record<string, number>) =>
  ({
    bucket: 'b',
    prefix: '',
    multipartChunkSizeMB: 100,
    maxConcurrentUploads: 3,
    lifecycle: { enabled: false, abortIncompleteDays: 7 },
    keepLocal: false,
    ...(bwlimit ? { bwlimit } : {}),
  }) as unknown as Parameters<typeof storeSettingsFrom>[0];

afterEach(() => {
  calls.length = 0;
});

describe('bwlimit for downloads', () => {
  it('takes restore, else default; 0 or absent means unlimited', () => {
    expect(storeSettingsFrom(cfg({ restore: 1024, default: 50 })).downloadBwlimitKiB).toBe(1024);
    expect(storeSettingsFrom(cfg({ default: 50, migration: 9 })).downloadBwlimitKiB).toBe(50);
    expect(storeSettingsFrom(cfg({ restore: 0, default: 50 })).downloadBwlimitKiB).toBeUndefined();
    expect(storeSettingsFrom(cfg({ migration: 9 })).downloadBwlimitKiB).toBeUndefined();
    expect(storeSettingsFrom(cfg()).downloadBwlimitKiB).toBeUndefined();
    expect(storeSettingsFrom(cfg({ restore: 0.4 })).downloadBwlimitKiB).toBe(1); // never rounded to "unlimited"
  });

  it('a restore to a pipe passes the limit to the engine', async () => {
    const settings = storeSettingsFrom(cfg({ restore: 2048 }));
    // a HEAD, and a manifest GET that finds none: unverified, so the restore needs the flag
    const client = {
      headObject: async (key: string) => ({ key, size: 0, etag: '"x"', metadata: {} }),
      getObjectInto: async () => {
        throw Object.assign(new Error('no such key'), { code: 'NoSuchKey', status: 404 });
      },
    };
    const ctx = { client, settings, logger: createLogger({ file: '/dev/null' }) } as unknown as Parameters<typeof streamVolume>[0];
    const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
    await expect(streamVolume(ctx, 'backup/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', sink())).rejects.toMatchObject({ code: 'Unverified' });
    expect(calls).toHaveLength(0);
    await streamVolume(ctx, 'backup/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', sink(), { allowUnverified: true });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.bwlimitKiB).toBe(2048);
  });
});
