#!/usr/bin/perl
# Issue 10 (data safety and bucket writers), through the real plugin → the real host → the real
# RadosGW: what PVE itself calls (vdisk_free, prune_backups, list, activate) must obey the
# protection marker, retention must count only verified backups, and objects planted by someone
# who can write to the bucket must never be treated as ours.
use strict;
use warnings;

use Cwd qw(abs_path);
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use File::Copy ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Test::More;

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
use PlantedObject;

$SIG{ALRM} = sub { die "integration test timed out\n" };
alarm(900);

my $rgw = RgwLease::acquire();
my ($endpoint, $region, $ak, $sk) = @$rgw{qw(S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY)};
my $bucket = sprintf('pve-s3-trust-%d-%d', time(), $$);
my $s3 = MiniS3->new(endpoint => $endpoint, region => $region, access_key => $ak, secret_key => $sk);
$s3->create_bucket($bucket);

S3PluginTest::load_plugin('9');
my $tmp = tempdir('pve-s3-trust-XXXXXX', TMPDIR => 1, CLEANUP => 1);
$ENV{PVE_S3_PRIV_DIR} = "$tmp/priv";
$ENV{PVE_S3_HOST_BIN} = "node $HOST_JS";
$ENV{PVE_S3_AUTOSYNC} = '0';
$ENV{PVE_S3_LOG_FILE} = "$tmp/host.log";
delete $ENV{$_} for grep { m/^S3_/ } keys %ENV;

my $storeid = 'trust-s3';
my $param = {
    bucket => $bucket, endpoint => $endpoint, region => $region, access_key => $ak, prefix => 'pve/',
    force_path_style => 1, multipart_chunk_size => 5, max_concurrent_uploads => 2,
    content => 'backup,iso,vztmpl,snippets', path => "$tmp/cache", secret_key => $sk,
};
my $sensitive = PVE::Tools::extract_sensitive_params($param, PVE::Storage::Plugin::sensitive_properties('s3'), []);
my $scfg = $PLUGIN->check_config($storeid, $param, 1, 0);
$PLUGIN->on_add_hook($storeid, $scfg, %$sensitive);
$scfg->{shared} = 1;
$PVE::Storage::CONFIG = { ids => { $storeid => $scfg } };
my $cfg = PVE::Storage::config();
PVE::Storage::activate_storage($cfg, $storeid, {});
my $dump = $PLUGIN->get_subdir($scfg, 'backup');

# Uploads a local archive the way the backup-end hook does (local sidecars travel with it).
sub backup {
    my ($name, %o) = @_;
    write_file("$dump/$name", "data of $name\n" x 3);
    write_file("$dump/$name.notes", $o{notes}) if defined($o{notes});
    write_file("$dump/$name.protected", '') if $o{protected};
    $PLUGIN->upload_local_volume($storeid, $scfg, "backup/$name");
}

# --- §1: the protection marker is looked up by name -----------------------------------------

{
    my $x = 'vzdump-qemu-100-2024_01_01-00_00_00.vma';
    backup($x, notes => 'keep me', protected => 1);
    backup("$x.$_", notes => "neighbour $_") for qw(gz bz2 lzo);
    my $keys = $s3->list_keys($bucket, "pve/dump/$x");
    is(scalar(@$keys), 13, 'X.vma with notes, manifest, marker and three neighbours with notes and manifests');
    ok(!-e "$dump/$x.protected", 'no local marker: only the bucket knows the backup is protected');

    my ($vol) = grep { $_->{volid} eq "$storeid:backup/$x" } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') };
    is($vol->{protected}, 1, 'listed as protected');
    is(PVE::Storage::get_volume_attribute($cfg, "$storeid:backup/$x", 'protected'), 1, 'get_volume_attribute: protected');

    eval { PVE::Storage::vdisk_free($cfg, "$storeid:backup/$x") };
    like($@, qr/cannot remove protected volume/, 'vdisk_free refuses the protected backup (the host refuses it)');
    is_deeply($s3->list_keys($bucket, "pve/dump/$x"), $keys, '... and every key of it and its neighbours is still there');

    my ($res, $err) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', { volname => "backup/$x" });
    ok($res && $res->{volume}->{protected} && $res->{volume}->{verified}, 'stat: protected and verified');

    PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$x", 'protected', 0);
    PVE::Storage::vdisk_free($cfg, "$storeid:backup/$x");
    ok(!$s3->object_exists($bucket, "pve/dump/$x"), 'unprotected, it can be freed');
    is(scalar(@{ $s3->list_keys($bucket, "pve/dump/$x.") }), 9, '... and the neighbours stay whole');
    PVE::Storage::vdisk_free($cfg, "$storeid:backup/$x.$_") for qw(gz bz2 lzo);
}

# --- §5: retention counts only verified backups ----------------------------------------------

