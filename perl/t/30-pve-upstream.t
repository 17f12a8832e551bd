#!/usr/bin/perl
# The plugin inside the real PVE storage code (PVE 9 and PVE 8.4, from $PVE_UPSTREAM_DIR; the
# project's test double without it), driven only through PVE's entry points as the daemons call
# them, against the real host and the test RadosGW:
# pvesm add/set/remove (PVE::API2::Storage::Config), storage_info (pvestatd), get_backup_dir,
# update/get_volume_attribute (vzdump --protected / --notes-template, the GUI), volume_list,
# extract_vzdump_config (restore dialog "Show Configuration"), abs_filesystem_path (restores),
# prune_backups, vdisk_free.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Test::More;

use FileBytes qw(read_file read_file_if_exists write_file);
use HostGateway;
use PVEUpstream;
use PlantedObject;

HostGateway::skip_unless_ready(qw(tar zstd));
my $ROOT = $HostGateway::ROOT;
my $HOOK = "$ROOT/host/bin/pve-s3-vzdump-hook.js";

# the classic path (local file, hook, download on activation) behind the Backup Provider's off
# switch, set before the plugin is loaded (setup); the provider's own path is tested by 32-provider-restore.t, 40 and 41
my $pve = PVEUpstream::setup(backup_provider => '0');

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'up', timeout => 900);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';

my $storeid = 'up-s3';
my $storage_cfg = "$pve->{etc_pve}/storage.cfg";
my $secret_file = "$pve->{etc_pve}/priv/storage/$storeid.pw";
my %add = (
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, content => 'backup,iso,vztmpl,snippets', path => "$tmp/cache",
);

# --- pvesm add ------------------------------------------------------------------------------

