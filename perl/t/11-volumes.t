#!/usr/bin/perl
# Volume methods against the recording stub host: listing (bucket + pending local files),
# activation (download, cached copy reuse), deletion, size, attributes, prune, refusals, sync.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;
use Encode ();
use JSON::PP;
use Fcntl ();
use File::Path qw(make_path);
use POSIX qw(strftime);
use Time::Local qw(timelocal);

use S3PluginTest;

$SIG{ALRM} = sub { die "test timed out\n" };
alarm(120);

my $t = setup_storage();
my ($storeid, $scfg) = @$t{qw(storeid scfg)};
my $p = $scfg->{path};
$PLUGIN->activate_storage($storeid, $scfg, {}) if 0;
PVE::Storage::Custom::S3Plugin::ensure_cache_dirs($scfg);
PVE::Storage::Plugin::activate_storage($PLUGIN, $storeid, $scfg, {});

my $json = JSON::PP->new->utf8->canonical;
my $T = JSON::PP::true;
my $F = JSON::PP::false;

sub record {
    my ($vtype, $name, %r) = @_;
    write_file("$p/.pve-s3/records/$vtype/$name.json", $json->encode({ volname => "$vtype/$name", etag => 'e', %r }));
}

my $b100 = 'vzdump-qemu-100-2024_01_01-00_00_00.vma.zst';
my $b100_ctime = timelocal(0, 0, 0, 1, 0, 2024);

# --- list_volumes ---------------------------------------------------------------------------

stub_ok('list', { volumes => [
    { volname => "backup/$b100", content => 'backup', size => 1234, ctime => $b100_ctime, mtime => $b100_ctime + 60,
      etag => 'abc', format => 'vma.zst', vmid => 100, subtype => 'qemu', notes => "first line\nsecond",
      protected => $T, verified => $T },
    { volname => 'backup/vzdump-lxc-101-2024_02_02-00_00_00.tar.zst', content => 'backup', size => 10,
      ctime => 1706832000, mtime => 1706832000, etag => 'x', format => 'tar.zst', vmid => 101, subtype => 'lxc',
      protected => $F, verified => $F },
    { volname => 'iso/debian.iso', content => 'iso', size => 99, ctime => 5, mtime => 5, etag => 'i', format => 'iso', verified => $T },
] });

# A vzdump archive the hook has not uploaded yet, with local sidecars, plus noise to skip.
my $pending = 'vzdump-lxc-102-2024_03_03-03_03_03.tar.zst';
write_file("$p/dump/$pending", 'PENDING');
write_file("$p/dump/$pending.notes", "local notes\nmore");
write_file("$p/dump/$pending.protected", '');
write_file("$p/dump/vzdump-lxc-102-2024_03_03-03_03_03.log", 'log');
write_file("$p/dump/vzdump-qemu-105-2024_03_03-03_03_03.vma.dat", 'partial');
write_file("$p/template/iso/debian.iso.pve-s3-tmp.1234", 'partial download');
write_file("$p/template/iso/local-only.iso", 'ISO');
utime(1700000000, 1700000000, "$p/template/iso/local-only.iso");
# A cached copy of a bucket object: a matching record makes it "not pending".
write_file("$p/template/iso/debian.iso", 'x' x 99);
utime(5, 5, "$p/template/iso/debian.iso");
record('iso', 'debian.iso', size => 99, mtime => 5);
# A stale cached copy whose object is gone from the bucket: not listed.
write_file("$p/template/iso/deleted-elsewhere.iso", 'old');
utime(7, 7, "$p/template/iso/deleted-elsewhere.iso");
record('iso', 'deleted-elsewhere.iso', size => 3, mtime => 7);

my $list = $PLUGIN->list_volumes($storeid, $scfg, undef, ['backup', 'iso', 'images', 'rootdir']);
is_deeply(last_request()->{request}->{args}, { content => ['backup', 'iso'] }, 'list asks only for our content types');
is_deeply([map { $_->{volid} } @$list], [
    "$storeid:backup/vzdump-lxc-101-2024_02_02-00_00_00.tar.zst",
    "$storeid:backup/$pending",
    "$storeid:backup/$b100",
    "$storeid:iso/debian.iso",
    "$storeid:iso/local-only.iso",
], 'bucket volumes plus pending local files, sorted, no partials, no stale copies, no duplicates');
my %item = map { $_->{volid} => $_ } @$list;
is_deeply($item{"$storeid:backup/$b100"}, {
    volid => "$storeid:backup/$b100", content => 'backup', format => 'vma.zst', size => 1234,
    ctime => $b100_ctime, vmid => 100, subtype => 'qemu', notes => 'first line', protected => 1,
    verification => { state => 'ok' },
}, 'backup item: PVE shape, first notes line, protected, verification');
ok(!exists($item{"$storeid:backup/vzdump-lxc-101-2024_02_02-00_00_00.tar.zst"}->{verification}), 'no manifest → no verification state (GUI: None), not "failed"');
ok(!exists($item{"$storeid:backup/vzdump-lxc-101-2024_02_02-00_00_00.tar.zst"}->{protected}), 'unprotected backups carry no protected key');
is_deeply($item{"$storeid:backup/$pending"}, {
    volid => "$storeid:backup/$pending", content => 'backup', format => 'tar.zst', size => 7,
    ctime => timelocal(3, 3, 3, 3, 2, 2024), vmid => 102, subtype => 'lxc', notes => 'local notes', protected => 1,
}, 'pending backup item from the local file and its sidecars');
is_deeply($item{"$storeid:iso/local-only.iso"}, { volid => "$storeid:iso/local-only.iso", content => 'iso', format => 'iso', size => 3, ctime => 1700000000 },
    'pending ISO item');

