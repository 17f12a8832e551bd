package PctUserns;

# The container's root as pve-container makes it, for the container backup and restore drivers:
#
#   run_in_userns($code, $id_map)   pve-container src/PVE/LXC/Namespaces.pm run_in_userns (PVE 9
#       and 8.4 alike): fork; the child unshares a user and mount namespace, the parent writes the
#       id map with newgidmap/newuidmap, the child becomes uid/gid 0 in it and runs $code; its
#       result or error comes back as PVE::Tools::run_fork passes it. Inside the real code the
#       real Namespaces.pm of $PVE_UPSTREAM_DIR/<version>/pve-container is loaded and called;
#       with the double, this module does the same steps itself.
#   userns_command($id_map)         PVE::LXC::userns_command: a command prefix running a program
#       as the container's root (upstream: lxc-usernsexec -m u:0:100000:65536 ... --, from the lxc
#       package this machine does not have; here util-linux unshare with the same map).
#   id_map($conf)                   PVE::LXC::parse_id_maps for a config without lxc.idmap lines:
#       PVE's default map for an unprivileged container, none for a privileged one.
#
# newuidmap/newgidmap are the stand-ins of test/helpers/idmap (they write the map as root may,
# without /etc/subuid, which the tests must not edit): they lead PATH while a namespace is made.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use JSON::PP;
use POSIX ();
use Socket;

my $IDMAP_DIR = abs_path(dirname(__FILE__) . '/../../../test/helpers/idmap');

sub id_map {
    my ($conf) = @_;
    return ([], 0, 0) if !$conf->{unprivileged};
    return ([['u', '0', '100000', '65536'], ['g', '0', '100000', '65536']], 100000, 100000);
}

sub path_env { return "$IDMAP_DIR:" . ($ENV{PATH} // '/usr/bin:/bin') }

sub userns_command {
    my ($id_map) = @_;
    return [] if !@$id_map;
    my %m = map { ($_->[0] => "$_->[2],$_->[1],$_->[3]") } @$id_map;
    return ['env', 'PATH=' . path_env(), 'unshare', '--user', '--mount', "--map-users=$m{u}",
        "--map-groups=$m{g}", '--setuid', '0', '--setgid', '0', '--'];
}

# $version: 'pve9' | 'pve84' (the real Namespaces.pm) or 'double'
sub run_in_userns {
    my ($version, $code, $id_map) = @_;
    local $ENV{PATH} = path_env();
    my $real = $ENV{PVE_UPSTREAM_DIR} && $version ne 'double'
        ? "$ENV{PVE_UPSTREAM_DIR}/$version/pve-container/src/PVE/LXC/Namespaces.pm" : undef;
    if ($real && -f $real) {
        require $real;
        return PVE::LXC::Namespaces::run_in_userns($code, $id_map);
    }
    return run_in_userns_double($code, $id_map);
}

my $SYS_UNSHARE = { x86_64 => 272, aarch64 => 97 }->{(POSIX::uname())[4]};
use constant { CLONE_NEWNS => 0x00020000, CLONE_NEWUSER => 0x10000000 };

sub run_in_userns_double {
    my ($code, $id_map) = @_;
    die "unshare: unknown syscall number on this architecture\n" if !$SYS_UNSHARE;
    socketpair(my $sp, my $sc, AF_UNIX, SOCK_STREAM, PF_UNSPEC) or die "socketpair: $!\n";
    pipe(my $rd, my $wr) or die "pipe: $!\n";
    my $json = JSON::PP->new->allow_nonref;
    my $pid = fork() // die "fork failed: $!\n";
    if (!$pid) {
        close($sp);
        close($rd);
        my $res = eval {
            syscall($SYS_UNSHARE, CLONE_NEWUSER | CLONE_NEWNS) == 0 or die "unshare(NEWUSER|NEWNS): $!\n";
            syswrite($sc, "1\n");
            shutdown($sc, 1);
            my $l = <$sc> // '';
            die "sync read failed (expected message \"2\")\n" if $l ne "2\n";
            close($sc);
            $! = undef;
            ($(, $)) = (0, 0);
            die "setgid(0): $!\n" if $!;
            ($<, $>) = (0, 0);
            die "setuid(0): $!\n" if $!;
            $code->();
        };
        print $wr $json->encode({ result => $res, error => $@ || undef });
        close($wr);
        POSIX::_exit(0);
    }
    close($sc);
    close($wr);
    my $l = <$sp> // '';
    my $err;
    if ($l eq "1\n") {
        my (@u, @g);
        for my $m (@$id_map) {
            push @u, @$m[1 .. 3] if $m->[0] eq 'u';
            push @g, @$m[1 .. 3] if $m->[0] eq 'g';
        }
        system('newgidmap', $pid, @g) == 0 or $err = "newgidmap failed\n";
        system('newuidmap', $pid, @u) == 0 or $err //= "newuidmap failed\n";
        syswrite($sp, "2\n");
    } else {
        $err = "sync read failed (expected message \"1\")\n";
    }
    close($sp);
    my $data = do { local $/; <$rd> } // '';
    close($rd);
    waitpid($pid, 0);
    die $err if $err;
    my $r = $data ne '' ? $json->decode($data) : { error => "child died without a result\n" };
    die $r->{error} if $r->{error};
    return $r->{result};
}

1;
