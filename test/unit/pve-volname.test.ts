import { describe, expect, it } from 'vitest';
import {
  archiveName,
  classifyFile,
  classifyKey,
  keyToVolume,
  logNameOfVolume,
  normaliseUploadName,
  objectKey,
  parseArchiveName,
  parseVolname,
  parseVolumeId,
  sidecarNames,
  volnameKey,
} from '../../host/src/pve/volname.js';
import { PveS3Error } from '../../host/src/util/errors.js';

// backup times in names are local time, as on the PVE node; set before any Date is made
process.env.TZ = 'Europe/Paris';

function invalidVolume(fn: () => unknown): PveS3Error {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PveS3Error);
    expect((e as PveS3Error).code).toBe('InvalidVolume');
    expect((e as PveS3Error).exitCode).toBe(2);
    return e as PveS3Error;
  }
  throw new Error('expected InvalidVolume');
}

describe('parseVolname: backups', () => {
  it('reads a standard qemu archive name: vmid, type, local time, format, compression', () => {
    const v = parseVolname('backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz');
    expect(v).toMatchObject({
      content: 'backup',
      name: 'vzdump-qemu-100-2023_12_25-14_30_00.vma.gz',
      vmid: 100,
      guestType: 'qemu',
      format: 'vma',
      compression: 'gz',
      listFormat: 'vma.gz',
      isStdName: true,
    });
    // 14:30 in Paris on 25 Dec (CET, UTC+1) is 13:30 UTC
    expect(v.ctime).toBe(Date.UTC(2023, 11, 25, 13, 30, 0) / 1000);
  });

  it('uses summer time when the date falls in it', () => {
    const v = parseVolname('backup/vzdump-lxc-101-2024_07_01-02_00_00.tar.zst');
    expect(v.ctime).toBe(Date.UTC(2024, 6, 1, 0, 0, 0) / 1000);
    expect(v).toMatchObject({ guestType: 'lxc', format: 'tar', compression: 'zst', listFormat: 'tar.zst' });
  });

  it.each([
    ['vzdump-qemu-100-2023_12_25-14_30_00.vma', 'vma', undefined],
    ['vzdump-qemu-100-2023_12_25-14_30_00.vma.zst', 'vma', 'zst'],
    ['vzdump-qemu-100-2023_12_25-14_30_00.vma.lzo', 'vma', 'lzo'],
    ['vzdump-qemu-100-2023_12_25-14_30_00.vma.bz2', 'vma', 'bz2'],
    ['vzdump-lxc-100-2023_12_25-14_30_00.tar', 'tar', undefined],
    ['vzdump-lxc-100-2023_12_25-14_30_00.tar.gz', 'tar', 'gz'],
    ['vzdump-openvz-100-2010_01_01-00_00_00.tgz', 'tar', 'gz'],
  ])('accepts %s', (name, format, comp) => {
    const v = parseVolname(`backup/${name}`);
    expect(v.format).toBe(format);
    expect(v.compression).toBe(comp);
    expect(v.isStdName).toBe(true);
  });

  it('accepts the non-standard names PVE accepts, without a time', () => {
    const renamed = parseVolname('backup/vzdump-qemu-100-before-upgrade.vma.zst');
    expect(renamed).toMatchObject({ vmid: 100, guestType: 'qemu', isStdName: false });
    expect(renamed.ctime).toBeUndefined();
    const other = parseVolname('backup/my-export.tar');
    expect(other).toMatchObject({ isStdName: false, format: 'tar' });
    expect(other.vmid).toBeUndefined();
    expect(other.guestType).toBeUndefined();
    // a vmid with fewer than 3 digits is not a standard name (PVE: [1-9][0-9]{2,8})
    expect(parseVolname('backup/vzdump-qemu-99-2023_12_25-14_30_00.vma').isStdName).toBe(false);
    // not a real date: not standard either
    expect(parseVolname('backup/vzdump-qemu-100-2023_13_25-14_30_00.vma').isStdName).toBe(false);
  });

  it.each([
    ['backup/../etc/passwd.vma', "'/' not allowed"],
    ['backup/vzdump-qemu-100..vma', "'..' not allowed"],
    ['backup/sub/vzdump-qemu-100-2023_12_25-14_30_00.vma', "'/' not allowed"],
    ['backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.xz', 'unknown backup extension'],
    ['backup/vzdump-qemu-100-2023_12_25-14_30_00.VMA', 'unknown backup extension'],
    ['backup/file.zip', 'unknown backup extension'],
    ['backup/.vma', 'unknown backup extension'],
    ['backup/', 'empty file name'],
    ['backup/a\nb.vma', 'control characters'],
    ['backup/x.vma.s3manifest', 'reserved'],
    ['images/100/vm-100-disk-0.raw', 'expected <content>/<file>'],
    ['vzdump-qemu-100-2023_12_25-14_30_00.vma', 'expected <content>/<file>'],
    ['', 'empty volume name'],
  ])('refuses %j', (volname, why) => {
    const e = invalidVolume(() => parseVolname(volname));
    expect(e.message).toContain(why);
  });
});

