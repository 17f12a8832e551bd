package PVE::Cluster;

# Stand-in for pve-cluster's PVE::Cluster (another package: pmxcfs is not running here). It
# serves /etc/pve from a directory of the test's own ($PVE::Cluster::ROOT, set by the harness),
# with the contract of the real module the storage code relies on:
# - cfs_register_file accepts only the files pmxcfs observes, once each;
# - cfs_read_file always calls the registered parser with "/etc/pve/<file>" and the raw text
#   (undef when the file does not exist) and hands out a copy of the result;
# - cfs_write_file renders with the writer and replaces the file (file_set_contents);
# - cfs_lock_file / cfs_lock_storage take a mkdir lock under priv/lock, give up after the
#   timeout (default 10 s) and, like the real $cfs_lock, do not die: they return undef and leave
#   the error in $@ ("cfs-lock '<id>' error: ..." when taking the lock failed).
# Nothing here is upstream code.

use strict;
use warnings;

use Exporter qw(import);
use File::Path qw(make_path);
use Storable qw(dclone);
use Time::HiRes qw(usleep);

use PVE::INotify;
use PVE::Tools;

our @EXPORT_OK = qw(cfs_read_file cfs_write_file cfs_register_file cfs_lock_file cfs_lock_storage);

# The directory standing for /etc/pve. Tests set it before reading or writing anything.
our $ROOT;

my $observed = { map { $_ => 1 } qw(
    vzdump.cron vzdump.conf jobs.cfg storage.cfg datacenter.cfg replication.cfg user.cfg
    domains.cfg notifications.cfg priv/notifications.cfg priv/shadow.cfg priv/tfa.cfg
    priv/token.cfg status.cfg ceph.conf mapping/directory.cfg mapping/pci.cfg mapping/usb.cfg
) };

my $file_info = {};

sub root {
    die "PVE::Cluster stand-in: \$PVE::Cluster::ROOT (the test's /etc/pve) is not set\n" if !$ROOT;
    return $ROOT;
}

sub base_dir { return root() }
sub auth_dir { return root() . '/priv' }

sub check_cfs_quorum { return 1 }
sub check_cfs_is_mounted { return 1 }

sub cfs_update { return }

sub cfs_register_file {
    my ($filename, $parser, $writer) = @_;
    $observed->{$filename} || die "unknown file '$filename'";
    die "file '$filename' already registered" if $file_info->{$filename};
    $file_info->{$filename} = { parser => $parser, writer => $writer };
}

sub get_config {
    my ($filename) = @_;
    my $path = root() . "/$filename";
    return undef if !-f $path;
    return PVE::Tools::file_get_contents($path);
}

sub cfs_file_version {
    my ($filename) = @_;
    my $info = $file_info->{$filename} || die "unknown file type '$filename'\n";
    my @st = stat(root() . "/$filename");
    my $version = @st ? "$st[9].$st[1].$st[7]" : undef;
    return wantarray ? ($version, $info) : $version;
}

sub cfs_read_file {
    my ($filename) = @_;
    my (undef, $info) = cfs_file_version($filename);
    my $data = $info->{parser}->("/etc/pve/$filename", get_config($filename));
    return ref($data) ? dclone($data) : $data;
}

sub cfs_write_file {
    my ($filename, $data, $force_utf8) = @_;
    my (undef, $info) = cfs_file_version($filename);
    my $writer = $info->{writer} || die "no writer defined";
    my $raw = $writer->("/etc/pve/$filename", $data);
    my $path = root() . "/$filename";
    make_path($1) if $path =~ m|^(.*)/[^/]+$| && !-d $1;
    PVE::Tools::file_set_contents($path, $raw, undef, $force_utf8);
}

my $cfs_lock = sub {
    my ($lockid, $timeout, $code, @param) = @_;

    $timeout = 10 if !$timeout;
    my $lockdir = root() . '/priv/lock';
    my $filename = "$lockdir/$lockid";
    my ($res, $got_lock, $is_code_err);
    eval {
        make_path($lockdir);
        my $deadline = time() + $timeout;
        while (!($got_lock = mkdir($filename))) {
            die "got lock request timeout\n" if time() >= $deadline;
            usleep(100_000);
        }
        $is_code_err = 1;
        $res = $code->(@param);
    };
    my $err = $@;
    rmdir($filename) if $got_lock;
    if ($err) {
        $@ = ref($err) eq 'PVE::Exception' || $is_code_err ? $err : "cfs-lock '$lockid' error: $err";
        return undef;
    }
    $@ = undef;
    return $res;
};

sub cfs_lock_file {
    my ($filename, $timeout, $code, @param) = @_;
    $observed->{$filename} || die "unknown file '$filename'";
    (my $lockid = "file-$filename") =~ s/[.\/]/_/g;
    return $cfs_lock->($lockid, $timeout, $code, @param);
}

sub cfs_lock_storage {
    my ($storeid, $timeout, $code, @param) = @_;
    return $cfs_lock->("storage-$storeid", $timeout, $code, @param);
}

# A single-node "cluster". Its guests are what pmxcfs lists (the real get_vmlist): one entry per
# config file in nodes/<node>/qemu-server/<vmid>.conf ('qemu') and nodes/<node>/lxc/<vmid>.conf
# ('lxc'), with its node and the config's version.
sub get_vmlist {
    my $ids = {};
    for my $conf (glob(root() . '/nodes/*/{qemu-server,lxc}/*.conf')) {
        my ($node, $dir, $vmid) = $conf =~ m|/nodes/([^/]+)/(qemu-server\|lxc)/(\d+)\.conf$| or next;
        $ids->{$vmid} = { node => $node, type => $dir eq 'lxc' ? 'lxc' : 'qemu', version => (stat($conf))[9] };
    }
    return { version => time(), ids => $ids };
}
sub get_clinfo { return {} }
sub get_members { return undef }
sub get_nodelist { return [PVE::INotify::nodename()] }
sub remote_node_ip { my ($node) = @_; return '127.0.0.1' }
sub complete_vmid { return [] }

# The cluster log and task list live in pmxcfs; the tests read what was sent.
our @LOG;
sub log_msg { my ($priority, $ident, $msg) = @_; push @LOG, [$priority, $ident, $msg] }
sub broadcast_tasklist { return }

1;
