#!/usr/bin/perl
# The contract between the plugin and the host (issue 11 §4): the cases of
# test/contract/rules-cases.json as the plugin answers them, with the rules the build generated
# from the host's (PVE::Storage::Custom::S3Plugin::Rules). test/unit/rules-contract.test.ts asks
# the host the same cases.
use strict;
use warnings;

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