describe('parseVolname: iso, vztmpl, snippets', () => {
  it('iso: .iso or .img, case-insensitive', () => {
    expect(parseVolname('iso/debian-12.iso')).toMatchObject({ content: 'iso', format: 'iso', listFormat: 'iso' });
    expect(parseVolname('iso/INSTALL.ISO').content).toBe('iso');
    expect(parseVolname('iso/disk.img').content).toBe('iso');
    expect(invalidVolume(() => parseVolname('iso/debian.qcow2')).message).toContain('.iso or .img');
    invalidVolume(() => parseVolname('iso/sub/debian.iso'));
  });

  it('vztmpl: .tar and .tar.{gz,xz,zst,bz2} with PVE list formats', () => {
    expect(parseVolname('vztmpl/debian-12-standard_12.2-1_amd64.tar.zst')).toMatchObject({
      content: 'vztmpl',
      compression: 'zst',
      listFormat: 'tzst',
    });
    expect(parseVolname('vztmpl/alpine.tar').listFormat).toBe('tar');
    expect(parseVolname('vztmpl/alpine.tar.xz').listFormat).toBe('txz');
    expect(parseVolname('vztmpl/alpine.tar.gz').listFormat).toBe('tgz');
    invalidVolume(() => parseVolname('vztmpl/alpine.tar.lzo'));
    invalidVolume(() => parseVolname('vztmpl/alpine.zip'));
  });

  it('snippets: any single file name', () => {
    expect(parseVolname('snippets/user-data.yaml')).toMatchObject({ content: 'snippets', listFormat: 'snippet' });
    expect(parseVolname('snippets/hook.pl').name).toBe('hook.pl');
    invalidVolume(() => parseVolname('snippets/a/b'));
    invalidVolume(() => parseVolname('snippets/..'));
  });
});

