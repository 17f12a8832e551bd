#!/usr/bin/perl
# Container backups and restores through the Backup Provider, driven as PVE drives them
# (docs/BACKUP-PROVIDER.md §7), inside the real PVE storage code (PVE 9 and 8.4 from
# $PVE_UPSTREAM_DIR, with their real Base.pm and, for the container's user namespace,
# pve-container's real PVE::LXC::Namespaces; the project's test double without it), against the
# real host, GNU tar and zstd, and the test RadosGW:
#
#   vzdump (pve-manager's real PVE/VZDump.pm through t/lib/RealVZDump.pm when the extracts have
#   pve-manager and pve-guest-common, else t/lib/VZDumpDriver.pm) → job_init, backup_init;
#   pve-container src/PVE/VZDump/LXC.pm assemble and archive (its double t/guest/PVE/VZDump/LXC.pm,
#   t/lib/PctArchive.pm) → backup_get_mechanism,
#   backup_container_prepare (root), backup_container in run_in_userns as the container's root
#   (uid 100000); back in vzdump: notes, prune, backup_cleanup, backup_handle_log_file, job_cleanup.
#
#   pct restore (pve-container src/PVE/API2/LXC.pm create_vm's worker, src/PVE/LXC/Create.pm,
#   t/lib/PctRestore.pm) → extract_vzdump_config, restore_archive → restore_external_archive:
#   restore_get_mechanism, restore_container_init, check_tar_archive and tar xpf in the user
#   namespace on the returned file, restore_container_cleanup; restore_configuration's
#   archive_get_firewall_config.
#
# The restored tree must equal the source (owners, modes, xattrs, ACLs, file capabilities,
# symlinks, hard links, sparse allocation, FIFO, contents), less what vzdump and pct exclude; a
# privileged container's restore is refused before anything is downloaded; the bucket failing
# mid-backup and mid-restore (the project's fault proxy, t/bin/fault-proxy) leaves nothing: no
# object, upload, work or restore directory, process, extracted file.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy ();
use JSON::PP;
use POSIX qw(strftime);
use Test::More;

# loaded before the harness: inside the real code perl/t/lib (the double) leaves @INC
use FileBytes qw(read_file);
use HostGateway;
use PctArchive;
use PctRestore;
use PctUserns;
use PVEUpstream;
use RealVZDump;
use VZDumpDriver;

HostGateway::skip_unless_ready(qw(tar zstd cstream unshare setfacl setfattr getfattr setcap));
plan skip_all => 'needs root (owners of a container tree, user namespaces)' if $> != 0;
plan skip_all => 'user namespaces unusable here'
    if system('env', 'PATH=' . PctUserns::path_env(), @{ PctUserns::userns_command([['u', 0, 100000, 65536], ['g', 0, 100000, 65536]]) }, 'true') != 0;
my $pve = PVEUpstream::setup(backup_provider => '1', vzdump => 1);
my $VZDUMP = $pve->{vzdump} ? 'RealVZDump' : 'VZDumpDriver';

my $ROOT = $HostGateway::ROOT;
my $tmp = $pve->{tmp};
# the container's root passes through the host's directories to its snapshot, as on a PVE node
chmod(0755, $tmp) or die;
my $gw = HostGateway::start_in($pve, 'pct', timeout => 1200);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';
my $TREE = "$ROOT/test/helpers/ct-tree.pl";

sub keys_of {
    my ($re) = @_;
    return [sort grep { m/$re/ } @{ $s3->list_keys($bucket, 'pve/') }];
}

sub listing {
    my ($dir, $without, $any_mtime) = @_;
    my $out = `perl '$TREE' list '$dir' @{[ map { "--without '$_'" } @$without ]} @{[ map { "--any-mtime '$_'" } @$any_mtime ]}`;
    die "ct-tree.pl list $dir failed\n" if $?;
    return $out;
}

# a storage id of this run's own: the work directories under /run never meet another run's
my $storeid = "pct$$";
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, max_concurrent_uploads => 2, content => 'backup', path => "$tmp/cache",
});
my $cfg = $pve->config();
ok(PVE::Storage::storage_has_feature($cfg, $storeid, 'backup-provider'), 'the s3 type declares backup-provider (PVE_S3_BACKUP_PROVIDER=1)');

