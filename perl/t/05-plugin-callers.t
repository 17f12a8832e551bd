#!/usr/bin/perl
# Every host operation of docs/PROTOCOL.md has a caller in the plugin (issue 11 §4); these are the
# two that have no PVE entry point of their own: `version` when a storage is added, and the daily
# background `abort-stale-uploads`.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;

use S3PluginTest;

my $t = setup_storage();
my ($storeid, $scfg) = @$t{qw(storeid scfg)};

my @ops = map { $_->{request}->{op} } @{ stub_requests() };
is($ops[0], 'version', 'on_add_hook asks the host its protocol first');

# A host of another protocol version: `pvesm add` fails before the secret file is written.
clear_requests();
stub_ok('version', { protocol => 2, host_version => '9.9.9', ops => [] });
my $pw = "$ENV{PVE_S3_PRIV_DIR}/other.pw";
eval { $PLUGIN->on_add_hook('other', $scfg, secret_key => 'x-secret') };
like($@, qr/^pve-s3 host speaks protocol 2, this plugin needs 1/, 'a host of another protocol refuses the add');
ok(!-e $pw, '... and nothing was written');

# A missing host says so (the runner's HostMissing message).
{
    local $ENV{PVE_S3_HOST_BIN} = '/nonexistent/pve-s3-host';
    eval { $PLUGIN->on_add_hook('other', $scfg, secret_key => 'x-secret') };
    like($@, qr/not found or not executable - install pve-s3/, 'a missing host refuses the add');
}

# The background job: abort-stale-uploads without arguments (the host takes the storage's
# abort_incomplete_days), through the same runner as every op.
clear_requests();
stub_ok('abort-stale-uploads', { aborted => [], journals_removed => 0 });
$PLUGIN->run_background_job('abort-stale-uploads', $storeid, $scfg);
my $req = last_request()->{request};
is($req->{op}, 'abort-stale-uploads', 'the daily job runs abort-stale-uploads');
is_deeply($req->{args}, {}, '... with no arguments: the storage decides the age');

done_testing();