describe('object keys', () => {
  it('maps the four content types to PVE directory layout under the prefix', () => {
    expect(objectKey('proxmox/', 'backup', 'vzdump-qemu-100-2023_12_25-14_30_00.vma.gz')).toBe(
      'proxmox/dump/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz',
    );
    expect(objectKey('proxmox/', 'iso', 'debian.iso')).toBe('proxmox/template/iso/debian.iso');
    expect(objectKey('', 'vztmpl', 'alpine.tar.xz')).toBe('template/cache/alpine.tar.xz');
    expect(objectKey('a/b/', 'snippets', 'ci.yaml')).toBe('a/b/snippets/ci.yaml');
    expect(volnameKey('p/', 'iso/x.iso')).toBe('p/template/iso/x.iso');
  });

  it('refuses bad names before building a key', () => {
    invalidVolume(() => objectKey('p/', 'iso', '../../x.iso'));
    invalidVolume(() => objectKey('p/', 'backup', 'notes.txt'));
  });

  it('inverts keys to volumes and recognises sidecars', () => {
    const name = 'vzdump-qemu-100-2023_12_25-14_30_00.vma.zst';
    expect(keyToVolume('p/', `p/dump/${name}`)).toMatchObject({ content: 'backup', name, volname: `backup/${name}` });
    expect(keyToVolume('p/', 'p/template/iso/x.iso')?.volname).toBe('iso/x.iso');
    expect(keyToVolume('p/', 'p/template/cache/t.tar.gz')?.volname).toBe('vztmpl/t.tar.gz');
    expect(keyToVolume('p/', 'p/snippets/s.yaml')?.volname).toBe('snippets/s.yaml');

    expect(classifyKey('p/', `p/dump/${name}.notes`)).toEqual({
      kind: 'sidecar',
      content: 'backup',
      sidecar: 'notes',
      name: `${name}.notes`,
      archive: name,
    });
    expect(classifyKey('p/', `p/dump/${name}.protected`)).toMatchObject({ sidecar: 'protected', archive: name });
    expect(classifyKey('p/', `p/dump/${name}.s3manifest`)).toMatchObject({ sidecar: 'manifest', archive: name });
    expect(classifyKey('p/', 'p/dump/vzdump-qemu-100-2023_12_25-14_30_00.log')).toMatchObject({
      sidecar: 'log',
      base: 'vzdump-qemu-100-2023_12_25-14_30_00',
    });
    // a snippet's manifest is a sidecar, not a snippet called "x.s3manifest"
    expect(classifyKey('p/', 'p/snippets/ci.yaml.s3manifest')).toMatchObject({ kind: 'sidecar', sidecar: 'manifest' });
    expect(keyToVolume('p/', 'p/snippets/ci.yaml.s3manifest')).toBeNull();

    for (const other of ['q/dump/' + name, 'p/dump/sub/' + name, 'p/dump/', 'p/images/1.raw', 'p/dump/readme.txt']) {
      expect(keyToVolume('p/', other)).toBeNull();
    }
  });
});

describe('sidecars and archive info', () => {
  it('names the log after the base name (no .vma/.tar extension), notes/protected/manifest after the archive', () => {
    const a = 'vzdump-qemu-100-2023_12_25-14_30_00.vma.zst';
    expect(sidecarNames(a)).toEqual({
      notes: `${a}.notes`,
      protected: `${a}.protected`,
      manifest: `${a}.s3manifest`,
      log: 'vzdump-qemu-100-2023_12_25-14_30_00.log',
    });
    expect(sidecarNames('vzdump-qemu-100-custom.vma').log).toBeUndefined();
    expect(parseArchiveName(a).logName).toBe('vzdump-qemu-100-2023_12_25-14_30_00.log');
  });
});

describe('archiveName', () => {
  const t = new Date(2023, 11, 25, 14, 30, 0); // local
  it('generates PVE names in local time', () => {
    expect(archiveName({ vmid: 100, guestType: 'qemu', compression: 'zstd', time: t })).toBe(
      'vzdump-qemu-100-2023_12_25-14_30_00.vma.zst',
    );
    expect(archiveName({ vmid: '101', guestType: 'lxc', compression: 'gzip', time: t })).toBe(
      'vzdump-lxc-101-2023_12_25-14_30_00.tar.gz',
    );
    expect(archiveName({ vmid: 100, guestType: 'qemu', time: t })).toBe('vzdump-qemu-100-2023_12_25-14_30_00.vma');
    expect(archiveName({ vmid: 100, guestType: 'qemu', format: 'tar', compression: 'lzo', time: t })).toBe(
      'vzdump-qemu-100-2023_12_25-14_30_00.tar.lzo',
    );
  });

  it('round-trips through parseArchiveName', () => {
    const n = archiveName({ vmid: 123456789, guestType: 'lxc', compression: 'zst', time: t });
    const a = parseArchiveName(n);
    expect(a).toMatchObject({ vmid: 123456789, guestType: 'lxc', isStdName: true, compression: 'zst' });
    expect(a.ctime).toBe(Math.floor(t.getTime() / 1000));
  });

  it('refuses what PVE would not produce', () => {
    invalidVolume(() => archiveName({ vmid: 99, guestType: 'qemu', time: t }));
    invalidVolume(() => archiveName({ vmid: '1e3', guestType: 'qemu', time: t }));
    invalidVolume(() => archiveName({ vmid: 100, guestType: 'lxc', format: 'vma', time: t }));
    invalidVolume(() => archiveName({ vmid: 100, guestType: 'qemu', compression: 'xz', time: t }));
    invalidVolume(() => archiveName({ vmid: 100, guestType: 'openvz' as 'qemu', time: t }));
    invalidVolume(() => archiveName({ vmid: 100, guestType: 'qemu', time: new Date(NaN) }));
  });
});

