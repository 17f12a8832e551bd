/**
 * What an operator types to name a volume: a volume id (`store:backup/x.vma.zst`), a volume name
 * (`backup/x.vma.zst`) or a bare file name (`x.vma.zst`, placed by the same rule as uploads:
 * pve/volname.ts classifyFile). (Added for the CLIs.)
 */
import { isContentType, type ContentType } from '../pve/content.js';
import { classifyFile, parseVolname, parseVolumeId } from '../pve/volname.js';
import { EXIT, PveS3Error } from '../util/errors.js';

export function volnameFromArg(arg: string, o: { storageId?: string; content?: ContentType } = {}): string {
  const colon = arg.indexOf(':');
  if (colon > 0) {
    const { storeId, volname } = parseVolumeId(arg);
    if (o.storageId !== undefined && storeId !== o.storageId) {
      throw new PveS3Error('InvalidArgument', `volume id '${arg}' names storage '${storeId}', but --storage is '${o.storageId}'`, { exitCode: EXIT.usage });
    }
    return parseVolname(volname).volname;
  }
  const slash = arg.indexOf('/');
  if (slash > 0 && isContentType(arg.slice(0, slash))) return parseVolname(arg).volname;
  if (slash >= 0) {
    // a local path here is a mistake (or '../x'): taking its last part would quietly name another volume
    throw new PveS3Error(
      'InvalidArgument',
      `invalid volume '${arg}': not a path but an archive name as --list shows it (vzdump-qemu-100-….vma.zst), a volume name (backup/…, iso/…) or a volume id (storage:backup/…)`,
      { exitCode: EXIT.usage },
    );
  }
  const c = classifyFile(arg, o.content);
  if (c.kind !== 'volume') {
    throw new PveS3Error('InvalidArgument', `'${arg}' is a sidecar of '${c.archive ?? 'an archive'}', not a volume: name the archive`, { exitCode: EXIT.usage });
  }
  return c.volume.volname;
}

/** The storage id a volume id names, if the argument is one. */
export function storageOfArg(arg: string): string | undefined {
  const colon = arg.indexOf(':');
  return colon > 0 ? parseVolumeId(arg).storeId : undefined;
}
