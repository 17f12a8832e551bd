package RgwLease;

# The test RadosGW for the Perl integration test, shared with the vitest runs by the same lease
# protocol as test/helpers/rgw-global-setup.ts: a lock directory, one lease file per run, and
# the gateway stopped at the end only if a test run started it and no run still holds a lease.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);

my $SCRIPTS = abs_path(dirname(__FILE__) . '/../../../test/s3');
my $RGW_DIR = $ENV{PVE_S3_RGW_DIR} // '/tmp/pve-s3-rgw';
my $RUNS = "$RGW_DIR.test-runs";
my $LOCK = "$RUNS/lock";
my $LEASE = "$RUNS/lease-$$";
my $STARTED = "$RUNS/started-by-tests";
my $held;

sub with_lock {
    my ($code) = @_;
    make_path($RUNS);
    for (my $i = 0;; $i++) {
        last if mkdir($LOCK);
        my $owner = -f "$LOCK/owner" ? do { open(my $f, '<', "$LOCK/owner"); local $/; <$f> } : '';
        if (defined($owner) && $owner =~ m/^(\d+)$/ && !kill(0, $1)) {
            remove_tree($LOCK);
            next;
        }
        die "rgw lease: $LOCK stayed locked for 10 minutes\n" if $i > 6000;
        select(undef, undef, undef, 0.1);
    }
    open(my $o, '>', "$LOCK/owner") or die;
    print $o $$;
    close($o);
    my @res = eval { $code->() };
    my $err = $@;
    remove_tree($LOCK);
    die $err if $err;
    return wantarray ? @res : $res[0];
}

sub live_leases {
    opendir(my $dh, $RUNS) or return ();
    my @live;
    for my $name (readdir($dh)) {
        next if $name !~ m/^lease-(\d+)$/;
        if (kill(0, $1)) {
            push @live, $name;
        } else {
            unlink("$RUNS/$name");
        }
    }
    closedir($dh);
    return @live;
}

# Starts or reuses the gateway; returns its settings (S3_* keys of s3.env).
sub acquire {
    my $vars = with_lock(sub {
        live_leases();
        my $out = `'$SCRIPTS/rgw-up.sh' '$RGW_DIR'`;
        die "test/s3/rgw-up.sh failed (exit " . ($? >> 8) . "); logs in $RGW_DIR/log\n" if $?;
        my %v = $out =~ m/^([A-Z0-9_]+)=(.*)$/mg;
        if (($v{RGW_STARTED} // '') eq '1') {
            open(my $m, '>', $STARTED) or die;
            close($m);
        }
        open(my $l, '>', $LEASE) or die;
        print $l $$;
        close($l);
        $held = 1;
        return \%v;
    });
    return $vars;
}

sub release {
    return if !$held;
    $held = 0;
    with_lock(sub {
        unlink($LEASE);
        return if live_leases();
        return if !-f $STARTED || ($ENV{PVE_S3_RGW_KEEP} // '') eq '1';
        system("'$SCRIPTS/rgw-down.sh' '$RGW_DIR' >&2");
        unlink($STARTED);
    });
    rmdir($RUNS);
}

END { release() }

1;
