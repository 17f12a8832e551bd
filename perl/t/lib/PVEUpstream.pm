package PVEUpstream;

# Loads the storage plugin inside the real Proxmox VE code (pve-storage + pve-common extracts
# under $PVE_UPSTREAM_DIR/pve9 and /pve84), or inside the project's test double
# (perl/t/lib/PVE/...) when that variable is not set. API (perl/README.md "Tests inside the real
# PVE code"):
#
#   use PVEUpstream;                          # before anything loads a PVE:: module
#   my $pve = PVEUpstream::per_version();     # runs this .t once per PVE version (see below)
#   $pve->{version}   'pve9' | 'pve84' | 'double'
#   $pve->{upstream}  1 inside the real code
#   $pve->{label}     e.g. "PVE 9 (pve-storage API 15)" - say it in test names/diag
#   $pve->{etc_pve}   the directory standing for /etc/pve (storage.cfg, priv/)
#   $pve->{tmp}       a scratch directory removed at exit
#   $pve->api($method, \%param)   PVE::API2::Storage::Config->$method(\%param), as pvesm/GUI do
#   $pve->config()                PVE::Storage::config() (storage.cfg through PVE::Cluster)
#   $pve->{vzdump}    1 when pve-manager's real PVE::VZDump can run (see load_vzdump)
#   $pve->load_vzdump()           loads pve-manager's PVE::VZDump with pve-guest-common
#
# per_version(): without PVE_UPSTREAM_DIR, loads the double in this process and says so. With it,
# the calling script is run again once per version (a process can load only one PVE), each
# child's TAP is shown indented as a subtest, and the parent exits with the result; inside a
# child it loads that version and returns. PVEUpstream::load($version) loads one directly.
#
# setup(%opts): per_version() with what the tests do around it, then says which PVE runs:
#   backup_provider => '0'|'1'    PVE_S3_BACKUP_PROVIDER, set first: the plugin reads it when PVE
#                                 registers it
#   needs => 'upstream'|'vzdump'  skip_all unless inside the real code (with pve-manager's real
#                                 PVE::VZDump for 'vzdump'); why => '...' ends the skip's reason
#   vzdump => 1                   loads pve-manager's PVE::VZDump when it is extracted, and says
#                                 whether the test runs it or the project's VZDumpDriver
#
# How the real code is loaded: @INC is a temp copy of pve-storage's Storage.pm, a temp
# "perl5" dir holding PVE/Storage/Custom/S3Plugin.pm and S3Plugin/ (symlinks to this repo's), the
# pve-storage src, the pve-common src, then perl/t/standin (modules of other packages:
# PVE::Cluster, PVE::RPCEnvironment, ...). The copy of Storage.pm differs from the original only
# in its hard-coded custom-plugin directory, so the plugin is found by PVE's own loader; if that
# string is not found the load fails loudly. After loading, every PVE:: module must come from
# those directories (nothing from the double), and PVE::RPCEnvironment is set up as pvesm does.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use POSIX ();

use FileBytes qw(write_file);

my $T_DIR = abs_path(dirname(__FILE__) . '/..');
my $REPO_PERL = abs_path("$T_DIR/..");
my $STANDIN = "$T_DIR/standin";
my $DOUBLE = "$T_DIR/lib";
my $CUSTOM_DIR = '/usr/share/perl5/PVE/Storage/Custom';
# the guest plugins' doubles (PVE::VZDump::QemuServer, ::LXC), found by VZDump.pm's own loader
my $GUEST_PLUGINS = "$T_DIR/guest";

my @VERSIONS = qw(pve9 pve84);
my $LABEL = { pve9 => 'PVE 9', pve84 => 'PVE 8.4', double => "the project's test double" };

# The versions a test runs in: the real ones when PVE_UPSTREAM_DIR is set, else the double.
sub versions {
    my $dir = $ENV{PVE_UPSTREAM_DIR};
    return ('double') if !defined($dir) || $dir eq '';
    for my $v (@VERSIONS) {
        for my $pkg (qw(pve-storage pve-common)) {
            die "PVE_UPSTREAM_DIR=$dir has no $v/$pkg/src (expected git archive extracts of "
                . "pve-storage and pve-common for " . join(' and ', @VERSIONS) . ")\n"
                if !-d "$dir/$v/$pkg/src";
        }
    }
    return @VERSIONS;
}

