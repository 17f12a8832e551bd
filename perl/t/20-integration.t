#!/usr/bin/perl
# The real plugin → the real host (host/bin/pve-s3-host.js) → the real RadosGW (test/s3/rgw-up.sh).
# The issue's scenario: add storage, upload a vzdump archive the way the hook does, list it,
# protect it, prune, restore (download) and compare bytes, free it; ISO, template and snippet
# round trips; status against a dead endpoint.
use strict;
use warnings;

use Cwd qw(abs_path);
use Encode ();
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::Local qw(timelocal);

my $ROOT = abs_path("$FindBin::Bin/../..");
my $HOST_JS = "$ROOT/host/bin/pve-s3-host.js";

my $node_ok = `node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a==20&&b>=18)?0:1)' 2>/dev/null; echo \$?`;
plan skip_all => 'node >= 20.18 not found (needed to run the host)' if $node_ok !~ m/^0/;
plan skip_all => "host not built: $ROOT/host/dist/protocol/main.js missing (run npm run build)"
    if !-f "$ROOT/host/dist/protocol/main.js" || !-f $HOST_JS;
plan skip_all => 'PVE_S3_SKIP_INTEGRATION=1' if ($ENV{PVE_S3_SKIP_INTEGRATION} // '') eq '1';

use S3PluginTest;
use RgwLease;
use MiniS3;

$SIG{ALRM} = sub { die "integration test timed out\n" };
alarm(900); # includes a first gateway start

my $rgw = RgwLease::acquire();
my ($endpoint, $region, $ak, $sk) = @$rgw{qw(S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY)};
ok($endpoint && $ak && $sk, "test gateway at $endpoint");

my $bucket = sprintf('pve-s3-perl-%d-%d', time(), $$);
my $s3 = MiniS3->new(endpoint => $endpoint, region => $region, access_key => $ak, secret_key => $sk);
$s3->create_bucket($bucket);

# --- add storage ----------------------------------------------------------------------------

S3PluginTest::load_plugin('9');
my $tmp = tempdir('pve-s3-it-XXXXXX', TMPDIR => 1, CLEANUP => 1);
$ENV{PVE_S3_PRIV_DIR} = "$tmp/priv";
$ENV{PVE_S3_HOST_BIN} = "node $HOST_JS";
$ENV{PVE_S3_AUTOSYNC} = '0';
# A loaded test machine must not turn a healthy (or a missing) bucket into an outage: the
# 3 s bound is for pvestatd, not for what these tests check (perl/README.md).
$ENV{PVE_S3_STATUS_TIMEOUT} = 30;
$ENV{PVE_S3_LOG_FILE} = "$tmp/host.log";
delete $ENV{$_} for grep { m/^S3_/ } keys %ENV; # the request alone must configure the host

my $storeid = 'it-s3';
my $param = {
    bucket => $bucket, endpoint => $endpoint, region => $region, access_key => $ak, prefix => 'pve/',
    force_path_style => 1, multipart_chunk_size => 5, max_concurrent_uploads => 2,
    content => 'backup,iso,vztmpl,snippets', path => "$tmp/cache", secret_key => $sk,
};
# As the API does: sensitive values are taken out before check_config and go to the hook.
my $sensitive = PVE::Tools::extract_sensitive_params($param, PVE::Storage::Plugin::sensitive_properties('s3'), []);
my $scfg = $PLUGIN->check_config($storeid, $param, 1, 0);
ok(!exists($scfg->{secret_key}), 'the secret never reaches the section config');
$PLUGIN->on_add_hook($storeid, $scfg, %$sensitive);
is(read_file("$tmp/priv/$storeid.pw"), "$sk\n", 'add storage: secret file written');
is((stat("$tmp/priv/$storeid.pw"))[2] & 07777, 0600, 'secret file 0600');
$scfg->{shared} = 1;
$PVE::Storage::CONFIG = { ids => { $storeid => $scfg } };
my $cfg = PVE::Storage::config();

PVE::Storage::activate_storage($cfg, $storeid, {});
ok(-d "$tmp/cache/$_", "activation created $_") for qw(dump template/iso template/cache snippets);
my @st = $PLUGIN->status($storeid, $scfg, {});
is($st[3], 1, 'status: active against the real gateway');

# --- a vzdump archive, uploaded the way the backup-end hook does ----------------------------

sub random_bytes {
    my ($n, $seed) = @_;
    srand($seed);
    my $s = '';
    $s .= pack('N', int(rand(2**32))) while length($s) < $n;
    return substr($s, 0, $n);
}

my $dump = $PLUGIN->get_subdir($scfg, 'backup');
my %archive;
for my $d (1, 2, 3) {
    my $name = sprintf('vzdump-qemu-100-2024_01_%02d-10_00_00.vma.zst', $d);
    $archive{$d} = $name;
    my $data = random_bytes($d == 2 ? 12 * 1024 * 1024 + 7 : 4096 + $d, $d);
    write_file("$dump/$name", $data);
    write_file("$tmp/orig-$d", $data);
}
write_file("$dump/vzdump-qemu-100-2024_01_02-10_00_00.log", "INFO: starting\nINFO: done\n");

# vzdump sets notes before backup-end: the archive is still local, so they land in a local sidecar.
unlink("$dump/$archive{2}.notes");
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'notes', "nightly backup\nsecond line");
is(read_file("$dump/$archive{2}.notes"), "nightly backup\nsecond line", 'notes of a pending archive go to its local sidecar');

