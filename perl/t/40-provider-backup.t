#!/usr/bin/perl
# VM backups through the Backup Provider, driven as PVE drives them (docs/BACKUP-PROVIDER.md §1),
# inside the real PVE storage code (PVE 9 and 8.4 from $PVE_UPSTREAM_DIR, with their real
# PVE::BackupProvider::Plugin::Base; the project's test double without it), against the real host
# and the test RadosGW, the disks served by QEMU's own NBD server (qemu-storage-daemon):
#
#   vzdump (pve-manager's real PVE/VZDump.pm through t/lib/RealVZDump.pm when the extracts have
#   pve-manager and pve-guest-common, else t/lib/VZDumpDriver.pm): new → storage_info →
#   PVE::Storage::new_backup_provider; exec_backup → job_init; per guest exec_backup_task →
#   backup_init; qemu-server src/PVE/VZDump/QemuServer.pm archive_external (its double
#   t/guest/PVE/VZDump/QemuServer.pm, t/lib/QemuServerArchive.pm) → backup_get_mechanism,
#   backup_vm_query_incremental, backup_vm;
#   back in exec_backup_task → PVE::Storage::update_volume_attribute notes / protected,
#   PVE::Storage::prune_backups, backup_cleanup(…, 1, {}); a failure → backup_cleanup(…, 0,
#   { error }); then backup_handle_log_file; exec_backup → job_cleanup.
#
# Three jobs of guest 100 (the second also backs up guest 101, whose NBD server dies mid-backup):
# the archive must be complete, verified and listed when backup_vm returns (notes, protection and
# prune see it: prune would otherwise keep the older one), extract byte for byte, carry its task
# log; the failed guest leaves nothing (no object, no sidecar, no multipart upload, no run record).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use POSIX qw(strftime);
use Test::More;

# loaded before the harness: inside the real code perl/t/lib (the double) leaves @INC
use FileBytes qw(read_file);
use HostGateway;
use PVEUpstream;
use QemuServerArchive;
use QsdExports;
use RealVZDump;
use VZDumpDriver;

HostGateway::skip_unless_ready(qw(qemu-storage-daemon zstd));
my $pve = PVEUpstream::setup(backup_provider => '1', vzdump => 1);
my $VZDUMP = $pve->{vzdump} ? 'RealVZDump' : 'VZDumpDriver';

my $ROOT = $HostGateway::ROOT;
my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'pb', timeout => 1200);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';

my $storeid = 'pb-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, max_concurrent_uploads => 2, content => 'backup', path => "$tmp/cache",
    'prune-backups' => 'keep-last=1',
});
my $cfg = $pve->config();
ok(PVE::Storage::storage_has_feature($cfg, $storeid, 'backup-provider'), 'the s3 type declares backup-provider (PVE_S3_BACKUP_PROVIDER=1)');

# --- the VM's disks ---------------------------------------------------------------------------

my $M = 1024 * 1024;
my %regions = ( # sizes are not multiples of 64 KiB, but of 512 as QEMU's block nodes are
    'drive-scsi0' => [[data => 3 * $M + 4096], [hole => 20 * $M], [zero => 2 * $M], [data => 100 * 1024 + 512], [hole => 333 * 512]],
    'drive-virtio1' => [[data => 6 * $M + 4608]],
    'drive-efidisk0' => [[hole => 528 * 1024]],
);
my %image = map { ($_ => "$tmp/$_.raw") } keys %regions;
my %size = map { ($_ => QsdExports::make_image($image{$_}, $regions{$_})) } keys %regions;
my $conf = "boot: order=scsi0\ncores: 1\nmemory: 512\nname: vm100\nscsi0: local:100/vm-100-disk-0.raw,size=26M\n"
    . "virtio1: local:100/vm-100-disk-1.raw,size=7M\nefidisk0: local:100/vm-100-disk-2.raw,size=528K\n"
    . "#qmdump#map:efidisk0:drive-efidisk0:local:raw:\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n"
    . "#qmdump#map:virtio1:drive-virtio1:local:raw:\n";
my $fw = "[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n";

# a copy of each disk to serve (discard punches holes into it), per backup
my $served = 0;
sub served_disks {
    $served++;
    return { map { ($_ => QsdExports::served_copy($image{$_}, "$tmp/$_.served$served")) } keys %image };
}

sub keys_of {
    my ($re) = @_;
    return [sort grep { m/$re/ } @{ $s3->list_keys($bucket, 'pve/') }];
}

sub vm_task {
    my ($vmid, $disks, %extra) = @_;
    return { vmid => $vmid, type => 'qemu', conf => $conf, firewall => $fw, disks => $disks, %extra };
}