stub_ok('list', { volumes => [] });
$list = $PLUGIN->list_volumes($storeid, $scfg, 102, ['backup', 'iso']);
is_deeply(last_request()->{request}->{args}, { content => ['backup'], vmid => 102 }, 'vmid filter: backups only');
is_deeply([map { $_->{volid} } @$list], ["$storeid:backup/$pending"], 'vmid filter applies to pending files');

# PVE's base plugin still lists snippets with a vmid (they belong to no guest): one listing
# without the host's vmid filter, narrowed to the guest's backups here.
stub_ok('list', { volumes => [
    { volname => 'snippets/hook.sh', content => 'snippets', size => 3, ctime => 9, mtime => 9, etag => 's', format => 'snippet' },
    { volname => "backup/$b100", content => 'backup', size => 1, ctime => 1, mtime => 1, etag => 'b', format => 'vma.zst', vmid => 100, subtype => 'qemu', protected => $F },
] });
$list = $PLUGIN->list_volumes($storeid, $scfg, 102, ['backup', 'iso', 'vztmpl', 'snippets']);
is_deeply(last_request()->{request}->{args}, { content => ['backup', 'snippets'] }, 'vmid with snippets: backups and snippets asked for, unfiltered');
is_deeply([map { $_->{volid} } @$list], ["$storeid:backup/$pending", "$storeid:snippets/hook.sh"],
    '... the guest\'s backups (not guest 100\'s) and the snippets, as PVE lists them');

clear_requests();
is_deeply($PLUGIN->list_volumes($storeid, $scfg, undef, ['images']), [], 'no supported types: nothing, no host run');
is(scalar(@{ stub_requests() }), 0, '... and no host call');
is_deeply($PLUGIN->list_images($storeid, $scfg, 100), [], 'list_images is empty');

stub_err('list', 'AccessDenied', "access denied to bucket 'pve-bucket': check access_key/secret_key");
eval { $PLUGIN->list_volumes($storeid, $scfg, undef, ['backup']) };
is($@, "access denied to bucket 'pve-bucket': check access_key/secret_key\n", 'list error surfaces as the host message');

# --- activate_volume ------------------------------------------------------------------------

clear_requests();
my $vol = 'backup/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst';
stub_ok('download', { path => "$p/dump/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst", size => 5, etag => 'e',
    mtime => 1, verified => $T, downloaded => $T }, write_dest => 'BYTES');
$PLUGIN->activate_volume($storeid, $scfg, $vol, undef, {});
is_deeply(last_request()->{request}->{args}, { volname => $vol, dest => "$p/dump/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst" },
    'download request: volname and the path() destination');
is(last_request()->{request}->{deadline_ms}, 86399000, 'download has the long timeout');
is(read_file("$p/dump/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst"), 'BYTES', 'the file is there after activation');
my ($state) = PVE::Storage::Custom::S3Plugin::local_state($scfg, 'backup', 'vzdump-qemu-200-2024_01_01-00_00_00.vma.zst',
    "$p/dump/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst");
is($state, 'cached', 'a downloaded file is a cached copy (record written), never mistaken for a pending upload');

clear_requests();
write_file("$p/template/iso/cached.iso", 'CACHED');
utime(100, 100, "$p/template/iso/cached.iso");
record('iso', 'cached.iso', size => 6, mtime => 100);
utime(1, 1, "$p/.pve-s3/records/iso/cached.iso.json");
my $cached_obj = { volname => 'iso/cached.iso', content => 'iso', size => 6, ctime => 5, mtime => 5, etag => 'e', format => 'iso' };
stub_ok('stat', { volume => $cached_obj });
$PLUGIN->activate_volume($storeid, $scfg, 'iso/cached.iso', undef, {});
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['stat'],
    'a cached copy (size/mtime match the record) whose object is unchanged (etag, size) is reused: one HEAD, no download');
is(last_request()->{request}->{deadline_ms}, 9000, '... checked with a short timeout');
is(read_file("$p/template/iso/cached.iso"), 'CACHED', '... the copy is untouched');
ok((stat("$p/.pve-s3/records/iso/cached.iso.json"))[9] > 1, '... and marked as used now');

# The ISO was replaced in the bucket under the same name (another node uploaded a new one).
clear_requests();
stub_ok('stat', { volume => { %$cached_obj, etag => 'new', size => 9 } });
stub_ok('download', { etag => 'new', size => 9, verified => $T, downloaded => $T }, write_dest => 'NEWER ISO');
$PLUGIN->activate_volume($storeid, $scfg, 'iso/cached.iso', undef, {});
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['stat', 'download'], 'a stale cached copy is downloaded again');
is(last_request()->{request}->{args}->{force}, $T, '... with force (the host replaces it atomically)');
is(read_file("$p/template/iso/cached.iso"), 'NEWER ISO', '... and the new bytes are served');
my (undef, undef, $newrec) = PVE::Storage::Custom::S3Plugin::local_state($scfg, 'iso', 'cached.iso', "$p/template/iso/cached.iso");
is($newrec->{etag}, 'new', '... recorded as a copy of the new object');

