#!/usr/bin/perl
# A gateway that stops answering (`kill -STOP` on radosgw; a Ceph cluster that blocks writes when
# full), met through PVE's own entry points inside the real pve-storage of PVE 9 and 8.4: the
# connections stay open and take bytes, nothing answers. pvestatd's storage_info stays bounded
# and reports the storage inactive; volume_list and activate_volume (abs_filesystem_path) give up
# after stall_timeout (here request_timeout's minimum, 10 s, which it follows by default) with the
# host's message naming the endpoint, instead of 6 attempts of request_timeout each, and leave no
# file behind; once the gateway moves again both work. The freeze is a relay in front of the
# test RadosGW (t/lib/FreezeRelay.pm), so other tests keep their gateway. No clock in the test:
# that a command gave up after one stall shows in the host's message (the silence it waited, of
# the limit it names) and in what the frozen gateway was sent (the connections the relay accepted).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use JSON::PP;
use Test::More;

use FreezeRelay;
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();
# activate_volume downloads the archive (the classic path)
my $pve = PVEUpstream::setup(backup_provider => '0');

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'stall', timeout => 600);
$ENV{PVE_S3_AUTOSYNC} = '0';
my $relay = FreezeRelay->start($gw->{endpoint});

# What the frozen gateway was sent since $since (the relay's count then), counted from outside. It
# still accepts connections, an attempt that times out closes its own, and each host op is a new
# process: every attempt into the freeze is a connection the relay accepted. Giving up after one
# stall, each of $requests is tried once, twice when its first attempt timed out a hair before the
# limit (host/src/s3/stall.ts attemptMs); retrying as before, each would be tried 6 times.
sub sent_once_each {
    my ($since, $requests, $what) = @_;
    my $sent = $relay->accepted() - $since;
    cmp_ok($sent, '>=', 1, "... $what reached the frozen gateway");
    cmp_ok($sent, '<=', 2 * $requests, "... $what: $sent connection(s) for $requests request(s), each tried once, not 6 times");
}

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
# pvestatd, with the plugin's own bound of status (as on a node): the host answers by itself at the
# deadline the plugin gives it, and the plugin keeps that answer for the calls that follow
my %status_file = ($storeid => "$tmp/cache/.pve-s3/status.json", 'stall-default' => "$tmp/cache-default/.pve-s3/status.json");
unlink(values %status_file);
{
    local $ENV{PVE_S3_STATUS_TIMEOUT};
    my $since = $relay->accepted();
    my $info = PVE::Storage::storage_info($cfg, 'backup');
    my $bound_ms = PVE::Storage::Custom::S3Plugin::op_timeout('status') * 1000;
    for my $id (sort keys %status_file) {
        is($info->{$id}->{active}, 0, "frozen: storage_info (pvestatd) reports $id inactive");
        my $status = eval { JSON::PP->new->decode(PVE::Tools::file_get_contents($status_file{$id})) } // {};
        like($status->{error} // '', qr/^status did not finish within its deadline of \d+ ms: check that endpoint '\Q$relay->{url}\E' is reachable/,
            '... the host gave up at its deadline, naming the endpoint');
        my ($deadline_ms) = ($status->{error} // '') =~ m/deadline of (\d+) ms/;
        ok(defined($deadline_ms) && $deadline_ms < $bound_ms, "... within the plugin's bound of status ($bound_ms ms)");
    }
    sent_once_each($since, 2, 'storage_info (a HeadBucket per storage)');
}

my $since = $relay->accepted();
my $list = eval { PVE::Storage::volume_list($cfg, $storeid, undef, 'backup') };
my $err = $@;
like($err, $endpoint_re, 'frozen: volume_list fails with the host message naming the endpoint');
like($err, qr/check the gateway, then run this again \(stall_timeout 10 s\)/, '... and saying what to do');
unlike($err, qr/\Q$gw->{secret_key}\E/, '... never the secret');
# the host's own count of silence, which nothing resets in a freeze: one stall_timeout, where 6
# attempts of request_timeout would have been 60 s
like($err, qr/ for 1\d s during ListObjectsV2:/, '... after one stall of 10 s, not 6 attempts');
sent_once_each($since, 1, 'volume_list (its listing)');

# PVE lists inside an API call (the GUI's content view, pvesm list): with the defaults the host
# gives a silent gateway 30 s there, not the 300 s the plugin allows a listing
$since = $relay->accepted();
eval { PVE::Storage::volume_list($cfg, 'stall-default', undef, 'backup') };
$err = $@;
like($err, qr/no answer from \Q$relay->{url}\E for 3\d s during ListObjects.*\(PVE lists inside an API call, which waits at most 30 s of silence\)/, "frozen, defaults: volume_list gives up after 30 s of silence, saying why that long");
sent_once_each($since, 1, 'volume_list with the defaults');

# stall_timeout set with pvesm: a value out of range is refused naming key, value and range; a
# shorter one than the listing's cap is the one that applies, and the message names it
eval { $pve->api('update', { storage => 'stall-default', stall_timeout => 5 }) };
like($@, qr/stall_timeout.*\b10\b/s, 'pvesm set --stall_timeout 5: refused, naming the key and the minimum');
$pve->api('update', { storage => 'stall-default', stall_timeout => 15 });
$cfg = $pve->config();
is($cfg->{ids}->{'stall-default'}->{stall_timeout}, 15, 'pvesm set --stall_timeout 15: written');
eval { PVE::Storage::volume_list($cfg, 'stall-default', undef, 'backup') };
like($@, qr/no answer from \Q$relay->{url}\E for 1\d s during ListObjects.*\(stall_timeout 15 s\)/, 'frozen: volume_list gives up after the stall_timeout set, naming it');

# activate_storage probes the bucket afresh (with the tests' PVE_S3_STATUS_TIMEOUT its HeadBucket
# meets one stall), then the download asks the archive's HEAD, its manifest and its index's HEAD
# at once
unlink($status_file{$storeid});
$since = $relay->accepted();
my $path = eval { PVE::Storage::abs_filesystem_path($cfg, $volid) };
$err = $@;
like($err, qr/^no answer from \Q$relay->{url}\E for 1\d s during HeadObject of 'dump\/\Q$name\E': .*\(stall_timeout 10 s\)$/m,
    'frozen: activate_volume of a backup fails naming the endpoint, after one stall of 10 s');
sent_once_each($since, 4, 'activate_volume');
opendir(my $dh, $dump) or die "cannot read $dump: $!\n";
my @left = grep { !m/^\.\.?$/ } readdir($dh);
closedir($dh);
is_deeply(\@left, [], '... no file and no temporary file left in the dump dir');

# Remove in the GUI and `pvesm free` (free_image), and vzdump's prune (prune_backups: a listing,
# then a delete): the host's message names the endpoint, the request and the key, and the backup
# stays whole for the next try
eval { PVE::Storage::vdisk_free($cfg, $volid) };
$err = $@;
like($err, qr/^no answer from \Q$relay->{url}\E for 1\d s during HeadObject of 'dump\/\Q$name\E(\.protected)?': .*\(stall_timeout 10 s\)$/m,
    'frozen: vdisk_free (free_image) fails naming the endpoint, the request and the key');
unlike($err, qr/did not finish within its deadline|\Q$gw->{secret_key}\E/, '... not the deadline, never the secret');
my @logged;
eval { PVE::Storage::prune_backups($cfg, $storeid, { 'keep-last' => 1 }, undef, undef, 0, sub { push @logged, "$_[0]: $_[1]" }) };
like($@, qr/no answer from \Q$relay->{url}\E for 1\d s during ListObjectsV2: /, 'frozen: prune_backups fails at its listing after one stall, naming the endpoint');

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
