/**
 * pve-s3-restore: list what a storage holds, or bring one volume back to a file or to stdout,
 * verified against its manifest (store: listVolumes, getVolume, streamVolume).
 */
import { lstat, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CONTENT_TYPES } from '../pve/content.js';
import { volid, type Volume } from '../store/types.js';
import { describeArchiveState } from '../store/archive-state.js';
import type { VolumeLook } from '../store/volume-look.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { COMMON_HELP, COMMON_OPTIONS, RESTORE_HELP, RESTORE_OPTIONS, UsageError, flag, intOpt, oneOf, parse, restoreOpts, str, vmidOpt, type Parsed } from './args.js';
import { createCliLogger, openStore, resolveFrom } from './context.js';
import { runCommand } from './exit.js';
import { describeChecks, formatBytes, formatRate, formatTime, note, printable, table, writeJson, writeOut } from './output.js';
import { progressBar } from './progress.js';

const CMD = 'pve-s3-restore';
const USAGE = `${CMD} [--storage ID] --list [--vmid N] [--type qemu|lxc] [--content C] | --source NAME|VOLID [--destination PATH|-] [--force] [--verify crc64|sha256] [--allow-unverified] [--restore-tier T] [--restore-days N] [--wait [--wait-interval S]]`;

export const HELP = `Usage: ${USAGE}

Lists the volumes of an S3 storage, or restores one: it is downloaded in parallel ranges, each
checked against the integrity manifest written at upload, into a temporary file that is renamed
into place only when complete. Only verified volumes are restored: their manifest is signed with
the storage's manifest key (docs/ARCHITECTURE.md, "Manifest key"). Anything else (uploaded before
manifests were signed, by another tool, or by someone else who can write to the bucket) is
refused unless --allow-unverified; its bytes are then checked against its unsigned manifest, or
without one by its MD5 ETag or size.

Options:
  --list              table of volumes: volume id, vmid, type, date, size, protected, verified,
                      storage class (with the state of an archived one: archived, restoring,
                      restored until DATE), notes
  --vmid N            only backups of guest N
  --type qemu|lxc     only backups of this guest type
  --content C         only this content: backup, iso, vztmpl or snippets (default: all)
  --source NAME       what to restore: an archive name (vzdump-qemu-100-….vma.zst), a volume
                      name (backup/…) or a volume id (my-s3:backup/…; it also names the
                      storage when --storage is not given)
  --destination PATH  target file, or an existing directory to restore into (default: the
                      current directory); '-' writes to stdout for pipelines (qmrestore - 100)
  --force             replace an existing destination file (default: refuse, exit 2); a
                      symlink there is replaced itself, never followed
  --verify crc64|sha256
                      what each part is checked against: its CRC-64/NVME (default; catches
                      corruption in storage and transit) or also its SHA-256 (tampering too; costs
                      more CPU). Backups uploaded before CRCs were recorded always use SHA-256.
                      See docs/INTEGRITY.md
  --allow-unverified  restore a volume that is not verified (default: refuse, exit 5); a snippet
                      restored this way is not made executable

Archived backups (an S3 lifecycle moved them to GLACIER, DEEP_ARCHIVE or an INTELLIGENT_TIERING
archive tier) cannot be read until S3 has restored them. The restore requests that (once: a
restore already running is not requested again), then exits 6 saying when to run it again, or
with --wait waits for it and restores the backup.
${RESTORE_HELP}
  --wait              wait for the archive restore (a progress line on stderr after each check;
                      Ctrl-C stops waiting, the restore goes on in S3), then restore the backup
  --wait-interval S   seconds between checks while waiting (default 60 for Expedited, else 300)

${COMMON_HELP}

Examples:
  ${CMD} --storage my-s3 --list
  ${CMD} --storage my-s3 --list --vmid 100
  ${CMD} --storage my-s3 --source vzdump-qemu-100-2023_12_25-14_30_00.vma.gz --destination /tmp/restored.vma.gz
  ${CMD} --storage my-s3 --source vzdump-qemu-100-2023_12_25-14_30_00.vma.zst --destination - | zstd -d | qmrestore - 100
  ${CMD} --storage my-s3 --source vzdump-qemu-100-2023_12_25-14_30_00.vma.zst --restore-tier Bulk --wait --destination /tmp/
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  list: { type: 'boolean' },
  vmid: { type: 'string' },
  type: { type: 'string' },
  content: { type: 'string' },
  source: { type: 'string' },
  destination: { type: 'string' },
  force: { type: 'boolean' },
  verify: { type: 'string' },
  'allow-unverified': { type: 'boolean' },
  ...RESTORE_OPTIONS,
  wait: { type: 'boolean' },
  'wait-interval': { type: 'string' },
} as const;

/**
 * Before a restore reads any data, one round of requests tells what it needs (store/volume-look.ts):
 * the backup's archived objects get their restore requested (store/archived-volume.ts); then
 * either wait for it (--wait) or stop with ArchiveRestorePending (exit 6) saying the tier, AWS's
 * typical time and to run the same command again. Answers that round for the restore when nothing
 * had to wait (after a wait it is stale: the restore asks again).
 */
async function whenArchived(ctx: import('../store/types.js').StoreContext, volname: string, name: string, p: Parsed): Promise<VolumeLook | undefined> {
  const { lookVolume } = await import('../store/volume-look.js');
  const { requestArchivedVolume, restoreDefaults, waitRestored, defaultWaitIntervalS } = await import('../store/archived-volume.js');
  const o = { ...restoreDefaults(ctx), ...restoreOpts(p) };
  const intervalS = intOpt(p, 'wait-interval', 1, 86_400) ?? defaultWaitIntervalS(o.tier);
  const look = await lookVolume(ctx, volname);
  const r = await requestArchivedVolume(ctx, volname, o, look);
  if (r.ready) return look;
  const { restorePendingError, typicalRestoreTime } = await import('../store/archive-state.js');
  if (!flag(p, 'wait')) throw restorePendingError(name, r.objects, { tier: o.tier, retry: `run the same command again then (or add --wait to wait for it)` });
  const asked = r.objects.find((x) => x.result === 'requested');
  const eta = asked ? typicalRestoreTime(asked.state, o.tier) : undefined;
  note(
    `${CMD}: backup '${name}' is archived: ${asked ? `a restore was requested at tier ${o.tier}${eta ? `, typically ready ${eta}` : ''}` : 'its restore is running'}; waiting (checking every ${intervalS} s; Ctrl-C stops waiting, the restore goes on in S3)`,
  );
  await waitRestored(ctx, name, r.objects.map((x) => x.key), { intervalS, onProgress: (l) => note(`${CMD}: ${l}`) });
  return undefined;
}

function fileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

/**
 * A restore killed outright (SIGKILL, OOM, power) cannot remove its hidden temporary file, which
 * is as big as the archive; the next restore to the same destination removes such leftovers
 * before it checks free space. A second restore to the same file at the same time is the only
 * thing this could disturb, and that one would clobber the destination anyway.
 */
async function dropLeftoverTemps(dest: string): Promise<void> {
  const { lstat, readdir, rm } = await import('node:fs/promises');
  const { TEMP_MARK } = await import('../transfer/temp-file.js');
  const stem = `.${basename(dest)}${TEMP_MARK}`;
  const names = await readdir(dirname(dest)).catch(() => [] as string[]);
  for (const n of names.filter((x) => x.startsWith(stem) && /^[0-9a-f]+$/.test(x.slice(stem.length)))) {
    // in a shared directory the name may have been planted: only a regular file of ours goes
    const st = await lstat(join(dirname(dest), n)).catch(() => null);
    if (!st || !st.isFile() || st.uid !== process.geteuid?.()) continue;
    await rm(join(dirname(dest), n), { force: true });
    note(`${CMD}: removed ${join(dirname(dest), n)}, left by an earlier restore that was killed`);
  }
}

/** The one-line report of a restore, to a file or to stdout. */
function restoredLine(volid: string, where: string, size: number, seconds: number, verified: boolean, checks: readonly string[], trustNote?: string): string {
  const how = verified
    ? `${describeChecks(checks)} verified against the manifest`
    : `UNVERIFIED (${printable(trustNote ?? 'no signed manifest')}): checked by ${describeChecks(checks)} only`;
  return `restored ${volid} to ${where} (${formatBytes(size)} in ${seconds.toFixed(1)} s, ${formatRate(size / Math.max(seconds, 1e-6))}, ${how})`;
}

export function volumeTable(vols: readonly Volume[]): string {
  return table(vols, [
    { title: 'VOLID', get: (v) => v.volid },
    { title: 'VMID', get: (v) => (v.vmid !== undefined ? String(v.vmid) : '-'), right: true },
    { title: 'TYPE', get: (v) => (v.content === 'backup' ? (v.subtype ?? 'unknown') : v.content) },
    { title: 'DATE', get: (v) => formatTime(v.ctime) },
    { title: 'SIZE', get: (v) => formatBytes(v.size), right: true },
    { title: 'PROTECTED', get: (v) => (v.protected ? 'yes' : 'no') },
    { title: 'VERIFIED', get: (v) => (v.verified ? 'yes' : (v.trust ?? 'no')) },
    { title: 'CLASS', get: (v) => (v.archive !== undefined ? describeArchiveState(v.archive) : (v.storageClass ?? '-')) },
    { title: 'NOTES', get: (v) => [v.unusable !== undefined ? `unusable: ${v.unusable}` : (v.notes ?? ''), v.locked !== undefined ? `[${v.locked}]` : ''].filter(Boolean).join(' ') },
  ]);
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(CMD, async () => {
    const p = parse(CMD, USAGE, argv, OPTIONS);
    if (flag(p, 'help')) {
      writeOut(HELP);
      return EXIT.ok;
    }
    const source = str(p, 'source');
    const listing = flag(p, 'list');
    if (listing === (source !== undefined)) throw new UsageError(CMD, listing ? '--list and --source exclude each other' : 'give --list or --source', USAGE);
    const logger = await createCliLogger('cli:restore');

    if (listing) {
      const vmid = vmidOpt(p);
      const type = oneOf(p, 'type', ['qemu', 'lxc'] as const);
      const content = oneOf(p, 'content', CONTENT_TYPES);
      const cfg = await resolveFrom(p, logger);
      const opened = await openStore(cfg, logger);
      try {
        const { listVolumes } = await import('../store/list.js');
        const vols = await listVolumes(opened.ctx, {
          ...(content ? { content: [content] } : {}),
          ...(vmid !== undefined ? { vmid } : {}),
          ...(type !== undefined ? { guestType: type } : {}),
          pending: false,
        });
        if (flag(p, 'json')) writeJson(vols);
        else if (vols.length === 0) note(`no volumes in storage '${opened.ctx.settings.storageId}' (s3://${cfg.bucket}/${cfg.prefix})${vmid !== undefined ? ` for guest ${vmid}` : ''}`);
        else writeOut(volumeTable(vols));
      } finally {
        await opened.close();
      }
      return EXIT.ok;
    }

    const { storageOfArg, volnameFromArg } = await import('../store/volume-arg.js');
    const fromVolid = storageOfArg(source!);
    const storageFlag = str(p, 'storage');
    if (storageFlag === undefined && fromVolid !== undefined) p.values.storage = fromVolid;
    const content = oneOf(p, 'content', CONTENT_TYPES);
    const volname = volnameFromArg(source!, { ...(storageFlag !== undefined ? { storageId: storageFlag } : {}), ...(content ? { content } : {}) });
    const cfg = await resolveFrom(p, logger);
    const destArg = str(p, 'destination') ?? '.';
    const verify = oneOf(p, 'verify', ['crc64', 'sha256'] as const);
    const name = volname.slice(volname.indexOf('/') + 1);
    // bad values are refused before anything is sent
    restoreOpts(p);
    intOpt(p, 'wait-interval', 1, 86_400);
    if (str(p, 'wait-interval') !== undefined && !flag(p, 'wait')) throw new UsageError(CMD, '--wait-interval needs --wait', USAGE);

    if (destArg === '-') {
      if (process.stdout.isTTY) throw new UsageError(CMD, `--destination - writes the archive to stdout, which is a terminal: pipe it (| qmrestore - VMID) or redirect it`, USAGE);
      const opened = await openStore(cfg, logger);
      try {
        const look = await whenArchived(opened.ctx, volname, name, p);
        const { streamVolume } = await import('../store/transfer.js');
        const t0 = performance.now();
        const bar = progressBar(name, flag(p, 'progress'));
        let r;
        try {
          r = await streamVolume(opened.ctx, volname, process.stdout, {
            onProgress: (x) => bar.update(x),
            ...(verify ? { verify } : {}),
            allowUnverified: flag(p, 'allow-unverified'),
            ...(look ? { look } : {}),
          });
        } catch (e) {
          if ((e as { code?: string }).code === 'WriteFailed' && /EPIPE/.test((e as Error).message)) {
            throw new PveS3Error('WriteFailed', `the command reading stdout stopped before the end of '${name}' (broken pipe): it got an incomplete archive; see that command's own error`, {
              exitCode: EXIT.failure,
            });
          }
          throw e;
        } finally {
          bar.done();
        }
        const s = (performance.now() - t0) / 1000;
        note(restoredLine(volid(opened.ctx, volname), 'stdout', r.size, s, r.verified, r.checks, r.trustNote));
      } finally {
        await opened.close();
      }
      return EXIT.ok;
    }

    // a directory named by the user may be reached through a symlink (its path is theirs); the
    // file name in it is never followed (issue 10 §9: a link planted in a shared directory)
    let dest = resolve(destArg);
    let st = await lstat(dest).catch(() => null);
    if (!st && /\/$/.test(destArg)) {
      // resolve() drops the slash: the archive would land in a file named like the directory
      throw new PveS3Error('InvalidArgument', `destination '${destArg}' names a directory that does not exist: create it first (mkdir -p), or name a file`, {
        exitCode: EXIT.usage,
      });
    }
    if (st?.isDirectory() || (st?.isSymbolicLink() && (await stat(dest).catch(() => null))?.isDirectory())) {
      dest = join(dest, name);
      st = await lstat(dest).catch(() => null);
    }
    const { checkDestination, checkDestinationDir } = await import('../transfer/temp-file.js');
    if (!st) await checkDestinationDir(dest);
    if (st && !st.isFile() && !st.isSymbolicLink()) {
      // the restore renames a finished temp file into place: over a device, a FIFO or a socket
      // that would replace the node itself (/dev/…) instead of writing to it
      throw new PveS3Error('InvalidArgument', `destination '${dest}' is not a regular file (${fileKind(st)}): restore to a file, or use --destination - and redirect or pipe stdout`, {
        exitCode: EXIT.usage,
      });
    }
    // with --force a symlink there is replaced by the restored file, its target never written
    const force = flag(p, 'force');
    const withFlagHint = (e: unknown): unknown =>
      (e as { code?: string }).code === 'DestinationExists'
        ? new PveS3Error('DestinationExists', (e as Error).message.replace('(use force to replace it)', '(add --force to replace it)'), { exitCode: EXIT.usage })
        : e;
    await checkDestination(dest, force).catch((e: unknown) => {
      throw withFlagHint(e); // before any request; the answer that counts comes at the end
    });
    await dropLeftoverTemps(dest);
    const opened = await openStore(cfg, logger);
    try {
      const look = await whenArchived(opened.ctx, volname, name, p);
      const { getVolume } = await import('../store/transfer.js');
      const t0 = performance.now();
      const bar = progressBar(name, flag(p, 'progress'));
      let r;
      try {
        r = await getVolume(opened.ctx, volname, dest, {
          force: true,
          noClobber: !force,
          onProgress: (x) => bar.update(x),
          ...(verify ? { verify } : {}),
          allowUnverified: flag(p, 'allow-unverified'),
          ...(look ? { look } : {}),
        }).catch((e: unknown) => {
          throw withFlagHint(e);
        });
      } finally {
        bar.done();
      }
      const s = (performance.now() - t0) / 1000;
      const out = { volid: volid(opened.ctx, volname), path: r.path, size: r.size, seconds: s, rate: r.size / Math.max(s, 1e-6), verified: r.verified, checks: r.checks };
      if (flag(p, 'json')) writeJson(out);
      else writeOut(restoredLine(out.volid, r.path, r.size, s, r.verified, r.checks, r.trustNote));
    } finally {
      await opened.close();
    }
    return EXIT.ok;
  });
}
