#!/usr/bin/perl
# The property schema: no PVE global redefined on 8.4 or 9.x, init() survives any order, a
# competing plugin defining our generic names does not crash PVE, and values are range-checked.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;

use S3PluginTest;

load_plugin_once();

sub load_plugin_once {
    S3PluginTest::load_plugin('9');
}

my $own = $PLUGIN->own_properties();
for my $flavour ('8.4', '9') {
    my %global = map { $_ => 1 } @{ PVE::Storage::Plugin::global_property_names($flavour) };
    my @clash = grep { $global{$_} } sort keys %$own;
    is_deeply(\@clash, [], "no own property is a PVE $flavour global name");

    for my $round (1 .. 12) {
        PVE::Storage::Plugin::reset_for_tests($flavour);
        $PLUGIN->register();
        eval { PVE::Storage::Plugin->init() };
        is($@, '', "PVE $flavour init round $round (shuffled order) succeeds");
    }
    my $opts = PVE::Storage::Plugin->private()->{options}->{s3};
    ok($opts->{$_}, "PVE $flavour: option '$_' listed") for qw(path content nodes disable prune-backups max-protected-backups bwlimit bucket secret_key);
    ok(!exists($opts->{maxfiles}) && !exists($opts->{'snapshot-as-volume-chain'}), "PVE $flavour: no version-specific globals");
    is_deeply($opts->{bucket}, { fixed => 1 }, 'bucket is required and fixed');
    is_deeply($opts->{endpoint}, {}, 'endpoint is required');
    is_deeply($opts->{secret_key}, { optional => 1 }, 'secret_key optional (it never reaches storage.cfg)');
    my $list = PVE::Storage::Plugin->private()->{propertyList};
    is($list->{multipart_chunk_size}->{minimum}, 5, 'multipart_chunk_size minimum 5');
    is($list->{multipart_chunk_size}->{maximum}, 5120, 'multipart_chunk_size maximum 5120');
}

# Another third-party plugin defines some of our names, naively (reference §3.5).
{
    package PVE::Storage::Custom::NaiveS3;
    use base qw(PVE::Storage::Plugin);
    sub type { 'naives3' }
    sub plugindata { { content => [{ backup => 1 }, { backup => 1 }] } }
    sub properties {
        return {
            bucket => { type => 'string', description => 'theirs' },
            endpoint => { type => 'string' },
            region => { type => 'string' },
            access_key => { type => 'string' },
        };
    }
    sub options {
        return { map { $_ => { optional => 1 } } qw(bucket endpoint region access_key path content) };
    }
}

for my $flavour ('8.4', '9') {
    for my $round (1 .. 12) {
        PVE::Storage::Plugin::reset_for_tests($flavour);
        PVE::Storage::Custom::NaiveS3->register();
        $PLUGIN->register();
        eval { PVE::Storage::Plugin->init() };
        is($@, '', "PVE $flavour with a naive plugin sharing names, round $round: init succeeds");
    }
    my $list = PVE::Storage::Plugin->private()->{propertyList};
    is($list->{bucket}->{description}, 'theirs', 'the other definition of a shared name survives');
    ok($list->{multipart_chunk_size}, 'our other names are still defined');
    ok(PVE::Storage::Plugin->private()->{options}->{s3}->{bucket}, 'and we still accept bucket');
}

{
    PVE::Storage::Plugin::reset_for_tests('9');
    $PLUGIN->register();
    PVE::Storage::Plugin->init();
    eval { PVE::Storage::Plugin->init() };
    is($@, '', 'a second init() in one process (pve-common master) still succeeds');
    ok(PVE::Storage::Plugin->private()->{options}->{s3}->{bucket}, '... with our options intact');
}

# A plugin isolating its properties (pve-common >= 9.2) takes only the names it exposes.
{
    package PVE::Storage::Custom::IsolatedS3;
    use base qw(PVE::Storage::Plugin);
    sub type { 'isos3' }
    sub plugindata {
        { content => [{ backup => 1 }, { backup => 1 }], 'isolate-properties' => 1, 'expose-properties' => { region => 1 } }
    }
    sub properties { return { bucket => { type => 'string' }, region => { type => 'string' } } }
    sub options { return { bucket => {}, region => { optional => 1 } } }
}
{
    PVE::Storage::Plugin::reset_for_tests('9');
    PVE::Storage::Custom::IsolatedS3->register();
    $PLUGIN->register();
    my $props = $PLUGIN->properties();
    ok($props->{bucket}, 'a name the other plugin isolates stays ours');
    ok(!$props->{region}, 'a name it exposes is left to it');
}

# Without the defensive properties() the same setup breaks every daemon: the check can fail.
{
    PVE::Storage::Plugin::reset_for_tests('9');
    PVE::Storage::Custom::NaiveS3->register();
    $PLUGIN->register();
    no warnings qw(redefine once);
    local *PVE::Storage::Custom::S3Plugin::properties = sub { $PLUGIN->own_properties() };
    eval { PVE::Storage::Plugin->init() };
    like($@, qr/^duplicate property '(?:bucket|endpoint|region|access_key)'/, 'a naive properties() would be fatal');
}

# Values are checked when a storage is added.
S3PluginTest::load_plugin('9');
my $base = { bucket => 'pve-bucket', endpoint => 's3.example.com', access_key => 'AK' };
my $ok = $PLUGIN->check_config('good', {%$base}, 1, 0);
is($ok->{path}, '/var/lib/pve-s3/cache/good', 'check_config defaults path on create');
my $upd = $PLUGIN->check_config('good', { region => 'eu-west-1' }, 0, 0);
ok(!exists($upd->{path}), 'no path default on update');

my @bad = (
    [multipart_chunk_size => 2, qr/minimum value of 5/],
    [multipart_chunk_size => 6000, qr/maximum value of 5120/],
    [max_concurrent_uploads => 0, qr/minimum value of 1/],
    [max_concurrent_uploads => 21, qr/maximum value of 20/],
    [connection_timeout => 5, qr/minimum value of 10/],
    [connection_timeout => 301, qr/maximum value of 300/],
    [server_side_encryption => 'rot13', qr/enumeration/],
    [storage_class => 'CHEAP', qr/enumeration/],
    [bucket => 'a', qr/regex pattern/],
    [endpoint => 'https://h/path', qr/regex pattern/],
    [lifecycle_enabled => 'maybe', qr/boolean/],
    [transition_days => 0, qr/minimum value of 1/],
    [tls_fingerprint => 'abc', qr/regex pattern/],
);
for my $b (@bad) {
    my ($k, $v, $re) = @$b;
    eval { $PLUGIN->check_config('bad', { %$base, $k => $v }, 1, 0) };
    like($@, $re, "$k '$v' refused");
}
eval { $PLUGIN->check_config('bad', { region => 'x' }, 1, 0) };
like($@, qr/^missing value for required option '(?:bucket|endpoint|access_key)'/, 'required options enforced');
eval { $PLUGIN->check_config('bad', { bucket => 'other-bucket' }, 0, 0) };
like($@, qr/^can't change value of fixed parameter 'bucket'/, 'bucket is fixed');
for my $good (['endpoint', 'https://[fd00::1]:7480'], ['endpoint', 'http://127.0.0.1:7480/'],
    ['tls_fingerprint', join(':', ('AB') x 32)], ['storage_class', 'GLACIER_IR'], ['prefix', 'pve/node 1/']) {
    my ($k, $v) = @$good;
    eval { $PLUGIN->check_config('ok', { %$base, $k => $v }, 1, 0) };
    is($@, '', "$k '$v' accepted");
}

done_testing();