# vzdump --protected marks the archive before backup-end, too.
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'protected', 1);
ok(-e "$dump/$archive{2}.protected", 'protecting a pending archive writes the local marker');

my $list = PVE::Storage::volume_list($cfg, $storeid, 100, 'backup');
my ($pending) = grep { $_->{volid} eq "$storeid:backup/$archive{2}" } @$list;
ok($pending, 'before upload the local archive is listed (pending)');
is($pending->{notes}, 'nightly backup', '... with its local notes');


my $HOOK = "$ROOT/host/bin/pve-s3-vzdump-hook.js";
if (-f "$ROOT/host/dist/cli/vzdump-hook.js" && ($ENV{PVE_S3_IT_HOOK} // '1') ne '0') {
    # The real hook, called the way vzdump calls a job's hook script.
    my $so = PVE::Storage::Custom::S3Plugin::storage_object($storeid, $scfg);
    my $text = "s3: $storeid\n" . join('', map { "\t$_ $so->{$_}\n" } grep { $_ ne 'id' && $_ ne 'secret_key' } sort keys %$so);
    write_file("$tmp/storage.cfg", $text);
    my $log = "$dump/vzdump-qemu-100-2024_01_02-10_00_00.log";
    my $logtext = read_file($log);
    unlink($log); # vzdump copies the log only after backup-end
    local $ENV{PVE_S3_STORAGE_CFG} = "$tmp/storage.cfg";
    local $ENV{STOREID} = $storeid;
    local $ENV{DUMPDIR} = $dump;
    local $ENV{VMTYPE} = 'qemu';
    local $ENV{HOSTNAME} = 'it-guest';
    local $ENV{TARGET} = "$dump/$archive{2}";
    my $out = `node '$HOOK' backup-end snapshot 100 2>&1`;
    is($?, 0, 'vzdump hook backup-end succeeded') or diag($out);
    write_file($log, $logtext);
    local $ENV{LOGFILE} = $log;
    $out = `node '$HOOK' log-end snapshot 100 2>&1`;
    is($?, 0, 'vzdump hook log-end succeeded') or diag($out);
    $PLUGIN->upload_local_volume($storeid, $scfg, "backup/$archive{$_}") for (1, 3);
} else {
    diag('host/dist/cli/vzdump-hook.js not built: uploading with the same upload request the hook makes');
    $PLUGIN->upload_local_volume($storeid, $scfg, "backup/$archive{$_}") for (1, 2, 3);
}
ok(!-e "$dump/$archive{2}", 'after a verified upload the local archive is gone (keep_local 0)');
ok($s3->object_exists($bucket, "pve/dump/$archive{2}"), 'the archive object is in the bucket under the prefix');
ok($s3->object_exists($bucket, "pve/dump/$archive{2}.notes"), 'with its notes sidecar');
ok($s3->object_exists($bucket, "pve/dump/vzdump-qemu-100-2024_01_02-10_00_00.log"), 'and the vzdump log');

$list = PVE::Storage::volume_list($cfg, $storeid, 100, 'backup');
is(scalar(@$list), 3, 'three backups of guest 100 listed from the bucket');
ok($s3->object_exists($bucket, "pve/dump/$archive{2}.protected"), 'the protection went up with the archive');
is((grep { $_->{volid} eq "$storeid:backup/$archive{2}" } @$list)[0]->{protected}, 1, '... and is listed');
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'protected', 0);
ok(!$s3->object_exists($bucket, "pve/dump/$archive{2}.protected"), 'unprotected in the bucket');
my ($b2) = grep { $_->{volid} eq "$storeid:backup/$archive{2}" } @$list;
is($b2->{vmid}, 100, 'vmid');
is($b2->{size}, 12 * 1024 * 1024 + 7, 'size');
is($b2->{ctime}, timelocal(0, 0, 10, 2, 0, 2024), 'ctime from the archive name (local time)');
is($b2->{notes}, 'nightly backup', 'notes (first line)');
is($b2->{subtype}, 'qemu', 'subtype');
is($b2->{format}, 'vma.zst', 'format');
is_deeply($b2->{verification}, { state => 'ok' }, 'verified (manifest present)');
is(PVE::Storage::get_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'notes'), "nightly backup\nsecond line",
    'full notes via get_volume_attribute');