sub per_version {
    my $want = $ENV{PVE_S3_UPSTREAM_VERSION};
    return load($want) if defined($want) && $want ne '';

    my @versions = versions();
    if ($versions[0] eq 'double') {
        print "# PVE_UPSTREAM_DIR is not set: running inside the project's test double "
            . "(perl/t/lib/PVE), NOT the real PVE storage code\n";
        return load('double');
    }
    require Test::More;
    my $script = abs_path($0);
    for my $v (@versions) {
        local $ENV{PVE_S3_UPSTREAM_VERSION} = $v;
        my $pid = open(my $out, '-|') // die "fork: $!\n";
        if (!$pid) {
            open(STDERR, '>&', \*STDOUT);
            exec($^X, $script) or POSIX::_exit(127);
        }
        local $| = 1;
        print "# Subtest: inside the real $LABEL->{$v} code\n";
        print "    $_" while <$out>;
        close($out);
        Test::More::ok($? == 0, "inside the real $LABEL->{$v} code ($ENV{PVE_UPSTREAM_DIR}/$v)");
    }
    Test::More::done_testing();
    exit(Test::More->builder->is_passing ? 0 : 1);
}

sub setup {
    my (%opts) = @_;

    $ENV{PVE_S3_BACKUP_PROVIDER} = $opts{backup_provider} if defined($opts{backup_provider});
    my $self = per_version();
    require Test::More;
    my $needs = $opts{needs} // '';
    my $missing = $needs eq 'upstream' && !$self->{upstream} ? 'the real PVE code (PVE_UPSTREAM_DIR)'
        : $needs eq 'vzdump' && !$self->{vzdump} ? "pve-manager's real PVE::VZDump (PVE_UPSTREAM_DIR "
            . "with pve-manager and pve-guest-common extracted)"
        : undef;
    if (defined($missing)) {
        Test::More::plan(skip_all => "needs $missing" . (defined($opts{why}) ? ": $opts{why}" : ''));
    }
    Test::More::diag("running inside $self->{label}");
    if ($opts{vzdump}) {
        $self->load_vzdump() if $self->{vzdump};
        Test::More::diag('vzdump: '
            . ($self->{vzdump} ? "pve-manager's PVE::VZDump" : "the project's VZDumpDriver"));
    }
    return $self;
}

sub load {
    my ($version) = @_;

    die "PVEUpstream::load: unknown version '$version'\n" if !$LABEL->{$version};
    my @early = grep { m|^PVE/| } keys %INC;
    die "PVEUpstream::load: PVE modules already loaded before the harness: @early\n" if @early;

    my $tmp = tempdir('pve-s3-pve-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless {
        version => $version,
        upstream => $version eq 'double' ? 0 : 1,
        tmp => $tmp,
        etc_pve => "$tmp/etc-pve",
    }, __PACKAGE__;
    make_path("$self->{etc_pve}/priv/storage", "$tmp/perl5/PVE/Storage/Custom", "$tmp/lib/PVE");
    chmod(0700, "$self->{etc_pve}/priv");
    symlink("$REPO_PERL/PVE/Storage/Custom/S3Plugin.pm", "$tmp/perl5/PVE/Storage/Custom/S3Plugin.pm")
        or die "symlink: $!\n";
    # the plugin's own modules beside it (the Backup Provider), as the package installs them
    symlink("$REPO_PERL/PVE/Storage/Custom/S3Plugin", "$tmp/perl5/PVE/Storage/Custom/S3Plugin")
        or die "symlink: $!\n";
    $ENV{PVE_S3_PRIV_DIR} = "$self->{etc_pve}/priv/storage";

    my @warnings;
    local $SIG{__WARN__} = sub { push @warnings, $_[0] };
    if ($self->{upstream}) {
        $self->load_upstream();
    } else {
        $self->load_double();
    }
    my @bad = grep { m/^Error loading storage plugin|older storage API/ } @warnings;
    die "loading the plugin failed: @bad" if @bad;
    print STDERR "# (while loading $self->{label}) $_" for @warnings;

    my $plugin = eval { PVE::Storage::Plugin->lookup('s3') };
    die "the s3 plugin was not registered by the storage code's loader\n"
        if !$plugin || $plugin ne 'PVE::Storage::Custom::S3Plugin';
    return $self;
}

