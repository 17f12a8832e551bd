#!/usr/bin/perl
# Archived backups (issue 14 section 1) as PVE sees them, inside the real PVE storage code (PVE 9
# and 8.4 from $PVE_UPSTREAM_DIR; the project's test double without it), against the real host and
# the test RadosGW behind the project's fault proxy, whose archive-tier mode answers for chosen
# keys as AWS documents an archived object (test/helpers/archive-tier.ts):
#
#   volume_list (the GUI's Backups view) shows the state before the notes: "[archived (GLACIER)]",
#   "[restoring (GLACIER)]", "[restored until DATE (GLACIER)]";
#   abs_filesystem_path (activate_volume: qmrestore/pct restore of the classic path) of an archived
#   backup requests its restore with the storage's restore_tier/restore_days, once, and dies with
#   one line naming the command that shows when it is done; once restored the same call gives the
#   file, byte for byte;
#   the Backup Provider's restore_vm_init (PVE's restore of a VM backup through the provider) dies
#   with the same kind of line and asks nothing again while the restore runs.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use FileBytes qw(read_file write_file);
use HostGateway;
use FaultProxy;
use PVEUpstream;

HostGateway::skip_unless_ready();
my $pve = PVEUpstream::setup(backup_provider => '1');

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'arch', timeout => 600);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';
my $proxy = FaultProxy->start($endpoint);

my $storeid = 'ar-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $proxy->{url}, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    content => 'backup', path => "$tmp/cache", restore_tier => 'Bulk', restore_days => 2,
});
my $cfg = $pve->config();
my $scfg = $cfg->{ids}->{$storeid};

my $dump = PVE::Storage::get_backup_dir($cfg, $storeid);
my ($vm, $other) = ('vzdump-qemu-100-2024_01_01-10_00_00.vma.zst', 'vzdump-qemu-100-2024_01_02-10_00_00.vma.zst');
my %bytes = map { ($_ => join('', map { chr(($_ * 7) % 256) } 1 .. 70000) . $_) } ($vm, $other);
write_file("$dump/$_", $bytes{$_}) for ($vm, $other);
PVE::Storage::update_volume_attribute($cfg, "$storeid:backup/$vm", 'notes', "before the upgrade\nsecond line");
PVE::Storage::Custom::S3Plugin->sync_local($storeid, $scfg, quiet_seconds => 0);
ok($s3->object_exists($bucket, "pve/dump/$_"), "uploaded $_") for ($vm, $other);
# no local copy: a restore must fetch it from the bucket
PVE::Storage::Custom::S3Plugin->remove_local($scfg, "backup/$_") for ($vm, $other);

$proxy->send({ archive => { re => "^pve/dump/\Q$vm\E\$", storageClass => 'GLACIER', restoreMs => 600000 } });
is_deeply($proxy->restores(), [], 'the fault proxy answers for the backup as AWS does for one in GLACIER');

sub notes_of {
    my $list = PVE::Storage::volume_list($cfg, $storeid, 100, 'backup');
    return { map { ($_->{volid} =~ s/^\Q$storeid\E:backup\///r => $_->{notes}) } @$list };
}

my $notes = notes_of();
is($notes->{$vm}, '[archived (GLACIER)] before the upgrade', 'volume_list: the archived backup says so before its notes (first line)');
ok(!defined($notes->{$other}), '... one that is not archived has no such word');

# --- the classic path: activate_volume -------------------------------------------------------------

my $path = "$dump/$vm";
my $expect_line = qr/^backup '\Q$vm\E' is archived in GLACIER: it is not readable until restored; a restore was requested at tier Bulk, typically ready in 5-12 hours; start this restore again once it is done: 'pve-s3-restore --storage \Q$storeid\E --list --vmid 100' shows it as 'restored until DATE' then\n\z/;
eval { PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$vm") };
my $err = $@;
like($err, $expect_line, 'abs_filesystem_path (activate_volume) of an archived backup: one line naming the tier, the time and the command');
unlike($err, qr/ at \S+ line \d+/, '... without a Perl stack or location');
my $restores = $proxy->restores();
is_deeply([map { [$_->{key}, $_->{tier}, $_->{days}] } @$restores], [["pve/dump/$vm", 'Bulk', 2]], "... the restore was requested with the storage's restore_tier and restore_days");
ok(!-e $path, '... and nothing was written to the cache');

is(notes_of()->{$vm}, '[restoring (GLACIER)] before the upgrade', 'volume_list while the restore runs: restoring');
eval { PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$vm") };
like($@, qr/^backup '\Q$vm\E' is archived in GLACIER: it is not readable until restored; its restore was requested before and is still running; start this restore again once it is done: .*\n\z/,
    'a second activation while it runs: the same kind of line');
is(scalar(@{ $proxy->restores() }), 1, '... and no second restore request');

# --- the Backup Provider's restore ----------------------------------------------------------------

SKIP: {
    skip "$pve->{label} has no backup providers", 3 if !PVE::Storage->can('new_backup_provider');
    my @log;
    my $provider = PVE::Storage::new_backup_provider($cfg, $storeid, sub { push @log, "$_[0]: $_[1]" });
    my ($mechanism) = $provider->restore_get_mechanism("backup/$vm");
    is($mechanism, 'qemu-img', "the provider restores $vm with qemu-img");
    eval { $provider->restore_vm_init("backup/$vm") };
    like($@, qr/^backup '\Q$vm\E' is archived in GLACIER: it is not readable until restored; its restore was requested before and is still running; start this restore again once it is done: 'pve-s3-restore --storage \Q$storeid\E --list --vmid 100' shows it as 'restored until DATE' then\n\z/,
        'restore_vm_init (the provider restore) of the archived backup: the same one line');
    is(scalar(@{ $proxy->restores() }), 1, '... and no second restore request');
}

# --- restored ------------------------------------------------------------------------------------

$proxy->send({ finish => "pve/dump/$vm" });
like(notes_of()->{$vm}, qr/^\[restored until \d{4}-\d\d-\d\dT00:00:00Z \(GLACIER\)\] before the upgrade$/, 'volume_list once restored: until when');
my $got = eval { PVE::Storage::abs_filesystem_path($cfg, "$storeid:backup/$vm") };
is($@, '', 'abs_filesystem_path once restored: no error');
is($got, $path, '... the cache path');
ok(defined($got) && -f $got && read_file($got) eq $bytes{$vm}, '... holding the exact bytes');
is(scalar(@{ $proxy->restores() }), 1, '... and still one restore request in all');

$proxy->stop();
$pve->api('delete', { storage => $storeid });
$s3->drop_bucket($bucket);
done_testing();
