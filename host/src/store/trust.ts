/**
 * Whether an object is ours (issue 10 §7). Anyone who can write to the bucket can put an object
 * and a manifest of their own making beside it; only the storage's manifest key
 * (config/manifest-key.ts) tells our manifests apart. A volume is
 *
 *   verified    its manifest is signed with a key of this storage, names this object, and its
 *               size and ETag are the object's (Volume.verified)
 *   unverified  its manifest matches the object but is not signed with our key (unsigned, v1
 *               from before signing, another key, edited after signing, or made for another
 *               object): the bytes may be intact, but nothing says they are ours
 *   incomplete  no manifest, or one that does not match the object (replaced, half-written)
 *
 * Only verified volumes are downloaded, restored, prefetched or made executable without an
 * explicit flag, and only they count for retention.
 */
import { existsSync } from 'node:fs';
import type { ManifestKeyring } from '../config/manifest-key.js';
import { bareETag } from '../s3/xml.js';
import { fetchManifestText, parseManifest, type Manifest, type ManifestSigner } from '../transfer/manifest.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { readSse, transferClient, volid, type StoreContext, type StoreSettings, type Trust, type Volume } from './types.js';

export interface TrustVerdict {
  trust: Trust;
  /** why it is not verified */
  note?: string;
  /** an incomplete object whose manifest is unreadable (ManifestInvalid) or does not match it
   *  (IntegrityError): refusals keep the integrity error's code */
  error?: 'ManifestInvalid' | 'IntegrityError';
}

const rings = new WeakMap<StoreSettings, Promise<ManifestKeyring | null>>();

/** The storage's keyring, read once per store context; null when it has none. */
export function keyringOf(ctx: StoreContext): Promise<ManifestKeyring | null> {
  let p = rings.get(ctx.settings);
  if (!p) {
    const loc = ctx.settings.manifestKey;
    p = loc === undefined ? Promise.resolve(null) : import('../config/manifest-key.js').then((m) => m.readKeyring(loc.file));
    rings.set(ctx.settings, p);
  }
  return p;
}

/**
 * The key uploads sign with. A storage without one gets it here when its place allows (a PVE
 * node, or a path given explicitly): an upgrade from unsigned manifests must not stop backups.
 * Without a key the upload goes ahead unsigned, and is unverified everywhere until adopted.
 */
export async function signerFor(ctx: StoreContext): Promise<ManifestSigner | undefined> {
  const have = await keyringOf(ctx);
  if (have) return have.current;
  const loc = ctx.settings.manifestKey;
  if (loc === undefined || !loc.mayCreate) {
    tell(
      ctx,
      `no manifest key for storage '${ctx.settings.storageId}'${loc ? ` ('${loc.file}' does not exist)` : ''}: this upload is unsigned and will be listed as unverified; ${KEY_WAYS}`,
    );
    return undefined;
  }
  const { ensureKeyring } = await import('../config/manifest-key.js');
  const { keyring, created } = ensureKeyring(loc.file);
  rings.set(ctx.settings, Promise.resolve(keyring));
  if (created) {
    tell(
      ctx,
      `created the manifest key ${keyring.current.keyId} of storage '${ctx.settings.storageId}' in '${keyring.file}'; ` +
        `objects stored before it are unverified until adopted: ${adoptCommand(ctx)}`,
    );
  }
  return keyring.current;
}

/** Where a key comes from when this machine has none for the storage. */
const KEY_WAYS = 'use --storage with a storage of this node, or set PVE_S3_MANIFEST_KEY_FILE to its key file';

/** The key file adopt signs with, when it exists or may be made here (a PVE node, or a path given
 *  explicitly): not with S3_* alone and no --storage, nor under a storage id on a machine that is
 *  not a PVE node (no /etc/pve/priv to keep a key in). */
function keyHere(ctx: StoreContext): string | undefined {
  const loc = ctx.settings.manifestKey;
  return loc !== undefined && (loc.mayCreate || existsSync(loc.file)) ? loc.file : undefined;
}

/**
 * The adopt that signs `volname` (all, without), as it can be run where this command runs: adopt
 * signs with the storage's key file, and without one here it needs PVE_S3_MANIFEST_KEY_FILE, which
 * should be a copy of the key of the PVE storage these objects belong to: a key made here would
 * be one the nodes do not hold, and what it signs stays unverified for them.
 */
