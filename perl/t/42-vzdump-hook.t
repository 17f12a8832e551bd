#!/usr/bin/perl
# The classic path (README "vzdump hook"): with the Backup Provider off (PVE_S3_BACKUP_PROVIDER=0)
# pve-manager's real PVE::VZDump (t/lib/RealVZDump.pm) writes a container's archive into the
# storage's dump directory (storage_info's get_backup_dir), adds the notes vzdump makes from its
# template, prunes, and runs the job's hook script - the project's pve-s3-vzdump-hook - in each
# phase through run_hook_script: at backup-end it uploads the archive with its notes, verifies it
# and removes the local copy; at log-end (after vzdump copied the task log beside the archive) it
# uploads the log. Inside the real PVE 9 and 8.4 code with pve-manager and pve-guest-common
# extracted (the guest plugin is t/guest/PVE/VZDump/LXC.pm's tar branch), against the real host
# and the test RadosGW. Skipped without them: the project's VZDumpDriver has no hook runner.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

# loaded before the harness: inside the real code perl/t/lib (the double) leaves @INC
use FileBytes qw(read_file write_file);
use HostGateway;
use PctArchive;
use PVEUpstream;
use RealVZDump;

HostGateway::skip_unless_ready(qw(tar zstd));
my $pve = PVEUpstream::setup(backup_provider => '0', needs => 'vzdump', vzdump => 1,
    why => "the project's VZDumpDriver runs no hook scripts");

my $ROOT = $HostGateway::ROOT;
my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'hook', timeout => 600);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';

sub keys_of {
    my ($re) = @_;
    return [sort grep { m/$re/ } @{ $s3->list_keys($bucket, 'pve/') }];
}

my $storeid = 'hook-s3';
my $path = "$tmp/cache";
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    content => 'backup', path => $path, 'prune-backups' => 'keep-last=1',
});
my $cfg = $pve->config();
ok(!PVE::Storage::storage_has_feature($cfg, $storeid, 'backup-provider'), 'PVE_S3_BACKUP_PROVIDER=0: the s3 type is no backup provider');
my $dumpdir = PVE::Storage::get_backup_dir($cfg, $storeid);
is($dumpdir, "$path/dump", "get_backup_dir: the storage's path/dump, where vzdump writes");

# the container's files (a privileged container's: owned by this user, no user namespace)
my $src = "$tmp/ct-root";
for my $d (qw(etc srv/skip tmp)) { system('mkdir', '-p', "$src/$d") == 0 or die }
write_file("$src/etc/hostname", "ct300\n");
write_file("$src/srv/data.bin", join('', map { chr($_ % 251) } 1 .. 300_000));
write_file("$src/srv/skip/x", "excluded\n");
write_file("$src/tmp/junk", "standard exclusion\n");
my $conf = "arch: amd64\nhostname: ct300\nmemory: 512\nostype: debian\nrootfs: local:300/vm-300-disk-0.raw,size=8G\n";
my $fw = "[OPTIONS]\nenable: 1\n";

# the hook as vzdump runs it: no environment but vzdump's variables (run_hook_script: local
# %ENV); the wrapper records them and points the hook at this test's storage.cfg and secrets,
# as /etc/pve is on a node
my $hook_rec = "$tmp/hook-calls";
my $hook = "$tmp/hook.sh";
write_file($hook, "#!/bin/sh\n"
    . "echo \"\$* STOREID=\${STOREID-} TARGET=\${TARGET-} LOGFILE=\${LOGFILE-} DUMPDIR=\${DUMPDIR-}\" >> '$hook_rec'\n"
    . "PVE_S3_STORAGE_CFG='$pve->{etc_pve}/storage.cfg' PVE_S3_PRIV_DIR='$ENV{PVE_S3_PRIV_DIR}' "
    . "PVE_S3_LOG_FILE='$tmp/host.log' exec '$ROOT/host/bin/pve-s3-vzdump-hook.js' \"\$@\"\n");
chmod(0755, $hook) or die;

sub backup {
    unlink($hook_rec);
    my $job = RealVZDump->new_job(storage => $storeid, dir => "$tmp/vz", script => $hook, compress => 'zstd',
        notes => '{{guestname}} on {{node}}', 'exclude-path' => ['/srv/skip']);
    my ($t) = @{ $job->run({ vmid => 300, type => 'lxc', conf => $conf, firewall => $fw, snapdir => $src }) };
    return ($job, $t);
}

# --- job 1 -------------------------------------------------------------------------------------