my $src = "$tmp/ct-root";
my $tree = decode_json(`perl '$TREE' make '$src'`);
die "ct-tree.pl make failed\n" if $?;
my $conf = "arch: amd64\nhostname: ct200\nmemory: 512\nostype: debian\nrootfs: local:200/vm-200-disk-0.raw,size=8G\nunprivileged: 1\n";
my $fw = "[OPTIONS]\nenable: 1\n";

sub ct_task {
    my ($vmid, $dir, %extra) = @_;
    return { vmid => $vmid, type => 'lxc', conf => $conf, firewall => $fw, snapdir => $dir, %extra };
}

sub job {
    my (%opts) = @_;
    return $VZDUMP->new_job(storage => $storeid, dir => "$tmp/vz", pve_version => $pve->{version},
        'exclude-path' => $tree->{exclude}, %opts);
}

my $restore_root = "$tmp/cache/.pve-s3/restore";
my $work_root = "/run/pve-s3/ct-backup/$storeid";
my @work_roots = ($work_root, "/run/pve-s3/ct-backup/${storeid}f");
sub leftovers {
    my @left = (glob("$restore_root/*"), map { glob("$_/*") } @work_roots);
    # the container root's tar, cstream and zstd of this test (their environment names its log):
    # other runs of the container tests may be working on this machine at the same time
    for my $p (grep { m/^\s*\d+\s+100000\s/ && m/\b(tar|zstd|cstream)\b/ } `ps -eo pid=,uid=,args=`) {
        my ($pid) = $p =~ m/^\s*(\d+)/;
        my $env = eval { read_file("/proc/$pid/environ") } // '';
        push @left, $p if index($env, "PVE_S3_LOG_FILE=$tmp/host.log\0") >= 0;
    }
    push @left, grep { m/pve-s3-host/ && m/\Q$tmp\E/ } `ps -eo args=`;
    return \@left;
}

# --- backup --------------------------------------------------------------------------------------

my $job = job(notes => 'ct200 first');
# the task's output: what the worker prints, a fork's prints too (RealVZDump: the job log itself)
open($job->{task_output}, '>>', "$tmp/task-output") or die if !$pve->{vzdump};
my ($t) = @{ $job->run(ct_task(200, $src)) };
is($t->{state}, 'ok', 'guest 200 backed up') or diag(join("\n", @{ $job->{log} }));
my $name = $t->{target};
if ($pve->{upstream}) {
    ok($INC{"$ENV{PVE_UPSTREAM_DIR}/$pve->{version}/pve-container/src/PVE/LXC/Namespaces.pm"},
        "backup_container ran in pve-container's own PVE::LXC::Namespaces::run_in_userns");
}
is($name, 'vzdump-lxc-200-' . strftime('%Y_%m_%d-%H_%M_%S', localtime($t->{backup_time})) . '.tar.zst',
    'backup_init: the bare archive name, vzdump-lxc-<vmid>-<local time>.tar.zst');
my $volid = "$storeid:backup/$name";
my ($vol) = grep { $_->{volid} eq $volid } @{ PVE::Storage::volume_list($cfg, $storeid, 200, 'backup') };
ok($vol, 'volume_list shows the archive');
is_deeply($vol->{verification}, { state => 'ok' }, '... verified');
is($vol->{subtype}, 'lxc', '... as a container backup');
is($vol->{notes}, 'ct200 first', 'notes set by vzdump after backup_container');
is($t->{size}, $vol->{size}, "backup_cleanup's archive-size is the object's size ($vol->{size}), though backup_container ran in a fork");
ok(grep({ m/^INFO: using backup mechanism 'directory'/ } @{ $job->{log} }), "backup_get_mechanism: 'directory'");
like($pve->{vzdump} ? join("\n", @{ $job->{log} }) : read_file("$tmp/task-output"), qr/^INFO: Total bytes written: \d+/m, "tar's --totals reached the task's output from the user namespace");
my $base = $name =~ s/\.tar\.zst$//r;
is_deeply(keys_of(qr/-200-/), [sort map { "pve/dump/$_" } $name, "$name.s3manifest", "$name.notes", "$base.log", "$base.log.s3manifest"],
    'archive, manifest, notes and task log in the bucket');