is(scalar($PLUGIN->volume_size_info($scfg, $storeid, "backup/$archive{2}", 60)), 12 * 1024 * 1024 + 7, 'volume_size_info');

# --- protect, prune -------------------------------------------------------------------------

PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{1}", 'protected', 1);
is(PVE::Storage::get_volume_attribute($cfg, "$storeid:backup/$archive{1}", 'protected'), 1, 'protected');
ok($s3->object_exists($bucket, "pve/dump/$archive{1}.protected"), 'protection is a sidecar object');
{
    local $scfg->{'max-protected-backups'} = 1;
    eval { PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{3}", 'protected', 1) };
    is($@, "The number of protected backups per guest is limited to 1 on storage '$storeid'\n",
        'max-protected-backups 1: a second protected backup of the guest is refused');
    ok(!$s3->object_exists($bucket, "pve/dump/$archive{3}.protected"), '... and not protected in the bucket');
}
my $utf8_notes = "ge\x{e4}nderte Notizen \x{2713}\nzweite Zeile";
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'notes', $utf8_notes);
is(PVE::Storage::get_volume_attribute($cfg, "$storeid:backup/$archive{2}", 'notes'), $utf8_notes, 'non-ASCII notes round-trip');
is($s3->get_object($bucket, "pve/dump/$archive{2}.notes"), Encode::encode('UTF-8', $utf8_notes), '... stored as UTF-8 in the sidecar object');
my ($b2n) = grep { $_->{volid} eq "$storeid:backup/$archive{2}" } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') };
is($b2n->{notes}, "ge\x{e4}nderte Notizen \x{2713}", '... first line in the listing');