# The bucket cannot be asked: the cached copy is used (VM start during an outage), with a warning.
clear_requests();
stub_err('stat', 'Timeout', 'stat did not finish within its deadline');
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    $PLUGIN->activate_volume($storeid, $scfg, 'iso/cached.iso', undef, {});
    like(join('', @w), qr/could not check the cached copy of '\Q$storeid\E:iso\/cached.iso'.*deadline.*using it/,
        'unreachable bucket: the cached copy is used, with a warning naming the cause');
}
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['stat'], '... and no download is tried');

# An outage status already knows about is not waited for again.
clear_requests();
PVE::Storage::Custom::S3Plugin::write_status_cache($scfg, { active => 0, total => 0, used => 0, avail => 0,
    error => 'cannot reach http://127.0.0.1:7480: connection refused', transient => 1 }, $storeid);
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    $PLUGIN->activate_volume($storeid, $scfg, 'iso/cached.iso', undef, {});
    like(join('', @w), qr/not reachable \(cannot reach .*\); using the cached copy of '\Q$storeid\E:iso\/cached.iso' unchecked/,
        'known outage: the cached copy is used without asking the host');
}
is(scalar(@{ stub_requests() }), 0, '... no host run at all');
unlink("$p/.pve-s3/status.json");

# Deleted from the bucket (by another node): the volume no longer exists.
stub_err('stat', 'NoSuchKey', "iso 'cached.iso' not found in bucket 'pve-bucket'");
eval { $PLUGIN->activate_volume($storeid, $scfg, 'iso/cached.iso', undef, {}) };
is($@, "iso 'cached.iso' not found in bucket 'pve-bucket'\n", 'a cached copy of a deleted object is not served');
clear_requests();

$PLUGIN->activate_volume($storeid, $scfg, "backup/$pending", undef, {});
is(scalar(@{ stub_requests() }), 0, 'a pending local file is used as is');

stub_ok('download', { verified => $T, downloaded => $T }, write_dest => '#!/bin/sh');
$PLUGIN->activate_volume($storeid, $scfg, 'snippets/hook.sh', undef, {});
ok(-x "$p/snippets/hook.sh", 'snippets are made executable (hookscripts)');
# Issue 10 §7: the host refuses what no manifest signed with the storage's key vouches for; the
# plugin passes its message (which names the commands that let the admin proceed) on as is.
stub_err('download', 'Unverified', "'$storeid:snippets/evil.sh' is unverified (its manifest is not signed): refused, nothing downloaded. If you know it is yours, sign it after checking its bytes: pve-s3-maintenance --storage $storeid --action adopt --source snippets/evil.sh");
eval { $PLUGIN->activate_volume($storeid, $scfg, 'snippets/evil.sh', undef, {}) };
like($@, qr/^'\Q$storeid\E:snippets\/evil\.sh' is unverified .*--action adopt --source snippets\/evil\.sh\n\z/, 'an unverified volume: activation fails with the host\'s message');
ok(!-e "$p/snippets/evil.sh", '... and nothing is on disk to run');

stub_err('download', 'NoSuchKey', "iso 'missing.iso' not found in bucket 'pve-bucket'");
eval { $PLUGIN->activate_volume($storeid, $scfg, 'iso/missing.iso', undef, {}) };
is($@, "iso 'missing.iso' not found in bucket 'pve-bucket'\n", 'missing object: host message');
ok(!-e "$p/template/iso/missing.iso", 'nothing under the final name');

stub_ok('download', { verified => $T, downloaded => $T }); # claims success, writes nothing
eval { $PLUGIN->activate_volume($storeid, $scfg, 'iso/liar.iso', undef, {}) };
like($@, qr/did not produce/, 'a download that leaves no file is an error');

# Through the core, as a restore does.
$PVE::Storage::CONFIG = { ids => { $storeid => { %$scfg, type => 's3' } } };
stub_ok('status', { active => $T, total => 1, used => 0, avail => 1 });
stub_ok('activate', { reachable => $T });
stub_ok('download', { verified => $T, downloaded => $T }, write_dest => 'RESTORE');
my $abs = PVE::Storage::abs_filesystem_path(PVE::Storage::config(), "$storeid:backup/vzdump-lxc-300-2024_01_01-00_00_00.tar");
is(read_file($abs), 'RESTORE', 'abs_filesystem_path (restore path) yields the downloaded file');

# --- volume_size_info -----------------------------------------------------------------------

stub_ok('stat', { volume => { volname => $vol, content => 'backup', size => 4242, ctime => 77, mtime => 78 } });
{
    my ($vpath) = $PLUGIN->filesystem_path($scfg, $vol);
    my $n = scalar(@{ stub_requests() });
    is(scalar($PLUGIN->volume_size_info($scfg, $storeid, $vol, 5)), -s $vpath, 'a local file answers volume_size_info');
    is(scalar(@{ stub_requests() }), $n, '... without asking the bucket');
    rename($vpath, "$vpath.away") or die;
    is(scalar($PLUGIN->volume_size_info($scfg, $storeid, $vol, 5)), 4242, 'without a local file: from the object, scalar');
    is(last_request()->{request}->{deadline_ms}, 4000, '... within the caller\'s timeout (5 s)');
    is_deeply([$PLUGIN->volume_size_info($scfg, $storeid, $vol, 5)], [4242, 'raw', 4242, undef, 77], 'list context');
    rename("$vpath.away", $vpath) or die;
}
stub_err('stat', 'NoSuchKey', 'not found');
is(scalar($PLUGIN->volume_size_info($scfg, $storeid, "backup/$pending", 5)), 7, 'pending file: local size');
eval { $PLUGIN->volume_size_info($scfg, $storeid, 'iso/none.iso', 5) };
is($@, "not found\n", 'missing everywhere: host message');
stub_reply('stat', { envelope => { ok => json_false(), error => { code => 'ConnectionRefused', message => 'cannot reach', retryable => json_true() } } });
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    is(scalar(eval { $PLUGIN->volume_size_info($scfg, $storeid, 'iso/none.iso', 5) }), 0,
        'bucket unreachable: size 0, no error (the GUI volume details still open)');
    like(join('', @w), qr/could not get the size of 's3test:iso\/none\.iso' from the bucket \(cannot reach\)/, '... with a warning');
}

