/**
 * Adopting what the bucket already holds (issue 10 §7): the way from unsigned manifests (every
 * object stored before manifests were signed, or while no key was at hand) to verified ones, and
 * from an old key to a new one after a rotation.
 *
 * An object whose manifest is signed with an older key of this storage is re-signed as it is:
 * that signature already says it is ours. Any other object with a manifest is read in full and
 * compared with it, part by part, as check-integrity does; only when every byte matches is the
 * manifest signed with the current key. An object without a manifest cannot be adopted: nothing
 * records what it should be.
 *
 * Adopting trusts the bucket as it is now: an object someone else planted with a manifest of
 * their own making passes the byte check too. Run it right after upgrading, look at the dry run,
 * and remove what you did not store.
 */
import { manifestKey as manifestKeyOf, serializeManifest, type Manifest } from '../transfer/manifest.js';
import type { Progress } from '../transfer/progress.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { mapLimit } from './concurrency.js';
import { listVolumes } from './list.js';
import { retentionFor } from './object-lock.js';
import { keyringOf, manageKey, readTrusted } from './trust.js';
import { transferClient, readSse, type Content, type StoreContext, type Volume } from './types.js';
import { parseVolname } from '../pve/volname.js';

export type AdoptAction = 'verified' | 'resigned' | 'adopted' | 'corrupt' | 'no-manifest' | 'error';

export interface AdoptItem {
  volname: string;
  /** verified: nothing to do. resigned: signed with an older key, now with the current one.
   *  adopted: bytes checked against the manifest, then signed. The rest stay unverified. */
  action: AdoptAction;
  size: number;
  /** dry run: what would be done; otherwise why it was not adopted */
  message?: string;
}

export interface AdoptReport {
  keyId: string | null;
  items: AdoptItem[];
  dryRun: boolean;
  /** every selected volume is verified now (or would be, in a dry run, if the bytes match) */
  ok: boolean;
}

export async function adopt(
  ctx: StoreContext,
  o: { volnames?: string[]; vmid?: number; dryRun?: boolean; parallel?: number; onItem?(i: AdoptItem): void; onProgress?(volname: string, p: Progress): void } = {},
): Promise<AdoptReport> {
  const only = o.volnames ? new Set(o.volnames.map((n) => parseVolname(n).volname)) : undefined;
  const contents = only ? [...new Set([...only].map((n) => parseVolname(n).content))] : undefined;
  // the key first: a dry run only reads it, an adoption makes it when the storage has none yet
  const ring = o.dryRun ? await keyringOf(ctx) : (await manageKey(ctx, { action: 'create' }), await keyringOf(ctx));
  const current = ring?.current ?? null;
  const vols = (
    await listVolumes(ctx, { notes: false, pending: false, ...(contents ? { content: contents as Content[] } : {}), ...(o.vmid !== undefined ? { vmid: o.vmid } : {}) })
  ).filter((v) => !only || only.has(v.volname));
  if (only) {
    const found = new Set(vols.map((v) => v.volname));
    const missing = [...only].filter((n) => !found.has(n));
    if (missing.length > 0) throw new PveS3Error('NoSuchKey', `volume '${missing[0]}' does not exist in storage '${ctx.settings.storageId}'`, { exitCode: EXIT.notFound });
  }
  const { verifyObject } = await import('../transfer/download.js');
  const items = await mapLimit(vols, o.parallel ?? 2, async (vol): Promise<AdoptItem> => {
    const item = await adoptOne(ctx, vol, current, o, verifyObject);
    o.onItem?.(item);
    return item;
  });
  const fine = new Set<AdoptAction>(['verified', 'resigned', 'adopted']);
  return { keyId: current?.keyId ?? null, items, dryRun: o.dryRun === true, ok: items.every((i) => fine.has(i.action)) };
}