# the guest table of the notification vzdump sent (PVE::Notify stand-in): [vmid, status, filename]
sub guest_table {
    my ($job) = @_;
    return [map { [$_->{vmid}, $_->{status}, $_->{filename}] } @{ $job->{notification}->{data}->{'guest-table'}->{data} }];
}

sub job {
    my (%opts) = @_;
    return $VZDUMP->new_job(storage => $storeid, dir => "$tmp/vz", %opts);
}

# --- job 1: guest 100 with notes ----------------------------------------------------------------

my $job1 = job(notes => 'vm100 first');
my $disks1 = served_disks();
my %alloc_before = map { ($_ => QsdExports::allocated($disks1->{$_})) } keys %$disks1;
my $seen_before_cleanup;
my ($t1) = @{ $job1->run(vm_task(100, $disks1, after_archive => sub {
    my ($job, $task) = @_;
    # where vzdump goes on to notes, protection and prune: the archive must be there and good
    my ($vol) = grep { $_->{volid} eq "$storeid:backup/$task->{target}" }
        @{ PVE::Storage::volume_list(PVE::Storage::config(), $storeid, 100, 'backup') };
    $seen_before_cleanup = $vol;
})) };
is($t1->{state}, 'ok', 'job 1: guest 100 backed up') or diag(join("\n", @{ $job1->{log} }));
isa_ok($job1->provider(), 'PVE::BackupProvider::Plugin::Base', 'new_backup_provider');
my $base_pm = $INC{'PVE/BackupProvider/Plugin/Base.pm'};
if ($pve->{upstream}) {
    like($base_pm, qr/^\Q$ENV{PVE_UPSTREAM_DIR}\E\/$pve->{version}\/pve-storage\/src\//, "the provider's base class is the real Base.pm");
} else {
    like($base_pm, qr|/perl/t/lib/PVE/BackupProvider/Plugin/Base\.pm$|, "the provider's base class is the double's Base.pm");
}
like($job1->provider()->provider_name(), qr/^pve-s3 \(bucket '\Q$bucket\E'\)$/, 'provider_name names the bucket');

my $name1 = $t1->{target};
is($name1, 'vzdump-qemu-100-' . strftime('%Y_%m_%d-%H_%M_%S', localtime($t1->{backup_time})) . '.vma.zst',
    'backup_init: the bare archive name, vzdump-qemu-<vmid>-<local time>.vma.zst');
ok($seen_before_cleanup, 'when backup_vm returned, volume_list showed the archive');
is_deeply($seen_before_cleanup->{verification}, { state => 'ok' }, '... verified');
is($seen_before_cleanup->{subtype}, 'qemu', '... as a VM backup');
ok(grep({ m/^INFO: drive-scsi0: \d+% / } @{ $job1->{log} }), 'progress lines reached the job log');
my $k1 = "pve/dump/$name1";
is_deeply(keys_of(qr/-100-/), [sort map { "pve/dump/$_" } $name1, "$name1.s3index", "$name1.s3manifest", "$name1.notes",
    ($name1 =~ s/\.vma\.zst$/.log/r), ($name1 =~ s/\.vma\.zst$/.log.s3manifest/r)],
    'archive, frame index, manifest, notes and task log in the bucket');
my $vol1 = (grep { $_->{volid} eq "$storeid:backup/$name1" } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') })[0];
is($t1->{size}, $vol1->{size}, "backup_cleanup's archive-size is the object's size ($vol1->{size})");
is($vol1->{notes}, 'vm100 first', 'notes set by vzdump after backup_vm');
like($s3->request('HEAD', "/$bucket/$k1")->{headers}->{'x-amz-meta-backup-run'} // '', qr/^[0-9a-f]{32}$/,
    "the archive carries backup_init's run id, which alone lets backup_cleanup's discard remove it");
my $tasklog = $s3->get_object($bucket, $k1 =~ s/\.vma\.zst$/.log/r);
like($tasklog, qr/INFO: Starting Backup of VM 100 \(qemu\)\n.*INFO: creating pve-s3 \(bucket '\Q$bucket\E'\) archive '\Q$name1\E'/s,
    "backup_handle_log_file stored vzdump's task log as the archive's .log");
like($tasklog, qr/INFO: Finished Backup of VM 100/, '... the whole of it');
if ($pve->{vzdump}) { # what only pve-manager's own code can show
    is($job1->{error}, '', 'exec_backup returned');
    ok(grep({ $_ eq 'INFO: Backup job finished successfully' } @{ $job1->{log} }), "vzdump: 'Backup job finished successfully'");
    is($tasklog, read_file($t1->{tmplog}), "the stored .log is vzdump's own log of the guest's task");
    is($job1->{notification}->{severity}, 'info', "vzdump's notification: severity info");
    is_deeply(guest_table($job1), [[100, 'ok', $name1]], '... its guest table: guest 100 ok, with the archive name');
    unlike(read_file(RealVZDump::config_path({ vmid => 100, type => 'qemu' })), qr/^lock:/m, "lock_vm's backup lock was removed");
}
ok(grep({ m/^INFO: pruned 0 backup\(s\)$/ } @{ $job1->{log} }), "job 1's prune (keep-last=1): the only backup is kept");

# the NBD side: every range read was discarded once stored
ok(QsdExports::allocated($disks1->{'drive-virtio1'}) < $alloc_before{'drive-virtio1'} / 8,
    'discard reached the export: the served data disk is (nearly) all holes now');

# the archive, byte for byte: zstd -d of the whole object, then the project's VMA reader
{
    my $dir = "$tmp/x1";
    mkdir($dir);
    open(my $out, '>', "$tmp/a1.vma.zst") or die;
    print $out $s3->get_object($bucket, $k1);
    close($out);
    is(system("zstd -q -d -c '$tmp/a1.vma.zst' | '$FindBin::Bin/bin/vma-extract' '$dir' > '$dir.list'"), 0,
        'zstd -d reads the whole multi-frame object and the VMA reader accepts it');
    is(read_file("$dir.list"), join('', map { "$_ $size{$_}\n" } sort keys %size), 'devices in sorted order with their sizes');
    for my $dev (sort keys %image) {
        ok(read_file("$dir/$dev.raw") eq read_file($image{$dev}), "$dev extracted byte for byte");
    }
    my $vma = `zstd -q -d -c '$tmp/a1.vma.zst'`;
    ok(index($vma, $sk) < 0 && index($vma, $ak) < 0, 'no credential anywhere in the archive');
    is(read_file("$dir/qemu-server.conf"), $conf, 'the VMA carries the guest config archive_external passed');
    is(read_file("$dir/qemu-server.fw"), $fw, '... and the firewall config');
    if (my $py = $ENV{PVE_S3_VMA_PY}) { # an independent reader, in the developer's session
        system('zstd', '-q', '-d', "$tmp/a1.vma.zst", '-o', "$tmp/a1.vma") == 0 or die;
        is(system('python3', $py, "$tmp/a1.vma", "$tmp/py1"), 0, "vma.py ($py) extracts it");
        for my $dev (sort keys %image) {
            my ($f) = glob("$tmp/py1/$dev*");
            ok($f && substr(read_file($f), 0, $size{$dev}) eq read_file($image{$dev}), "vma.py: $dev byte for byte");
        }
    }
}

# --- job 2: guest 100 protected, guest 101 whose NBD server dies mid-backup ---------------------

my $big = "$tmp/big.raw";
QsdExports::make_image($big, [[data => 48 * $M]]);
my $job2 = job(notes => 'vm100 second', protected => 1);
my $dead;
$job2->{watch} = sub {
    my ($line) = @_;
    return if $dead || $line !~ m/^INFO: drive-virtio1: \d+% /;
    my ($t) = grep { $_->{vmid} == 101 && $_->{qsd} } @{ $job2->{tasks} // [] };
    return if !$t;
    $t->{qsd}->stop('KILL');
    $dead = 1;
};
my @tasks2 = (vm_task(100, served_disks()), vm_task(101, { 'drive-virtio1' => QsdExports::served_copy($big, "$tmp/big.served") }));
$job2->{tasks} = \@tasks2;
$job2->run(@tasks2);
my ($t2, $t101) = @tasks2;
is($t2->{state}, 'ok', 'job 2: guest 100 backed up') or diag(join("\n", @{ $job2->{log} }));
ok($dead, 'guest 101: its NBD server was killed mid-backup');
is($t101->{state}, 'err', '... and its backup failed');
like($t101->{msg}, qr/NBD export 'drive-virtio1' at \S+\/101-nbd\.backup-access/, '... saying which NBD export broke: ' . ($t101->{msg} // '') =~ s/\n.*//sr);
ok(grep({ m/^ERROR: Backup of VM 101 failed - / } @{ $job2->{log} }), "... in vzdump's words");
is_deeply(keys_of(qr/-101-/), [], 'the failed guest left no object and no sidecar (no .log either)');
is_deeply($s3->list_uploads($bucket, 'pve/'), [], 'no incomplete multipart upload in the bucket');
my @runs = glob("$tmp/cache/.pve-s3/provider/*.run");
is_deeply(\@runs, [], 'no run record left');
if ($pve->{vzdump}) {
    is($job2->{error}, "job errors\n", "exec_backup died with 'job errors'");
    ok(grep({ $_ eq 'INFO: Backup job finished with errors' } @{ $job2->{log} }), "vzdump: 'Backup job finished with errors'");
    is($job2->{notification}->{severity}, 'error', "vzdump's notification: severity error");
    is_deeply(guest_table($job2), [[100, 'ok', $t2->{target}], [101, 'err', undef]], '... guest 100 ok, guest 101 failed');
    unlike(read_file(RealVZDump::config_path({ vmid => 101, type => 'qemu' })), qr/^lock:/m, "the failed guest's backup lock was removed");
}
my $name2 = $t2->{target};
is(PVE::Storage::get_volume_attribute($cfg, "$storeid:backup/$name2", 'protected'), 1, 'job 2: the new backup is protected');
ok(grep({ m/^INFO: pruned 0 backup\(s\)$/ } @{ $job2->{log} }), "job 2's prune: the protected new one does not count, the older one is kept");
is_deeply([sort map { $_->{volid} } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') }],
    [sort "$storeid:backup/$name1", "$storeid:backup/$name2"], '... both are listed');

# --- job 3: guest 100 again; keep-last=1 now removes job 1's backup -----------------------------

# with vzdump's hook script (the script option) being the project's vzdump hook: the provider made
# the backup, so the hook has nothing to do, says so and succeeds (README "vzdump hook"). vzdump
# runs it with no environment but its own variables (run_hook_script: local %ENV); the wrapper
# records them and points the hook at this test's storage.cfg, as /etc/pve/storage.cfg is on a node.
my $hook_rec = "$tmp/hook-calls";
my $hook = "$tmp/hook.sh";
{
    open(my $h, '>', $hook) or die;
    print $h "#!/bin/sh\n"
        . "echo \"\$* STOREID=\${STOREID-} TARGET=\${TARGET-} VMTYPE=\${VMTYPE-} LOGFILE=\${LOGFILE-}\" >> '$hook_rec'\n"
        . "PVE_S3_STORAGE_CFG='$pve->{etc_pve}/storage.cfg' PVE_S3_PRIV_DIR='$ENV{PVE_S3_PRIV_DIR}' "
        . "PVE_S3_LOG_FILE='$tmp/host.log' exec '$ROOT/host/bin/pve-s3-vzdump-hook.js' \"\$@\"\n";
    close($h);
    chmod(0755, $hook) or die;
}
my $job3 = job(notes => 'vm100 third', $pve->{vzdump} ? (script => $hook) : ());
my ($t3) = @{ $job3->run(vm_task(100, served_disks())) };
is($t3->{state}, 'ok', 'job 3: guest 100 backed up') or diag(join("\n", @{ $job3->{log} }));
my $name3 = $t3->{target};
ok(grep({ m/^INFO: pruned 1 backup\(s\) not covered by keep-retention policy$/ } @{ $job3->{log} }),
    "job 3's prune saw the new archive as a verified backup: keep it, remove job 1's");
my $base1 = $name1 =~ s/\.vma\.zst$//r;
is_deeply(keys_of(qr/\Q$base1\E/), [], "job 1's archive and every sidecar (notes, log, index, manifest) are gone");
is_deeply([sort map { $_->{volid} } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') }],
    ["$storeid:backup/$name2", "$storeid:backup/$name3"], 'volume_list: the protected one and the newest');
if ($pve->{vzdump}) {
    my @phases = map { m/^(\S+(?: \S+ \S+)?) STOREID/ ? $1 : $_ } split(/\n/, read_file($hook_rec));
    is_deeply(\@phases, ['job-init', 'job-start', map({ "$_ snapshot 100" } qw(backup-start pre-stop pre-restart post-restart backup-end log-end)), 'job-end'],
        "vzdump's run_hook_script ran the hook in every phase of a snapshot-mode job, in order");
    my ($end) = grep { m/^backup-end / } split(/\n/, read_file($hook_rec));
    is($end, "backup-end snapshot 100 STOREID=$storeid TARGET=$name3 VMTYPE=qemu LOGFILE=",
        '... at backup-end with STOREID and the bare archive name as TARGET, no LOGFILE');
    ok(grep({ m/^INFO: .*\Q$name3\E was stored in storage '\Q$storeid\E' by the Backup Provider.*nothing for the hook to do/ } @{ $job3->{log} }),
        "the project's hook said it had nothing to do, in the task log") or diag(join("\n", @{ $job3->{log} }));
    is($job3->{error}, '', '... and the job succeeded');
}

# --- what the runs leave -------------------------------------------------------------------------

is_deeply($s3->list_uploads($bucket, ''), [], 'no multipart upload in the whole bucket');
unlike(read_file("$tmp/host.log"), qr/\Q$sk\E/, 'the host log never contains the secret');
unlike(join("\n", map { @{ $_->{log} } } $job1, $job2, $job3), qr/\Q$sk\E/, '... nor the job logs');
my @left = grep { m/qemu-storage-daemon/ && m/\Q$tmp\E/ } `ps -eo args`;
is_deeply(\@left, [], 'no qemu-storage-daemon left running');

PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$name2", 'protected', 0);
$s3->drop_bucket($bucket);
done_testing();