# --- attributes -----------------------------------------------------------------------------

stub_ok('get-attr', { value => "full\nnotes" });
is($PLUGIN->get_volume_attribute($scfg, $storeid, $vol, 'notes'), "full\nnotes", 'notes: full text');
is_deeply(last_request()->{request}->{args}, { volname => $vol, attr => 'notes' }, 'get-attr request');
stub_ok('get-attr', { value => $T });
is($PLUGIN->get_volume_attribute($scfg, $storeid, $vol, 'protected'), 1, 'protected: 1');
stub_ok('get-attr', { value => $F });
is($PLUGIN->get_volume_attribute($scfg, $storeid, $vol, 'protected'), 0, 'unprotected: 0');
clear_requests();
is($PLUGIN->get_volume_attribute($scfg, $storeid, 'iso/debian.iso', 'protected'), undef, 'non-backup: undef');
is($PLUGIN->get_volume_attribute($scfg, $storeid, $vol, 'colour'), undef, 'unknown attribute: undef');
is(scalar(@{ stub_requests() }), 0, '... without asking the host');
stub_err('get-attr', 'NoSuchKey', 'nope');
is($PLUGIN->get_volume_attribute($scfg, $storeid, "backup/$pending", 'notes'), "local notes\nmore", 'pending: local notes');
is($PLUGIN->get_volume_attribute($scfg, $storeid, "backup/$pending", 'protected'), 1, 'pending: local protection');

stub_ok('set-attr', { value => 'hello' });
$PLUGIN->update_volume_attribute($scfg, $storeid, $vol, 'notes', 'hello');
is_deeply(last_request()->{request}->{args}, { volname => $vol, attr => 'notes', value => 'hello' }, 'set-attr notes');
stub_ok('set-attr', { value => $T });
$PLUGIN->update_volume_attribute($scfg, $storeid, $vol, 'protected', 1);
like(last_request()->{raw}, qr/"value":true/, 'protected sent as JSON true');
$PLUGIN->update_volume_attribute($scfg, $storeid, $vol, 'notes', undef);
is(last_request()->{request}->{args}->{value}, '', 'undef notes → empty string (delete)');
eval { $PLUGIN->update_volume_attribute($scfg, $storeid, 'iso/debian.iso', 'notes', 'x') };
is($@, "only backups can have notes\n", 'notes on an ISO refused');
eval { $PLUGIN->update_volume_attribute($scfg, $storeid, 'iso/debian.iso', 'protected', 1) };
is($@, "only backups support attribute 'protected'\n", 'protection of an ISO refused');
eval { $PLUGIN->update_volume_attribute($scfg, $storeid, $vol, 'colour', 1) };
is($@, "attribute 'colour' is not supported for storage type 's3'\n", 'unknown attribute refused');
stub_err('set-attr', 'NoSuchKey', 'nope');
$PLUGIN->update_volume_attribute($scfg, $storeid, "backup/$pending", 'notes', 'changed locally');
is(read_file("$p/dump/$pending.notes"), 'changed locally', 'pending: notes go to the local sidecar');
$PLUGIN->update_volume_attribute($scfg, $storeid, "backup/$pending", 'protected', 0);
ok(!-e "$p/dump/$pending.protected", 'pending: unprotect removes the local marker');
stub_err('set-attr', 'AccessDenied', 'denied');
eval { $PLUGIN->update_volume_attribute($scfg, $storeid, $vol, 'notes', 'x') };
is($@, "denied\n", 'other set-attr errors surface');

# max-protected-backups is enforced by the core wrapper from list_volumes' protected/subtype of
# the guest's backups: a protected lxc backup of the same vmid does not count against a qemu one.
{
    clear_requests();
    local $PVE::Storage::CONFIG = { ids => { $storeid => { %$scfg, type => 's3', 'max-protected-backups' => 1 } } };
    my $q1 = 'vzdump-qemu-300-2024_01_01-00_00_00.vma.zst';
    my $q2 = 'vzdump-qemu-300-2024_01_02-00_00_00.vma.zst';
    my $l1 = 'vzdump-lxc-300-2024_01_03-00_00_00.tar.zst';
    my $v = sub {
        my ($name, $type, $prot) = @_;
        return { volname => "backup/$name", content => 'backup', size => 1, ctime => 1, mtime => 1, etag => 'e',
            format => 'vma.zst', vmid => 300, subtype => $type, protected => $prot ? $T : $F };
    };
    stub_ok('get-attr', { value => $F });
    stub_ok('set-attr', { value => $T });
    stub_ok('list', { volumes => [$v->($q1, 'qemu', 0), $v->($q2, 'qemu', 0), $v->($l1, 'lxc', 1)] });
    PVE::Storage::update_volume_attribute($PVE::Storage::CONFIG, "$storeid:backup/$q1", 'protected', 1);
    is(last_request()->{request}->{op}, 'set-attr', 'max 1: the first protected qemu backup is allowed (the lxc one counts apart)');
    is_deeply(stub_requests()->[1]->{request}->{args}, { content => ['backup'], vmid => 300 }, '... counted from the guest\'s backup listing');
    stub_ok('list', { volumes => [$v->($q1, 'qemu', 1), $v->($q2, 'qemu', 0), $v->($l1, 'lxc', 1)] });
    clear_requests();
    stub_ok('get-attr', { value => $F });
    stub_ok('list', { volumes => [$v->($q1, 'qemu', 1), $v->($q2, 'qemu', 0), $v->($l1, 'lxc', 1)] });
    eval { PVE::Storage::update_volume_attribute($PVE::Storage::CONFIG, "$storeid:backup/$q2", 'protected', 1) };
    is($@, "The number of protected backups per guest is limited to 1 on storage '$storeid'\n", 'max 1: a second protected qemu backup is refused');
    ok(!grep({ $_->{request}->{op} eq 'set-attr' } @{ stub_requests() }), '... before anything is written');
}

