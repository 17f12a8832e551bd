package HostGateway;

# Shared set-up of the Perl tests that run the real host against the test RadosGW: skip (with
# the reason) when the host cannot run here, take a lease on the gateway, make a fresh bucket, and
# point the plugin at the dev tree's host.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;

use MiniS3;
use RgwLease;

our $ROOT = abs_path(dirname(__FILE__) . '/../../..');

# Call before anything is tested: skip_all unless node >= 20.18, the built host and @tools exist.
sub skip_unless_ready {
    my (@tools) = @_;
    my $node_ok = `node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a==20&&b>=18)?0:1)' 2>/dev/null; echo \$?`;
    plan skip_all => 'node >= 20.18 not found (needed to run the host)' if $node_ok !~ m/^0/;
    plan skip_all => "host not built: $ROOT/host/dist/protocol/main.js missing (run npm run build)"
        if !-f "$ROOT/host/dist/protocol/main.js";
    plan skip_all => 'PVE_S3_SKIP_INTEGRATION=1' if ($ENV{PVE_S3_SKIP_INTEGRATION} // '') eq '1';
    for my $tool (@tools) {
        plan skip_all => "$tool not installed" if system("command -v $tool >/dev/null") != 0;
    }
}

# The gateway's settings and a new bucket named "pve-s3-<label>-<time>-<pid>"; the plugin runs
# the dev tree's host, logging to $log, configured by its request alone (no S3_* variables).
sub start {
    my ($label, $log) = @_;
    my $rgw = RgwLease::acquire();
    my $gw = {
        endpoint => $rgw->{S3_ENDPOINT},
        region => $rgw->{S3_REGION},
        access_key => $rgw->{S3_ACCESS_KEY},
        secret_key => $rgw->{S3_SECRET_KEY},
        bucket => sprintf('pve-s3-%s-%d-%d', $label, time(), $$),
    };
    $gw->{s3} = MiniS3->new(
        endpoint => $gw->{endpoint}, region => $gw->{region},
        access_key => $gw->{access_key}, secret_key => $gw->{secret_key},
    );
    $gw->{s3}->create_bucket($gw->{bucket});

    $ENV{PVE_S3_HOST_BIN} = "node $ROOT/host/bin/pve-s3-host.js";
    $ENV{PVE_S3_LOG_FILE} = $log;
    # A loaded test machine must not look like an outage (perl/README.md, PVE_S3_STATUS_TIMEOUT).
    $ENV{PVE_S3_STATUS_TIMEOUT} = 30;
    delete $ENV{$_} for grep { m/^S3_/ } keys %ENV;
    return $gw;
}

# start() for a test run inside PVE ($pve of PVEUpstream::per_version): the bucket named for the
# test and the PVE version, the host's log in the test's scratch directory ($opts{log}, default
# host.log); with $opts{timeout} a hung run dies after that many seconds, the gateway's start
# included, instead of waiting for CI's limit (no assertion on time).
sub start_in {
    my ($pve, $label, %opts) = @_;
    if ($opts{timeout}) {
        $SIG{ALRM} = sub { die "test timed out\n" };
        alarm($opts{timeout});
    }
    return start("$label-$pve->{version}", "$pve->{tmp}/" . ($opts{log} // 'host.log'));
}

1;
