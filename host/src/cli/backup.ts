/**
 * pve-s3-backup: local files or a stream into the storage's bucket, each placed by its name
 * (pve/volname.ts classifyFile) and uploaded through the store (putVolume: metadata, manifest,
 * sidecars). Output: one line per volume on stdout (or --json), progress on stderr.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { isatty } from 'node:tty';
import { CONTENT_TYPES } from '../pve/content.js';
import { keyOfName, volnameKey, type VolumeInfo } from '../pve/volname.js';
import { fdSource, type ByteSource } from '../transfer/byte-source.js';
import type { Volume } from '../store/types.js';
import { EXIT, PveS3Error } from '../util/errors.js';
import { COMMON_HELP, COMMON_OPTIONS, UsageError, flag, list, oneOf, parse, sizeOpt, str, vmidOpt, type Parsed } from './args.js';
import { createCliLogger, openStore, resolveFrom } from './context.js';
import { runCommand } from './exit.js';
import { formatBytes, formatRate, note, writeJson, writeOut } from './output.js';
import type { Producer } from './producer.js';
import { progressBar } from './progress.js';
import type { Progress } from '../transfer/progress.js';

const CMD = 'pve-s3-backup';
const USAGE = `${CMD} [--storage ID] --source FILE... | (--source - | --from-command CMD) (--name NAME | --vmid N --type qemu|lxc) [options]`;

export const HELP = `Usage: ${USAGE}

Uploads vzdump archives (with their .log, .notes and .protected found next to them), ISO images,
container templates and snippets to an S3 storage. Each upload writes an integrity manifest.

Where a file goes (by its name, or --content):
  vzdump-{qemu,lxc}-VMID-DATE.{vma,tar}[.zst|.gz|.lzo|.bz2],
    any other *.vma[.zst|.gz|.lzo|.bz2], *.tgz          backup    (dump/)
  *.iso, *.img                                         iso       (template/iso/)
  *.tar, *.tar.{gz,xz,zst,bz2} (not vzdump names)      vztmpl    (template/cache/)
  anything else, e.g. test.txt                         snippets  (snippets/)
  Names keep PVE's upload rule: characters outside [A-Za-z0-9_.-] become '_'.

Options:
  --source FILE       file to upload; repeatable, and further files may follow as arguments
                      (a shell glob such as vzdump-qemu-100-*.vma.zst expands to several)
  --source -          read one archive from stdin (vzdump --stdout); name it with --name, or
                      with --vmid + --type [+ --format, --compress] for PVE's standard name with
                      the current time (the compression is detected from the stream if not given).
                      An empty stream uploads nothing and exits 1
  --from-command CMD  run CMD (with /bin/sh) and upload its stdout like --source -, keeping the
                      upload only if CMD exits 0: a vzdump that fails midway leaves nothing
                      behind, where a plain pipe cannot tell a failed producer from a finished one
  --name NAME         name in the bucket (one source only)
  --vmid N            for files: refuse files that are not backups of guest N; for stdin: the guest
  --type qemu|lxc     guest type (stdin: required with --vmid; files: checked like --vmid)
  --format vma|tar    archive format for stdin (default vma for qemu, tar for lxc)
  --compress zstd|gzip|lzo|none   compression of stdin (default: detected)
  --size SIZE         the stream's expected size, exact or estimated (e.g. 40G): parts are sized
                      for it (multipart_chunk_size up to 250 GiB), which keeps memory low; the
                      stream may still grow to what 10,000 such parts hold. Without --size,
                      --vmid/--type streams are sized by the guest's disks (its PVE config)
  --max-size SIZE     the most a stream may be (default 1T, 105 MiB parts): a bigger one fails
                      cleanly. Memory ~ part size x (max_concurrent_uploads + 1) + 64 MiB
  --content iso|vztmpl|snippets|backup   force the content type
  --notes TEXT        notes of the backup (otherwise ARCHIVE.notes next to it, if present).
                      Only backups keep notes, as in PVE: ignored with a warning for other files
  --protected         protect the backup from pruning and cleanup
  --storage-class C   storage class of the uploaded objects (e.g. STANDARD_IA)
  --delete-source     delete each local file (and its .notes/.protected/.log) once its upload is
                      verified: manifest written and the stored object's size and ETag match it,
                      and the file is still the one uploaded (not grown, not renamed over)
  --force             replace a different volume of the same name already in the bucket (default:
                      refuse, exit 2); a protected backup is never replaced. The same file again
                      is not a conflict: checked against the stored manifest, it is not re-sent
  --dry-run           show what would be uploaded where, transfer nothing

${COMMON_HELP}

Examples:
  ${CMD} --storage my-s3 --source /var/lib/vz/dump/vzdump-qemu-100-*.vma.zst --vmid 100
  ${CMD} --storage my-s3 --source /var/lib/vz/dump/vzdump-qemu-100-2025_01_31-02_00_00.vma.zst --notes "before the upgrade" --protected
  ${CMD} --storage my-s3 --source /root/guest-hook.pl          (a snippet: snippets/guest-hook.pl)
  vzdump 100 --stdout --compress zstd | ${CMD} --storage my-s3 --source - --vmid 100 --type qemu
  ${CMD} --storage my-s3 --vmid 100 --type qemu --from-command 'vzdump 100 --stdout --compress zstd'
  ${CMD} --storage my-s3 --source debian-12.iso --content iso --dry-run
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  source: { type: 'string', multiple: true },
  'from-command': { type: 'string' },
  name: { type: 'string' },
  vmid: { type: 'string' },
  type: { type: 'string' },
  format: { type: 'string' },
  compress: { type: 'string' },
  'max-size': { type: 'string' },
  size: { type: 'string' },
  content: { type: 'string' },
  notes: { type: 'string' },
  protected: { type: 'boolean' },
  'storage-class': { type: 'string' },
  'delete-source': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' },
} as const;

/** One thing to upload, decided before any request. */
type Item =
  | { kind: 'volume'; path: string; size: number; volume: VolumeInfo; notes?: string; protected: boolean; logPath?: string }
  | { kind: 'log'; path: string; size: number; name: string }
  | { kind: 'stream'; volume: VolumeInfo; stream: ByteSource; maxSize?: number; expectedSize?: number; notes?: string; protected: boolean };