# --- free_image -----------------------------------------------------------------------------

write_file("$p/dump/$pending.protected", '');
clear_requests();
eval { $PLUGIN->free_image($storeid, $scfg, "backup/$pending", 0, 'raw') };
is($@, "cannot remove protected volume 'backup/$pending' on '$storeid'\n", 'free_image refuses a locally protected backup');
is(scalar(@{ stub_requests() }), 0, '... before any host call');
stub_err('delete', 'VolumeProtected', "backup 'x' is protected");
eval { $PLUGIN->free_image($storeid, $scfg, $vol, 0, 'raw') };
is($@, "cannot remove protected volume '$vol' on '$storeid'\n", 'free_image refuses a protected object');
ok(-f "$p/dump/vzdump-qemu-200-2024_01_01-00_00_00.vma.zst", '... and keeps the cached copy');

unlink("$p/dump/$pending.protected");
stub_ok('delete', { deleted => ["backup/$pending"], missing => [] });
my @freed = $PLUGIN->free_image($storeid, $scfg, "backup/$pending", 0, 'raw');
is_deeply(\@freed, [undef], 'free_image returns undef (no cleanup worker for vdisk_free to fork)');
is_deeply(last_request()->{request}->{args}, { volnames => ["backup/$pending"] }, 'delete request');
ok(!-e "$p/dump/$_", "local $_ removed") for ($pending, "$pending.notes", 'vzdump-lxc-102-2024_03_03-03_03_03.log');

stub_ok('delete', { deleted => ['iso/cached.iso'], missing => [] });
$PLUGIN->free_image($storeid, $scfg, 'iso/cached.iso', 0, 'raw');
ok(!-e "$p/template/iso/cached.iso" && !-e "$p/.pve-s3/records/iso/cached.iso.json", 'cached copy and record removed');

# --- prune_backups --------------------------------------------------------------------------

my @days = map { sprintf('vzdump-qemu-100-2024_01_%02d-10_00_00.vma.zst', $_) } 1 .. 5;
my $vols = [map {
    my ($d) = m/2024_01_(\d\d)/;
    { volname => "backup/$_", content => 'backup', size => 1, ctime => timelocal(0, 0, 10, $d, 0, 2024),
      mtime => 1, etag => 'e', format => 'vma.zst', vmid => 100, subtype => 'qemu', protected => ($d == 1 ? $T : $F),
      verified => $T }
} @days];
push @$vols, { volname => 'backup/vzdump-lxc-100-2024_01_03-10_00_00.tar.zst', content => 'backup', size => 1,
    ctime => timelocal(0, 0, 10, 3, 0, 2024), mtime => 1, etag => 'e', format => 'tar.zst', vmid => 100, subtype => 'lxc',
    verified => $T };
push @$vols, { volname => 'backup/renamed-by-admin.vma.zst', content => 'backup', size => 1, ctime => 1,
    mtime => 1, etag => 'e', format => 'vma.zst', subtype => 'unknown' };
stub_ok('list', { volumes => $vols });
stub_ok('delete', { deleted => [], missing => [] });
clear_requests() if 0;

my @log;
my $logf = sub { push @log, "$_[0]: $_[1]" };
unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
my $res = $PLUGIN->prune_backups($scfg, $storeid, { 'keep-last' => 2 }, undef, 'qemu', 1, $logf);
my %mark = map { $_->{volid} => $_->{mark} } @$res;
is_deeply(\%mark, {
    "$storeid:backup/$days[4]" => 'keep',
    "$storeid:backup/$days[3]" => 'keep',
    "$storeid:backup/$days[2]" => 'remove',
    "$storeid:backup/$days[1]" => 'remove',
    "$storeid:backup/$days[0]" => 'protected',
}, 'dry run with type qemu: PVE marks; protected survives; lxc and unknown types skipped');
my ($e0) = grep { $_->{volid} eq "$storeid:backup/$days[4]" } @$res;
is_deeply($e0, { volid => "$storeid:backup/$days[4]", ctime => timelocal(0, 0, 10, 5, 0, 2024), type => 'qemu', vmid => 100, mark => 'keep' },
    'entry shape {volid, ctime, type, vmid, mark}');
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['list'], 'dry run deletes nothing');

unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
write_file("$p/dump/$days[1]", 'cached copy of a pruned backup');
$res = $PLUGIN->prune_backups($scfg, $storeid, { 'keep-last' => 2 }, 100, undef, 0, $logf);
my @reqs = @{ stub_requests() };
is_deeply([map { $_->{request}->{op} } @reqs], ['list', 'delete'], 'real prune: one list, one batch delete');
is_deeply([sort @{ $reqs[1]->{request}->{args}->{volnames} }],
    [sort "backup/$days[1]", "backup/$days[2]", 'backup/vzdump-lxc-100-2024_01_03-10_00_00.tar.zst'],
    'exactly the remove marks are deleted (the lxc group keeps its only... no: keep-last counts per group)')
    if 0;
my %m2 = map { $_->{volid} => $_->{mark} } @$res;
is($m2{"$storeid:backup/vzdump-lxc-100-2024_01_03-10_00_00.tar.zst"}, 'keep', 'groups are per type/vmid');
my @removed = sort @{ $reqs[1]->{request}->{args}->{volnames} };
is_deeply(\@removed, [sort "backup/$days[1]", "backup/$days[2]"], 'exactly the remove-marked backups are deleted');
ok(!grep({ $_ eq "backup/$days[0]" } @removed), 'the protected backup is not deleted');
ok(!-e "$p/dump/$days[1]", 'the local copy of a pruned backup is removed');
like(join("\n", @log), qr/info: removing backup '\Q$storeid:backup\/$days[2]\E'/, 'removals are logged');

stub_ok('delete', { deleted => [], missing => [] });
$res = $PLUGIN->prune_backups($scfg, $storeid, { 'keep-last' => 1 }, undef, undef, 1, $logf);
%m2 = map { $_->{volid} => $_->{mark} } @$res;
is($m2{"$storeid:backup/renamed-by-admin.vma.zst"}, 'renamed', 'without filters a non-standard name is marked renamed');

# Issue 10 §5: only trusted backups count. A newer object no manifest vouches for (verified
# false) is kept and left out of its group, shown as 'renamed' (PVE's API knows no other
# "not part of the retention" mark); a local archive not uploaded yet (vzdump prunes before its
# backup-end hook uploads) counts like an uploaded one.
{
    my $planted = 'vzdump-qemu-300-2024_02_02-10_00_00.vma.zst';
    my $older = 'vzdump-qemu-300-2024_02_01-10_00_00.vma.zst';
    my $fresh = 'vzdump-qemu-301-2024_02_03-10_00_00.vma.zst';
    my $prev = 'vzdump-qemu-301-2024_02_01-10_00_00.vma.zst';
    my $v = sub {
        my ($name, $verified, $d) = @_;
        my ($vmid) = $name =~ m/qemu-(\d+)-/;
        return { volname => "backup/$name", content => 'backup', size => 8, ctime => timelocal(0, 0, 10, $d, 1, 2024),
            mtime => 1, etag => 'e', format => 'vma.zst', vmid => $vmid, subtype => 'qemu', protected => $F,
            verified => $verified ? $T : $F };
    };
    stub_ok('list', { volumes => [$v->($planted, 0, 2), $v->($older, 1, 1), $v->($prev, 1, 1)] });
    write_file("$p/dump/$fresh", 'a vzdump archive the hook has not uploaded yet');
    utime(time() - 3600, time() - 3600, "$p/dump/$fresh");
    unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
    @log = ();
    $res = $PLUGIN->prune_backups($scfg, $storeid, { 'keep-last' => 1 }, undef, 'qemu', 0, $logf);
    my %m3 = map { $_->{volid} => $_->{mark} } @$res;
    is($m3{"$storeid:backup/$planted"}, 'renamed', 'a newer unverified object is kept out of the retention');
    is($m3{"$storeid:backup/$older"}, 'keep', '... and does not push the older verified backup out');
    is($m3{"$storeid:backup/$fresh"}, 'keep', 'a pending local archive counts (vzdump prunes before the upload)');
    is($m3{"$storeid:backup/$prev"}, 'remove', '... and pushes the previous verified backup out, as on a dir storage');
    @reqs = @{ stub_requests() };
    is_deeply([sort @{ $reqs[-1]->{request}->{args}->{volnames} }], ["backup/$prev"], 'only that one is deleted');
    like(join("\n", @log), qr/keeping unverified backup '\Q$storeid:backup\/$planted\E'/, 'the unverified one is named in the log');
    unlink("$p/dump/$fresh");
    stub_ok('list', { volumes => $vols });
}

stub_err('delete', 'AccessDenied', 'denied');
eval { $PLUGIN->prune_backups($scfg, $storeid, { 'keep-last' => 1 }, 100, 'qemu', 0, $logf) };
is($@, "error pruning backups - check log\n", 'a failed removal: PVE\'s prune error');
like($log[-1], qr/^err: .*denied/, '... with the host message logged');

stub_ok('list', { volumes => $vols });
stub_ok('status', { active => $T, total => 1, used => 0, avail => 1 }); # another config: probed anew
$res = PVE::Storage::prune_backups({ ids => { $storeid => { %$scfg, type => 's3', 'prune-backups' => 'keep-all=1' } } },
    $storeid, undef, 100, 'qemu', 1, $logf);
ok(!grep({ $_->{mark} eq 'remove' } @$res), 'keep-all from the storage config through the core wrapper keeps everything');

# --- refusals -------------------------------------------------------------------------------

