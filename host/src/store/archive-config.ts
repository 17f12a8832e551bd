/**
 * The guest and firewall configuration stored with a backup (Base.pm archive_get_guest_config /
 * archive_get_firewall_config; PVE's Show Configuration runs it in the API daemon): from the
 * manifest's `guest` texts when it has them, else from the archive's head — frame 0 of an
 * indexed archive, the VMA header or the first tar members of any other — never the whole
 * archive (docs/BACKUP-PROVIDER.md §3.3).
 */
import { EXIT, PveS3Error } from '../util/errors.js';
import { tarMembersFromHead, vmaHeaderFromHead } from './archive-head.js';
import { headerFromIndex, openArchive, readFrameIndex, type OpenArchive } from './restore-archive.js';
import type { StoreContext } from './types.js';

export type ConfigWhich = 'guest' | 'firewall';

export interface GuestConfigs {
  config: Buffer;
  firewall: Buffer | null;
}

export interface ArchiveConfigResult {
  text: Buffer | null;
  source: 'manifest' | 'archive';
  /** bytes of the archive object read (the manifest and index not counted) */
  bytesRead: number;
}

/** the names vzdump gives the configs inside VMA and tar archives */
const VMA_CONF = 'qemu-server.conf';
const VMA_FW = 'qemu-server.fw';
const PCT_CONF = './etc/vzdump/pct.conf';
const PCT_FW = './etc/vzdump/pct.fw';

export async function archiveConfig(ctx: StoreContext, volname: string, which: ConfigWhich): Promise<ArchiveConfigResult> {
  const a = await openArchive(ctx, volname, { purpose: 'inspect' });
  const g = await guestConfigs(ctx, a);
  return { text: which === 'guest' ? g.configs.config : g.configs.firewall, source: g.source, bytesRead: a.archiveBytes };
}

/** both configs of an opened archive, read the cheapest way it allows */
export async function guestConfigs(ctx: StoreContext, a: OpenArchive): Promise<{ configs: GuestConfigs; source: 'manifest' | 'archive' }> {
  const g = a.manifest?.guest;
  // the backup writes the texts only when all of them are UTF-8, so a missing firewall is none
  if (g && typeof g.config === 'string') {
    return { configs: { config: Buffer.from(g.config, 'utf8'), firewall: typeof g.firewall === 'string' ? Buffer.from(g.firewall, 'utf8') : null }, source: 'manifest' };
  }
  if (a.v.format === 'vma') {
    const ix = await readFrameIndex(ctx, a);
    const h = ix ? await headerFromIndex(ctx, a, ix.index) : await vmaHeaderFromHead(ctx, a);
    const conf = h.configs.find((c) => c.name === VMA_CONF);
    if (!conf) throw noConfig(a, VMA_CONF);
    return { configs: { config: conf.data, firewall: h.configs.find((c) => c.name === VMA_FW)?.data ?? null }, source: 'archive' };
  }
  if (a.v.guestType === 'qemu') {
    throw new PveS3Error('NotSupported', `'${a.v.name}': VM backups in tar format (before VMA) are not supported; restore it with pve-s3-restore and qmrestore`, { exitCode: EXIT.usage });
  }
  const files = await tarMembersFromHead(ctx, a, [PCT_CONF, PCT_FW], PCT_CONF);
  const conf = files.get(PCT_CONF);
  if (!conf) throw noConfig(a, PCT_CONF);
  return { configs: { config: conf, firewall: files.get(PCT_FW) ?? null }, source: 'archive' };
}

function noConfig(a: OpenArchive, name: string): PveS3Error {
  return new PveS3Error('VmaInvalid', `'${a.v.name}' holds no ${name} where vzdump puts it: not a vzdump archive of a guest`, { exitCode: EXIT.integrity });
}
