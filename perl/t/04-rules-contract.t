#!/usr/bin/perl
# The contract between the plugin and the host (issue 11 §4): the cases of
# test/contract/rules-cases.json as the plugin answers them, with the rules the build generated
# from the host's (PVE::Storage::Custom::S3Plugin::Rules). test/unit/rules-contract.test.ts asks
# the host the same cases.
use strict;
use warnings;

use File::Path qw(make_path);
use File::Temp qw(tempdir);
use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use JSON::PP;
use Test::More;

use S3PluginTest;

S3PluginTest::load_plugin('9');

my $cases = do {
    my $file = "$FindBin::Bin/../../test/contract/rules-cases.json";
    open(my $fh, '<', $file) or die "cannot read $file: $!\n";
    local $/;
    JSON::PP->new->decode(<$fh>);
};

for my $c (@{ $cases->{volnames} }) {
    my $label = substr(JSON::PP->new->ascii->allow_nonref->encode($c->{volname}), 0, 60);
    my @r = eval { $PLUGIN->parse_volname($c->{volname}) };
    is(@r ? 1 : 0, $c->{ok} ? 1 : 0, "volume name $label parses: " . ($c->{ok} ? 'yes' : 'no'));
    next if !@r || !$c->{ok};
    my ($vtype, $name, $vmid) = @r;
    is(PVE::Storage::Custom::S3Plugin::listing_format($vtype, $name), $c->{format}, "$label: format");
    next if $vtype ne 'backup';
    is($vmid, $c->{vmid}, "$label: vmid");
    is(PVE::Storage::Custom::S3Plugin::backup_log_name($name), $c->{log}, "$label: log");
}

for my $c (@{ $cases->{temporary} }) {
    is(PVE::Storage::Custom::S3Plugin::is_temporary_name($c->{name}), $c->{temporary} ? 1 : 0,
        "temporary name $c->{name}: " . ($c->{temporary} ? 'yes' : 'no'));
}

# Which files of the cache dir are waiting for the bucket: one file (and its cache record) per
# case, made as test/unit/rules-contract.test.ts makes it for the host's localOnlyFiles.
my $MTIME = 1_700_000_000;
my $rules = PVE::Storage::Custom::S3Plugin::Rules::table();
for my $c (@{ $cases->{pending} }) {
    my $dir = tempdir(CLEANUP => 1);
    my $path = "$dir/$rules->{contentDir}->{ $c->{content} }/$c->{name}";
    make_path($c->{directory} ? $path : "$dir/$rules->{contentDir}->{ $c->{content} }");
    if (!$c->{directory}) {
        open(my $fh, '>', $path) or die "cannot write $path: $!\n";
        print $fh 'contract';
        close($fh);
    }
    utime($MTIME, $MTIME, $path);
    if ($c->{record} ne 'none') {
        my $recdir = "$dir/$rules->{stateDir}/$rules->{recordsDir}/$c->{content}";
        make_path($recdir);
        my $rec = { volname => "$c->{content}/$c->{name}", etag => '"e"',
            size => $c->{record} eq 'size' ? 9 : 8, mtime => $c->{record} eq 'mtime' ? $MTIME - 10 : $MTIME };
        open(my $fh, '>', "$recdir/$c->{name}.json") or die "cannot write record: $!\n";
        print $fh JSON::PP->new->encode($rec);
        close($fh);
    }
    my $found = $PLUGIN->pending_local({ path => $dir }, [sort keys %{ $rules->{contentDir} }]);
    my $is = grep { $_->{volname} eq "$c->{content}/$c->{name}" } @$found;
    is($is ? 1 : 0, $c->{pending} ? 1 : 0,
        "pending local file $c->{content}/$c->{name} (record: $c->{record}): " . ($c->{pending} ? 'yes' : 'no'));
}

my $props = $PLUGIN->own_properties();
for my $c (@{ $cases->{properties} }) {
    my $p = $props->{ $c->{key} };
    ok($p, "property $c->{key} defined");
    is($p->{type}, $c->{type}, "$c->{key}: type");
    is($p->{$_}, $c->{$_}, "$c->{key}: $_") for qw(minimum maximum default);
}

# PVE::JSONSchema checks a string against its pattern as m/^$pattern$/.
for my $c (@{ $cases->{values} }) {
    my $pattern = $props->{ $c->{key} }->{pattern};
    ok(defined($pattern), "$c->{key} has a pattern");
    my $ok = $c->{value} =~ m/^$pattern$/ ? 1 : 0;
    is($ok, $c->{pve} ? 1 : 0, "value '$c->{value}' for $c->{key}: PVE " . ($c->{pve} ? 'accepts' : 'refuses'));
}

done_testing();