export function adoptCommand(ctx: StoreContext, volname?: string): string {
  const cmd = `pve-s3-maintenance --storage ${ctx.settings.storageId} --action adopt${volname !== undefined ? ` --source ${volname}` : ''}`;
  if (keyHere(ctx) !== undefined) return cmd;
  return `PVE_S3_MANIFEST_KEY_FILE=FILE ${cmd}, FILE being the storage's manifest key (a copy of /etc/pve/priv/storage/<storage>.manifest-key from a node of its cluster; commands here see what it signs as verified only with it set too)`;
}

/** What makes the storage's key when it has none yet. */
export function whoMakesKey(ctx: StoreContext): string {
  return keyHere(ctx) !== undefined ? 'the first upload or --action adopt creates it' : `nothing makes it here (not a PVE node): ${KEY_WAYS}`;
}

function tell(ctx: StoreContext, message: string): void {
  ctx.logger.warn(message);
  ctx.notice?.(message);
}

/** The verdict on one object from its manifest (null: none) and its HEAD or listing entry. */
export function judge(m: Manifest | null, obj: { key: string; size: number; etag: string }, ring: ManifestKeyring | null): TrustVerdict {
  if (m === null) return { trust: 'incomplete', note: 'no manifest' };
  if (m.size !== obj.size) return { trust: 'incomplete', note: `the object is ${obj.size} bytes but its manifest says ${m.size}`, error: 'IntegrityError' };
  if (bareETag(m.etag) !== bareETag(obj.etag)) {
    return { trust: 'incomplete', note: `the object's ETag ${bareETag(obj.etag)} is not the ${bareETag(m.etag)} its manifest records (replaced since)`, error: 'IntegrityError' };
  }
  if (!m.mac) return { trust: 'unverified', note: 'its manifest is not signed (uploaded by an older version or another tool)' };
  if (!ring) return { trust: 'unverified', note: 'this storage has no manifest key to check its signature' };
  if (m.mac.status === 'unknown-key' || !ring.keys.has(m.mac.keyId)) {
    return { trust: 'unverified', note: `its manifest is signed with key ${m.mac.keyId}, which this storage does not hold` };
  }
  if (m.mac.status === 'invalid') return { trust: 'unverified', note: 'its manifest signature does not match (edited after signing, or forged)' };
  if (m.key !== obj.key) return { trust: 'unverified', note: `its manifest was signed for another object ('${m.key}')` };
  return { trust: 'verified' };
}

/** A manifest as read with the storage's keys, not yet judged against its object (null: none). */
export type FetchedManifest = { manifest: Manifest | null; ring: ManifestKeyring | null; invalid?: string };

/**
 * Reads the manifest of `key` with the storage's keys (one GET). Apart from judging it so that a
 * caller can send the GET while its HEAD of the object is still on the way (volume-look.ts). A
 * manifest that is not one (ManifestInvalid) is answered, not thrown: it is a verdict.
 */
export async function fetchManifest(ctx: StoreContext, key: string): Promise<FetchedManifest> {
  // the GET is sent before the keys are read (a file, and their module on first use)
  const ringP = keyringOf(ctx);
  let ring: ManifestKeyring | null = null;
  try {
    const text = await fetchManifestText(transferClient(ctx), key, { ...readSse(ctx), ...(ctx.signal ? { signal: ctx.signal } : {}) });
    ring = await ringP;
    return { manifest: text === null ? null : parseManifest(text, key, ring?.keys), ring };
  } catch (e) {
    // the keys' own failure surfaces below when the GET failed first: never unhandled
    ringP.catch(() => undefined);
    // refused while read (larger than a manifest can be) or while parsed: either way a verdict
    if ((e as { code?: string }).code !== 'ManifestInvalid') throw e;
    return { manifest: null, ring, invalid: (e as Error).message };
  }
}

/** The verdict on an object (its HEAD or listing entry) by the manifest fetchManifest read. */
export function judgeFetched(f: FetchedManifest, obj: { key: string; size: number; etag: string }): { manifest: Manifest | null; verdict: TrustVerdict; present: boolean } {
  if (f.invalid !== undefined) return { manifest: null, verdict: { trust: 'incomplete', note: f.invalid, error: 'ManifestInvalid' }, present: true };
  return { manifest: f.manifest, verdict: judge(f.manifest, obj, f.ring), present: f.manifest !== null };
}