my ($job1, $t1) = backup();
is($t1->{state}, 'ok', 'job 1: container 300 backed up') or diag(join("\n", @{ $job1->{log} }));
is($job1->{error}, '', '... exec_backup returned');
my $name1 = $t1->{target} =~ s|^.*/||r;
like($t1->{target}, qr|^\Q$dumpdir\E/vzdump-lxc-300-\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d\.tar\.zst$|,
    "vzdump's target: the archive in the storage's dump directory");
my $base1 = $name1 =~ s/\.tar\.zst$//r;
my @calls = split(/\n/, read_file($hook_rec));
is_deeply([map { m/^(\S+(?: \S+ \S+)?) STOREID/ ? $1 : $_ } @calls],
    ['job-init', 'job-start', map({ "$_ snapshot 300" } qw(backup-start pre-stop pre-restart post-restart backup-end log-end)), 'job-end'],
    "run_hook_script: every phase of a snapshot-mode job, in order");
my ($end) = grep { m/^backup-end / } @calls;
is($end, "backup-end snapshot 300 STOREID=$storeid TARGET=$dumpdir/$name1 LOGFILE=$dumpdir/$base1.log DUMPDIR=$dumpdir",
    '... backup-end with STOREID, the archive path as TARGET, LOGFILE and DUMPDIR');
my $key = "pve/dump/$name1";
my $keys = keys_of(qr/-300-/);
ok((grep { $_ eq $key } @$keys), 'backup-end: the hook uploaded the archive') or diag("@$keys");
ok((grep { $_ eq "$key.notes" } @$keys), '... with its notes');
ok((grep { $_ eq "pve/dump/$base1.log" } @$keys), 'log-end: the hook uploaded the task log vzdump copied beside the archive');
opendir(my $dh, $dumpdir) or die;
my @local = grep { m/-300-/ } readdir($dh);
closedir($dh);
is_deeply(\@local, [], 'nothing of it left in the dump directory (keep_local 0)');
my ($vol) = grep { $_->{volid} eq "$storeid:backup/$name1" } @{ PVE::Storage::volume_list($cfg, $storeid, 300, 'backup') };
ok($vol, 'volume_list shows the archive');
is_deeply($vol->{verification}, { state => 'ok' }, '... verified');
is($vol->{notes}, 'ct300 on ' . PVE::INotify::nodename(), "... with the notes vzdump made from its template");
ok(grep({ m/^INFO: .*pve-s3-vzdump-hook/ } @{ $job1->{log} }), "the hook's lines are in the task log")
    or diag(join("\n", @{ $job1->{log} }));
like($s3->get_object($bucket, "pve/dump/$base1.log"), qr/INFO: Finished Backup of VM 300/, "the stored log is vzdump's");
{
    open(my $w, '>', "$tmp/a.tar.zst") or die;
    print $w $s3->get_object($bucket, $key);
    close($w);
    my @names = map { chomp; $_ } `tar -t --zstd -f '$tmp/a.tar.zst'`;
    is($?, 0, 'tar lists the stored archive');
    is_deeply([@names[0 .. 1]], ['./etc/vzdump/pct.conf', './etc/vzdump/pct.fw'], 'pct.conf and pct.fw first');
    ok((grep { $_ eq './srv/data.bin' } @names), 'the container tree in it');
    ok(!grep({ m{^\./srv/skip/.} || m{^\./tmp/.} } @names), "without vzdump's exclusions (exclude-path, the standard ones)");
    my $pct = `tar -x --zstd -O -f '$tmp/a.tar.zst' ./etc/vzdump/pct.conf`;
    is($pct, $conf, "pct.conf is the container's config");
}

# --- job 2: keep-last=1, pruned before backup-end uploads the new archive -------------------------

sleep(1); # another second, another archive name
my ($job2, $t2) = backup();
is($t2->{state}, 'ok', 'job 2: container 300 backed up again') or diag(join("\n", @{ $job2->{log} }));
my $name2 = $t2->{target} =~ s|^.*/||r;
ok(grep({ m/^INFO: pruned 1 backup\(s\) not covered by keep-retention policy$/ } @{ $job2->{log} }),
    "vzdump's prune saw the new (still local) archive and removed job 1's")
    or diag(join("\n", @{ $job2->{log} }));
is_deeply(keys_of(qr/\Q$base1\E/), [], "job 1's archive and its sidecars are gone from the bucket");
is_deeply([map { $_->{volid} } @{ PVE::Storage::volume_list($cfg, $storeid, 300, 'backup') }], ["$storeid:backup/$name2"],
    'volume_list: the new one only');
unlike(join("\n", @{ $job1->{log} }, @{ $job2->{log} }, read_file("$tmp/host.log")), qr/\Q$sk\E/, 'no secret in the task logs or the host log');

$s3->drop_bucket($bucket);
done_testing();