sub load_upstream {
    my ($self) = @_;

    my $src = "$ENV{PVE_UPSTREAM_DIR}/$self->{version}";
    my $tmp = $self->{tmp};
    my $storage_pm = "$src/pve-storage/src/PVE/Storage.pm";
    open(my $fh, '<', $storage_pm) or die "cannot read $storage_pm: $!\n";
    my $code = do { local $/; <$fh> };
    close($fh);
    my $n = ($code =~ s/\Q'$CUSTOM_DIR'\E/'$tmp\/perl5\/PVE\/Storage\/Custom'/g);
    die "$storage_pm no longer names '$CUSTOM_DIR': the harness cannot point PVE's plugin "
        . "loader at the plugin - update perl/t/lib/PVEUpstream.pm\n" if !$n;
    open($fh, '>', "$tmp/lib/PVE/Storage.pm") or die "cannot write: $!\n";
    print $fh $code;
    close($fh);

    my @dirs = ("$tmp/lib", "$tmp/perl5", "$src/pve-storage/src", "$src/pve-common/src", $STANDIN);
    # The double and the repo's perl/ must not fill in for anything upstream lacks.
    @INC = (@dirs, grep { my $d = $_; !ref($d) && !grep { same_dir($d, $_) } ($DOUBLE, $REPO_PERL) } @INC);

    write_file("$self->{etc_pve}/storage.cfg", local_storage_cfg());
    require PVE::Cluster;
    $PVE::Cluster::ROOT = $self->{etc_pve};
    require PVE::Storage;
    require PVE::API2::Storage::Config;
    PVE::RPCEnvironment->setup_default_cli_env(); # as pvesm's setup_environment

    for my $mod (sort grep { m|^PVE/| } keys %INC) {
        my $path = $INC{$mod};
        die "$mod was loaded from $path, outside the real code and the stand-ins\n"
            if !grep { index($path, "$_/") == 0 } @dirs;
    }
    $self->{label} = "$LABEL->{$self->{version}} (pve-storage API " . PVE::Storage::APIVER() . ')';
    $self->{inc} = \@dirs;
    $self->{vzdump} = -f "$src/pve-manager/PVE/VZDump.pm" && -d "$src/pve-guest-common/src/PVE/VZDump" ? 1 : 0;
}

