#!/usr/bin/perl
# Issue 11 §2 inside the real PVE code (the double without PVE_UPSTREAM_DIR): pvestatd calls
# storage_info every 10 s; the plugin's status starts the background sync of quiet pending files.
# pvestatd holds Perl handles of its own (sockets, its pid file, inotify, modules' files), so the
# test opens some before the first call. The sync must run its host to completion through the
# real run_command: the ISO ends up in the bucket, the outcome is recorded, and no process started
# for the storage outlives its job. No clock in the assertions: pvestatd's 10 s cadence is played,
# and the alarm ends a run in which something never finishes.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use IO::Socket::INET;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time sleep);

use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();
my $ROOT = $HostGateway::ROOT;

my $pve = PVEUpstream::setup();

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'bg', timeout => 600, log => 'storage-s3.log');
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
delete $ENV{PVE_S3_AUTOSYNC}; # the background jobs are what is tested

my $storeid = 'bg-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $endpoint, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    content => 'iso,vztmpl,backup', path => "$tmp/cache",
});
my $cfg = $pve->config();

# What a daemon holds: a listening socket, an open file, a pipe - Perl handles on fds >= 3.
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1) or die "listen: $!\n";
open(my $held_file, '<', $0) or die;
pipe(my $held_r, my $held_w) or die;
diag('Perl handles held by the caller on fds ' . join(',', map { fileno($_) } $listen, $held_file, $held_r, $held_w));

# A quiet pending ISO (uploaded through the GUI more than a minute ago).
my $iso_dir = PVE::Storage::get_iso_dir($cfg, $storeid);
my $iso = join('', map { chr($_ % 251) } 1 .. 1_500_000);
my $iso_file = "$iso_dir/installer.iso";
open(my $fh, '>', $iso_file) or die;
binmode($fh);
print $fh $iso;
close($fh);
utime(time() - 120, time() - 120, $iso_file);

# Everything this storage's jobs start carries this environment (the test's own temp dir).
my $marker = "PVE_S3_PRIV_DIR=$ENV{PVE_S3_PRIV_DIR}";
my %before;
sub storage_processes {
    my @pids;
    opendir(my $proc, '/proc') or die;
    for my $pid (grep { m/^\d+$/ && $_ != $$ } readdir($proc)) {
        open(my $env, '<', "/proc/$pid/environ") or next;
        local $/;
        my $e = <$env> // '';
        close($env);
        push @pids, $pid if !$before{$pid} && grep { $_ eq $marker } split(/\0/, $e);
    }
    closedir($proc);
    return @pids;
}
sub describe_processes {
    return join('; ', map {
        my $pid = $_;
        open(my $c, '<', "/proc/$pid/cmdline") or return "$pid (gone)";
        local $/;
        my $cmd = <$c> // '';
        $cmd =~ s/\0/ /g;
        "$pid: $cmd";
    } @_);
}

# The gateway, when this test started it (CI: no kept gateway), inherited the marker too: what
# carries it before the first storage_info call was not started for the storage.
%before = map { $_ => 1 } storage_processes();

