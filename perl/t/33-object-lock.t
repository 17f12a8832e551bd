#!/usr/bin/perl
# S3 Object Lock (issue 14 section 2) inside the real PVE storage code (PVE 9 and 8.4 from
# $PVE_UPSTREAM_DIR; the project's test double without it), against the real host and the test
# RadosGW: pvesm add refuses lock_days on a bucket without Object Lock (and leaves no secret), adds
# it on a bucket created with Object Lock; a backup is uploaded locked; volume_list shows
# "locked until" in the notes; vdisk_free (the GUI's Remove) and prune_backups keep it with a
# warning instead of failing.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use File::Path qw(make_path);
use Test::More;

use FileBytes qw(write_file);
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();

my $pve = PVEUpstream::setup();

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'lock', timeout => 600);
my ($endpoint, $region, $ak, $sk, $plain, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';

# Object Lock exists only from a bucket's creation on
my $locked = "$plain-lk";
my $r = $s3->request('PUT', "/$locked", undef, '', { 'x-amz-bucket-object-lock-enabled' => 'true' });
die "create $locked: $r->{status} $r->{content}\n" if !$r->{success};

my $storage_cfg = "$pve->{etc_pve}/storage.cfg";
my %add = (
    storage => 'lk-s3', type => 's3', bucket => $plain, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    content => 'backup', path => "$tmp/cache", lock_days => 1,
);

eval { $pve->api('create', \%add) };
like($@, qr/bucket '\Q$plain\E' has no S3 Object Lock.*remove lock_days/, 'pvesm add --lock_days on a bucket without Object Lock: refused, naming the bucket');
my $text = -e $storage_cfg ? do { local (@ARGV, $/) = $storage_cfg; <> } : '';
unlike($text, qr/lk-s3/, '... no storage.cfg section');
ok(!-e "$pve->{etc_pve}/priv/storage/lk-s3.pw", '... and no secret file left');

# pvesm set --lock_days on a storage that exists: PVE hands the hook only the changed options,
# and the bucket is the storage's own
my %unlocked = (%add, storage => 'pl-s3', prefix => 'pl/');
delete $unlocked{lock_days};
$pve->api('create', \%unlocked);
eval { $pve->api('update', { storage => 'pl-s3', lock_days => 1 }) };
like($@, qr/bucket '\Q$plain\E' has no S3 Object Lock.*remove lock_days/, 'pvesm set --lock_days on a bucket without Object Lock: refused, naming the bucket');
ok(!defined($pve->config()->{ids}->{'pl-s3'}->{lock_days}), '... and storage.cfg keeps no lock_days');
$pve->api('delete', { storage => 'pl-s3' });

my $res = $pve->api('create', { %add, bucket => $locked });
is_deeply($res, { storage => 'lk-s3', type => 's3' }, 'pvesm add --lock_days on a bucket with Object Lock: created');
my $cfg = $pve->config();
is($cfg->{ids}->{'lk-s3'}->{lock_days}, 1, '... lock_days in storage.cfg');

my $dump = PVE::Storage::get_backup_dir($cfg, 'lk-s3');
my @names = map { sprintf('vzdump-qemu-100-2024_01_%02d-10_00_00.vma.zst', $_) } (1, 2);
write_file("$dump/$_", "VMA $_\n" x 100) for @names;
PVE::Storage::update_volume_attribute($cfg, "lk-s3:backup/$names[0]", 'notes', 'first');
PVE::Storage::Custom::S3Plugin->sync_local('lk-s3', $cfg->{ids}->{'lk-s3'}, quiet_seconds => 0);
ok($s3->object_exists($locked, "pve/dump/$_"), "uploaded $_") for @names;

my $list = PVE::Storage::volume_list($cfg, 'lk-s3', 100, 'backup');
like($_->{notes}, qr/\[locked until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(GOVERNANCE\)\]$/, "volume_list: $_->{volid} shows its lock") for @$list;
like($list->[0]->{notes}, qr/^first \[locked until/, '... after the notes');

{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    eval { PVE::Storage::vdisk_free($cfg, "lk-s3:backup/$names[0]") };
    is($@, '', 'vdisk_free of a locked backup does not fail');
    like(join('', @w), qr/kept volume 'backup\/\Q$names[0]\E' on 'lk-s3': locked until/, '... it warns that the backup is kept and until when');
}
ok($s3->object_exists($locked, "pve/dump/$names[0]"), '... the archive is still there');
ok($s3->object_exists($locked, "pve/dump/$names[0].notes"), '... with its notes');

my @log;
my $marks = eval { PVE::Storage::prune_backups($cfg, 'lk-s3', { 'keep-last' => 1 }, 100, 'qemu', 0, sub { push @log, "$_[0]: $_[1]" }) };
is($@, '', 'prune_backups with a locked backup to remove does not fail');
like(join("\n", @log), qr/warn: kept backup 'lk-s3:backup\/\Q$names[0]\E': locked until/, '... and logs why it was kept');
ok($s3->object_exists($locked, "pve/dump/$names[0]"), '... the locked archive stays');

$pve->api('delete', { storage => 'lk-s3' });

# GOVERNANCE yields to the owner's bypass: every version goes, then both buckets
my $v = $s3->request('GET', "/$locked", { versions => '' });
while ($v->{content} =~ m{<(?:Version|DeleteMarker)>.*?<Key>(.*?)</Key>.*?<VersionId>(.*?)</VersionId>.*?</(?:Version|DeleteMarker)>}gs) {
    $s3->request('DELETE', "/$locked/$1", { versionId => $2 }, '', { 'x-amz-bypass-governance-retention' => 'true' });
}
$s3->request('DELETE', "/$locked");
$s3->drop_bucket($plain);
done_testing();
