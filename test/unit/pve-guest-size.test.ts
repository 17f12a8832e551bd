// The expected size of a backup job's stream, from the guest config as PVE writes it: the volumes
// vzdump backs up (PVE's get_backup_volumes), sizes in PVE's notation (parse_size).
import { describe, expect, it } from 'vitest';
import { guestBackupBytes, parsePveSize } from '../../host/src/pve/guest-size.js';

const G = 1024 ** 3;

describe('parsePveSize (PVE::JSONSchema::parse_size)', () => {
  it.each([
    ['32G', 32 * G],
    ['4M', 4 * 1024 ** 2],
    ['528K', 528 * 1024],
    ['1.5T', 1.5 * 1024 ** 4],
    ['100GiB', 100 * G],
    ['4194304', 4194304],
  ])('%s → %d', (v, n) => expect(parsePveSize(v)).toBe(n));

  it.each(['', '32g', '32GB', '-1G', 'G', '1.G'])("'%s' is not a size", (v) => expect(parsePveSize(v)).toBeUndefined());
});

describe('guestBackupBytes', () => {
  it('qemu: every drive vzdump includes, not CD-ROMs, backup=0, unused or snapshot sections', () => {
    const conf = [
      'boot: order=scsi0;ide2',
      'efidisk0: local-lvm:vm-100-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M',
      'ide2: local:iso/debian-12.iso,media=cdrom,size=628M',
      'ide3: none,media=cdrom',
      'scsi0: local-lvm:vm-100-disk-1,iothread=1,size=32G',
      'virtio1: ceph:vm-100-disk-2,backup=0,size=500G',
      'sata0: local-lvm:vm-100-disk-3,backup=1,size=8G',
      'tpmstate0: local-lvm:vm-100-disk-4,size=4M,version=v2.0',
      'unused0: local-lvm:vm-100-disk-9',
      'memory: 4096',
      '',
      '[before-upgrade]',
      'scsi0: local-lvm:vm-100-disk-1,size=1T',
    ].join('\n');
    expect(guestBackupBytes(conf, 'qemu')).toBe(4 * 1024 ** 2 + 32 * G + 8 * G + 4 * 1024 ** 2);
  });

  it('lxc: the rootfs and mount points with backup=1 only', () => {
    const conf = ['arch: amd64', 'rootfs: local-lvm:vm-101-disk-0,size=8G', 'mp0: local-lvm:vm-101-disk-1,mp=/data,backup=1,size=100G', 'mp1: local-lvm:vm-101-disk-2,mp=/scratch,size=2T', 'mp2: /mnt/host,mp=/host'].join('\n');
    expect(guestBackupBytes(conf, 'lxc')).toBe(108 * G);
  });

  it('no estimate when a backed-up volume has no size (a ZFS subvolume without quota) or there is none', () => {
    expect(guestBackupBytes('rootfs: local-zfs:subvol-102-disk-0,size=0T', 'lxc')).toBeUndefined();
    expect(guestBackupBytes('rootfs: local-zfs:subvol-102-disk-0', 'lxc')).toBeUndefined();
    expect(guestBackupBytes('memory: 512\nide2: none,media=cdrom', 'qemu')).toBeUndefined();
  });
});
