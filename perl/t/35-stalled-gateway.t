#!/usr/bin/perl
# A gateway that stops answering (`kill -STOP` on radosgw; a Ceph cluster that blocks writes when
# full), met through PVE's own entry points inside the real pve-storage of PVE 9 and 8.4: the
# connections stay open and take bytes, nothing answers. pvestatd's storage_info stays bounded
# and reports the storage inactive; volume_list and activate_volume (abs_filesystem_path) give up
# after stall_timeout (here request_timeout's minimum, 10 s, which it follows by default) with the
# host's message naming the endpoint, instead of 6 attempts of request_timeout each, and leave no
# file behind; once the gateway moves again both work. The freeze is a relay in front of the
# test RadosGW (t/lib/FreezeRelay.pm), so other tests keep their gateway.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Time::HiRes qw(time);
use Test::More;

use FreezeRelay;
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();
$ENV{PVE_S3_BACKUP_PROVIDER} = '0'; # activate_volume downloads the archive (the classic path)
my $pve = PVEUpstream::per_version();
diag("running inside $pve->{label}");

$SIG{ALRM} = sub { die "test timed out\n" };
alarm(600);

my $tmp = $pve->{tmp};
my $gw = HostGateway::start("stall-$pve->{version}", "$tmp/host.log");
$ENV{PVE_S3_AUTOSYNC} = '0';
my $relay = FreezeRelay->start($gw->{endpoint});
# Well beyond one stall (10 s) and its last try, well below 6 attempts of 10 s.
my $BOUND = 45;

my $storeid = 'stall-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $gw->{bucket}, endpoint => $relay->{url},
    region => $gw->{region}, access_key => $gw->{access_key}, secret_key => $gw->{secret_key},
    force_path_style => 1, content => 'backup', path => "$tmp/cache", request_timeout => 10,
});
# the same bucket with the defaults (request_timeout 300 s): a listing inside an API call
$pve->api('create', {
    storage => 'stall-default', type => 's3', bucket => $gw->{bucket}, endpoint => $relay->{url},
    region => $gw->{region}, access_key => $gw->{access_key}, secret_key => $gw->{secret_key},
    force_path_style => 1, content => 'backup', path => "$tmp/cache-default",
});
my $cfg = $pve->config();
is($cfg->{ids}->{$storeid}->{request_timeout}, 10, 'pvesm add: request_timeout 10 (stall_timeout follows it)');

my $name = 'vzdump-qemu-100-2026_12_01-10_00_00.vma.zst';
my $dump = PVE::Storage::get_backup_dir($cfg, $storeid);
{
    open(my $fh, '>', "$dump/$name") or die "cannot write: $!\n";
    print $fh 'VMA' x 100000;
    close($fh);
}
PVE::Storage::Custom::S3Plugin->sync_local($storeid, $cfg->{ids}->{$storeid}, quiet_seconds => 0);
ok($gw->{s3}->object_exists($gw->{bucket}, "dump/$name"), 'a backup in the bucket');
ok(!-e "$dump/$name", '... and not on this node');
my $volid = "$storeid:backup/$name";
my $endpoint_re = qr/no answer from \Q$relay->{url}\E for \d+ s during \w+/;

$relay->freeze();
unlink("$tmp/cache/.pve-s3/status.json");
{
    local $ENV{PVE_S3_STATUS_TIMEOUT}; # the plugin's own bound, as on a node
    my $t0 = time();
    my $info = PVE::Storage::storage_info($cfg, 'backup');
    my $took = time() - $t0;
    is($info->{$storeid}->{active}, 0, 'frozen: storage_info (pvestatd) reports the storage inactive');
    cmp_ok($took, '<', 15, "... within its bound (took ${\ sprintf('%.1f', $took)} s)");
}

my $t0 = time();
my $list = eval { PVE::Storage::volume_list($cfg, $storeid, undef, 'backup') };
my $err = $@;
my $took = time() - $t0;
like($err, $endpoint_re, 'frozen: volume_list fails with the host message naming the endpoint');
like($err, qr/check the gateway, then run this again \(stall_timeout 10 s\)/, '... and saying what to do');
unlike($err, qr/\Q$gw->{secret_key}\E/, '... never the secret');
cmp_ok($took, '<', $BOUND, "... after one stall, not 6 attempts (took ${\ sprintf('%.1f', $took)} s)");

