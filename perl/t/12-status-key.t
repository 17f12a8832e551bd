#!/usr/bin/perl
# The status cache (<path>/.pve-s3/status.json) answers only for the configuration it was probed
# with. Its key must not be a digest of the secret (issue 10 §14: an unsalted SHA-256 over the
# storage with its secret let anyone holding the file test guesses of the secret offline): the
# secret's file identity stands in for it, which changes whenever a new secret is written.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;
use JSON::PP;
use Digest::SHA;

use S3PluginTest;

$SIG{ALRM} = sub { die "test timed out\n" };
alarm(60);

my $t = setup_storage();
my ($storeid, $scfg, $secret) = @$t{qw(storeid scfg secret)};
my $file = "$scfg->{path}/.pve-s3/status.json";
my $json = JSON::PP->new->canonical;

PVE::Storage::Custom::S3Plugin::ensure_cache_dirs($scfg);
stub_ok('status', { active => JSON::PP::true, total => 1000, used => 400, avail => 600 });
clear_requests();
$PLUGIN->status($storeid, $scfg, {});
my $cached = decode_json(read_file($file));
ok(defined($cached->{key}), 'the cache has a key');
unlike(read_file($file), qr/\Q$secret\E/, 'the secret is not in status.json');

# what the key used to be: a digest over the storage including its secret
my $obj = PVE::Storage::Custom::S3Plugin::storage_object($storeid, $scfg);
isnt($cached->{key}, Digest::SHA::sha256_hex($json->encode($obj)), 'the key is not the digest of the storage with its secret');
isnt($cached->{key}, Digest::SHA::sha256_hex($secret), '... nor of the secret');
is(PVE::Storage::Custom::S3Plugin::status_key($storeid, $scfg), $cached->{key}, 'the key is stable for an unchanged configuration');

$PLUGIN->status($storeid, $scfg, {});
is(scalar(@{ stub_requests() }), 1, 'an unchanged configuration is answered from the cache');

# a new secret (pvesm set --secret_key): a new secret file, so a new probe
sleep(1); # a new mtime even where inode numbers are reused
PVE::Storage::Custom::S3Plugin::set_secret($storeid, "$secret-changed");
$PLUGIN->status($storeid, $scfg, {});
is(scalar(@{ stub_requests() }), 2, 'a new secret is probed again');

# another property: a new probe too
$PLUGIN->status($storeid, { %$scfg, bucket => 'other-bucket' }, {});
is(scalar(@{ stub_requests() }), 3, 'another bucket is probed again');

done_testing();
