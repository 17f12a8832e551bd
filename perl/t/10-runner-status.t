#!/usr/bin/perl
# The private host runner: exact request JSON, the secret only on stdin, error mapping,
# timeouts; and status, which must never die or hang pvestatd.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib", "$FindBin::Bin/../";
use Test::More;
use JSON::PP;

use S3PluginTest;

# A hang must fail the test run, not block it.
$SIG{ALRM} = sub { die "test timed out\n" };
alarm(120);

my $t = setup_storage(props => { multipart_chunk_size => 64, lifecycle_enabled => 1, nodes => 'n1,n2' });
my ($storeid, $scfg, $secret) = @$t{qw(storeid scfg secret)};

stub_ok('list', { volumes => [] });
my $res = PVE::Storage::Custom::S3Plugin::host_call($storeid, $scfg, 'list', { content => ['backup'], vmid => 100 });
is_deeply($res, { volumes => [] }, 'result of an ok envelope');
my $rec = last_request();
is_deeply($rec->{request}, {
    v => 1,
    op => 'list',
    deadline_ms => 299000,
    storage => {
        id => $storeid,
        bucket => 'pve-bucket',
        endpoint => '127.0.0.1:7480',
        access_key => 'AKIDTEST',
        secret_key => $secret,
        prefix => 'pve/',
        path => $scfg->{path},
        content => 'backup,iso,snippets,vztmpl',
        nodes => 'n1,n2',
        shared => '1',
        multipart_chunk_size => '64',
        lifecycle_enabled => '1',
    },
    args => { content => ['backup'], vmid => 100 },
}, 'exact request: version, op, deadline, storage in storage.cfg text form incl. secret, args');
like($rec->{raw}, qr/"multipart_chunk_size":"64"/, 'values are JSON strings on the wire');
like($rec->{raw}, qr/"vmid":100[,}]/, 'vmid is a JSON number');

