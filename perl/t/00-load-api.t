#!/usr/bin/perl
# Loading the plugin the way PVE does, and api() for every PVE release in the supported range.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;

use PVE::Storage;
use PVE::Storage::Plugin;

my $PLUGIN = 'PVE::Storage::Custom::S3Plugin';

# Production order: the regex variables are undef while the plugin file is compiled.
my @load_warnings;
{
    local $SIG{__WARN__} = sub { push @load_warnings, @_ };
    PVE::Storage::set_api(15, 6);
    my $msg = PVE::Storage::load_custom_plugin($PLUGIN);
    is($msg, undef, 'loads on API 15 without complaint');
}
is_deeply(\@load_warnings, [], 'no warnings while loading (no file-scope use of undef regexes)');
ok(PVE::Storage::Plugin->lookup('s3') eq $PLUGIN, 'registered as type s3');

for my $case ([11, 2, 11], [12, 3, 12], [13, 4, 13], [14, 5, 14], [15, 6, 15], [17, 8, 15]) {
    my ($ver, $age, $want) = @$case;
    PVE::Storage::set_api($ver, $age);
    is($PLUGIN->api(), $want, "api() on APIVER $ver/APIAGE $age is $want");
}

# The loader's range check with the computed value, per release.
for my $case ([11, 2, undef], [12, 3, undef], [15, 6, undef], [17, 8, 'older storage API']) {
    my ($ver, $age, $expect) = @$case;
    PVE::Storage::Plugin::reset_for_tests($ver == 11 ? '8.4' : '9');
    PVE::Storage::set_api($ver, $age);
    my $msg = PVE::Storage::load_custom_plugin($PLUGIN);
    if (defined($expect)) {
        like($msg, qr/\Q$expect\E/, "APIVER $ver: accepted with '$expect' warning");
    } else {
        is($msg, undef, "APIVER $ver: accepted");
    }
    is(PVE::Storage::Plugin->lookup('s3'), $PLUGIN, "APIVER $ver: registered");
}

{
    PVE::Storage::Plugin::reset_for_tests('8.4');
    PVE::Storage::set_api(10, 1);
    my @warn;
    local $SIG{__WARN__} = sub { push @warn, @_ };
    my $msg = PVE::Storage::load_custom_plugin($PLUGIN);
    like($msg, qr/^Error loading storage plugin "\Q$PLUGIN\E": API version 11 is newer than current \(10\)/,
        'PVE 8.3 (API 10): rejected cleanly by the loader');
    like(join('', @warn), qr/storage API 10 is too old .*needs API 11.*PVE 8\.4/, 'and a clear log line says why');
    ok(!eval { PVE::Storage::Plugin->lookup('s3') }, 'not registered on API 10');
    PVE::Storage::Plugin->init();
    pass('PVE itself still initialises without the plugin');
}

PVE::Storage::set_api(15, 6);
is($PLUGIN->type(), 's3', 'type');
my $pd = $PLUGIN->plugindata();
is_deeply($pd->{content}, [
    { backup => 1, iso => 1, vztmpl => 1, snippets => 1, none => 1 },
    { backup => 1, iso => 1, vztmpl => 1, snippets => 1 },
], 'content types and defaults');
is_deeply($pd->{'sensitive-properties'}, { secret_key => 1 }, 'secret_key is sensitive');
ok(!exists($pd->{'isolate-properties'}), 'no property isolation (reference §3.6)');
ok((grep { $_ eq 's3' } @PVE::Storage::Plugin::SHARED_STORAGE) == 1, 'marked shared exactly once');

PVE::Storage::Plugin::reset_for_tests('9');
$PLUGIN->register();
PVE::Storage::Plugin->init();
is_deeply(PVE::Storage::Plugin::sensitive_properties('s3'), ['secret_key'], 'core sees secret_key as sensitive');

my $parsed = PVE::Storage::Plugin->parse_config('storage.cfg', <<'CFG');
s3: my-s3
	bucket my-bucket-proxmox
	endpoint s3.amazonaws.com
	region us-east-1
	access_key AKIAEXAMPLE
	prefix proxmox/
	content backup,iso,vztmpl,snippets
	storage_class STANDARD
	multipart_chunk_size 100
	max_concurrent_uploads 3
	connection_timeout 60
	server_side_encryption AES256
	lifecycle_enabled 1
	transition_days 30
	glacier_days 365
CFG
my $s = $parsed->{ids}->{'my-s3'};
ok($s, "the seed's example section parses");
is($s->{path}, '/var/lib/pve-s3/cache/my-s3', 'path defaults to the per-storage cache dir when parsing');
is($s->{shared}, 1, 'parsed as shared');
is_deeply($s->{content}, { backup => 1, iso => 1, vztmpl => 1, snippets => 1 }, 'content decoded');

done_testing();