like($s3->get_object($bucket, "pve/dump/$base.log"), qr/INFO: Finished Backup of VM 200/, 'backup_handle_log_file stored the task log');
is_deeply(leftovers(), [], 'no work directory, restore directory or process left');

# the archive is vzdump's: pct.conf and pct.fw first, owners as the container sees them
{
    my $obj = $s3->get_object($bucket, "pve/dump/$name");
    open(my $w, '>', "$tmp/a.tar.zst") or die;
    print $w $obj;
    close($w);
    my @tv = `tar -tv --zstd --numeric-owner -f '$tmp/a.tar.zst'`;
    is($?, 0, 'tar lists the archive');
    my @names = map { chomp; s/^.*? \d\d:\d\d //r =~ s/ -> .*$| link to .*$//r =~ s/(.)\/$/$1/r } @tv;
    is_deeply([@names[0 .. 2]], ['./etc/vzdump/pct.conf', './etc/vzdump/pct.fw', '.'], 'pct.conf, pct.fw, then the tree');
    ok((grep { m{^-rw-r----- 33/42 .* \./etc/shadow$} } @tv), 'owners as the container sees them (33/42, not 100033)');
    ok(index($obj, $sk) < 0, 'no credential in the archive');
}

# --- restore, as pct restore does it -------------------------------------------------------------

is(PVE::Storage::extract_vzdump_config($cfg, $volid), $conf, 'extract_vzdump_config: the config from the manifest');

sub new_rootdir {
    my ($label) = @_;
    my $dir = "$tmp/restored-$label";
    mkdir($dir) or die "mkdir $dir: $!\n";
    chown(100000, 100000, $dir) or die;
    return $dir;
}

my $into = new_rootdir('ok');
my $handed;
my $r = eval { PctRestore::restore($cfg, $volid, $into, { unprivileged => 1 }, watch => sub { $handed = $_[0] }) };
is($@, '', 'pct restore from the provider ran through');
like($handed->{'tar-path'} // '', qr{^\Q$restore_root\E/[^/]+/\Q$name\E$}, "restore_container_init: 'tar-path' is the archive, downloaded under the storage's path");
is($r->{config}, $conf, 'recover_config: the config');
is($r->{firewall}, $fw, 'archive_get_firewall_config: the firewall config');
ok(grep({ m/^INFO: downloaded '\Q$name\E'.*verified/ } @{ $r->{log} // [] }), 'the download and its verification are in the task log')
    or diag(join("\n", @{ $r->{log} // [] }));
is(read_file("$into/etc/vzdump/pct.conf"), $conf, 'pct.conf inside the restored tree, as in vzdump archives');
# ./etc: made by the first member, so --skip-old-files leaves its mtime the restore's
is(listing($into, ['./etc/vzdump', './etc/vzdump/pct.conf', './etc/vzdump/pct.fw'], ['./etc']),
    listing($src, $tree->{absent}, ['./etc']),
    'the restored tree is the source: owners, modes, xattrs, ACLs, capabilities, links, hard links, sparse files, contents');
is_deeply(leftovers(), [], 'restore_container_cleanup: nothing left');

# --- a privileged container: refused before the provider is asked --------------------------------

my $priv = new_rootdir('privileged');
eval { PctRestore::restore($cfg, $volid, $priv, { unprivileged => 0 }) };
is($@, "refusing to restore privileged container backup from external source\n", 'PVE refuses to restore a privileged container from a backup provider');
ok(!-d $restore_root || !glob("$restore_root/*"), '... before anything was downloaded');

# --- a privileged container: backed up as root, with PVE's warning ------------------------------

my $pjob = job();
my ($pt) = @{ $pjob->run(ct_task(203, $src, conf => $conf =~ s/^unprivileged: 1\n//mr)) };
is($pt->{state}, 'ok', 'a privileged container is backed up (backup-user-id 0, no user namespace)')
    or diag(join("\n", @{ $pjob->{log} }));
ok(grep({ m/^WARN: external backup of privileged container can only be restored as unprivileged/ } @{ $pjob->{log} }),
    "... with PVE's warning");
{
    open(my $w, '>', "$tmp/p.tar.zst") or die;
    print $w $s3->get_object($bucket, "pve/dump/$pt->{target}");
    close($w);
    my @tv = `tar -tv --zstd --numeric-owner -f '$tmp/p.tar.zst'`;
    ok((grep { m{^-rw-r----- 100033/100042 .* \./etc/shadow$} } @tv), '... its owners as the host sees them');
}
is_deeply(leftovers(), [], '... nothing left');

# --- the bucket failing mid-backup and mid-restore (the project's fault proxy in front of RadosGW) -

use IPC::Open2;
my $proxy_pid = open2(my $pout, my $pin, "$FindBin::Bin/bin/fault-proxy", $endpoint);
my $proxy_url = <$pout>;
chomp($proxy_url);
sub plan_faults {
    print $pin encode_json($_[0]) . "\n";
    $pin->flush();
    my $ok = <$pout>;
}
my $fstore = "${storeid}f";
$pve->api('create', {
    storage => $fstore, type => 's3', bucket => $bucket, endpoint => $proxy_url, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, max_concurrent_uploads => 2, content => 'backup', path => "$tmp/cache",
});
# a second storage on the same bucket and prefix shares the first one's manifest key (README "Who
# can be trusted"), else it sees the first one's archives as unverified
File::Copy::copy("$ENV{PVE_S3_PRIV_DIR}/$storeid.manifest-key", "$ENV{PVE_S3_PRIV_DIR}/$fstore.manifest-key")
    or die "copying the manifest key: $!\n";
$cfg = $pve->config();
# 24 MiB zstd cannot shrink: five parts of 5 MiB
my $big = "$tmp/big-root";
mkdir($big);
mkdir("$big/sbin");
system("head -c 25165824 /dev/urandom > '$big/sbin/init'") == 0 or die;
chown(100000, 100000, $big, "$big/sbin", "$big/sbin/init") or die;

plan_faults([{ match => { method => 'PUT', pathIncludes => 'partNumber=' }, skip => 2, times => undef,
    fault => { kind => 'status', status => 500, code => 'InternalError', message => 'injected' } }]);
my $fjob = $VZDUMP->new_job(storage => $fstore, dir => "$tmp/vzf", pve_version => $pve->{version});
my ($ft) = @{ $fjob->run(ct_task(201, $big)) };
plan_faults([]);
is($ft->{state}, 'err', 'the bucket failing mid-backup: the backup fails');
like($ft->{msg} // '', qr/UploadPart on 'pve\/dump\/vzdump-lxc-201-.*\(HTTP 500 InternalError\): injected/, '... saying what failed: ' . (($ft->{msg} // '') =~ s/\n.*//sr));
is_deeply(keys_of(qr/-201-/), [], '... nothing of it in the bucket (no object, manifest, notes or log)');
is_deeply($s3->list_uploads($bucket, 'pve/'), [], '... no incomplete multipart upload');
is_deeply(leftovers(), [], '... no work directory or process left');

# a good archive of the big tree, then its restore with the reads cut off midway
my $gjob = job();
my ($gt) = @{ $gjob->run(ct_task(202, $big)) };
is($gt->{state}, 'ok', 'a backup of the big tree') or diag(join("\n", @{ $gjob->{log} }));
plan_faults([{ match => { method => 'GET', pathIncludes => 'vzdump-lxc-202-', headers => { range => { re => '.' } } }, skip => 2, times => undef,
    fault => { kind => 'reset', afterBytes => 1000 } }]);
my $fr = new_rootdir('fault');
eval { PctRestore::restore($cfg, "$fstore:backup/$gt->{target}", $fr, { unprivileged => 1 }) };
my $rerr = $@;
plan_faults([]);
like($rerr, qr/ECONNRESET during GetObject/, 'the bucket failing mid-restore: the restore fails, saying why: ' . ($rerr =~ s/\n.*//sr));
is_deeply(leftovers(), [], '... restore_container_cleanup removed the partial download: nothing left');
opendir(my $dh, $fr) or die;
is_deeply([grep { !m/^\.\.?$/ } readdir($dh)], [], '... and nothing was extracted');
close($pin);
waitpid($proxy_pid, 0);

$s3->drop_bucket($bucket);
rmdir($work_root);
rmdir("/run/pve-s3/ct-backup/$fstore");
done_testing();