const DEFAULT_MAX_STREAM = 1024 ** 4;

/**
 * What sizes a stream's parts (transfer/upload.ts): --max-size; else the expected size, from
 * --size or, for a backup job streaming guest N, from the sizes of the disks it backs up; else
 * the default maximum, whose parts (105 MiB) a smaller stream does not need.
 */
async function streamSize(maxSize: number | undefined, size: number | undefined, vmid: number | undefined, type: 'qemu' | 'lxc' | undefined) {
  if (maxSize !== undefined) return { maxSize };
  if (size !== undefined) return { expectedSize: size };
  if (vmid !== undefined && type !== undefined) {
    const { readFile } = await import('node:fs/promises');
    const { configPaths } = await import('../config/resolve.js');
    const { guestBackupBytes } = await import('../pve/guest-size.js');
    const file = `${configPaths().guestConfDir}/${type === 'qemu' ? 'qemu-server' : 'lxc'}/${vmid}.conf`;
    const text = await readFile(file, 'utf8').catch(() => undefined);
    const bytes = text === undefined ? undefined : guestBackupBytes(text, type);
    if (bytes !== undefined) return { expectedSize: bytes };
  }
  return { maxSize: DEFAULT_MAX_STREAM };
}

async function localFile(path: string): Promise<number> {
  const st = await stat(path).catch(() => null);
  if (!st) {
    // an unmatched glob reaches us verbatim: say so rather than name a file nobody typed
    const why = /[*?[]/.test(basename(path)) ? `no file matches '${path}' (check the directory and the pattern)` : `source '${path}' does not exist`;
    throw new PveS3Error('NotFound', why, { exitCode: EXIT.notFound });
  }
  if (!st.isFile()) throw new PveS3Error('InvalidArgument', `source '${path}' is not a regular file`, { exitCode: EXIT.usage });
  return st.size;
}

/** The first bytes of a vzdump stream tell its compression. */
function sniffCompression(b: Uint8Array): string {
  if (b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b[0] === 0x89 && b[1] === 0x4c && b[2] === 0x5a && b[3] === 0x4f) return 'lzo';
  return 'none';
}

async function planItems(p: Parsed, sources: string[], producer?: Producer): Promise<{ items: Item[]; warnings: string[] }> {
  const { assertUsableName, classifyFile, parseVolumeFile, archiveName, normaliseUploadName } = await import('../pve/volname.js');
  const content = oneOf(p, 'content', CONTENT_TYPES);
  const vmid = vmidOpt(p);
  const type = oneOf(p, 'type', ['qemu', 'lxc'] as const);
  const name = str(p, 'name');
  const notesOpt = str(p, 'notes');
  const warnings: string[] = [];
  const items: Item[] = [];

  if (sources.includes('-')) {
    if (sources.length > 1) throw new UsageError(CMD, `--source - (stdin) cannot be combined with other sources`, USAGE);
    if (flag(p, 'delete-source')) throw new UsageError(CMD, `--delete-source makes no sense with --source - (stdin)`, USAGE);
    if (!producer && isatty(0)) throw new UsageError(CMD, `--source - reads the archive from stdin, which is a terminal: pipe it in (vzdump ... --stdout | ${CMD} ...)`, USAGE);
    if (name === undefined && (vmid === undefined || type === undefined)) {
      throw new UsageError(CMD, `--source - needs --name NAME, or --vmid and --type to generate PVE's archive name`, USAGE);
    }
    const format = oneOf(p, 'format', ['vma', 'tar'] as const);
    const maxSize = sizeOpt(p, 'max-size');
    const sizeArg = sizeOpt(p, 'size');
    if (maxSize !== undefined && sizeArg !== undefined) {
      throw new UsageError(CMD, `--size (the stream's expected size) and --max-size (the most it may be) cannot be combined: give one`, USAGE);
    }
    let volume: VolumeInfo | undefined;
    if (name !== undefined) {
      const c = classifyFile(normaliseUploadName(name), content);
      if (c.kind !== 'volume') throw new UsageError(CMD, `--name '${name}' is a sidecar name, not a volume`, USAGE);
      volume = c.volume;
    } else {
      // a bad --format/--compress for this guest type is a usage error before stdin is read
      archiveName({ vmid: vmid!, guestType: type!, ...(format ? { format } : {}), compression: str(p, 'compress') ?? 'none', time: new Date() });
    }
    // the first bytes name the compression, and their absence means the producer failed before
    // writing anything (vzdump ... --stdout | without pipefail): an empty "backup" that looks
    // verified would count as the newest one for keep-last and prune away real backups
    const stream = producer ? producer.output : fdSource(0);
    const head = await stream.peek();
    if (head.length === 0) {
      throw new PveS3Error(
        'EmptyInput',
        `stdin gave no data: nothing was uploaded. The command before '|' probably failed; check its output (and run the pipeline with 'set -o pipefail')`,
        { exitCode: EXIT.failure },
      );
    }
    if (volume === undefined) {
      const compression = str(p, 'compress') ?? sniffCompression(head);
      const n = archiveName({ vmid: vmid!, guestType: type!, ...(format ? { format } : {}), compression, time: new Date() });
      volume = parseVolumeFile('backup', n);
    }
    assertUsableName(volume); // (the storage's prefix is checked too, at the upload)
    const item: Item = { kind: 'stream', volume, stream, protected: false, ...(await streamSize(maxSize, sizeArg, vmid, type)) };
    if (volume.content === 'backup') {
      if (notesOpt !== undefined) item.notes = notesOpt;
      item.protected = flag(p, 'protected');
    } else if (notesOpt !== undefined || flag(p, 'protected')) {
      warnings.push(`--notes/--protected ignored for '${volume.volname}': only backups keep notes or protection`);
    }
    items.push(item);
  } else {
    for (const o of ['format', 'compress', 'max-size', 'size']) {
      const why = o === 'format' || o === 'compress' ? "a file's name says its format" : "a file's size is known";
      if (p.values[o] !== undefined) throw new UsageError(CMD, `--${o} applies to --source - (stdin) only; ${why}`, USAGE);
    }
    if (name !== undefined && sources.length > 1) throw new UsageError(CMD, `--name needs exactly one source, got ${sources.length}`, USAGE);
    const archives = new Set<string>();
    const classified = [];
    for (const path of sources) {
      const size = await localFile(path);
      const c = classifyFile(normaliseUploadName(name ?? basename(path)), content);
      classified.push({ path, size, c });
      if (c.kind === 'volume') archives.add(c.volume.name);
    }
    const names = [...archives];
    for (const { path, size, c } of classified) {
      if (c.kind === 'sidecar') {
        // a glob like vzdump-qemu-100-* also matches the sidecars: they travel with their archive
        const owner = c.sidecar === 'log' ? names.find((a) => a.startsWith(c.base + '.')) : c.archive;
        if (owner !== undefined && archives.has(owner)) continue;
        if (c.sidecar === 'log') {
          items.push({ kind: 'log', path, size, name: c.name });
          continue;
        }
        throw new UsageError(CMD, `'${path}' is the ${c.sidecar} of '${c.archive}', which is not among the sources: upload the archive instead`, USAGE);
      }
      const v = c.volume;
      assertUsableName(v); // before any upload of the batch (a dry run says it too)
      if (vmid !== undefined && (v.content !== 'backup' || v.vmid !== vmid)) {
        throw new PveS3Error('InvalidArgument', `source '${path}' is not a backup of guest ${vmid} (it would be stored as '${v.volname}')`, { exitCode: EXIT.usage });
      }
      if (type !== undefined && v.guestType !== type) {
        throw new PveS3Error('InvalidArgument', `source '${path}' is not a ${type} backup`, { exitCode: EXIT.usage });
      }
      const item: Item = { kind: 'volume', path, size, volume: v, protected: false };
      if (v.content === 'backup') {
        const { localSidecarPlan } = await import('../store/put-local.js');
        Object.assign(item, await localSidecarPlan(v, path, { ...(notesOpt !== undefined ? { notes: notesOpt } : {}), protected: flag(p, 'protected') }));
      } else {
        if (notesOpt !== undefined) warnings.push(`--notes ignored for '${v.volname}': only backups keep notes (as on a PVE storage)`);
        if (flag(p, 'protected')) warnings.push(`--protected ignored for '${v.volname}': only backups can be protected`);
      }
      items.push(item);
    }
  }
  return { items, warnings };
}

/** Gateways that lack a storage class answer a bare InvalidArgument (RGW) or InvalidStorageClass
 *  (AWS): say which setting caused it. */
function storageClassHint(e: unknown, storageClass: string | undefined, fromFlag: boolean): unknown {
  const code = (e as { code?: string }).code;
  if (storageClass === undefined || (code !== 'InvalidStorageClass' && code !== 'InvalidArgument')) return e;
  const where = fromFlag ? '--storage-class' : "the storage's storage_class";
  return new PveS3Error(code, `${(e as Error).message}; the gateway probably does not offer storage class '${storageClass}' (from ${where}): use a class it supports, or leave it unset for the gateway's default`, {
    exitCode: EXIT.failure,
  });
}

/** A stream longer than the most its parts were sized for: which limit it was and how to raise it. */
function streamLimitHint(e: unknown, it: Item, fromFlag: boolean): unknown {
  if (it.kind !== 'stream' || it.maxSize === undefined || (e as { code?: string }).code !== 'EntityTooLarge') return e;
  const limit = `${formatBytes(it.maxSize)} (${fromFlag ? '--max-size' : 'the default of --max-size'})`;
  return new PveS3Error('EntityTooLarge', `the stream is longer than ${limit}: nothing was stored; give its size with --size, or a larger --max-size (e.g. --max-size 3T)`, {
    exitCode: EXIT.failure,
    cause: e,
  });
}

interface Outcome {
  volid: string;
  key: string;
  size: number;
  seconds: number;
  rate: number;
  verified: boolean;
  notes?: boolean;
  protected?: boolean;
  log?: boolean;
  sourceDeleted?: boolean;
  dryRun?: boolean;
  /** the bucket already held these exact bytes: nothing was transferred */
  alreadyStored?: boolean;
  /** bytes an interrupted earlier run had stored (its journal): not sent again, not in `rate` */
  resumedBytes?: number;
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(CMD, async () => {
    const p = parse(CMD, USAGE, argv, OPTIONS, { positionals: true });
    if (flag(p, 'help')) {
      writeOut(HELP);
      return EXIT.ok;
    }
    const fromCommand = str(p, 'from-command');
    const sources = [...list(p, 'source'), ...p.positionals];
    if (fromCommand !== undefined) {
      if (sources.length > 0) throw new UsageError(CMD, '--from-command is the source: give no --source with it', USAGE);
      if (fromCommand.trim() === '') throw new UsageError(CMD, '--from-command needs a command, e.g. "vzdump 100 --stdout --compress zstd"', USAGE);
      sources.push('-');
    }
    if (sources.length === 0) throw new UsageError(CMD, 'no --source given', USAGE);
    if (p.positionals.length > 0 && list(p, 'source').length === 0) {
      throw new UsageError(CMD, `unexpected argument '${p.positionals[0]}' (files to upload follow --source)`, USAGE);
    }
    const logger = await createCliLogger('cli:backup');
    const storageClass = str(p, 'storage-class');
    const cfg = await resolveFrom(p, logger, storageClass !== undefined ? { storage_class: storageClass } : {});
    if (fromCommand !== undefined && flag(p, 'dry-run')) {
      writeOut(`would run '${fromCommand}' and upload its output to storage '${cfg.storageId ?? 'env'}' (s3://${cfg.bucket}/${cfg.prefix}), named when it starts`);
      return EXIT.ok;
    }
    const producer = fromCommand !== undefined ? (await import('./producer.js')).startProducer(fromCommand) : undefined;
    try {
      return await upload(p, cfg, logger, sources, storageClass, producer);
    } finally {
      producer?.stop();
    }
  });
}

async function upload(
  p: Parsed,
  cfg: import('../config/types.js').StorageConfig,
  logger: import('../util/logger.js').FileLogger,
  sources: string[],
  storageClass: string | undefined,
  producer: Producer | undefined,
): Promise<number> {
  const { items, warnings } = await planItems(p, sources, producer);
  for (const w of warnings) note(`warning: ${w}`);
  const json = flag(p, 'json');
  const storageId = cfg.storageId ?? 'env';
  const outcomes: Outcome[] = [];

  if (flag(p, 'dry-run')) {
    for (const it of items) {
      const volname = it.kind === 'log' ? `backup/${it.name}` : it.volume.volname;
      const size = it.kind === 'stream' ? -1 : it.size;
      const o: Outcome = { volid: `${storageId}:${volname}`, key: it.kind === 'log' ? keyOfName(cfg.prefix, 'backup', it.name) : volnameKey(cfg.prefix, volname), size, seconds: 0, rate: 0, verified: false, dryRun: true };
      outcomes.push(o);
      if (!json) {
        const extra = it.kind === 'volume' ? [it.notes !== undefined ? 'notes' : '', it.protected ? 'protected' : '', it.logPath ? 'log' : ''].filter(Boolean) : [];
        writeOut(`would upload ${it.kind === 'stream' ? 'stdin' : it.path} -> ${o.volid} (s3://${cfg.bucket}/${o.key}${size >= 0 ? `, ${formatBytes(size)}` : ''}${extra.length ? `, with ${extra.join(', ')}` : ''})`);
      }
    }
    if (json) writeJson(outcomes);
    return EXIT.ok;
  }

  const opened = await openStore(cfg, logger);
  try {
    const { putVolume } = await import('../store/transfer.js');
    const { putLocalVolume } = await import('../store/put-local.js');
    const { WAIT_FOR_WRITER_SECONDS } = await import('../store/volume-lock.js');
    const { assertUploadVerified, putBackupLog } = await import('../store/local-files.js');
    const { assertMayReplace, isReplaceRefusal, sameAsStored } = await import('../store/replace.js');
    const replace = { replace: flag(p, 'force'), hint: 'add --force to replace it' };
    // every name is checked before the first upload, so a refusal leaves no half-done batch (the
    // upload itself checks again, holding the volume's lock); a batch of one is left to that
    // check, which comes before any byte is sent too
    for (const it of items.length > 1 ? items : []) {
      if (it.kind === 'log') continue;
      try {
        await assertMayReplace(opened.ctx, it.volume.volname, replace);
      } catch (e) {
        // the same file again (a repeated command, a retried batch) is not a conflict
        const key = volnameKey(cfg.prefix, it.volume.volname);
        if (it.kind === 'volume' && isReplaceRefusal(e) && (await sameAsStored(opened.ctx, key, it.path, it.size))) continue;
        throw e;
      }
    }
    for (const it of items) {
      const t0 = performance.now();
      if (it.kind === 'log') {
        const r = await putBackupLog(opened.ctx, it.path, it.name);
        const seconds = (performance.now() - t0) / 1000;
        const o: Outcome = { volid: `${storageId}:backup/${it.name}`, key: r.key, size: r.size, seconds, rate: r.size / Math.max(seconds, 1e-6), verified: true };
        outcomes.push(o);
        if (!json) writeOut(`uploaded log ${it.path} -> s3://${cfg.bucket}/${r.key} (${formatBytes(r.size)})`);
        continue;
      }
      const bar = progressBar(it.volume.name, flag(p, 'progress'), process.stderr, it.kind === 'stream' ? it.expectedSize : undefined);
      let resumed = 0;
      const onProgress = (x: Progress): void => {
        resumed = x.resumed ?? 0;
        bar.update(x);
      };
      const notes = it.notes;
      let vol: Volume;
      let local: import('../store/put-local.js').LocalUploadOutcome | undefined;
      try {
        if (it.kind === 'volume') {
          local = await putLocalVolume(opened.ctx, it.volume.volname, it.path, {
            ...replace,
            // planItems read them (with --notes / --protected over them)
            sidecars: false,
            ...(notes !== undefined ? { notes } : {}),
            protected: it.protected,
            ...(it.logPath !== undefined ? { logPath: it.logPath } : {}),
            removeSource: flag(p, 'delete-source'),
            waitSeconds: WAIT_FOR_WRITER_SECONDS,
            who: CMD,
            onWait: (m) => note(m),
            onProgress,
          });
          vol = local.volume;
        } else {
          vol = await putVolume(opened.ctx, it.volume.volname, {
            src: { stream: it.stream, maxSize: it.maxSize, expectedSize: it.expectedSize },
            ...replace,
            ...(notes !== undefined ? { notes } : {}),
            protected: it.protected,
            who: CMD,
            onProgress,
          });
        }
      } catch (e) {
        throw streamLimitHint(storageClassHint(e, cfg.storageClass, storageClass !== undefined), it, p.values['max-size'] !== undefined);
      } finally {
        bar.done();
      }
      const seconds = (performance.now() - t0) / 1000;
      const o: Outcome = {
        volid: vol.volid,
        key: vol.key,
        size: vol.size,
        seconds,
        // what this run moved: a resumed upload's stored parts were not sent again
        rate: (vol.size - resumed) / Math.max(seconds, 1e-6),
        verified: vol.verified === true,
      };
      if (resumed > 0) o.resumedBytes = resumed;
      if (local !== undefined && local.result !== 'uploaded') o.alreadyStored = true;
      if (vol.content === 'backup') {
        o.notes = vol.notes !== undefined;
        o.protected = vol.protected;
        o.log = vol.log === true;
      }
      if (local?.sourceRemoved) o.sourceDeleted = true;
      // a file's upload was verified by putLocalVolume; a stream's is checked here
      if (local === undefined) assertUploadVerified(vol);
      if (local?.keptBecause !== undefined) note(`warning: ${it.kind === 'volume' ? it.path : ''} kept: ${local.keptBecause}`);
      outcomes.push(o);
      if (!json) {
        const extra = [o.notes ? 'notes' : '', o.protected ? 'protected' : '', o.log ? 'log' : '', o.verified ? 'verified' : 'checked, but unsigned: listed as unverified', o.sourceDeleted ? 'local copy deleted' : '']
          .filter(Boolean)
          .join(', ');
        if (it.kind === 'volume' && local?.result === 'identical') writeOut(`${o.volid} is already in the bucket, identical to ${it.path} (checked against its manifest): not uploaded again; ${extra}`);
        else if (it.kind === 'volume' && local?.result === 'by-other') writeOut(`${o.volid} was uploaded by another process meanwhile (${it.path} is gone): not uploaded again; ${extra}`);
        else if (o.resumedBytes !== undefined) {
          const sent = o.size - o.resumedBytes;
          writeOut(
            `uploaded ${o.volid} (${formatBytes(o.size)}; resumed the interrupted upload: ${formatBytes(o.resumedBytes)} were stored already, ${formatBytes(sent)} sent in ${o.seconds.toFixed(1)} s, ${formatRate(o.rate)}; ${extra})`,
          );
        } else writeOut(`uploaded ${o.volid} (${formatBytes(o.size)} in ${o.seconds.toFixed(1)} s, ${formatRate(o.rate)}; ${extra})`);
      }
    }
  } catch (e) {
    // a script reading --json still learns which uploads of the batch did complete
    if (json && outcomes.length > 0) writeJson(outcomes);
    throw e;
  } finally {
    await opened.close();
  }
  if (json) writeJson(outcomes);
  return EXIT.ok;
}
