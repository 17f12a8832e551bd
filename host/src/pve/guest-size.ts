/**
 * What a guest's backup stream may weigh, from its config (/etc/pve/qemu-server/<vmid>.conf,
 * /etc/pve/lxc/<vmid>.conf): the sizes of the volumes vzdump includes. An archive of them is about
 * that much before compression (VMA and tar add well under 1 %), so a stream upload can size its
 * parts for it instead of for the largest stream it would accept (transfer/upload.ts).
 *
 * Which volumes: those PVE's get_backup_volumes (QemuConfig / LXC::Config) backs up — for qemu
 * every drive but CD-ROMs and `backup=0` ones, for lxc the rootfs and mount points with `backup=1`;
 * `unusedN` never. `size=` is parsed like PVE::JSONSchema::parse_size.
 */

const QEMU_DRIVE = /^(?:ide|sata|scsi|virtio)\d+$|^efidisk0$|^tpmstate0$/;
const LXC_MOUNT = /^mp\d+$/;
const off = (v: string | undefined): boolean => v !== undefined && /^(?:0|no|off|false)$/i.test(v);
const on = (v: string | undefined): boolean => v !== undefined && /^(?:1|yes|on|true)$/i.test(v);

/** PVE's size notation: a number with an optional K, M, G, T (or KiB…TiB) binary unit. */
export function parsePveSize(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT](?:iB)?)?$/.exec(v);
  if (!m) return undefined;
  const mult = m[2] ? 1024 ** ('KMGT'.indexOf(m[2][0]!) + 1) : 1;
  return Math.floor(Number(m[1]) * mult);
}

function props(value: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * Sum of the backed-up volumes' sizes in a guest config's current section, or undefined when
 * one of them has no size (e.g. a ZFS subvolume without quota, size=0): no estimate then.
 */
export function guestBackupBytes(configText: string, type: 'qemu' | 'lxc'): number | undefined {
  let total = 0;
  let volumes = 0;
  for (const raw of configText.split('\n')) {
    const line = raw.trim();
    // snapshots and pending changes follow in [sections]: the current config comes first
    if (line.startsWith('[')) break;
    const m = /^([a-z]+\d*):\s*(.*)$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    const p = props(value);
    if (type === 'qemu') {
      if (!QEMU_DRIVE.test(key) || p.get('media') === 'cdrom' || off(p.get('backup')) || value.startsWith('none')) continue;
    } else if (key !== 'rootfs' && !(LXC_MOUNT.test(key) && on(p.get('backup')))) {
      continue;
    }
    const size = parsePveSize(p.get('size') ?? '');
    if (size === undefined || size === 0) return undefined;
    total += size;
    volumes++;
  }
  return volumes > 0 ? total : undefined;
}