my @log;
my $dry = PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 1, sub { push @log, $_[1] });
my %mark = map { $_->{volid} => $_->{mark} } @$dry;
is_deeply(\%mark, {
    "$storeid:backup/$archive{3}" => 'keep',
    "$storeid:backup/$archive{2}" => 'remove',
    "$storeid:backup/$archive{1}" => 'protected',
}, 'prune marks (dry run): newest kept, protected preserved');
ok($s3->object_exists($bucket, "pve/dump/$archive{2}"), 'dry run removed nothing');
# The commands mark with the host's own implementation of PVE's algorithm (store prunePlan):
# same marks as PVE's marking above.
{
    my $so = PVE::Storage::Custom::S3Plugin::storage_object($storeid, $scfg);
    my $text = "s3: $storeid\n" . join('', map { "\t$_ $so->{$_}\n" } grep { $_ ne 'id' && $_ ne 'secret_key' } sort keys %$so);
    write_file("$tmp/prune-storage.cfg", $text);
    local $ENV{PVE_S3_STORAGE_CFG} = "$tmp/prune-storage.cfg";
    my $out = `node '$ROOT/host/bin/pve-s3-maintenance.js' --storage $storeid --action prune --keep-last 1 --vmid 100 --type qemu --dry-run --json 2>/dev/null`;
    my $plan = eval { JSON::PP->new->decode($out) } // {};
    is_deeply({ map { ("$storeid:$_->{volname}" => $_->{mark}) } @{ $plan->{entries} // [] } }, \%mark,
        "pve-s3-maintenance's prune marks agree with PVE's marking");
}

my $real = PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 0, sub { push @log, $_[1] });
is(scalar(@$real), 3, 'prune returns the full list');
$list = PVE::Storage::volume_list($cfg, $storeid, 100, 'backup');
is_deeply([sort map { $_->{volid} } @$list], [sort "$storeid:backup/$archive{1}", "$storeid:backup/$archive{3}"],
    'after prune: the newest and the protected backup survive');
ok(!$s3->object_exists($bucket, "pve/dump/$archive{2}"), 'the pruned archive is gone from the bucket');
ok(!$s3->object_exists($bucket, "pve/dump/$archive{2}.notes"), '... with its notes');
ok(!$s3->object_exists($bucket, "pve/dump/vzdump-qemu-100-2024_01_02-10_00_00.log"), '... and its log');

# --- restore path: activate (download) and compare bytes ------------------------------------

my $path = PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$archive{1}");
is(read_file($path), read_file("$tmp/orig-1"), 'activate_volume downloaded the archive byte for byte');
my ($state) = PVE::Storage::Custom::S3Plugin::local_state($scfg, 'backup', $archive{1}, $path);
is($state, 'cached', 'the download is a cached copy (record matches)');
my $ino = (stat($path))[1];
PVE::Storage::activate_volumes($cfg, ["$storeid:backup/$archive{1}"]);
is((stat($path))[1], $ino, 'a second activation reuses the cached copy');

# --- free -----------------------------------------------------------------------------------

eval { PVE::Storage::vdisk_free($cfg, "$storeid:backup/$archive{1}") };
like($@, qr/cannot remove protected volume/, 'free refuses the protected backup');
ok($s3->object_exists($bucket, "pve/dump/$archive{1}"), '... which stays in the bucket');
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$archive{1}", 'protected', 0);
PVE::Storage::vdisk_free($cfg, "$storeid:backup/$archive{1}");
ok(!$s3->object_exists($bucket, "pve/dump/$archive{1}"), 'free removed the archive');
ok(!$s3->object_exists($bucket, "pve/dump/$archive{1}.protected") && !$s3->object_exists($bucket, "pve/dump/$archive{1}.s3manifest"),
    '... and its sidecars');
ok(!-e $path, '... and the cached copy');

# --- ISO (GUI upload → sync-local), template and snippet round trips ------------------------

my $iso_dir = PVE::Storage::get_iso_dir($cfg, $storeid);
my $iso = random_bytes(3 * 1024 * 1024 + 1, 42);
write_file("$iso_dir/installer.iso", $iso);
my $res = $PLUGIN->sync_local($storeid, $scfg, quiet_seconds => 0);
ok(grep({ $_ eq 'iso/installer.iso' } @{ $res->{uploaded} }), 'sync-local uploaded the GUI-uploaded ISO');
ok($s3->object_exists($bucket, 'pve/template/iso/installer.iso'), 'ISO object in the bucket');
$res = $PLUGIN->sync_local($storeid, $scfg, quiet_seconds => 0);
ok(!grep({ $_ eq 'iso/installer.iso' } @{ $res->{uploaded} }), 'a second sync does not upload it again');
unlink("$iso_dir/installer.iso");
$list = PVE::Storage::volume_list($cfg, $storeid, undef, 'iso');
is_deeply([map { $_->{volid} } @$list], ["$storeid:iso/installer.iso"], 'ISO listed from the bucket');
is($list->[0]->{size}, length($iso), 'ISO size');
$path = PVE::Storage::abs_filesystem_path($cfg, "$storeid:iso/installer.iso");
is(read_file($path), $iso, 'ISO downloaded byte for byte at activation');

# Another node replaces the ISO under the same name: this node's cached copy is stale and must
# not be served.
{
    my $node2 = { %$scfg, path => "$tmp/node2-cache" };
    make_path("$tmp/node2-cache/template/iso");
    my $iso2 = random_bytes(3 * 1024 * 1024 + 5, 42);
    write_file("$tmp/node2-cache/template/iso/installer.iso", $iso2);
    $PLUGIN->upload_local_volume($storeid, $node2, 'iso/installer.iso', replace => 1);
    my $ino1 = (stat($path))[1];
    PVE::Storage::activate_volumes($cfg, ["$storeid:iso/installer.iso"]);
    is(read_file($path), $iso2, 'an ISO replaced in the bucket is downloaded again at activation');
    my $ino2 = (stat($path))[1];
    PVE::Storage::activate_volumes($cfg, ["$storeid:iso/installer.iso"]);
    is((stat($path))[1], $ino2, '... and that copy is then reused');
    isnt($ino2, $ino1, '... (it was renamed into place, not rewritten in place)');
}

my $tmpl_dir = PVE::Storage::get_vztmpl_dir($cfg, $storeid);
my $tmpl = random_bytes(100_000, 7);
write_file("$tmpl_dir/debian-12-standard_12.7-1_amd64.tar.zst", $tmpl);
$PLUGIN->upload_local_volume($storeid, $scfg, 'vztmpl/debian-12-standard_12.7-1_amd64.tar.zst');
{
    # The uploaded file stays as a cached copy whose record matches the object: activation
    # checks it against the bucket and keeps it.
    my $f = "$tmpl_dir/debian-12-standard_12.7-1_amd64.tar.zst";
    my ($st) = PVE::Storage::Custom::S3Plugin::local_state($scfg, 'vztmpl', 'debian-12-standard_12.7-1_amd64.tar.zst', $f);
    is($st, 'cached', 'an uploaded template left in place is a cached copy, not pending');
    my $ino = (stat($f))[1];
    PVE::Storage::activate_volumes($cfg, ["$storeid:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"]);
    is((stat($f))[1], $ino, '... which activation reuses (record ETag = object ETag)');
}
unlink("$tmpl_dir/debian-12-standard_12.7-1_amd64.tar.zst");
$list = PVE::Storage::volume_list($cfg, $storeid, undef, 'vztmpl');
is_deeply([map { [$_->{volid}, $_->{format}] } @$list], [["$storeid:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", 'tzst']],
    'template listed with PVE format tzst');
$path = PVE::Storage::abs_filesystem_path($cfg, "$storeid:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst");
is(read_file($path), $tmpl, 'template downloaded byte for byte (pct create path)');

my $snip_dir = $PLUGIN->get_subdir($scfg, 'snippets');
write_file("$snip_dir/hook.sh", "#!/bin/sh\necho hook\n");
$PLUGIN->upload_local_volume($storeid, $scfg, 'snippets/hook.sh');
unlink("$snip_dir/hook.sh");
$path = PVE::Storage::abs_filesystem_path($cfg, "$storeid:snippets/hook.sh");
ok(-x $path, 'snippet downloaded and executable (hookscript)');

for my $v ('iso/installer.iso', 'vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', 'snippets/hook.sh') {
    PVE::Storage::vdisk_free($cfg, "$storeid:$v");
}
is_deeply([map { $_->{volid} } @{ PVE::Storage::volume_list($cfg, $storeid, undef, undef) }], ["$storeid:backup/$archive{3}"],
    'after freeing, only the remaining backup is listed');

# --- errors from the real host --------------------------------------------------------------

eval { $PLUGIN->volume_size_info($scfg, $storeid, 'iso/never-uploaded.iso', 60) }; # the bound is not under test here: a loaded machine's node start took 5 s
like($@, qr/\S/, 'a missing object gives a one-line error');
unlike($@, qr/\Q$sk\E/, '... without the secret');

# --- dead endpoint --------------------------------------------------------------------------

my $dead = { %$scfg, endpoint => 'http://127.0.0.1:1', path => "$tmp/dead-cache" };
make_path("$tmp/dead-cache/.pve-s3");
$PLUGIN->on_add_hook('dead-s3', $dead, secret_key => $sk);
my @dst = eval { $PLUGIN->status('dead-s3', $dead, {}) };
is($@, '', 'status against a dead endpoint does not die');
is_deeply(\@dst, [0, 0, 0, 0], 'status against a dead endpoint is inactive');
unlink("$tmp/dead-cache/.pve-s3/status.json");
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    ok(eval { $PLUGIN->activate_storage('dead-s3', $dead, {}) }, 'activate_storage during an outage succeeds: local work goes on');
    like(join('', @w), qr/bucket not reachable \(.*connection refused.*\)/, '... warning with the cause, not a deadline');
    unlike(join('', @w), qr/\Q$sk\E/, '... without the secret');
}

