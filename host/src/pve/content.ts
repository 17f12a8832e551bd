/**
 * The four PVE content types this storage serves and where each lives in the bucket: the same
 * sub-directories as a PVE directory storage (DESIGN.md §3), so a bucket reads like /var/lib/vz.
 */
import { ConfigError } from '../util/errors.js';

export type ContentType = 'backup' | 'iso' | 'vztmpl' | 'snippets';

export const CONTENT_TYPES: readonly ContentType[] = ['backup', 'iso', 'vztmpl', 'snippets'];

/** Folder of each content type below the storage prefix, with its trailing '/'. */
export const CONTENT_DIR: Readonly<Record<ContentType, string>> = {
  backup: 'dump/',
  iso: 'template/iso/',
  vztmpl: 'template/cache/',
  snippets: 'snippets/',
};

export function isContentType(s: string): s is ContentType {
  return (CONTENT_TYPES as readonly string[]).includes(s);
}

/**
 * PVE's `content` list ("backup,iso" — PVE also splits on spaces and semicolons). `none` must
 * stand alone and means no content at all. Unknown types are refused rather than dropped: this
 * storage type supports only the four above.
 */
export function parseContentList(value: string, key = 'content'): ContentType[] {
  const parts = value
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const allowed = `a comma-separated list of ${CONTENT_TYPES.join(', ')} (or 'none' alone)`;
  if (parts.length === 0) throw new ConfigError(key, value, allowed);
  if (parts.includes('none')) {
    if (parts.length > 1) throw new ConfigError(key, value, `'none' cannot be combined with other types; ${allowed}`);
    return [];
  }
  const out: ContentType[] = [];
  for (const p of parts) {
    if (!isContentType(p)) throw new ConfigError(key, value, `unknown content type '${p}'; ${allowed}`);
    if (!out.includes(p)) out.push(p);
  }
  return out;
}

/**
 * Content PVE opens by `path()` alone, without activate_volume, so the file must stay on the
 * node: guest hookscripts (pve-guest-common GuestHelpers check_hookscript / exec_hookscript:
 * PVE::Storage::path and a -x test) and the ISO put into a running VM's CD drive (qemu-server
 * Blockdev::change_medium → Drive::get_path_and_format → PVE::Storage::path). Backups, templates
 * and cloud-init snippets go through abs_filesystem_path or activate_volumes, which download
 * them. A local file of these types is never removed after an upload.
 */
export const READ_BY_PATH: readonly ContentType[] = ['iso', 'snippets'];