# a value PVE's schema lets through but the host refuses: no section, no secret left behind
eval { $pve->api('create', { %add, storage => 'bad-s3', prefix => '../pve/' }) };
like($@, qr/invalid prefix '\.\.\/pve\/': must be a relative path/, "pvesm add with prefix '../pve/': refused, naming key, value and what is allowed");
unlike(read_file_if_exists($storage_cfg) // '', qr/bad-s3/, '... no storage.cfg section');
ok(!-e "$pve->{etc_pve}/priv/storage/bad-s3.pw", '... no secret file');

# a missing secret is not a bad value (the host says ConfigMissing, not ConfigInvalid): the hook
# lets a disabled storage in, and `pvesm set --secret_key` may follow; an enabled one is then
# activated by PVE's create (API2::Storage::Config), which fails naming the secret and removes it
my %nosecret = (%add, storage => 'nosecret-s3');
delete $nosecret{secret_key};
eval { $pve->api('create', \%nosecret) };
like($@, qr/missing secret_key for storage 'nosecret-s3'.*pvesm set nosecret-s3 --secret_key/, 'pvesm add without secret_key, enabled: refused by the activation, naming the secret and how to set it');
unlike(read_file($storage_cfg), qr/nosecret-s3/, '... no storage.cfg section');
is_deeply($pve->api('create', { %nosecret, disable => 1 }), { storage => 'nosecret-s3', type => 's3' }, 'pvesm add --disable 1 without secret_key: created');
like(read_file($storage_cfg), qr/^s3: nosecret-s3$/m, '... with its storage.cfg section');
ok(!-e "$pve->{etc_pve}/priv/storage/nosecret-s3.pw", '... and no secret file');
$pve->api('delete', { storage => 'nosecret-s3' });

my $res = $pve->api('create', \%add);
is_deeply($res, { storage => $storeid, type => 's3' }, 'pvesm add: created');
my $text = read_file($storage_cfg);
like($text, qr/^s3: \Q$storeid\E$/m, 'storage.cfg has the s3 section');
like($text, qr/^\tbucket \Q$bucket\E$/m, '... with its bucket');
unlike($text, qr/\Q$sk\E/, 'the secret is not in storage.cfg');
is(read_file($secret_file), "$sk\n", 'the secret is in priv/storage/<id>.pw');
is((stat($secret_file))[2] & 07777, 0600, '... mode 0600');
my $key_file = "$pve->{etc_pve}/priv/storage/$storeid.manifest-key";
ok(-f $key_file, 'pvesm add gave the storage its manifest key (issue 10 §7), made by the host');
is((stat($key_file))[2] & 07777, 0600, '... mode 0600');
my $cfg = $pve->config();
is($cfg->{ids}->{$storeid}->{shared}, 1, 'PVE reads the storage as shared');
is($cfg->{ids}->{$storeid}->{path}, "$tmp/cache", 'path as configured');

# --- pvesm set ------------------------------------------------------------------------------

$pve->api('update', { storage => $storeid, connection_timeout => 30, secret_key => 'not-the-secret' });
like(read_file($storage_cfg), qr/^\tconnection_timeout 30$/m, 'pvesm set: option written');
is(read_file($secret_file), "not-the-secret\n", 'pvesm set --secret_key replaces the secret file');
$cfg = $pve->config();
my $info = PVE::Storage::storage_info($cfg, 'backup');
is($info->{$storeid}->{active}, 0, 'pvestatd: with a wrong secret the storage is inactive');
$pve->api('update', { storage => $storeid, secret_key => $sk, delete => 'connection_timeout' });
unlike(read_file($storage_cfg), qr/connection_timeout/, 'pvesm set --delete removes the option');
eval { $pve->api('update', { storage => $storeid, bucket => 'other-bucket' }) };
like($@, qr/fixed|bucket/, 'pvesm set cannot change the bucket (fixed)');
if (PVE::Storage::Custom::S3Plugin->api() >= 13) {
    # a rule across keys, broken by a change: refused before storage.cfg is written
    $pve->api('update', { storage => $storeid, transition_days => 30 });
    eval { $pve->api('update', { storage => $storeid, glacier_days => 10 }) };
    like($@, qr/invalid glacier_days '10': must be greater than transition_days \(30\)/, 'pvesm set --glacier_days below transition_days: refused, naming both');
    unlike(read_file($storage_cfg), qr/glacier_days/, '... not written');
    $pve->api('update', { storage => $storeid, glacier_days => 90, delete => 'transition_days' });
    like(read_file($storage_cfg), qr/^\tglacier_days 90$/m, '... while deleting the key it depended on in the same call: accepted');
    $pve->api('update', { storage => $storeid, delete => 'glacier_days' });
}

# --- pvestatd -------------------------------------------------------------------------------

$cfg = $pve->config();
$info = PVE::Storage::storage_info($cfg, 'backup');
my $si = $info->{$storeid};
is($si->{active}, 1, 'storage_info: active with the right secret (the probe was not served stale)');
is($si->{type}, 's3', '... type s3');
is($si->{shared}, 1, '... shared');
# Upstream's content_hash_to_string joins in hash order.
is(join(',', sort split(/,/, $si->{content})), 'backup,iso,snippets,vztmpl', '... content');
ok(!exists($info->{local}), 'the disabled local storage is not listed for backup content');

my $dump = PVE::Storage::get_backup_dir($cfg, $storeid);
is($dump, "$tmp/cache/dump", 'get_backup_dir is the dump dir under path');
ok(-d $dump, '... created by activation');

# --- backups: vzdump writes, sets notes/protected, the hook uploads ---------------------------

my $ct_archive = 'vzdump-lxc-101-2024_01_02-10_00_00.tar.zst';
my $pct_conf = "arch: amd64\nhostname: ct101\nmemory: 512\nrootfs: local:101/vm-101-disk-0.raw,size=8G\n";
{
    my $root = "$tmp/ctroot";
    make_path("$root/etc/vzdump", "$root/etc/apt");
    write_file("$root/etc/vzdump/pct.conf", $pct_conf);
    write_file("$root/etc/hostname", "ct101\n");
    system('tar', '-C', $root, '--zstd', '-cf', "$dump/$ct_archive", './etc') == 0 or die "tar failed\n";
}
my @vm_archives = map { sprintf('vzdump-qemu-100-2024_01_%02d-10_00_00.vma.zst', $_) } (1, 2, 3);
write_file("$dump/$vm_archives[$_]", ("VMA$_" x 1000) . "\n") for (0, 1, 2);

my $ct_volid = "$storeid:backup/$ct_archive";
PVE::Storage::update_volume_attribute($cfg, $ct_volid, 'notes', "ct backup\nline two");
PVE::Storage::update_volume_attribute($cfg, $ct_volid, 'protected', 1);
is(read_file("$dump/$ct_archive.notes"), "ct backup\nline two", 'notes of a pending archive: local sidecar');
ok(-e "$dump/$ct_archive.protected", 'protected flag of a pending archive: local marker');
my $list = PVE::Storage::volume_list($cfg, $storeid, 101, 'backup');
is_deeply([map { [$_->{volid}, $_->{notes}, $_->{protected}] } @$list], [[$ct_volid, 'ct backup', 1]],
    'volume_list shows the pending archive with its local notes and protection');

sub run_hook {
    my ($phase, %env) = @_;
    local $ENV{PVE_S3_STORAGE_CFG} = $storage_cfg;
    local @ENV{ keys %env } = values %env;
    my $out = `node '$HOOK' $phase snapshot $env{VMID} 2>&1`;
    return ($? >> 8, $out);
}
for my $a ([$ct_archive, 'lxc', 101], map { [$_, 'qemu', 100] } @vm_archives) {
    my ($name, $vmtype, $vmid) = @$a;
    my ($rc, $out) = run_hook('backup-end', STOREID => $storeid, DUMPDIR => $dump, VMTYPE => $vmtype,
        HOSTNAME => "guest$vmid", TARGET => "$dump/$name", VMID => $vmid);
    is($rc, 0, "vzdump hook backup-end uploaded $name") or diag($out);
}
ok(!-e "$dump/$ct_archive", 'the uploaded archive left the local dump dir');
ok($s3->object_exists($bucket, "pve/dump/$ct_archive.protected"), 'its protection went up with it');

$list = PVE::Storage::volume_list($cfg, $storeid, undef, 'backup');
is(scalar(@$list), 4, 'volume_list: four backups listed from the bucket');
my ($ct) = grep { $_->{volid} eq $ct_volid } @$list;
is($ct->{notes}, 'ct backup', '... notes (first line)');
is($ct->{protected}, 1, '... protected');
is($ct->{subtype}, 'lxc', '... subtype');
is_deeply($ct->{verification}, { state => 'ok' }, '... verified');
is(PVE::Storage::get_volume_attribute($cfg, $ct_volid, 'notes'), "ct backup\nline two", 'get_volume_attribute: full notes');
is(PVE::Storage::get_volume_attribute($cfg, $ct_volid, 'protected'), 1, 'get_volume_attribute: protected');

# --- restore dialog and restore -------------------------------------------------------------

my ($conf, $conf_name) = PVE::Storage::extract_vzdump_config($cfg, $ct_volid);
is($conf, $pct_conf, 'extract_vzdump_config reads the guest config out of the archive');
is($conf_name, './etc/vzdump/pct.conf', '... from ./etc/vzdump/pct.conf');
my $path = PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$vm_archives[1]");
is(read_file($path), ('VMA1' x 1000) . "\n", 'abs_filesystem_path downloads the archive byte for byte');

# --- bucket writers (issue 10 §7): a complete manifest of their own making is not ours --------

{
    # an object and a consistent manifest of a bucket writer's making, with a made-up mac
    my $plant = sub { PlantedObject::plant($s3, $bucket, @_) };
    my $planted = 'vzdump-qemu-100-2024_01_09-10_00_00.vma.zst';
    $plant->("pve/dump/$planted", "PLANTED\n" x 100);
    $plant->('pve/snippets/evil.sh', "#!/bin/sh\ntouch $tmp/pwned\n");
    my ($p) = grep { $_->{volid} eq "$storeid:backup/$planted" } @{ PVE::Storage::volume_list($cfg, $storeid, 100, 'backup') };
    ok($p && !$p->{verification}, 'volume_list: the planted backup is listed without verification');
    my $marks = PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 1, sub {});
    is({ map { $_->{volid} => $_->{mark} } @$marks }->{"$storeid:backup/$vm_archives[2]"}, 'keep',
        'prune_backups: the newer planted backup does not push the verified one out');
    eval { PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$planted") };
    like($@, qr/is unverified .*--action adopt --source backup\/\Q$planted\E.*--allow-unverified/,
        'restore (abs_filesystem_path) refuses it, naming the commands that let the admin proceed');
    ok(!-e "$dump/$planted", '... nothing downloaded');
    my $scfg = $cfg->{ids}->{$storeid};
    my $fetched = PVE::Storage::Custom::S3Plugin->prefetch_snippets($storeid, $scfg);
    ok(!grep({ $_ eq 'snippets/evil.sh' } @$fetched), 'the snippet prefetch skips a planted snippet');
    eval { PVE::Storage::activate_volumes($cfg, ["$storeid:snippets/evil.sh"]) };
    like($@, qr/is unverified/, 'activating it (a hookscript) is refused');
    ok(!-e "$tmp/cache/snippets/evil.sh" && !-e "$tmp/pwned", '... nothing on disk, nothing ran');
    PVE::Storage::vdisk_free($cfg, $_) for ("$storeid:backup/$planted", "$storeid:snippets/evil.sh");
}

# --- prune, free ----------------------------------------------------------------------------

PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$vm_archives[0]", 'protected', 1);
my @log;
my $marks = PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 1, sub { push @log, $_[1] });
is_deeply({ map { $_->{volid} => $_->{mark} } @$marks }, {
    "$storeid:backup/$vm_archives[0]" => 'protected',
    "$storeid:backup/$vm_archives[1]" => 'remove',
    "$storeid:backup/$vm_archives[2]" => 'keep',
}, 'prune_backups dry run: PVE marks newest keep, protected, the rest remove');
PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 0, sub { push @log, $_[1] });
ok(!$s3->object_exists($bucket, "pve/dump/$vm_archives[1]"), 'prune_backups removed the pruned archive from the bucket');
ok(!-e $path, '... and its cached copy');
ok($s3->object_exists($bucket, "pve/dump/$vm_archives[0]"), '... kept the protected one');

