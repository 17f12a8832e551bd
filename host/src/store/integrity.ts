/**
 * check-integrity: every selected backup is read in full and compared with its manifest; sidecars
 * whose archive is gone are reported too, since they make a deleted backup look half-present.
 */
import { classifyKey, keyOfName, parseVolname } from '../pve/volname.js';
import type { Check } from '../transfer/download.js';
import type { Progress } from '../transfer/progress.js';
import { mapLimit } from './concurrency.js';
import { listFolder, toVolume } from './list.js';
import { readSse, transferClient, type StoreContext } from './types.js';

/**
 * good: bytes match a manifest signed with this storage's key. unverified: they match a manifest
 * that is not (store/trust.ts): intact, but nothing says it is ours. corrupt: they do not match.
 * missing-manifest: nothing to vouch for them. missing-sidecar: the bytes are good but a sidecar
 * the manifest lists (the vzdump log) is gone. orphan-sidecar: a sidecar whose archive is gone.
 * error: the check itself failed. archived: the archive (or its manifest or frame index) is in an
 * archive storage class and cannot be read until S3 restores it (archive-state.ts): not checked,
 * and neither corrupt nor missing.
 */
export type IntegrityStatus = 'good' | 'unverified' | 'corrupt' | 'missing-manifest' | 'missing-sidecar' | 'orphan-sidecar' | 'archived' | 'error';

export interface IntegrityItem {
  volname: string;
  key: string;
  status: IntegrityStatus;
  size?: number;
  message?: string;
  /** the digests compared, when there was a manifest to compare with */
  checks?: Check[];
  /** status archived: each object that is not readable, its state ("archived (GLACIER)",
   *  "restoring (GLACIER)") and what restoreArchived did for it */
  archived?: { key: string; state: string; result?: string }[];
}

export interface IntegrityReport {
  items: IntegrityItem[];
  summary: Record<IntegrityStatus, number>;
  ok: boolean;
}