async function adoptOne(
  ctx: StoreContext,
  vol: Volume,
  current: { keyId: string; key: Uint8Array } | null,
  o: { dryRun?: boolean; onProgress?(volname: string, p: Progress): void },
  verifyObject: typeof import('../transfer/download.js').verifyObject,
): Promise<AdoptItem> {
  const base = { volname: vol.volname, size: vol.size };
  try {
    const { manifest, verdict, present } = await readTrusted(ctx, { key: vol.key, size: vol.size, etag: vol.etag ?? '' });
    if (verdict.trust === 'verified' && manifest?.mac?.keyId === current?.keyId) return { ...base, action: 'verified' };
    if (verdict.trust === 'verified') {
      if (o.dryRun || !current) return { ...base, action: 'resigned', message: `signed with the older key ${manifest!.mac!.keyId}: would be re-signed` };
      await writeSigned(ctx, vol, manifest!, current);
      return { ...base, action: 'resigned' };
    }
    if (manifest === null) {
      return {
        ...base,
        action: 'no-manifest',
        message: present ? (verdict.note ?? 'its manifest is unreadable') : 'nothing records what its bytes should be: upload it again (pve-s3-backup) to have it signed, or remove it',
      };
    }
    if (o.dryRun || !current) return { ...base, action: 'adopted', message: `${verdict.note ?? 'unverified'}: would be read in full and signed if every byte matches its manifest` };
    const v = await verifyObject(transferClient(ctx), vol.key, {
      concurrency: ctx.settings.concurrency,
      manifest,
      ...readSse(ctx),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      ...(o.onProgress ? { onProgress: (p: Progress) => o.onProgress!(vol.volname, p) } : {}),
    });
    if (v !== 'good') return { ...base, action: 'corrupt', message: 'its bytes do not match its manifest: not signed; do not restore it' };
    await writeSigned(ctx, vol, manifest, current);
    return { ...base, action: 'adopted' };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'IntegrityError') return { ...base, action: 'corrupt', message: (e as Error).message };
    return { ...base, action: 'error', message: (e as Error).message };
  }
}

/**
 * Signs the manifest of an archive this storage has just stored unsigned, by a process that could
 * not read the key (the container backup runs as the container's uid): only when the manifest
 * matches the object (size, ETag, key) and carries no mac. Its bytes are not read again: the
 * unsigned writer made both, and a manifest that misdescribes them fails every restore's check.
 */
export async function signStored(ctx: StoreContext, volname: string): Promise<void> {
  const { statVolume } = await import('./volumes.js');
  const vol = await statVolume(ctx, volname);
  if (vol.trust === 'verified') return;
  const { manifest, verdict } = await readTrusted(ctx, { key: vol.key, size: vol.size, etag: vol.etag ?? '' });
  if (manifest === null || verdict.trust !== 'unverified' || manifest.mac !== undefined || manifest.key !== vol.key) {
    throw new PveS3Error('IntegrityError', `'${vol.volid}' cannot be signed: ${verdict.note ?? 'its manifest is not the unsigned one its backup wrote'}`, { exitCode: EXIT.integrity, key: vol.key });
  }
  const { signerFor } = await import('./trust.js');
  // without a key (signerFor said so) it stays unsigned, as any upload of such a storage
  const signer = await signerFor(ctx);
  if (signer) await writeSigned(ctx, vol, manifest, signer);
}

/** The manifest as checked, now naming this object as it is, signed with the current key. */
async function writeSigned(ctx: StoreContext, vol: Volume, m: Manifest, signer: { keyId: string; key: Uint8Array }): Promise<void> {
  const body = serializeManifest({ ...m, key: vol.key, etag: vol.etag ?? m.etag }, signer);
  // a locked storage's backup manifests are written locked, as the upload writes them
  const retention = vol.content === 'backup' ? retentionFor(ctx) : undefined;
  await ctx.client.putObject(manifestKeyOf(vol.key), body, {
    contentType: 'application/json',
    ...(ctx.settings.put ?? {}),
    ...(retention !== undefined ? { objectLock: retention, contentMd5: true } : {}),
  });
  ctx.logger.info('manifest signed', { volname: vol.volname, keyId: signer.keyId });
}