eval { PVE::Storage::vdisk_free($cfg, $ct_volid) };
like($@, qr/protected/, 'vdisk_free refuses a protected backup');
ok($s3->object_exists($bucket, "pve/dump/$ct_archive"), '... which stays in the bucket');
for my $v ($ct_volid, "$storeid:backup/$vm_archives[0]") {
    PVE::Storage::update_volume_attribute($cfg, $v, 'protected', 0);
    PVE::Storage::vdisk_free($cfg, $v);
}
PVE::Storage::vdisk_free($cfg, "$storeid:backup/$vm_archives[2]");
is_deeply($s3->list_keys($bucket, ''), [], 'vdisk_free removed the archives and every sidecar: the bucket is empty');

# --- an outage, as pvestatd and vzdump meet it ----------------------------------------------

{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    $pve->api('create', { %add, storage => 'dead-s3', prefix => 'dead/', endpoint => 'http://127.0.0.1:1', path => "$tmp/dead" });
    like(join('', @w), qr/bucket not reachable/, 'pvesm add during an outage warns but adds the storage');
    $cfg = $pve->config();
    $info = PVE::Storage::storage_info($cfg, 'backup');
    is($info->{'dead-s3'}->{active}, 0, 'storage_info: the unreachable storage is inactive');
    ok(exists($info->{$storeid}), '... and the other one is still listed');

    # vzdump --protected --notes-template: the archive was just written, the bucket is away.
    my $ddump = PVE::Storage::get_backup_dir($cfg, 'dead-s3');
    my $name = 'vzdump-qemu-100-2024_02_01-10_00_00.vma.zst';
    write_file("$ddump/$name", "VMA during an outage\n");
    my $volid = "dead-s3:backup/$name";
    eval { PVE::Storage::update_volume_attribute($cfg, $volid, 'protected', 1) };
    is($@, '', 'outage: protecting the pending archive does not fail the backup');
    ok(-e "$ddump/$name.protected", '... the protection is kept in the local marker');
    eval { PVE::Storage::update_volume_attribute($cfg, $volid, 'notes', 'written during an outage') };
    is($@, '', 'outage: setting notes does not fail either');
    is(read_file("$ddump/$name.notes"), 'written during an outage', '... local notes sidecar');
    is(PVE::Storage::get_volume_attribute($cfg, $volid, 'protected'), 1, 'outage: get_volume_attribute answers from the local marker');
    is(scalar(PVE::Storage::volume_size_info($cfg, $volid, 5)), length("VMA during an outage\n"), 'outage: volume_size_info answers from the local file');
    @w = ();
    is(scalar(PVE::Storage::volume_size_info($cfg, 'dead-s3:backup/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', 5)), 0,
        'outage: volume_size_info of a volume only in the bucket is 0, not an error (GUI volume details)');
    like(join('', @w), qr/could not get the size/, '... with a warning');

    # The bucket is back: the sync carries the archive up with its sidecars.
    $pve->api('update', { storage => 'dead-s3', endpoint => $endpoint });
    $cfg = $pve->config();
    PVE::Storage::Custom::S3Plugin->sync_local('dead-s3', $cfg->{ids}->{'dead-s3'}, quiet_seconds => 0);
    ok($s3->object_exists($bucket, "dead/dump/$name"), 'bucket back: the sync uploaded the archive');
    ok($s3->object_exists($bucket, "dead/dump/$name.protected"), '... with the protection set during the outage');
    is($s3->get_object($bucket, "dead/dump/$name.notes"), 'written during an outage', '... and the notes');
    PVE::Storage::update_volume_attribute($cfg, $volid, 'protected', 0);
    PVE::Storage::vdisk_free($cfg, $volid);
    $pve->api('delete', { storage => 'dead-s3' });
}

# --- pvesm remove ---------------------------------------------------------------------------

$pve->api('delete', { storage => $storeid });
unlike(read_file($storage_cfg), qr/\Q$storeid\E/, 'pvesm remove: the section is gone from storage.cfg');
ok(!-e $secret_file, '... and the secret file');
ok(-f $key_file, '... but not the manifest key: a storage added again finds its backups verified');
my @removed = do { no warnings 'once'; @PVE::AccessControl::REMOVED_STORAGE_ACCESS };
is_deeply([grep { $_ eq $storeid } @removed], [$storeid], '... and its ACL entries were dropped');

unlike(read_file_if_exists("$tmp/host.log") // '', qr/\Q$sk\E/, 'the host log never contains the secret');
$s3->request('DELETE', "/$bucket");
done_testing();
