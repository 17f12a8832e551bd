#!/usr/bin/perl
# What `pvesm add` accepts as PVE's own storages do, and what the storage is then, inside the real
# PVE 9 and 8.4 code (README "Every key"):
# - no secret_key: like a PBS storage without its password (kept in a file of its own, so the
#   schema cannot require it), only a disabled storage can be added; enabled, it is inactive, with
#   status (pvestatd's storage_info) not dying and every operation failing with the host's message
#   naming the secret file and the command that sets it; once set, it is active;
# - content none: PVE's own parsing allows 'none' alone where the plugin's plugindata lists it, and
#   refuses it combined; the storage stays active, offering nothing.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use FileBytes qw(read_file);
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();
my $pve = PVEUpstream::setup();

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'sc');
my $storeid = 'sc-s3';
my %add = (
    storage => $storeid, type => 's3', bucket => $gw->{bucket}, endpoint => $gw->{endpoint},
    region => $gw->{region}, access_key => $gw->{access_key}, prefix => 'pve/',
    force_path_style => 1, content => 'backup', path => "$tmp/cache",
);
my $pw = "$pve->{etc_pve}/priv/storage/$storeid.pw";
my $missing = "missing secret_key for storage '$storeid': no secret stored for it ($pw): set it with pvesm set $storeid --secret_key";

my @warnings;
local $SIG{__WARN__} = sub { push @warnings, @_ };

# --- no secret_key -------------------------------------------------------------------------

is_deeply($pve->api('create', { %add, disable => 1 }), { storage => $storeid, type => 's3' }, 'pvesm add --disable 1 without secret_key: created');
ok(!-e $pw, '... no secret file');
# the admin added it disabled without its secret on purpose: no key yet is no news (the host says so)
is_deeply(\@warnings, [], '... quietly: no warning that its manifest key is not made yet');

$pve->api('update', { storage => $storeid, delete => 'disable' });
@warnings = ();
my $info = eval { PVE::Storage::storage_info(PVE::Storage::config()) };
is($@, '', 'enabled without it: storage_info (pvestatd, pvesm status) does not die');
is($info->{$storeid}->{active}, 0, '... the storage is inactive');
is(join('', @warnings), "$missing\n", "... and says why, in the host's words");
eval { PVE::Storage::volume_list(PVE::Storage::config(), $storeid, undef, 'backup') };
is($@, "$missing\n", "a listing fails with the host's message");

$pve->api('update', { storage => $storeid, secret_key => $gw->{secret_key} });
ok(-f $pw, 'pvesm set --secret_key writes the secret file');
@warnings = ();
$info = PVE::Storage::storage_info(PVE::Storage::config());
is($info->{$storeid}->{active}, 1, '... and the storage is active at once');
is_deeply(\@warnings, [], '... without a warning');

# --- the warning about the manifest key stays for every other failure --------------------

# enabled without its secret: refused by PVE's activation, and on_add_hook said the key is not made
my $other = 'sc-s3-other';
my $other_pw = "$pve->{etc_pve}/priv/storage/$other.pw";
my $other_key = "$pve->{etc_pve}/priv/storage/$other.manifest-key";
my $other_missing = "missing secret_key for storage '$other': no secret stored for it ($other_pw): set it with pvesm set $other --secret_key";
@warnings = ();
eval { $pve->api('create', { %add, storage => $other }) };
like($@, qr/\Q$other_missing\E/, 'pvesm add without secret_key, enabled: refused, naming the missing secret');
like(join('', @warnings), qr/^warning: no manifest key created for storage '\Q$other\E' \(\Q$other_missing\E\); the first upload creates it$/m,
    '... after the warning that no manifest key was made');
ok(!defined(PVE::Storage::config()->{ids}->{$other}), '... and not added');

# disabled with its secret, but a key file the host refuses (readable by others): warned
open(my $kfh, '>', $other_key) or die "cannot write $other_key: $!\n";
print $kfh "# damaged\n";
close($kfh);
chmod(0644, $other_key);
@warnings = ();
is_deeply($pve->api('create', { %add, storage => $other, disable => 1, secret_key => $gw->{secret_key} }), { storage => $other, type => 's3' },
    'pvesm add --disable 1 with secret_key and a group-readable key file: created');
like(join('', @warnings), qr/^warning: no manifest key created for storage '\Q$other\E' \(.*\Q$other_key\E.*\); the first upload creates it$/m,
    '... with the warning naming the key file the host refused');
$pve->api('delete', { storage => $other });
unlink($other_key);

# --- content none --------------------------------------------------------------------------

$pve->api('update', { storage => $storeid, content => 'none' });
like(read_file("$pve->{etc_pve}/storage.cfg"), qr/^s3: \Q$storeid\E\n(?:\t.*\n)*?\tcontent none\n/m, "content none: accepted, written as PVE writes it");
is_deeply(PVE::Storage::config()->{ids}->{$storeid}->{content}, { none => 1 }, '... and read back as none');
@warnings = ();
$info = PVE::Storage::storage_info(PVE::Storage::config());
is($info->{$storeid}->{active}, 1, '... the storage stays active (PVE\'s own activation knows no \'none\')');
is_deeply(\@warnings, [], '... without a warning');
is($info->{$storeid}->{content}, 'none', '... offering no content');
is_deeply(PVE::Storage::volume_list(PVE::Storage::config(), $storeid, undef, 'backup'), [], '... and listing nothing as backups');
eval { $pve->api('update', { storage => $storeid, content => 'none,backup' }) };
like($@, qr/unable to combine 'none' with other content types/, "content none,backup: refused by PVE");

$pve->api('delete', { storage => $storeid });
ok(!-e $pw, 'pvesm remove deletes the secret file');

done_testing();