my $key = 'pve/template/iso/installer.iso';
# the plugin's mark of a background sync started (at most one a minute)
my $sync_stamp = "$tmp/cache/.pve-s3/sync.stamp";
ok(!-e $sync_stamp, 'no background sync started before the first storage_info call');
my $t0 = time();
my ($cycles, $active_at, $started, $arrived) = (0);
# pvestatd's loop: storage_info every 10 s. The sync starts from status only while the bucket
# answers (on a loaded machine a probe can miss its 3 s bound: that cycle sees the storage
# inactive, as pvestatd would): the first cycle that sees it active must have started it. Twelve
# cycles bound the wait for the ISO.
while ($cycles < 12 && !defined($arrived)) {
    $cycles++;
    my $info = PVE::Storage::storage_info($cfg, 'iso');
    if ($info->{$storeid}->{active} && !defined($active_at)) {
        $active_at = $cycles;
        $started = -e $sync_stamp;
    }
    my $next = $t0 + 10 * $cycles;
    while (time() < $next) {
        if ($s3->object_exists($bucket, $key)) {
            $arrived = time() - $t0;
            last;
        }
        sleep(0.5);
    }
}
ok(defined($active_at), "storage_info reported the storage active (first in cycle " . ($active_at // '-') . ')');
ok(defined($arrived), 'the quiet pending ISO was uploaded by the background sync')
    or diag('still running: ' . describe_processes(storage_processes()));
diag(sprintf('ISO in the bucket %.1f s after the first storage_info call (pvestatd cycle %d)', $arrived, $cycles))
    if defined($arrived);
ok($started, '... started by the first storage_info call that found the bucket active');
is($s3->get_object($bucket, $key), $iso, '... byte for byte') if defined($arrived);

# No process started for the storage outlives its job: they end by themselves. One that never does
# (a host waiting for its request until the op's 24 h timeout, as before 67fd643) meets the
# alarm, which names it.
my @left = storage_processes();
{
    local $SIG{ALRM} = sub {
        my @alive = storage_processes();
        my $named = describe_processes(@alive);
        kill('KILL', @alive);
        die "test timed out; processes started for the storage still alive: $named\n";
    };
    while (@left) {
        sleep(0.5);
        @left = storage_processes();
    }
}
is_deeply(\@left, [], 'no process started for the storage outlives its job');

# The job's outcome is what an admin can look at (issue 11 §5): the state dir's last result.
my $state = "$tmp/cache/.pve-s3/sync-state.json";
my $rec = -f $state ? eval { JSON::PP->new->decode(do { local (@ARGV, $/) = $state; <> }) } : undef;
is(ref($rec) && $rec->{files}->{'iso/installer.iso'}->{result}, 'uploaded', 'the sync recorded its outcome for the ISO in the state dir');

# What an admin sees: pve-s3-maintenance --action status lists what waits locally.
my $MAINT = "$ROOT/host/bin/pve-s3-maintenance.js";
sub maintenance_status {
    my ($id) = @_;
    local $ENV{PVE_S3_STORAGE_CFG} = "$pve->{etc_pve}/storage.cfg";
    my $out = `node '$MAINT' --storage $id --action status 2>&1`;
    return ($? >> 8, $out);
}
my ($rc, $out) = maintenance_status($storeid);
is($rc, 0, 'maintenance status succeeds') or diag($out);
like($out, qr/^pending\s+none on this node \(last sync \d+ (?:s|min) ago\)$/m, '... and says nothing waits locally since the last sync');

# A storage whose bucket is away: its files wait, the sync's error is kept, status warns once.
$pve->api('create', {
    storage => 'away-s3', type => 's3', bucket => $bucket, endpoint => 'http://127.0.0.1:1', region => $region,
    access_key => $ak, secret_key => $sk, force_path_style => 1, content => 'iso', path => "$tmp/away",
});
$cfg = $pve->config();
my $old = "$tmp/away/template/iso/old.iso";
open($fh, '>', $old) or die;
print $fh "old iso\n";
close($fh);
utime(time() - 1200, time() - 1200, $old);
my $away = $cfg->{ids}->{'away-s3'};
eval { PVE::Storage::Custom::S3Plugin->sync_local('away-s3', $away, quiet_seconds => 60) };
my @w;
{
    local $SIG{__WARN__} = sub { push @w, @_ };
    PVE::Storage::storage_info($cfg, 'iso');
    PVE::Storage::storage_info($cfg, 'iso');
}
my @waiting = grep { m/not uploaded/ } @w;
is(scalar(@waiting), 1, 'status warns once (pvestatd logs it) about a file waiting for more than 15 minutes');
like($waiting[0] // '', qr/^storage 'away-s3': 1 local file\(s\) not uploaded to the bucket for more than 15 minutes \(oldest: iso\/old\.iso, 20 min; last sync failed: .*refused.*\) - see 'pve-s3-maintenance --storage away-s3 --action status'$/,
    '... naming the file, its age and the last sync error');
($rc, $out) = maintenance_status('away-s3');
isnt($rc, 0, 'maintenance status of the unreachable storage fails');
like($out, qr/^pending\s+1 local file\(s\) not in the bucket yet \(last sync \d+ (?:s|min) ago\)$/m, '... and still lists what waits locally');
like($out, qr/^iso\/old\.iso\s+8 B\s+20 min\s+\d+ (?:s|min) ago: FAILED: .*refused/mi, '... with its size, age and the sync error');
$pve->api('delete', { storage => 'away-s3' });
like(do { local (@ARGV, $/) = $ENV{PVE_S3_LOG_FILE}; <> } // '', qr/sync-local failed.*iso\/old\.iso/, 'the storage log has the failed sync');

# Leave the gateway clean.
PVE::Storage::vdisk_free($cfg, "$storeid:iso/installer.iso") if defined($arrived);
$s3->request('DELETE', "/$bucket");
$pve->api('delete', { storage => $storeid });
done_testing();
