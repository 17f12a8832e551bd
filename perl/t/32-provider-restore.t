#!/usr/bin/perl
# VM restore through the Backup Provider, driven as PVE drives it (docs/BACKUP-PROVIDER.md §1, §6),
# inside the real PVE storage code (PVE 9 and 8.4 from $PVE_UPSTREAM_DIR; the project's test
# double without it), against the real host and the test RadosGW:
#
#   qemu-server src/PVE/API2/Qemu.pm create_vm: $parse_restore_archive creates the provider with
#   PVE::Storage::new_backup_provider; its worker first reads the config for a best-effort check
#   with PVE::Storage::extract_vzdump_config; then
#   qemu-server src/PVE/QemuServer.pm restore_external_archive: restore_get_mechanism,
#   restore_vm_init, archive_get_guest_config, archive_get_firewall_config, and per disk of the
#   #qmdump#map lines (sorted by virtual device) restore_vm_volume_init,
#   PVE::Storage::file_size_info($path, undef, 'raw', 1), qemu-img convert (QemuImage::convert's
#   command), restore_vm_volume_cleanup; last restore_vm_cleanup, also after a failure.
#
# The archive is made by the provider's backup side from qemu-storage-daemon's NBD exports
# (indexed), and the same .vma.zst is stored again by pve-s3-backup (no index). Each disk must
# come out byte for byte; afterwards nothing is mounted, running, or left in the storage's path.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use POSIX qw(WNOHANG);
use Test::More;

use FileBytes qw(read_file write_file);
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready(qw(qemu-storage-daemon qemu-img nbdfuse zstd));
plan skip_all => '/dev/fuse missing' if !-e '/dev/fuse';
my $pve = PVEUpstream::setup(backup_provider => '1');

my $ROOT = $HostGateway::ROOT;
my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'rst', timeout => 1200);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};

sub run {
    my (@cmd) = @_;
    system(@cmd) == 0 or die "@cmd failed: $?\n";
}

# --- test disks, served by QEMU's own NBD server as archive_external sets it up ----------------

my $M = 1024 * 1024;
# regions: [data|zero|hole, bytes]; sizes are not multiples of 64 KiB
my %disks = (
    'drive-scsi0' => [[data => 3 * $M + 4096], [hole => 20 * $M], [zero => 2 * $M], [data => 100 * 1024 + 512], [hole => 333 * 512]],
    'drive-virtio1' => [[data => 2 * $M + 4608]],
);
my %size;
for my $dev (sort keys %disks) {
    my $file = "$tmp/$dev.raw";
    open(my $fh, '+>', $file) or die;
    my $off = 0;
    for my $r (@{ $disks{$dev} }) {
        my ($kind, $len) = @$r;
        if ($kind ne 'hole') {
            my $bytes = $kind eq 'zero' ? "\0" x $len : slurp_random($len);
            sysseek($fh, $off, 0);
            syswrite($fh, $bytes) == $len or die;
        }
        $off += $len;
    }
    truncate($fh, $off);
    close($fh);
    $size{$dev} = $off;
    run('cp', '--sparse=always', $file, "$tmp/$dev.served");
}

sub slurp_random {
    my ($len) = @_;
    open(my $fh, '<', '/dev/urandom') or die;
    read($fh, my $buf, $len) == $len or die;
    close($fh);
    return $buf;
}

my $sock = "$tmp/nbd.sock";
my @qsd = ('qemu-storage-daemon');
my $i = 0;
for my $dev (sort keys %disks) {
    push @qsd, '--blockdev', "driver=file,node-name=f$i,filename=$tmp/$dev.served,discard=unmap",
        '--blockdev', "driver=raw,node-name=n$i,file=f$i,discard=unmap";
    $i++;
}
push @qsd, '--nbd-server', "addr.type=unix,addr.path=$sock";
$i = 0;
push @qsd, '--export', "type=nbd,id=$_,node-name=n" . $i++ . ",name=$_,writable=on" for sort keys %disks;
my $qsd_pid = fork() // die;
if (!$qsd_pid) {
    open(STDOUT, '>', '/dev/null');
    open(STDERR, '>', "$tmp/qsd.log");
    exec(@qsd) or POSIX::_exit(127);
}
for (1 .. 200) { last if -S $sock; select(undef, undef, undef, 0.05) }
ok(-S $sock, 'qemu-storage-daemon serves the disks');

# --- the storage, and an indexed archive made by the provider's backup side --------------------

my $storeid = 'rst-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, content => 'backup', path => "$tmp/cache",
});
my $cfg = $pve->config();
ok(PVE::Storage::storage_has_feature($cfg, $storeid, 'backup-provider'), 'the s3 type declares backup-provider (PVE_S3_BACKUP_PROVIDER=1)');

my $conf = "boot: order=scsi0\ncores: 1\nmemory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=26M\n"
    . "virtio1: local:100/vm-100-disk-1.raw,size=3M\n"
    . "#qmdump#map:scsi0:drive-scsi0:local:raw:\n#qmdump#map:virtio1:drive-virtio1:local:raw:\n";