for my $m (qw(alloc_image clone_image create_base volume_resize volume_snapshot volume_snapshot_rollback
    volume_snapshot_delete rename_volume volume_rollback_is_possible)) {
    eval { $PLUGIN->$m($storeid, $scfg, 'x') };
    like($@, qr/^storage type 's3' does not support .+ \(it holds backups, ISO images, container templates and snippets only\)$/,
        "$m refuses clearly");
}
is($PLUGIN->get_identity($scfg, $storeid), 'https://127.0.0.1:7480' =~ s/^/s3:/r . '/pve-bucket/pve/', 'get_identity: endpoint, bucket, prefix');
is($PLUGIN->get_identity({ %$scfg, endpoint => 'HTTP://Host:9000/', use_ssl => 1 }, $storeid), 's3:http://host:9000/pve-bucket/pve/',
    'get_identity keeps an explicit scheme and normalises case');
is($PLUGIN->volume_has_feature($scfg, 'copy', $storeid, $vol), undef, 'no volume features');
is($PLUGIN->check_connection($storeid, $scfg), 1, 'check_connection never blocks local work (status reports reachability)');
ok($PLUGIN->deactivate_storage($storeid, $scfg, {}), 'deactivate_storage is a no-op');
PVE::Storage::deactivate_volumes({ ids => { $storeid => { %$scfg, type => 's3' } } }, ["$storeid:iso/debian.iso"]);
ok(-f "$p/template/iso/debian.iso", 'deactivate_volume (VM stop) keeps the cached ISO: other guests may use it');
is_deeply([$PLUGIN->volume_import_formats($scfg, $storeid, $vol)], [], 'no import formats');
is_deeply([$PLUGIN->volume_export_formats($scfg, $storeid, $vol)], [], 'no export formats');

# --- getting local files into the bucket ----------------------------------------------------

# Non-ASCII notes survive the local sidecar and the JSON request unchanged.
{
    use utf8;
    my $pend = 'vzdump-qemu-450-2024_04_04-04_04_04.vma';
    write_file("$p/dump/$pend", 'A');
    stub_err('set-attr', 'NoSuchKey', 'not yet');
    $PLUGIN->update_volume_attribute($scfg, $storeid, "backup/$pend", 'notes', "Grüße ✓");
    is(read_file("$p/dump/$pend.notes"), Encode::encode('UTF-8', "Grüße ✓"), 'local notes sidecar is UTF-8');
    stub_err('get-attr', 'NoSuchKey', 'not yet');
    is($PLUGIN->get_volume_attribute($scfg, $storeid, "backup/$pend", 'notes'), "Grüße ✓", 'read back as characters');
    unlink("$p/dump/$pend", "$p/dump/$pend.notes");
}

my $up = 'vzdump-qemu-400-2024_04_04-04_04_04.vma.zst';
write_file("$p/dump/$up", 'ARCHIVE');
write_file("$p/dump/$up.notes", 'nightly');
write_file("$p/dump/$up.protected", '');
write_file("$p/dump/vzdump-qemu-400-2024_04_04-04_04_04.log", 'LOG');
stub_ok('upload', { volume => {} });
$PLUGIN->upload_local_volume($storeid, $scfg, "backup/$up");
is_deeply(last_request()->{request}->{args}, {
    volname => "backup/$up", src => "$p/dump/$up", sidecars => $T, remove_source => $T,
}, 'upload request asks the host to take the local sidecars; backups are not kept locally by default');
$PLUGIN->upload_local_volume($storeid, { %$scfg, keep_local => 1 }, "backup/$up", replace => 1);
is(last_request()->{request}->{args}->{remove_source}, $F, 'keep_local 1 keeps the source');
is(last_request()->{request}->{args}->{replace}, $T, 'replace only when asked');

stub_ok('sync-local', { uploaded => ['iso/local-only.iso'], skipped => [], errors => [] });
is_deeply($PLUGIN->sync_local($storeid, $scfg, quiet_seconds => 0),
    { uploaded => ['iso/local-only.iso'], skipped => [], errors => [] }, 'sync_local result');
is_deeply(last_request()->{request}->{args}, { quiet_seconds => 0 }, 'sync-local request');

# --- eviction -------------------------------------------------------------------------------

my $now = time();
for my $case (['backup', 'vzdump-qemu-500-2024_01_01-00_00_00.vma', 2 * 86400], ['backup', 'vzdump-qemu-501-2024_01_01-00_00_00.vma', 3600],
    ['backup', 'vzdump-qemu-502-2024_01_01-00_00_00.vma', 2 * 86400],
    ['iso', 'old.iso', 8 * 86400], ['iso', 'recent.iso', 86400], ['snippets', 'ancient.sh', 400 * 86400]) {
    my ($vtype, $name, $age) = @$case;
    my $dir = $PLUGIN->get_subdir($scfg, $vtype);
    write_file("$dir/$name", 'DATA');
    utime(50, 50, "$dir/$name");
    record($vtype, $name, size => 4, mtime => 50);
    utime($now - $age, $now - $age, "$p/.pve-s3/records/$vtype/$name.json");
}
write_file("$p/template/iso/pending-old.iso", 'P');
utime($now - 100 * 86400, $now - 100 * 86400, "$p/template/iso/pending-old.iso");
open(my $held, '<', "$p/template/iso/old.iso") or die;
# An activation of 502 is in progress: it holds the volume lock.
make_path("$p/.pve-s3/locks");
open(my $vlock, '>', "$p/.pve-s3/locks/backup.vzdump-qemu-502-2024_01_01-00_00_00.vma.lock") or die;
flock($vlock, Fcntl::LOCK_EX) or die;
my $ev = $PLUGIN->evict_cache($storeid, $scfg, $now);
is_deeply($ev, ['backup/vzdump-qemu-500-2024_01_01-00_00_00.vma'],
    'default policy: old backup copy evicted; open ISO, one being activated, recent ISO, snippets and pending files kept');