# The outage as PVE meets it: a VM start or restore with a cached copy works, one without fails
# with the host's message.
{
    local $PVE::Storage::CONFIG = { ids => { 'dead-s3' => { %$dead, type => 's3' } } };
    my $dcfg = PVE::Storage::config();
    my $iso_path = $PLUGIN->get_subdir($dead, 'iso') . '/cached.iso';
    make_path($PLUGIN->get_subdir($dead, 'iso'));
    write_file($iso_path, 'CACHED ISO');
    PVE::Storage::Custom::S3Plugin::ensure_record($dead, 'iso', 'cached.iso', $iso_path, 'etag-x');
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    my $p = eval { PVE::Storage::abs_filesystem_path($dcfg, 'dead-s3:iso/cached.iso') };
    is($@, '', 'outage: a cached ISO still activates (VM start, PVE 9 path)');
    is($p && read_file($p), 'CACHED ISO', '... the cached bytes');
    like(join('', @w), qr/using the cached copy/, '... with a warning');
    eval { PVE::Storage::abs_filesystem_path($dcfg, 'dead-s3:iso/never-cached.iso') };
    like($@, qr/connection refused/, 'outage: an uncached volume fails with the host message');
}

# A misconfiguration is refused by activate_storage (so `pvesm add` fails and cleans up).
{
    my $wrong = { %$scfg, bucket => "$bucket-missing", path => "$tmp/wrong-cache" };
    $PLUGIN->on_add_hook('wrong-s3', $wrong, secret_key => $sk);
    eval { $PLUGIN->activate_storage('wrong-s3', $wrong, {}) };
    like($@, qr/\Q$bucket-missing\E/, 'a missing bucket fails activate_storage, naming it');
}