my $fw = "[OPTIONS]\nenable: 1\n";
my @log;
my $logf = sub { push @log, "$_[0]: $_[1]" };
my $time = 1735787045;
{
    my $p = PVE::Storage::new_backup_provider($cfg, $storeid, $logf);
    $p->job_init($time);
    my $name = $p->backup_init(100, 'qemu', $time)->{'archive-name'};
    my $volumes = { map { ($_ => { size => $size{$_}, 'nbd-path' => $sock, 'bitmap-mode' => 'none' }) } keys %disks };
    $p->backup_vm(100, $conf, $volumes, { 'firewall-config' => $fw });
    $p->backup_cleanup(100, 'qemu', 1, {});
    $p->job_cleanup();
    is($name, 'vzdump-qemu-100-' . POSIX::strftime('%Y_%m_%d-%H_%M_%S', localtime($time)) . '.vma.zst', 'backup made: ' . $name);
}
kill('TERM', $qsd_pid);
waitpid($qsd_pid, 0);
my @archives = grep { m/\.vma\.zst$/ } @{ $s3->list_keys($bucket, "pve/dump/") };
is(scalar(@archives), 1, 'one archive in the bucket');
my $indexed = $archives[0] =~ s|^pve/dump/||r;
ok($s3->object_exists($bucket, "pve/dump/$indexed.s3index"), '... with its frame index');

# the same bytes stored by pve-s3-backup: a .vma.zst without an index, as older uploads are
my $plain = 'vzdump-qemu-101-2025_01_02-03_04_05.vma.zst';
write_file("$tmp/copy.vma.zst", $s3->get_object($bucket, "pve/dump/$indexed"));
{
    local %ENV = (%ENV, S3_ENDPOINT => $endpoint, S3_REGION => $region, S3_ACCESS_KEY => $ak,
        S3_SECRET_KEY => $sk, S3_BUCKET => $bucket, S3_PREFIX => 'pve/', S3_FORCE_PATH_STYLE => 'true',
        PVE_S3_STORAGE_CFG => '/nonexistent',
        # the storage's manifest key (made by pvesm add): a restore uses only what it signed
        PVE_S3_MANIFEST_KEY_FILE => "$ENV{PVE_S3_PRIV_DIR}/$storeid.manifest-key");
    run('node', "$ROOT/host/bin/pve-s3-backup.js", '--source', "$tmp/copy.vma.zst", '--name', $plain);
}
ok(!$s3->object_exists($bucket, "pve/dump/$plain.s3index"), "$plain has no frame index");

# --- the restore, in qemu-server's order ------------------------------------------------------

sub mounts_under {
    my ($dir) = @_;
    open(my $fh, '<', '/proc/self/mountinfo') or die;
    return grep { (split(/ /))[4] =~ m/^\Q$dir\E/ } <$fh>;
}

sub procs_under {
    my ($dir) = @_;
    return grep { m/\Q$dir\E/ && m/nbdfuse|restore-volume-serve/ } `ps -eo pid,args`;
}

sub restore {
    my ($volname, $label) = @_;
    my $volid = "$storeid:$volname";
    # create_vm's $parse_restore_archive, then its worker's best-effort check
    my $provider = PVE::Storage::new_backup_provider($cfg, $storeid, $logf);
    my $early = PVE::Storage::extract_vzdump_config($cfg, $volid);
    is($early, $conf, "$label: extract_vzdump_config gives the backed-up config");

    my ($mechanism, $vmtype) = $provider->restore_get_mechanism($volname);
    is_deeply([$mechanism, $vmtype], ['qemu-img', 'qemu'], "$label: mechanism qemu-img, type qemu");
    my $devinfo;
    my %out;
    eval {
        $devinfo = $provider->restore_vm_init($volname);
        is_deeply($devinfo, { map { ($_ => { size => $size{$_} }) } keys %disks }, "$label: restore_vm_init names the devices and sizes");
        my $data = $provider->archive_get_guest_config($volname) or die "no guest config\n";
        is($data, $conf, "$label: archive_get_guest_config");
        is($provider->archive_get_firewall_config($volname), $fw, "$label: archive_get_firewall_config");
        my %map = map { m/^#qmdump#map:(\w+):([\w-]+):/ ? ($1 => $2) : () } split(/\n/, $data);
        for my $virtdev (sort keys %map) {
            my $devname = $map{$virtdev};
            my $info = $provider->restore_vm_volume_init($volname, $devname, {});
            my $path = $info->{'qemu-img-path'} or die "no qemu-img-path\n";
            # the safety check for an untrusted source image, then QemuImage::convert's command
            my ($sz, $fmt) = PVE::Storage::file_size_info($path, undef, 'raw', 1);
            is($sz, $size{$devname}, "$label: file_size_info(\$path, undef, 'raw', 1) on $path");
            my $target = "$tmp/$label-$devname.out";
            run('truncate', '-s', $devinfo->{$devname}->{size}, $target);
            eval { run('/usr/bin/qemu-img', 'convert', '-p', '-n', '-f', 'raw', '-O', 'raw', $path, $target) };
            my $err = $@;
            eval { $provider->restore_vm_volume_cleanup($volname, $devname, {}) };
            if (my $cleanup_err = $@) {
                die $cleanup_err if !$err;
                warn $cleanup_err;
            }
            die $err if $err;
            $out{$devname} = $target;
        }
    };
    my $err = $@;
    eval { $provider->restore_vm_cleanup($volname) };
    is($@, '', "$label: restore_vm_cleanup");
    is($err, '', "$label: restore ran through");
    for my $dev (sort keys %disks) {
        ok(defined($out{$dev}) && read_file($out{$dev}) eq read_file("$tmp/$dev.raw"), "$label: $dev restored byte for byte");
    }
    is_deeply([mounts_under("$tmp/cache")], [], "$label: nothing mounted");
    is_deeply([procs_under("$tmp/cache")], [], "$label: no server left running");
    my @left = glob("$tmp/cache/.pve-s3/restore/*");
    is_deeply(\@left, [], "$label: no restore directory left");
}

restore("backup/$indexed", 'indexed');
restore("backup/$plain", 'no-index');
ok((grep { m/has a frame index/ } @log), 'the task log says the indexed archive is read from the bucket');
ok((grep { m/has no frame index/ } @log), '... and that the other one goes through temporary images');

done_testing();