/** Reads the manifest with the storage's keys and judges the object by it (one GET). */
export async function readTrusted(
  ctx: StoreContext,
  obj: { key: string; size: number; etag: string },
): Promise<{ manifest: Manifest | null; verdict: TrustVerdict; present: boolean }> {
  return judgeFetched(await fetchManifest(ctx, obj.key), obj);
}

export function applyVerdict(vol: Volume, v: TrustVerdict): void {
  vol.trust = v.trust;
  vol.verified = v.trust === 'verified';
  if (v.note !== undefined) vol.trustNote = v.note;
  else delete vol.trustNote;
}

/** The refusal of a volume that is not verified, naming the ways on. */
export function unverifiedError(ctx: StoreContext, volname: string, v: TrustVerdict): PveS3Error {
  const id = volid(ctx, volname);
  const store = ctx.settings.storageId;
  const asIs = `pve-s3-restore --storage ${store} --source ${volname} --allow-unverified`;
  if (v.error) {
    // nothing to adopt: the manifest is unreadable or describes other bytes
    return new PveS3Error(
      v.error,
      `'${id}' cannot be verified: ${v.note ?? 'its manifest does not match it'}; refused, nothing downloaded. To restore it as it is, checked by size only: ${asIs}`,
      { exitCode: EXIT.integrity },
    );
  }
  if (v.trust === 'incomplete') {
    // no manifest: nothing records what it should be, so adopt cannot sign it either
    return new PveS3Error(
      'Unverified',
      `'${id}' cannot be verified: ${v.note ?? 'no manifest'} (not uploaded by pve-s3, or its upload did not finish); refused, nothing downloaded. To restore it as it is, checked by its ETag or size only: ${asIs}`,
      { exitCode: EXIT.integrity },
    );
  }
  return new PveS3Error(
    'Unverified',
    `'${id}' is unverified (${v.note ?? 'no valid manifest'}): refused, nothing downloaded. ` +
      `If you know it is yours, sign it after checking its bytes: ${adoptCommand(ctx, volname)}; ` +
      `or restore it once as it is: ${asIs}`,
    { exitCode: EXIT.integrity },
  );
}

export interface KeyState {
  file: string;
  /** key ids, the signing key first; empty: no key */
  ids: string[];
  created: boolean;
}

/**
 * Shows, creates, rotates or retires the storage's manifest key (both front doors: `pvesm add`
 * creates it through the protocol, the admin rotates with pve-s3-maintenance).
 */
export async function manageKey(ctx: StoreContext, o: { action: 'show' | 'create' | 'rotate' | 'retire'; keyId?: string }): Promise<KeyState> {
  const loc = ctx.settings.manifestKey;
  // a key made where nothing keeps it (no /etc/pve/priv: not a PVE node) would sign with a key
  // the storage's nodes do not hold
  if (loc === undefined || ((o.action === 'create' || o.action === 'rotate') && keyHere(ctx) === undefined)) {
    throw new PveS3Error(
      'ConfigMissing',
      `storage '${ctx.settings.storageId}' has no manifest key here${loc ? ` ('${loc.file}' does not exist, and this is not a PVE node to make it on)` : ''}: ${KEY_WAYS}`,
      { exitCode: EXIT.usage },
    );
  }
  const keys = await import('../config/manifest-key.js');
  let ring: ManifestKeyring | null;
  let created = false;
  if (o.action === 'create') ({ keyring: ring, created } = keys.ensureKeyring(loc.file));
  else if (o.action === 'rotate') ring = keys.rotateKeyring(loc.file);
  else if (o.action === 'retire') ring = keys.retireKey(loc.file, o.keyId ?? '');
  else ring = keys.readKeyring(loc.file);
  rings.set(ctx.settings, Promise.resolve(ring));
  if (o.action !== 'show') ctx.logger.info(`manifest key ${o.action === 'create' && !created ? 'present' : o.action === 'create' ? 'created' : o.action === 'rotate' ? 'rotated' : `${o.keyId} retired`}`, { file: loc.file, ids: ring?.ids ?? [] });
  return { file: loc.file, ids: ring?.ids ?? [], created };
}

/**
 * The engine option that signs an upload's manifest: the one way every store writer signs
 * (transfer/upload.ts requires the option, so a writer that skips this does not compile).
 */
export async function signing(ctx: StoreContext): Promise<{ manifestSigner: ManifestSigner | null }> {
  return { manifestSigner: (await signerFor(ctx)) ?? null };
}