# A black hole: connections are accepted, nothing is ever answered. The host must give up on its
# own deadline (an envelope with code Timeout), not be killed by the plugin's timeout.
{
    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
        or die "cannot listen: $!\n";
    my $port = $listen->sockport();
    my $pid = fork() // die "fork: $!\n";
    if (!$pid) {
        my @held;
        while (my $c = $listen->accept()) { push @held, $c }
        POSIX::_exit(0);
    }
    close($listen);
    my $hole = { %$scfg, endpoint => "http://127.0.0.1:$port", path => "$tmp/hole-cache" };
    make_path("$tmp/hole-cache/.pve-s3");
    $PLUGIN->on_add_hook('hole-s3', $hole, secret_key => $sk);
    # The host giving up on its own deadline is asserted with a generous kill in
    # test/integration/protocol-host.test.ts; here the outcome with the plugin's real bound: a
    # retryable failure (Timeout from the host, or HostTimeout if a busy machine made it late).
    for my $op (qw(status activate)) {
        my ($res, $err) = PVE::Storage::Custom::S3Plugin::host_try('hole-s3', $hole, $op, {});
        like($err && $err->{code}, qr/^(?:Timeout|HostTimeout)$/, "black-holed endpoint: $op fails as a timeout");
        ok($err && $err->{retryable}, '... retryable (an outage, not a misconfiguration)');
    }
    my @hst = eval { $PLUGIN->status('hole-s3', $hole, {}) };
    is($@, '', 'status against a black-holed endpoint does not die');
    is_deeply(\@hst, [0, 0, 0, 0], '... and is inactive');
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    ok(eval { $PLUGIN->activate_storage('hole-s3', $hole, {}) }, 'activate_storage then answers from the cached probe');
    is_deeply(\@w, [], '... quietly (from the cached probe: a new one would have warned)');
    kill('KILL', $pid);
    waitpid($pid, 0);
}

# Leave the shared gateway clean.
PVE::Storage::vdisk_free($cfg, "$storeid:backup/$archive{3}");
is_deeply($s3->list_keys($bucket, ''), [], 'nothing left in the bucket (no orphaned sidecars or manifests)');
$s3->request('DELETE', "/$bucket");

# --- remove storage -------------------------------------------------------------------------

$PLUGIN->on_delete_hook($storeid, $scfg);
ok(!-e "$tmp/priv/$storeid.pw", 'remove storage: secret file deleted');

my $log = -f "$tmp/host.log" ? read_file("$tmp/host.log") : '';
unlike($log, qr/\Q$sk\E/, 'the host log never contains the secret');

done_testing();
