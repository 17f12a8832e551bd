/**
 * The vzdump hook (`script: /usr/bin/pve-s3-vzdump-hook` in /etc/vzdump.conf or a backup job).
 * vzdump calls it as `<phase>` or `<phase> <mode> <vmid>` with STOREID, TARGET, LOGFILE, DUMPDIR,
 * VMTYPE, HOSTNAME in the environment (reference: pve-storage-api.md §7.3).
 *
 *   backup-end  storage of type s3: upload TARGET with its .notes/.protected, verify, and drop the
 *               local copy unless the storage keeps local copies (keep_local)
 *   log-end     storage of type s3: upload the log as the archive's .log sidecar
 *   otherwise   nothing; other storages are never touched
 *
 * A failed upload exits non-zero with one clear line, so vzdump marks the guest's backup failed
 * (and keeps the archive) rather than reporting a backup that is not in the bucket.
 */
import { basename, dirname, resolve, sep } from 'node:path';
import { rm, stat } from 'node:fs/promises';
import { EXIT, PveS3Error } from '../util/errors.js';
import { COMMON_HELP } from './args.js';
import { openStore, createCliLogger } from './context.js';
import { runCommand } from './exit.js';
import { formatBytes, formatRate, note, writeOut } from './output.js';
import { bareETag } from '../s3/xml.js';
import type { StoreContext } from '../store/types.js';

const CMD = 'pve-s3-vzdump-hook';

export const HELP = `Usage: ${CMD} PHASE [MODE VMID]   (called by vzdump)

Install as a vzdump hook script, for every backup of this node, in /etc/vzdump.conf:
  script: /usr/bin/pve-s3-vzdump-hook
or for one backup job (the GUI's job editor has no field for it):
  pvesh set /cluster/backup/JOB-ID --script /usr/bin/pve-s3-vzdump-hook
or for one run: vzdump ... --script /usr/bin/pve-s3-vzdump-hook

Phases handled, for a backup storage (STOREID) of type s3 in storage.cfg:
  backup-end   upload TARGET (with TARGET.notes / TARGET.protected), verify it (manifest written,
               stored size and ETag match), then delete the local archive unless the storage
               has keep_local 1
  log-end      upload LOGFILE as the archive's .log sidecar (deleted locally unless keep_local),
               when this job's backup-end stored the archive
An archive name the bucket holds already is replaced only when no manifest of the storage vouches
for the object there; a verified backup with other bytes is another writer's (another cluster
sharing the bucket): the hook fails and keeps the local archive.
Every other phase, and every storage of another type, exits 0 without doing anything.
Failures exit non-zero with a one-line message: vzdump then marks that backup as failed.

Environment from vzdump: STOREID TARGET LOGFILE DUMPDIR VMTYPE HOSTNAME.
Configuration: the storage's section in storage.cfg and its secret file, nothing else (the
S3_* variables and the credentials file the other commands accept are ignored here). Files:
PVE_S3_STORAGE_CFG, PVE_S3_PRIV_DIR, PVE_S3_LOG_FILE; PVE_S3_DEBUG for a request trace.
Another upload of the same archive on this node (the background sync) is waited for.

${COMMON_HELP.slice(COMMON_HELP.indexOf('Exit codes:'))}
`;

const say = (m: string) => note(`${CMD}: ${m}`);

/** the marks of jobs killed between backup-end and log-end (store/hook-marks.ts), never this job's
 *  (`keep`): a mark that cannot be removed is no reason to fail this backup */
async function dropStaleMarks(ctx: StoreContext, keep: string | undefined): Promise<void> {
  const cacheDir = ctx.settings.cacheDir;
  if (cacheDir === undefined) return;
  const marks = await import('../store/hook-marks.js');
  const dropped = await marks.dropStaleMarks(cacheDir, keep !== undefined ? { keep } : {}).catch(() => 0);
  if (dropped > 0) ctx.logger.info('removed the marks of vzdump jobs that ended between backup-end and log-end', { count: dropped });
}