ok(-f "$p/dump/vzdump-qemu-502-2024_01_01-00_00_00.vma", 'a copy whose activation holds the volume lock is kept');
close($held);
close($vlock);
$ev = $PLUGIN->evict_cache($storeid, $scfg, $now);
is_deeply($ev, ['iso/old.iso', 'backup/vzdump-qemu-502-2024_01_01-00_00_00.vma'], 'once closed and unlocked, they go (least recently used first)');
ok(-f "$p/template/iso/pending-old.iso", 'a pending file is never evicted');
ok(-f "$p/snippets/ancient.sh", 'snippets are never evicted');
$ev = $PLUGIN->evict_cache($storeid, { %$scfg, cache_max_age => 0, cache_max_size => 0 }, $now + 1000 * 86400);
is_deeply($ev, [], 'cache_max_age 0 disables eviction by age');

# --- snippets are fetched ahead of use (hookscripts never activate) ---------------------------

my $sd = $PLUGIN->get_subdir($scfg, 'snippets');
write_file("$sd/same.sh", 'SAME');
utime(60, 60, "$sd/same.sh");
record('snippets', 'same.sh', size => 4, mtime => 60, etag => 'etag-same');
write_file("$sd/changed.sh", 'OLD');
utime(60, 60, "$sd/changed.sh");
record('snippets', 'changed.sh', size => 3, mtime => 60, etag => 'etag-old');
write_file("$sd/local.sh", 'LOCAL EDIT');
stub_ok('list', { volumes => [map { { volname => "snippets/$_->[0]", content => 'snippets', size => 1, ctime => 1,
    mtime => 1, etag => $_->[1], format => 'snippet', verified => $_->[2] // $T } } (['same.sh', 'etag-same'], ['changed.sh', 'etag-new'],
    ['local.sh', 'x'], ['new.sh', 'etag-n'], ['planted.sh', 'etag-p', $F])] });
stub_ok('download', { etag => 'etag-n', verified => $T, downloaded => $T }, write_dest => "#!/bin/sh\n");
clear_requests() if 0;
unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
my $fetched = $PLUGIN->prefetch_snippets($storeid, $scfg);
is_deeply([sort @$fetched], ['snippets/changed.sh', 'snippets/new.sh'], 'prefetch: missing and changed snippets fetched');
my @dl = map { $_->{request}->{args} } grep { $_->{request}->{op} eq 'download' } @{ stub_requests() };
is_deeply(\@dl, [
    { volname => 'snippets/changed.sh', dest => "$sd/changed.sh", force => $T },
    { volname => 'snippets/new.sh', dest => "$sd/new.sh" },
], 'a changed copy is replaced in place (force), a missing one downloaded; same etag and local edits untouched');
ok(-x "$sd/new.sh" && -x "$sd/changed.sh", 'prefetched snippets are executable');
ok(!-e "$sd/planted.sh", 'an unverified snippet is never fetched (issue 10 §7)');
is(read_file("$sd/local.sh"), 'LOCAL EDIT', 'a pending local snippet is never overwritten');

# --- two activations of one volume at once download it once ---------------------------------

stub_ok('download', { etag => 'c', verified => $T, downloaded => $T }, write_dest => 'ONCE', sleep => 1);
stub_ok('stat', { volume => { volname => 'iso/concurrent.iso', content => 'iso', size => 4, ctime => 1, mtime => 1, etag => 'c', format => 'iso' } });
unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
my @kids;
for (1 .. 2) {
    my $pid = fork() // die;
    if (!$pid) {
        my $ok = eval { $PLUGIN->activate_volume($storeid, $scfg, 'iso/concurrent.iso', undef, {}); 1 };
        POSIX::_exit($ok ? 0 : 1);
    }
    push @kids, $pid;
}
my @codes = map { waitpid($_, 0); $? >> 8 } @kids;
is_deeply(\@codes, [0, 0], 'both concurrent activations succeed');
is(scalar(grep { $_->{request}->{op} eq 'download' } @{ stub_requests() }), 1, '... with a single download (per-volume lock)');
is(read_file("$p/template/iso/concurrent.iso"), 'ONCE', '... of the right file');

# --- the activation lock leaves no file behind, and still excludes -------------------------

my @left = glob("$p/.pve-s3/locks/*.lock");
is_deeply(\@left, [], 'no activation lock file is kept once its lock is let go (locks/ does not grow per volume)');
# Every holder unlinks the file before letting go, so a waiter may wake holding a name-less inode
# while a newcomer locks a new file: four processes incrementing one counter under the lock lose
# no count only if each taker checks the path still names what it locked.
my $counter = "$p/counter";
write_file($counter, '0');
my @counting;
for my $k (1 .. 4) {
    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        for (1 .. 25) {
            PVE::Storage::Custom::S3Plugin::with_volume_lock($scfg, 'iso', 'counted.iso', sub {
                my $n = read_file($counter);
                select(undef, undef, undef, 0.001);
                write_file($counter, $n + 1);
            });
        }
        POSIX::_exit(0);
    }
    push @counting, $pid;
}
waitpid($_, 0) for @counting;
is(read_file($counter), '100', '4 processes x 25 increments under the volume lock: none lost');
ok(!-e "$p/.pve-s3/locks/iso.counted.iso.lock", '... and its lock file is gone');

done_testing();