describe('volume ids and local files', () => {
  it('splits a volume id at the first colon', () => {
    expect(parseVolumeId('mon-stockage-s3:backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz')).toEqual({
      storeId: 'mon-stockage-s3',
      volname: 'backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz',
    });
    expect(parseVolumeId('s:snippets/a:b').volname).toBe('snippets/a:b');
    invalidVolume(() => parseVolumeId('no-colon'));
    invalidVolume(() => parseVolumeId(':backup/x.vma'));
    invalidVolume(() => parseVolumeId('store:'));
  });

  it('normalises upload names like PVE', () => {
    expect(normaliseUploadName('/var/tmp/My ISO (v2).iso')).toBe('My_ISO__v2_.iso');
    expect(normaliseUploadName('ok-name_1.2.iso')).toBe('ok-name_1.2.iso');
  });

  it('classifies local files by name, vzdump names first', () => {
    const vol = (f: string, c?: Parameters<typeof classifyFile>[1]) => {
      const r = classifyFile(f, c);
      return r.kind === 'volume' ? r.volume.volname : `${r.kind}:${r.sidecar}`;
    };
    expect(vol('/var/lib/vz/dump/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz')).toBe(
      'backup/vzdump-qemu-100-2023_12_25-14_30_00.vma.gz',
    );
    expect(vol('vzdump-lxc-101-2023_12_25-14_30_00.tar.gz')).toBe('backup/vzdump-lxc-101-2023_12_25-14_30_00.tar.gz');
    expect(vol('/dump/vzdump-qemu-100-2023_12_25-14_30_00.log')).toBe('sidecar:log');
    expect(vol('vzdump-qemu-100-2023_12_25-14_30_00.vma.gz.notes')).toBe('sidecar:notes');
    expect(vol('export.vma')).toBe('backup/export.vma');
    expect(vol('old.tgz')).toBe('backup/old.tgz');
    expect(vol('debian-12-standard_12.2-1_amd64.tar.zst')).toBe('vztmpl/debian-12-standard_12.2-1_amd64.tar.zst');
    expect(vol('alpine.tar')).toBe('vztmpl/alpine.tar');
    expect(vol('debian-12.iso')).toBe('iso/debian-12.iso');
    expect(vol('/tmp/test.txt')).toBe('snippets/test.txt');
    expect(vol('/tmp/test.txt', 'snippets')).toBe('snippets/test.txt');
    expect(vol('alpine.tar', 'backup')).toBe('backup/alpine.tar');
    expect(vol('x.img', 'iso')).toBe('iso/x.img');
    invalidVolume(() => classifyFile('/tmp/test.txt', 'iso'));
    invalidVolume(() => classifyFile('/tmp/test.txt', 'backup'));
    invalidVolume(() => classifyFile('x.vma.s3manifest'));
  });
});

describe('logNameOfVolume (the listing\'s log name without parsing the name again)', () => {
  it('is sidecarNames().log for every backup shape, and nothing for other content', () => {
    const names = [
      'vzdump-qemu-100-2023_12_25-14_30_00.vma.zst',
      'vzdump-lxc-101-2023_12_25-14_30_00.tar.gz',
      'vzdump-lxc-101-2023_12_25-14_30_00.tgz',
      'vzdump-openvz-102-2023_12_25-14_30_00.tar',
      'vzdump-qemu-100-2023_02_30-14_30_00.vma',
      'vzdump-qemu-100-custom.vma',
      'vzdump-qemu-12-2023_12_25-14_30_00.vma',
      'my-backup.vma.lzo',
    ];
    for (const n of names) expect(logNameOfVolume(parseVolname(`backup/${n}`)), n).toBe(sidecarNames(n).log);
    expect(logNameOfVolume(parseVolname('iso/vzdump-qemu-100-2023_12_25-14_30_00.iso'))).toBeUndefined();
  });
});