# pve-manager's PVE::VZDump (with pve-guest-common's PVE::VZDump::Common, ::Plugin, ::JobBase
# and the rest of pve-manager and pve-common it loads), as vzdump and the backup jobs run it.
# VZDump.pm is loaded from a temp copy that differs from the original only in its hard-coded
# paths, each of which must be found once (an upstream change fails loudly):
#   /usr/share/perl5/<plugin>.pm   its guest-plugin loader: the doubles in perl/t/guest
#   /var/log/vzdump                the per-guest task logs (tmplog)
#   /var/run/vzdump.lock, .pid     getlock's lock and pid files
#   /etc/vzdump.conf               the node's defaults (none here: the schema's defaults)
# Stand-ins in perl/t/standin for packages not extracted: PVE::HA::Config, PVE::HA::Env::PVE2
# (pve-ha-manager), PVE::Notify (pve-cluster, Rust-backed). vzdump's new() insists on a
# sendmail binary (a node has postfix); without one a refusing script is put first in PATH.
sub load_vzdump {
    my ($self) = @_;

    die "PVEUpstream::load_vzdump: pve-manager / pve-guest-common are not extracted for "
        . "$self->{version}\n" if !$self->{vzdump};
    return if $INC{'PVE/VZDump.pm'};
    my $src = "$ENV{PVE_UPSTREAM_DIR}/$self->{version}";
    my $tmp = $self->{tmp};
    make_path("$tmp/vzdump/log", "$tmp/vzdump/run", "$tmp/vzdump/etc", "$tmp/vzdump/bin");
    my $vzdump_pm = "$src/pve-manager/PVE/VZDump.pm";
    open(my $fh, '<', $vzdump_pm) or die "cannot read $vzdump_pm: $!\n";
    my $code = do { local $/; <$fh> };
    close($fh);
    for my $r (
        ['"/usr/share/perl5/$plug.pm"', qq{"$GUEST_PLUGINS/\$plug.pm"}],
        ["'/var/log/vzdump'", "'$tmp/vzdump/log'"],
        ["'/var/run/vzdump.lock'", "'$tmp/vzdump/run/vzdump.lock'"],
        ["'/var/run/vzdump.pid'", "'$tmp/vzdump/run/vzdump.pid'"],
        ['"/etc/vzdump.conf"', qq{"$tmp/vzdump/etc/vzdump.conf"}],
    ) {
        my ($from, $to) = @$r;
        my $n = ($code =~ s/\Q$from\E/$to/g);
        die "$vzdump_pm names $from $n times, not once: the harness cannot redirect it - "
            . "update perl/t/lib/PVEUpstream.pm\n" if $n != 1;
    }
    open($fh, '>', "$tmp/lib/PVE/VZDump.pm") or die "cannot write: $!\n";
    print $fh $code;
    close($fh);

    if (!grep { -x "$_/sendmail" } split(/:/, $ENV{PATH})) {
        write_file("$tmp/vzdump/bin/sendmail", "#!/bin/sh\necho 'no mail on this test node' >&2\nexit 1\n");
        chmod(0755, "$tmp/vzdump/bin/sendmail");
        $ENV{PATH} = "$tmp/vzdump/bin:$ENV{PATH}";
    }

    my @more = ("$src/pve-guest-common/src", "$src/pve-manager");
    my @dirs = (grep({ $_ ne $STANDIN } @{ $self->{inc} }), @more, $STANDIN);
    @INC = (@dirs, grep { my $d = $_; ref($d) || !grep { $d eq $_ } @dirs } @INC);
    $self->{inc} = \@dirs;
    require PVE::VZDump;

    for my $mod (sort grep { m|^PVE/| } keys %INC) {
        my $path = $INC{$mod};
        die "$mod was loaded from $path, outside the real code and the stand-ins\n"
            if !grep { index($path, "$_/") == 0 } @dirs;
    }
    # a stand-in only for what no extract has
    for my $mod (sort grep { m|^PVE/| && index($INC{$_}, "$STANDIN/") == 0 } keys %INC) {
        my @real = grep { -f "$_/$mod" } @more, "$src/pve-storage/src", "$src/pve-common/src";
        die "the stand-in $INC{$mod} shadows the extracted $real[0]/$mod\n" if @real;
    }
    my @guest = grep { m|^\Q$GUEST_PLUGINS\E/| } keys %INC;
    die "VZDump.pm's loader found no guest plugin in $GUEST_PLUGINS\n" if @guest != 2;
    return;
}

sub load_double {
    my ($self) = @_;

    unshift(@INC, $DOUBLE, "$self->{tmp}/perl5", $STANDIN);
    require PVE::Cluster;
    $PVE::Cluster::ROOT = $self->{etc_pve};
    require PVE::Storage;
    require PVE::API2::Storage::Config;
    my $warn = PVE::Storage::load_custom_plugin('PVE::Storage::Custom::S3Plugin');
    warn $warn if defined($warn);
    PVE::Storage::Plugin->init();
    write_file("$self->{etc_pve}/storage.cfg", '');
    $self->{label} = "$LABEL->{double} (perl/t/lib/PVE, API " . PVE::Storage::APIVER() . ')';
}

# PVE always has a 'local' dir storage (PVE::Storage::Plugin::parse_config adds one); a
# disabled one keeps storage_info from touching /var/lib/vz.
sub local_storage_cfg {
    return "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\tdisable\n\n";
}

sub same_dir {
    my ($a, $b) = @_;
    my $ra = abs_path($a) // $a;
    my $rb = abs_path($b) // $b;
    return $ra eq $rb;
}

sub api {
    my ($self, $method, $param) = @_;
    return PVE::API2::Storage::Config->$method({%$param});
}

sub config {
    return PVE::Storage::config();
}

1;