export async function checkIntegrity(
  ctx: StoreContext,
  o: {
    volnames?: string[];
    vmid?: number;
    parallel?: number;
    /** also compare every part's SHA-256, not only its CRC-64/NVME (docs/INTEGRITY.md) */
    deep?: boolean;
    /** request the restore of the archived backups found (tier and days; archived-volume.ts) */
    restoreArchived?: import('./archive-state.js').RestoreRequestOptions;
    /** the backups about to be checked, once they are known: how many and their bytes */
    onPlan?(volumes: number, bytes: number): void;
    onItem?(i: IntegrityItem): void;
    onProgress?(key: string, p: Progress): void;
  } = {},
): Promise<IntegrityReport> {
  const only = o.volnames ? new Set(o.volnames.map((n) => parseVolname(n).volname)) : undefined;
  const contents = only ? [...new Set([...only].map((n) => parseVolname(n).content))] : (['backup'] as const);
  const targets: { volname: string; key: string; size: number; etag: string; folder: Map<string, unknown> }[] = [];
  const items: IntegrityItem[] = [];
  for (const content of contents) {
    const folder = await listFolder(ctx, content);
    const present = new Set<string>();
    for (const [name, obj] of folder) {
      const c = classifyKey(ctx.settings.prefix, obj.key);
      if (c.kind !== 'volume') continue;
      present.add(name);
      const vol = toVolume(ctx, c.volume, obj, folder);
      if (only && !only.has(vol.volname)) continue;
      if (o.vmid !== undefined && vol.vmid !== o.vmid) continue;
      targets.push({ volname: vol.volname, key: vol.key, size: vol.size, etag: vol.etag ?? '', folder });
    }
    if (only) {
      for (const n of only) {
        const v = parseVolname(n);
        if (v.content === content && !present.has(v.name)) {
          items.push({ volname: n, key: keyOfName(ctx.settings.prefix, content, v.name), status: 'error', message: 'volume does not exist' });
        }
      }
      continue;
    }
    // Orphans only in a full check: a partial one cannot tell whose sidecar is whose.
    if (o.vmid !== undefined) continue;
    const logsInUse = new Set<string>();
    for (const name of present) {
      const m = /^(vzdump-(?:lxc|openvz|qemu)-\d+-\d{4}_\d{2}_\d{2}-\d{2}_\d{2}_\d{2})\./.exec(name);
      if (m) logsInUse.add(m[1] + '.log');
    }
    for (const [name, obj] of folder) {
      const c = classifyKey(ctx.settings.prefix, obj.key);
      if (c.kind !== 'sidecar') continue;
      let owner: string | undefined = c.archive;
      if (c.sidecar === 'log') {
        if (logsInUse.has(name)) continue;
        owner = undefined;
      } else if (c.sidecar === 'manifest' && owner !== undefined && owner.endsWith('.log')) {
        if (folder.has(owner)) continue;
      } else if (owner !== undefined && present.has(owner)) continue;
      items.push({ volname: `${content}/${name}`, key: obj.key, status: 'orphan-sidecar', message: `sidecar without its archive${owner ? ` '${owner}'` : ''}` });
    }
  }
  const { verifyObject, checksOf } = await import('../transfer/download.js');
  const { readTrusted } = await import('./trust.js');
  const { archiveState, describeArchiveState, needsRestore } = await import('./archive-state.js');
  const { archivedObjectsOf, requestArchivedVolume } = await import('./archived-volume.js');
  const { INDEX_SUFFIX, MANIFEST_SUFFIX } = await import('../pve/volname.js');
  o.onPlan?.(targets.length, targets.reduce((n, t) => n + t.size, 0));
  const checked = await mapLimit(targets, o.parallel ?? 2, async (t) => {
    let item: IntegrityItem;
    let invalid: string | undefined;
    try {
      // the listing's storage class says which backups may be archived; HEAD (their x-amz-restore,
      // an INTELLIGENT_TIERING object's archive tier) decides, for those only
      const name = t.volname.slice(t.volname.indexOf('/') + 1);
      const listed = [name, name + MANIFEST_SUFFIX, name + INDEX_SUFFIX].map((n) => t.folder.get(n) as import('../s3/types.js').ObjectSummary | undefined);
      if (listed.some((x) => x !== undefined && (needsRestore(archiveState(x)) || !archiveState(x).exact))) {
        const archived: { key: string; state: import('./archive-state.js').ArchiveState; result?: string }[] = o.restoreArchived
          ? (await requestArchivedVolume(ctx, t.volname, o.restoreArchived)).objects.filter((x) => x.result !== 'available' && x.result !== 'restored')
          : (await archivedObjectsOf(ctx, t.volname)).map((x) => ({ key: x.key, state: x.state }));
        if (archived.length > 0) {
          item = {
            volname: t.volname,
            key: t.key,
            status: 'archived',
            size: t.size,
            message: archived.map((x) => `${x.key.slice(x.key.lastIndexOf('/') + 1)} ${describeArchiveState(x.state)}${x.result === 'requested' ? ': restore requested' : ''}`).join('; '),
            archived: archived.map((x) => ({ key: x.key, state: describeArchiveState(x.state), ...(x.result ? { result: x.result } : {}) })),
          };
          o.onItem?.(item);
          return item;
        }
      }
      // read once: the verdicts and the log check below all go by it
      const { manifest: m, verdict: trust, present } = await readTrusted(ctx, { key: t.key, size: t.size, etag: t.etag });
      // an invalid manifest vouches for nothing: say why
      if (present && m === null) invalid = trust.note;
      const verdict = await verifyObject(transferClient(ctx), t.key, {
        concurrency: ctx.settings.concurrency,
        signal: ctx.signal,
        onProgress: o.onProgress ? (p: Progress) => o.onProgress!(t.key, p) : undefined,
        manifest: m,
        ...(o.deep ? { verify: 'sha256' as const } : {}),
        ...readSse(ctx),
      });
      item = {
        volname: t.volname,
        key: t.key,
        status: verdict,
        size: t.size,
        ...(invalid !== undefined ? { message: invalid } : {}),
        ...(m ? { checks: checksOf(m, o.deep ? 'sha256' : 'crc64') } : {}),
      };
      if (verdict === 'good' && trust.trust !== 'verified') {
        // intact as far as its manifest says, but nothing says the manifest is ours
        item = { ...item, status: 'unverified', message: trust.note ?? 'not signed with this storage\'s key' };
      } else if (verdict === 'good') {
        const log = m?.meta.log;
        if (typeof log === 'string' && !t.folder.has(log)) {
          item = { ...item, status: 'missing-sidecar', message: `the backup's log '${log}' is missing` };
        }
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      // a digest mismatch surfaced as an error is still a verdict, not a failure of the check
      if (code === 'IntegrityError') item = { volname: t.volname, key: t.key, status: 'corrupt', size: t.size, message: (e as Error).message };
      else item = { volname: t.volname, key: t.key, status: 'error', size: t.size, message: (e as Error).message };
    }
    o.onItem?.(item);
    return item;
  });
  items.push(...checked);
  const summary: Record<IntegrityStatus, number> = { good: 0, unverified: 0, corrupt: 0, 'missing-manifest': 0, 'missing-sidecar': 0, 'orphan-sidecar': 0, archived: 0, error: 0 };
  for (const i of items) summary[i.status]++;
  items.sort((a, b) => (a.volname < b.volname ? -1 : a.volname > b.volname ? 1 : 0));
  return { items, summary, ok: items.every((i) => i.status === 'good') };
}
