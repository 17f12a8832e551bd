/**
 * Local files around an upload from the command line or the vzdump hook: the sidecars vzdump
 * leaves next to an archive (`.notes`, `.protected`, the log), and removing the local copy only
 * once the bucket is known to hold it (put-local.ts, the one upload of a local file, uses them).
 */
import type { Stats } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NOTES_SUFFIX, PROTECTED_SUFFIX, classifyFile, keyOfName, sidecarNames } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { NOTES_MAX_BYTES, notesTooLarge } from './notes.js';
import { transferClient, uploadLimits, type StoreContext, type Volume } from './types.js';

export interface LocalSidecars {
  /** text of `<archive>.notes`, when present and not empty */
  notes?: string;
  /** `<archive>.protected` exists */
  protected: boolean;
  /** the vzdump log next to the archive (standard names only) */
  logPath?: string;
}

const isFile = async (p: string): Promise<boolean> => (await stat(p).catch(() => null))?.isFile() === true;

/** A local .notes file ('' when there is none), read no further than notes may go. */
async function readLocalNotes(path: string): Promise<string> {
  const fh = await open(path, 'r').catch(() => null);
  if (!fh) return '';
  try {
    const buf = Buffer.alloc(NOTES_MAX_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > NOTES_MAX_BYTES) throw notesTooLarge(`'${path}'`, (await fh.stat()).size);
    return buf.toString('utf8', 0, n);
  } catch (e) {
    if ((e as { code?: string }).code === 'NotesTooLarge') throw e;
    return ''; // not a readable file (a directory, say): no notes, as before
  } finally {
    await fh.close();
  }
}

/** What vzdump (or an operator) left beside a local archive, as a PVE dir storage keeps it. */
export async function readLocalSidecars(archivePath: string): Promise<LocalSidecars> {
  const out: LocalSidecars = { protected: await isFile(archivePath + PROTECTED_SUFFIX) };
  const notes = await readLocalNotes(archivePath + NOTES_SUFFIX);
  if (notes !== '') out.notes = notes;
  let log: string | undefined;
  try {
    log = sidecarNames(basename(archivePath)).log;
  } catch {
    log = undefined; // not an archive name: no log
  }
  if (log !== undefined && (await isFile(join(dirname(archivePath), log)))) out.logPath = join(dirname(archivePath), log);
  return out;
}

/**
 * The bucket's copy of an upload is complete when its manifest was written by the upload and a
 * HEAD afterwards shows the size and ETag the manifest records (statVolume's trust is not
 * `incomplete`; an upload without a manifest key is intact but unsigned), and that size is the
 * local file's. Anything else is an IntegrityError (exit 5).
 */
export function assertUploadVerified(vol: Volume, local?: { path: string; size: number }): void {
  const intact = vol.trust === 'verified' || vol.trust === 'unverified';
  if (!intact || (local !== undefined && vol.size !== local.size)) {
    const sizes = local !== undefined ? `remote size ${vol.size}, local ${local.size}, ` : `size ${vol.size}, `;
    throw new PveS3Error(
      'IntegrityError',
      `uploaded '${vol.volid}' could not be verified (${sizes}manifest ${vol.manifest ? 'present' : 'missing'}${intact ? '' : ', not matching'})${local !== undefined ? `: local file '${local.path}' kept` : ''}`,
      { exitCode: EXIT.integrity, key: vol.key },
    );
  }
}

/** What a local file was when its upload began: removing it afterwards needs the same file. */
export type SourceIdentity = Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs'>;

/**
 * Deletes the local archive and its `.notes`/`.protected` after an upload, only once verified and
 * only when the path still names the file that was uploaded (`uploaded`, its stat before the
 * upload): a file replaced under its name while the upload ran (renamed over it, the way PVE and
 * most tools put a finished file in place) holds bytes the bucket never got.
 */
export async function removeVerifiedSource(vol: Volume, archivePath: string, uploaded: SourceIdentity, o: { logPath?: string } = {}): Promise<void> {
  assertUploadVerified(vol, { path: archivePath, size: uploaded.size });
  const now = await stat(archivePath).catch(() => null);
  if (now !== null && (now.dev !== uploaded.dev || now.ino !== uploaded.ino || now.size !== uploaded.size || now.mtimeMs !== uploaded.mtimeMs)) {
    throw new PveS3Error(
      'SourceChanged',
      `'${archivePath}' changed while it was uploaded (${now.ino !== uploaded.ino || now.dev !== uploaded.dev ? 'another file now has its name' : `size ${uploaded.size} → ${now.size}`}): the bucket holds '${vol.volid}' as it was when the upload began; the local file is kept, not removed`,
      { exitCode: EXIT.failure },
    );
  }
  await rm(archivePath, { force: true });
  await rm(archivePath + NOTES_SUFFIX, { force: true });
  await rm(archivePath + PROTECTED_SUFFIX, { force: true });
  // the log only when it went up with the archive (the caller says so by naming it)
  if (o.logPath !== undefined && vol.log === true) await rm(o.logPath, { force: true });
}

/**
 * A vzdump log as the `.log` sidecar of its archive. `name` is the log's name in the bucket
 * (vzdump names it after the archive's base name); it must be a log name, so a stray file can
 * never land among the backups.
 */
export async function putBackupLog(ctx: StoreContext, localPath: string, name = basename(localPath)): Promise<{ key: string; size: number }> {
  const c = classifyFile(name, 'backup');
  if (c.kind !== 'sidecar' || c.sidecar !== 'log') {
    throw new PveS3Error('InvalidArgument', `invalid log name '${name}': expected vzdump-<type>-<vmid>-<YYYY_MM_DD-HH_MM_SS>.log`, {
      exitCode: EXIT.usage,
    });
  }
  const st = await stat(localPath).catch(() => null);
  if (!st || !st.isFile()) throw new PveS3Error('InvalidArgument', `invalid log '${localPath}': not an existing regular file`, { exitCode: EXIT.usage });
  const key = keyOfName(ctx.settings.prefix, 'backup', name);
  const { uploadObject } = await import('../transfer/upload.js');
  const { signing } = await import('./trust.js');
  const res = await uploadObject(transferClient(ctx), key, { path: localPath }, {
    chunkSizeMB: ctx.settings.chunkSizeMB,
    concurrency: ctx.settings.concurrency,
    put: { ...(ctx.settings.put ?? {}), contentType: 'text/plain; charset=utf-8' },
    ...(await signing(ctx)),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ...uploadLimits(ctx),
  });
  ctx.logger.info('uploaded backup log', { key, size: res.size });
  return { key, size: res.size };
}

/** The bucket's backup archive `name` (a vzdump file name), by one LIST; null when it has none. */
export async function archiveStored(ctx: StoreContext, name: string): Promise<{ etag: string } | null> {
  const key = keyOfName(ctx.settings.prefix, 'backup', name);
  const page = await ctx.client.listObjects({ prefix: key, maxKeys: 1 });
  const o = page.objects.find((x) => x.key === key);
  return o === undefined ? null : { etag: o.etag };
}