/** The storage's type in storage.cfg; undefined when vzdump named no storage or it is unknown. */
async function storageType(id: string): Promise<string | undefined> {
  const { configPaths } = await import('../config/resolve.js');
  const { parseStorageCfg } = await import('../config/storage-cfg.js');
  const { readFile } = await import('node:fs/promises');
  const file = configPaths().storageCfg;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new PveS3Error('ConfigMissing', `cannot read ${file} to find storage '${id}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, {
      exitCode: EXIT.usage,
    });
  }
  return parseStorageCfg(text, { file }).get(id)?.type;
}

function inside(dir: string | undefined, file: string): boolean {
  if (!dir) return false;
  const d = resolve(dir);
  return resolve(file).startsWith(d.endsWith(sep) ? d : d + sep);
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(CMD, async () => {
    const phase = argv[0];
    if (phase === '-h' || phase === '--help') {
      writeOut(HELP);
      return EXIT.ok;
    }
    if (phase === undefined) throw new PveS3Error('Usage', `no phase given; usage: ${CMD} PHASE [MODE VMID] (called by vzdump; see --help)`, { exitCode: EXIT.usage });
    if (phase !== 'backup-end' && phase !== 'log-end') return EXIT.ok;
    const storeId = process.env.STOREID;
    if (!storeId) return EXIT.ok; // --dumpdir or --stdout: no storage of ours
    const type = await storageType(storeId);
    if (type !== 's3') return EXIT.ok;

    const logger = await createCliLogger(`hook:${phase}`);
    const { resolveStorage } = await import('../config/resolve.js');
    // storage.cfg and the secret file only: an S3_* variable exported in the shell that started
    // vzdump must not send the backup elsewhere (and then remove the local copy)
    const cfg = resolveStorage({ storageId: storeId, logger, storageCfgOnly: true });
    const target = process.env.TARGET;
    // the Backup Provider made this backup (vzdump's TARGET is then the bare archive name, not a
    // file in the dump dir): the archive and its log are in the bucket already
    if (target && target !== '-' && !target.includes('/')) {
      say(`${target} was stored in storage '${storeId}' by the Backup Provider (its log too): nothing for the hook to do`);
      return EXIT.ok;
    }

    if (phase === 'backup-end') {
      if (target === '-') {
        say(`the archive went to stdout (vzdump --stdout): nothing to upload to storage '${storeId}'`);
        return EXIT.ok;
      }
      if (!target) throw new PveS3Error('ConfigMissing', `backup-end without TARGET in the environment: cannot upload to storage '${storeId}'`, { exitCode: EXIT.usage });
      const st = await stat(target).catch(() => null);
      if (!st?.isFile()) throw new PveS3Error('NotFound', `backup archive '${target}' does not exist: nothing to upload to storage '${storeId}'`, { exitCode: EXIT.notFound });
      const { classifyFile } = await import('../pve/volname.js');
      const c = classifyFile(basename(target), 'backup');
      if (c.kind !== 'volume') throw new PveS3Error('InvalidArgument', `TARGET '${target}' is not a backup archive name`, { exitCode: EXIT.usage });
      const opened = await openStore(cfg, logger);
      try {
        await dropStaleMarks(opened.ctx, basename(target));
        const { putLocalVolume } = await import('../store/put-local.js');
        const { WAIT_FOR_WRITER_SECONDS } = await import('../store/volume-lock.js');
        const t0 = performance.now();
        say(`uploading ${basename(target)} (${formatBytes(st.size)}) to storage '${storeId}' (s3://${cfg.bucket}/${cfg.prefix})`);
        // vzdump's names are unique per guest and second on this cluster: an unverified object
        // there is a run of this hook that stopped before its manifest (replace it); a verified one
        // with other bytes is another cluster's sharing the bucket, and a protected one nothing replaces
        const r = await putLocalVolume(opened.ctx, c.volume.volname, target, {
          replace: 'unverified',
          removeSource: !cfg.keepLocal,
          waitSeconds: WAIT_FOR_WRITER_SECONDS,
          who: `vzdump hook of guest ${process.env.VMTYPE ?? ''} ${argv[2] ?? ''}`.replace(/\s+/g, ' ').trim(),
          onWait: say,
        });
        // for log-end: this job stored the archive, as this ETag (store/hook-marks.ts)
        if (opened.ctx.settings.cacheDir !== undefined && r.volume.etag) {
          const { markStored } = await import('../store/hook-marks.js');
          await markStored(opened.ctx.settings.cacheDir, basename(target), r.volume.etag);
        }
        const s = (performance.now() - t0) / 1000;
        const local = r.sourceRemoved ? '; local copy removed' : cfg.keepLocal ? '; local copy kept (keep_local)' : '';
        if (r.result === 'by-other') say(`${r.volume.volid} was uploaded and verified by another process meanwhile: nothing to do`);
        else if (r.result === 'identical') say(`${r.volume.volid} is already in the bucket with these exact bytes (checked against its manifest): not sent again, verified${local}`);
        else say(`uploaded ${r.volume.volid} in ${s.toFixed(1)} s (${formatRate(st.size / Math.max(s, 1e-6))}), verified${local}`);
      } finally {
        await opened.close();
      }
      return EXIT.ok;
    }

    // log-end
    const logfile = process.env.LOGFILE;
    if (!logfile) return EXIT.ok;
    const lst = await stat(logfile).catch(() => null);
    if (!lst?.isFile()) throw new PveS3Error('NotFound', `log file '${logfile}' does not exist: cannot upload it to storage '${storeId}'`, { exitCode: EXIT.notFound });
    // vzdump names the log after the archive; TARGET gives that name even if LOGFILE is elsewhere
    let name = basename(logfile);
    if (target && target !== '-') {
      const { sidecarNames } = await import('../pve/volname.js');
      name = sidecarNames(basename(target)).log ?? name;
    }
    const opened = await openStore(cfg, logger);
    try {
      await dropStaleMarks(opened.ctx, target && target !== '-' ? basename(target) : undefined);
      const { archiveStored, putBackupLog } = await import('../store/local-files.js');
      // a failed or aborted backup (or a backup-end that failed to upload) has no archive in the
      // bucket: its log alone would be an orphan there, and the admin looks for it in the dump dir.
      // An archive of that name stored by another writer (another cluster sharing the bucket) is
      // no archive of this job's either: only the one backup-end stored, still as it stored it
      if (target && target !== '-') {
        const archive = basename(target);
        const { takeStored } = await import('../store/hook-marks.js');
        const cacheDir = opened.ctx.settings.cacheDir;
        const stored = cacheDir !== undefined ? await takeStored(cacheDir, archive) : undefined;
        const there = await archiveStored(opened.ctx, archive);
        if (there === null || (stored !== undefined && (stored === null || bareETag(there.etag) !== stored))) {
          say(
            there === null
              ? `${archive} is not in storage '${storeId}' (the backup or its upload failed): log ${logfile} kept locally, not uploaded`
              : `${archive} in storage '${storeId}' is not this job's (the backup or its upload failed; another writer of the bucket stored that name): log ${logfile} kept locally, not uploaded`,
          );
          return EXIT.ok;
        }
      }
      const r = await putBackupLog(opened.ctx, logfile, name);
      // only a log in the dump dir is ours to remove; a log elsewhere belongs to vzdump
      const removable = !cfg.keepLocal && (inside(process.env.DUMPDIR, logfile) || (target !== undefined && dirname(resolve(target)) === dirname(resolve(logfile))));
      if (removable) await rm(logfile, { force: true });
      say(`uploaded log ${name} (${formatBytes(r.size)}) to storage '${storeId}'${removable ? '; local copy removed' : ''}`);
    } finally {
      await opened.close();
    }
    return EXIT.ok;
  });
}