my @argv_hits = grep { index($_, $secret) >= 0 } @{ $rec->{argv} };
is(scalar(@argv_hits), 0, 'secret not in the host argv');
is(index($rec->{cmdline}, $secret), -1, 'secret not in /proc/<pid>/cmdline');
ok(length($rec->{cmdline}) > 0, '(cmdline was actually read)');
my @env_hits = grep { index($rec->{env}->{$_} // '', $secret) >= 0 } keys %{ $rec->{env} };
is_deeply(\@env_hits, [], 'secret not in the host environment');
like($rec->{raw}, qr/\Q$secret\E/, 'secret is in the stdin request');

# Without a secret file the key is simply absent (the host reports ConfigMissing).
rename("$ENV{PVE_S3_PRIV_DIR}/$storeid.pw", "$ENV{PVE_S3_PRIV_DIR}/moved");
PVE::Storage::Custom::S3Plugin::host_call($storeid, $scfg, 'version', {});
ok(!exists(last_request()->{request}->{storage}->{secret_key}), 'no secret file: no secret_key sent');
rename("$ENV{PVE_S3_PRIV_DIR}/moved", "$ENV{PVE_S3_PRIV_DIR}/$storeid.pw");

# Error mapping: the host's one-line message is what PVE shows.
stub_err('stat', 'NoSuchKey', "backup 'x' not found in bucket 'pve-bucket'", status => 404,
    stderr => ['progress line', "backup 'x' not found in bucket 'pve-bucket'"]);
eval { PVE::Storage::Custom::S3Plugin::host_call($storeid, $scfg, 'stat', { volname => 'backup/x.vma' }) };
is($@, "backup 'x' not found in bucket 'pve-bucket'\n", 'host error → die with its message');
my ($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', { volname => 'backup/x.vma' });
is($r, undef, 'host_try: no result on error');
is($e->{code}, 'NoSuchKey', 'host_try: code');
is($e->{status}, 404, 'host_try: status');

stub_reply('stat', { raw_stdout => "not json\n", stderr => ['node: something exploded'], exit => 7 });
($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', {});
is($e->{code}, 'HostFailed', 'garbage on stdout → HostFailed');
is($e->{message}, 'node: something exploded', '... with the last stderr line');

stub_reply('stat', { raw_stdout => '', exit => 3 });
($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', {});
like($e->{message}, qr/exited with code 3 without a reply/, 'no output, no stderr → exit code named');

stub_reply('stat', { envelope => { ok => JSON::PP::true, result => { x => 1 } }, exit => 2 });
($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', {});
is($r, undef, 'ok envelope with non-zero exit is not trusted');

stub_err('stat', 'AccessDenied', "two\nlines");
($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'stat', {});
is($e->{message}, 'two', 'a multi-line message is cut to one line');

{
    local $ENV{PVE_S3_HOST_BIN} = '/nonexistent/pve-s3-host';
    ($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'status', {});
    is($e->{code}, 'HostMissing', 'missing host executable');
    like($e->{message}, qr{/nonexistent/pve-s3-host' not found}, '... named in the message');
}
{
    # The executable itself, not via an interpreter prefix.
    local $ENV{PVE_S3_HOST_BIN} = "$FindBin::Bin/bin/stub-host";
    stub_ok('version', { protocol => 1 });
    is_deeply(PVE::Storage::Custom::S3Plugin::host_call($storeid, $scfg, 'version', {}), { protocol => 1 },
        'direct executable path works');
}

# A hanging host is killed at its timeout.
stub_reply('list', { sleep => 60, envelope => { ok => JSON::PP::true, result => {} } });
unlink("$ENV{PVE_S3_STUB_DIR}/sleeping.pid");
($r, $e) = PVE::Storage::Custom::S3Plugin::host_try($storeid, $scfg, 'list', {}, timeout => 2);
is($e->{code}, 'HostTimeout', 'hang → HostTimeout');
like($e->{message}, qr/timed out after 2s/, '... message names the timeout');
my $pid = read_file("$ENV{PVE_S3_STUB_DIR}/sleeping.pid");
ok(!kill(0, $pid), 'the hanging host process was killed');

# --- status ---------------------------------------------------------------------------------

clear_requests();
PVE::Storage::Custom::S3Plugin::ensure_cache_dirs($scfg);
stub_ok('status', { active => JSON::PP::true, total => 1000, used => 400, avail => 600 });
is_deeply([$PLUGIN->status($storeid, $scfg, {})], [1000, 600, 400, 1], 'status: (total, avail, used, active)');
is(last_request()->{request}->{deadline_ms}, 2000, 'status deadline 2 s (killed after 3 s)');
is_deeply([$PLUGIN->status($storeid, $scfg, {})], [1000, 600, 400, 1], 'second status answered from the cache');
is(scalar(@{ stub_requests() }), 1, '... without running the host again');

unlink("$scfg->{path}/.pve-s3/status.json");
stub_err('status', 'NetworkError', 'connect ECONNREFUSED 127.0.0.1:7480');
my @st = eval { $PLUGIN->status($storeid, $scfg, {}) };
is($@, '', 'status does not die on a host error');
is_deeply(\@st, [0, 0, 0, 0], 'status is inactive on a host error');
# How long a failure is believed depends on what finding it out cost pvestatd.
my $age_cache = sub {
    my ($secs) = @_;
    my $f = "$scfg->{path}/.pve-s3/status.json";
    my $d = decode_json(read_file($f));
    $d->{at} -= $secs;
    write_file($f, encode_json($d));
};
$age_cache->(12);
ok(!PVE::Storage::Custom::S3Plugin::read_status_cache($scfg), 'a quick failure is re-probed after 10 s');

unlink("$scfg->{path}/.pve-s3/status.json");
stub_reply('status', { sleep => 60, envelope => { ok => JSON::PP::true, result => { active => JSON::PP::true } } });
@st = eval { $PLUGIN->status($storeid, $scfg, {}) };
is($@, '', 'status does not die when the host hangs');
is_deeply(\@st, [0, 0, 0, 0], 'a hanging host gives inactive (returned at the 3 s bound, not after 60 s)');
$pid = read_file("$ENV{PVE_S3_STUB_DIR}/sleeping.pid");
ok(!kill(0, $pid), 'the hanging status host was killed');
$age_cache->(12);
ok(PVE::Storage::Custom::S3Plugin::read_status_cache($scfg), 'a slow failure (black hole) is believed for longer...');
$age_cache->(10);
ok(!PVE::Storage::Custom::S3Plugin::read_status_cache($scfg), '... but not beyond 20 s');

{
    local $ENV{PVE_S3_HOST_BIN} = '/nonexistent/host';
    unlink("$scfg->{path}/.pve-s3/status.json");
    is_deeply([$PLUGIN->status($storeid, $scfg, {})], [0, 0, 0, 0], 'missing host: inactive, no exception');
}
is_deeply([$PLUGIN->status($storeid, { %$scfg, path => undef }, {})], [0, 0, 0, 0], 'no path: inactive, no exception');

# A fresh failed status answers activate_storage too: no second bounded host run per cycle.
clear_requests();
unlink("$scfg->{path}/.pve-s3/status.json");
my $transient = sub {
    my ($op, $code, $msg) = @_;
    stub_reply($op, { envelope => { ok => JSON::PP::false, error => { code => $code, message => $msg, retryable => JSON::PP::true } } });
};
$transient->('status', 'NetworkError', 'connect ETIMEDOUT 10.9.9.9:443');
$PLUGIN->status($storeid, $scfg, {});
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    my $ok = eval { $PLUGIN->activate_storage($storeid, $scfg, {}) };
    is($@, '', 'an outage found by status does not fail activate_storage (cached ISOs, restores from cache, vzdump spooling)');
    is_deeply(\@w, [], '... and is not repeated as a warning on every cached answer');
}
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['status'], '... without running the host again');

clear_requests();
unlink("$scfg->{path}/.pve-s3/status.json");
stub_err('status', 'AccessDenied', "access denied to bucket 'pve-bucket': check access_key/secret_key");
$PLUGIN->status($storeid, $scfg, {});
eval { $PLUGIN->activate_storage($storeid, $scfg, {}) };
is($@, "access denied to bucket 'pve-bucket': check access_key/secret_key\n",
    'a misconfiguration found by status fails activate_storage with the cached reason');
is_deeply([map { $_->{request}->{op} } @{ stub_requests() }], ['status'], '... without running the host again');

# Pending local files make status start a detached sync-local (rate-limited).
{
    local $ENV{PVE_S3_AUTOSYNC} = '1';
    clear_requests();
    unlink("$scfg->{path}/.pve-s3/status.json", glob("$scfg->{path}/.pve-s3/*.stamp"));
    PVE::Storage::Plugin::activate_storage($PLUGIN, $storeid, $scfg, {});
    write_file("$scfg->{path}/template/iso/gui-upload.iso", 'ISO');
    utime(time() - 3600, time() - 3600, "$scfg->{path}/template/iso/gui-upload.iso");
    stub_ok('status', { active => JSON::PP::true, total => 1, used => 0, avail => 1 });
    stub_ok('sync-local', { uploaded => [], skipped => [], errors => [] });
    is(($PLUGIN->status($storeid, $scfg, {}))[3], 1, 'status with a pending file: active');
    my $seen;
    for (1 .. 100) {
        last if ($seen = grep { $_->{request}->{op} eq 'sync-local' } @{ stub_requests() });
        select(undef, undef, undef, 0.1);
    }
    ok($seen, 'a background sync-local was started');
    unlink("$scfg->{path}/.pve-s3/status.json");
    $PLUGIN->status($storeid, $scfg, {});
    sleep(1);
    is(scalar(grep { $_->{request}->{op} eq 'sync-local' } @{ stub_requests() }), 1, 'not again within the interval');
    unlink("$scfg->{path}/template/iso/gui-upload.iso");
}

# --- activate_storage -----------------------------------------------------------------------

clear_requests();
unlink("$scfg->{path}/.pve-s3/status.json");
stub_ok('status', { active => JSON::PP::true, total => 10, used => 1, avail => 9 });
my $fresh = { %$scfg, path => "$t->{tmp}/fresh-cache" };
ok($PLUGIN->activate_storage($storeid, $fresh, {}), 'activate_storage succeeds');
ok(-d "$fresh->{path}/$_", "cache subdir $_ created") for qw(dump template/iso template/cache snippets .pve-s3);
is(last_request()->{request}->{op}, 'status', "bucket checked through the host with status's probe");
is(last_request()->{request}->{deadline_ms}, 2000, '... and its bound (pvestatd activates every cycle)');
is_deeply([$PLUGIN->status($storeid, $fresh, {})], [10, 9, 1, 1], 'the status that follows (pvestatd) reuses that probe');
is(scalar(@{ stub_requests() }), 1, '... one host run for both');

# A probe answers only for the configuration it ran with: a corrected secret is tried at once.
clear_requests();
stub_err('status', 'SignatureDoesNotMatch', 'the secret key was refused');
my $retry = { %$fresh, path => "$t->{tmp}/retry-cache" };
eval { $PLUGIN->activate_storage($storeid, $retry, {}) };
like($@, qr/secret key was refused/, 'a wrong secret fails activation');
$PLUGIN->on_update_hook($storeid, { type => 's3' }, secret_key => 'corrected');
stub_ok('status', { active => JSON::PP::true, total => 10, used => 1, avail => 9 });
ok(eval { $PLUGIN->activate_storage($storeid, $retry, {}) }, '... and the corrected one is probed, not answered from the cache');
is(scalar(@{ stub_requests() }), 2, '... (two host runs)');
ok(index(read_file("$retry->{path}/.pve-s3/status.json"), 'corrected') < 0, 'the status cache holds a digest, never the secret');
$PLUGIN->on_update_hook($storeid, { type => 's3' }, secret_key => $secret);

stub_err('status', 'NoSuchBucket', "bucket 'pve-bucket' does not exist at http://127.0.0.1:7480");
unlink("$fresh->{path}/.pve-s3/status.json");
eval { $PLUGIN->activate_storage($storeid, $fresh, {}) };
is($@, "bucket 'pve-bucket' does not exist at http://127.0.0.1:7480\n", 'missing bucket: dies with the host message (pvesm add refuses it)');

$transient->('status', 'NetworkError', 'cannot reach http://127.0.0.1:7480: connection refused');
unlink("$fresh->{path}/.pve-s3/status.json");
{
    my @w;
    local $SIG{__WARN__} = sub { push @w, @_ };
    ok(eval { $PLUGIN->activate_storage($storeid, $fresh, {}) }, 'unreachable endpoint: activate_storage succeeds (local work goes on)');
    like(join('', @w), qr/^storage '\Q$storeid\E': bucket not reachable \(cannot reach .*connection refused\) - only cached and local volumes are usable/,
        '... with one warning naming the cause');
    @w = ();
    ok(eval { $PLUGIN->activate_storage($storeid, $fresh, {}) }, '... again from the cached probe');
    is_deeply(\@w, [], '... without repeating the warning');
}
my ($st_active) = ($PLUGIN->status($storeid, $fresh, {}))[3];
is($st_active, 0, '... while status reports the storage inactive (from the same probe)');

# Through the core wrapper, as pvestatd does.
$PVE::Storage::CONFIG = { ids => { $storeid => { %$scfg, type => 's3' } } };
unlink("$scfg->{path}/.pve-s3/status.json");
stub_ok('status', { active => JSON::PP::true, total => 10, used => 1, avail => 9 });
my $info = PVE::Storage::storage_info(PVE::Storage::config());
is_deeply([@{ $info->{$storeid} }{qw(active total used avail shared type)}], [1, 10, 1, 9, 1, 's3'], 'storage_info via the core wrapper');

done_testing();