{
    my $old = 'vzdump-qemu-200-2024_03_01-10_00_00.vma.zst';
    my $planted = 'vzdump-qemu-200-2024_03_02-10_00_00.vma.zst';
    backup($old);
    # someone with write access to the bucket (or a tool that died) leaves an object, no manifest
    $s3->request('PUT', "/$bucket/pve/dump/$planted", undef, '8 bytes!');
    my %l = map { $_->{volid} => $_ } @{ PVE::Storage::volume_list($cfg, $storeid, 200, 'backup') };
    ok(!$l{"$storeid:backup/$planted"}->{verification}, 'the planted object is listed without verification');
    is_deeply($l{"$storeid:backup/$old"}->{verification}, { state => 'ok' }, 'the uploaded backup is verified');

    my @log;
    my $res = PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 200, 'qemu', 0, sub { push @log, $_[1] });
    my %mark = map { $_->{volid} => $_->{mark} } @$res;
    is($mark{"$storeid:backup/$old"}, 'keep', 'prune keep-last=1: the verified backup is kept');
    is($mark{"$storeid:backup/$planted"}, 'renamed', '... the newer unverified object is kept out of the count');
    ok($s3->object_exists($bucket, "pve/dump/$old") && $s3->object_exists($bucket, "pve/dump/$planted"), '... both stay');
    ok(grep({ m/keeping unverified backup/ } @log), '... and the task log names the unverified one');
    PVE::Storage::vdisk_free($cfg, "$storeid:backup/$_") for ($old, $planted);
}

# --- §7: bucket writers must not get root on the nodes --------------------------------------

{
    my $kfile = "$tmp/priv/$storeid.manifest-key";
    ok(-f $kfile, 'pvesm add (on_add_hook) gave the storage its manifest key, through the host');
    is((stat($kfile))[2] & 07777, 0600, '... root only');

    my $plant = sub { PlantedObject::plant($s3, $bucket, @_) };
    $plant->('pve/snippets/evil.pl', "#!/usr/bin/perl\nsystem('touch $tmp/pwned');\n");
    $plant->('pve/template/iso/evil.iso', 'ISO' x 100);

    my $sdir = $PLUGIN->get_subdir($scfg, 'snippets');
    write_file("$tmp/good.sh", "#!/bin/sh\nexit 0\n");
    make_path($sdir);
    File::Copy::copy("$tmp/good.sh", "$sdir/good.sh");
    $PLUGIN->upload_local_volume($storeid, $scfg, 'snippets/good.sh');
    unlink("$sdir/good.sh", glob("$tmp/cache/.pve-s3/records/snippets/*"));

    my %l = map { $_->{volid} => $_ } @{ PVE::Storage::volume_list($cfg, $storeid, undef, 'snippets') };
    ok($l{"$storeid:snippets/evil.pl"} && $l{"$storeid:snippets/good.sh"}, 'both snippets are listed');
    my ($r) = PVE::Storage::Custom::S3Plugin::host_call($storeid, $scfg, 'stat', { volname => 'snippets/evil.pl' });
    is($r->{volume}->{trust}, 'unverified', 'the planted one is unverified');
    like($r->{volume}->{trust_note}, qr/signed with key 0123456789abcdef, which this storage does not hold/, '... and says why');

    my $fetched = $PLUGIN->prefetch_snippets($storeid, $scfg);
    is_deeply($fetched, ['snippets/good.sh'], 'the prefetch fetches only the verified snippet');
    ok(-x "$sdir/good.sh", '... which is executable');
    ok(!-e "$sdir/evil.pl", 'the planted snippet is never on disk');

    eval { PVE::Storage::activate_volumes($cfg, ["$storeid:snippets/evil.pl"]) };
    like($@, qr/'\Q$storeid\E:snippets\/evil\.pl' is unverified .*pve-s3-maintenance --storage \Q$storeid\E --action adopt --source snippets\/evil\.pl/,
        'activating it (a hookscript) fails, naming the command that lets the admin proceed');
    ok(!-e "$sdir/evil.pl" && !-e "$tmp/pwned", '... nothing on disk, nothing ran');

    eval { PVE::Storage::abs_filesystem_path($cfg, "$storeid:iso/evil.iso") };
    like($@, qr/is unverified .*--allow-unverified/, 'a planted ISO is refused at activation (VM start with it)');
    ok(!-e PVE::Storage::Custom::S3Plugin->get_subdir($scfg, 'iso') . '/evil.iso', '... and not downloaded');

    my $host_log = -f "$tmp/host.log" ? read_file("$tmp/host.log") : '';
    my ($khex) = read_file($kfile) =~ m/^[0-9a-f]{16} ([0-9a-f]{64})$/m;
    ok($khex && index($host_log, $khex) < 0, 'the manifest key is never in the host log');
    PVE::Storage::vdisk_free($cfg, "$storeid:$_") for ('snippets/evil.pl', 'snippets/good.sh', 'iso/evil.iso');
}

# Leave the shared gateway clean.
is_deeply($s3->list_keys($bucket, ''), [], 'nothing left in the bucket');
$s3->request('DELETE', "/$bucket");
$PLUGIN->on_delete_hook($storeid, $scfg);
ok(-f "$tmp/priv/$storeid.manifest-key" && !-e "$tmp/priv/$storeid.pw",
    'remove storage: the secret goes, the manifest key stays (adding it again finds its objects verified)');

my $log = -f "$tmp/host.log" ? read_file("$tmp/host.log") : '';
unlike($log, qr/\Q$sk\E/, 'the host log never contains the secret');

done_testing();