# PVE lists inside an API call (the GUI's content view, pvesm list): with the defaults the host
# gives a silent gateway 30 s there, not the 300 s the plugin allows a listing
$t0 = time();
eval { PVE::Storage::volume_list($cfg, 'stall-default', undef, 'backup') };
$err = $@;
$took = time() - $t0;
like($err, qr/no answer from \Q$relay->{url}\E for 3\d s during ListObjects.*\(PVE lists inside an API call, which waits at most 30 s of silence\)/, "frozen, defaults: volume_list gives up after 30 s of silence, saying why that long");
cmp_ok($took, '<', 100, "... well before the plugin's 300 s (took ${\ sprintf('%.1f', $took)} s)");

# stall_timeout set with pvesm: a value out of range is refused naming key, value and range; a
# shorter one than the listing's cap is the one that applies, and the message names it
eval { $pve->api('update', { storage => 'stall-default', stall_timeout => 5 }) };
like($@, qr/stall_timeout.*\b10\b/s, 'pvesm set --stall_timeout 5: refused, naming the key and the minimum');
$pve->api('update', { storage => 'stall-default', stall_timeout => 15 });
$cfg = $pve->config();
is($cfg->{ids}->{'stall-default'}->{stall_timeout}, 15, 'pvesm set --stall_timeout 15: written');
eval { PVE::Storage::volume_list($cfg, 'stall-default', undef, 'backup') };
like($@, qr/no answer from \Q$relay->{url}\E for 1\d s during ListObjects.*\(stall_timeout 15 s\)/, 'frozen: volume_list gives up after the stall_timeout set, naming it');

$t0 = time();
my $path = eval { PVE::Storage::abs_filesystem_path($cfg, $volid) };
$err = $@;
$took = time() - $t0;
like($err, $endpoint_re, 'frozen: activate_volume of a backup fails naming the endpoint');
cmp_ok($took, '<', $BOUND, "... after one stall (took ${\ sprintf('%.1f', $took)} s)");
opendir(my $dh, $dump) or die "cannot read $dump: $!\n";
my @left = grep { !m/^\.\.?$/ } readdir($dh);
closedir($dh);
is_deeply(\@left, [], '... no file and no temporary file left in the dump dir');

# Remove in the GUI and `pvesm free` (free_image), and vzdump's prune (prune_backups: a listing,
# then a delete): the host's message names the endpoint, the request and the key, and the backup
# stays whole for the next try
eval { PVE::Storage::vdisk_free($cfg, $volid) };
$err = $@;
like($err, qr/^no answer from \Q$relay->{url}\E for \d+ s during HeadObject of 'dump\/\Q$name\E(\.protected)?': .*\(stall_timeout 10 s\)$/m,
    'frozen: vdisk_free (free_image) fails naming the endpoint, the request and the key');
unlike($err, qr/did not finish within its deadline|\Q$gw->{secret_key}\E/, '... not the deadline, never the secret');
my @logged;
eval { PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, undef, undef, 0, sub { push @logged, "$_[0]: $_[1]" }) };
like($@, $endpoint_re, 'frozen: prune_backups fails at its listing, naming the endpoint');

$relay->thaw();
unlink("$tmp/cache/.pve-s3/status.json");
$list = PVE::Storage::volume_list($cfg, $storeid, undef, 'backup');
is_deeply([map { $_->{volid} } @$list], [$volid], 'thawed: volume_list works again');
$path = PVE::Storage::abs_filesystem_path($cfg, $volid);
is(-s $path, 300000, 'thawed: activate_volume downloads the backup');

ok($gw->{s3}->object_exists($gw->{bucket}, "dump/$name.s3manifest"), "thawed: the frozen delete left the backup's manifest");
PVE::Storage::vdisk_free($cfg, $volid);
is_deeply(PVE::Storage::volume_list($cfg, $storeid, undef, 'backup'), [], 'thawed: vdisk_free removes it');
is_deeply($gw->{s3}->list_keys($gw->{bucket}, 'dump/'), [], '... with everything of it');

$relay->stop();
$gw->{s3}->drop_bucket($gw->{bucket});
done_testing();
