#!/usr/bin/perl
# The secret file hooks, and volume names / paths for the four content types.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;

use S3PluginTest;

my $t = setup_storage();
my ($storeid, $scfg) = @$t{qw(storeid scfg)};
my $pw = "$ENV{PVE_S3_PRIV_DIR}/$storeid.pw";

ok(-f $pw, 'on_add_hook wrote the secret file');
is(read_file($pw), "$t->{secret}\n", 'secret file holds the secret on its first line');
is((stat($pw))[2] & 07777, 0600, 'secret file mode 0600');
ok(!grep({ defined($_) && !ref($_) && $_ eq $t->{secret} } values %$scfg), 'secret never in the section config');

# Update with API < 13 semantics, and through the base on_update_hook_full (API >= 13).
$PLUGIN->on_update_hook($storeid, { type => 's3', region => 'x' });
is(read_file($pw), "$t->{secret}\n", 'update without secret_key keeps the file');
$PLUGIN->on_update_hook($storeid, { type => 's3' }, secret_key => 'new-secret');
is(read_file($pw), "new-secret\n", 'update with secret_key rewrites it');
$PLUGIN->on_update_hook_full($storeid, $scfg, {}, [], { secret_key => 'newer' });
is(read_file($pw), "newer\n", 'on_update_hook_full forwards to on_update_hook');
is((stat($pw))[2] & 07777, 0600, 'still 0600 after rewrite');
$PLUGIN->on_update_hook_full($storeid, $scfg, {}, ['secret_key'], { secret_key => undef });
ok(!-e $pw, 'deleting secret_key removes the file');

eval { $PLUGIN->on_update_hook($storeid, {}, secret_key => "two\nlines") };
like($@, qr/secret_key must not contain a line break/, 'multi-line secret refused');
ok(!-e $pw, 'and nothing written');

$PLUGIN->on_update_hook($storeid, {}, secret_key => 'again');
$PLUGIN->on_delete_hook($storeid, $scfg);
ok(!-e $pw, 'on_delete_hook removes the secret');
eval { $PLUGIN->on_delete_hook($storeid, $scfg) };
is($@, '', 'on_delete_hook tolerates a missing file (cleanup after a failed add)');

$PLUGIN->on_update_hook($storeid, {}, secret_key => 'stale');
$PLUGIN->on_add_hook($storeid, $scfg);
ok(!-e $pw, 'adding without a secret drops a leftover file of the same ID');

# --- volume names ---------------------------------------------------------------------------

my @good = (
    ['backup/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', 'backup', 'vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', 100],
    ['backup/vzdump-lxc-101-2024_05_06-07_08_09.tar.gz', 'backup', 'vzdump-lxc-101-2024_05_06-07_08_09.tar.gz', 101],
    ['backup/vzdump-openvz-102-2020_01_01-00_00_00.tgz', 'backup', 'vzdump-openvz-102-2020_01_01-00_00_00.tgz', 102],
    ['backup/my-renamed-archive.vma', 'backup', 'my-renamed-archive.vma', undef],
    ['iso/debian-12.iso', 'iso', 'debian-12.iso', undef],
    ['iso/UPPER.IMG', 'iso', 'UPPER.IMG', undef],
    ['vztmpl/debian-12-standard_12.7-1_amd64.tar.zst', 'vztmpl', 'debian-12-standard_12.7-1_amd64.tar.zst', undef],
    ['vztmpl/alpine.tar', 'vztmpl', 'alpine.tar', undef],
    ['snippets/hook.pl', 'snippets', 'hook.pl', undef],
    ['snippets/user data.yaml', 'snippets', 'user data.yaml', undef],
);
for my $g (@good) {
    my ($volname, $vtype, $name, $vmid) = @$g;
    my @r = $PLUGIN->parse_volname($volname);
    is_deeply(\@r, [$vtype, $name, $vmid, undef, undef, undef, 'raw'], "parse_volname $volname");
}
my @bad = (
    'backup/../etc/passwd.vma', 'backup/x.vma.exe', 'backup/a/b.vma', 'iso/x.qcow2', 'iso/../../x.iso',
    'vztmpl/x.tar.rar', 'snippets/a/b', 'snippets/.hidden', 'snippets/..', "iso/new\nline.iso",
    '100/vm-100-disk-0.raw', 'images/100/vm-100-disk-0.raw', 'rootdir/100', 'import/x.ova', 'backup/', 'x',
);
for my $volname (@bad) {
    eval { $PLUGIN->parse_volname($volname) };
    like($@, qr/^unable to parse s3 volume name/, "parse_volname refuses '" . ($volname =~ s/\n/\\n/r) . "'");
}

my $p = $scfg->{path};
is(scalar($PLUGIN->path($scfg, 'backup/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst', $storeid)),
    "$p/dump/vzdump-qemu-100-2024_01_01-00_00_00.vma.zst", 'backup path');
is_deeply([$PLUGIN->path($scfg, 'iso/debian-12.iso', $storeid)], ["$p/template/iso/debian-12.iso", undef, 'iso'], 'iso path (list context)');
is_deeply([$PLUGIN->filesystem_path($scfg, 'vztmpl/alpine.tar')], ["$p/template/cache/alpine.tar", undef, 'vztmpl'], 'vztmpl filesystem_path');
is_deeply([$PLUGIN->path($scfg, 'backup/vzdump-lxc-101-2024_05_06-07_08_09.tar.gz', $storeid)],
    ["$p/dump/vzdump-lxc-101-2024_05_06-07_08_09.tar.gz", 101, 'backup'], 'backup path returns the owner vmid');
is(scalar($PLUGIN->path($scfg, 'snippets/hook.pl')), "$p/snippets/hook.pl", 'snippets path');
eval { $PLUGIN->path($scfg, 'iso/debian-12.iso', $storeid, 'snap1') };
like($@, qr/does not support snapshots/, 'no snapshots');
is(PVE::Storage::Plugin::parse_volume_id("$storeid:iso/a:b.iso"), $storeid, 'volid splits at the first colon');

done_testing();
