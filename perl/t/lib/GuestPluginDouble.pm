package GuestPluginDouble;

# What the two guest-plugin doubles (perl/t/guest/PVE/VZDump/QemuServer.pm and LXC.pm) share:
# the guest list, status, config file, backup lock and logging that qemu-server's and
# pve-container's VZDump plugins each implement alike. A subclass names its type, the node's
# config directory and the word its lock message uses ('VM' / 'CT'); the rest - prepare,
# snapshot, assemble, archive - is its own. Nothing here is upstream code.

use strict;
use warnings;

use PVE::Cluster;
use PVE::INotify;
use PVE::VZDump::Plugin;

use base qw(PVE::VZDump::Plugin);

# new: bless { vzdump } and the vmlist - upstream's PVE::QemuServer::vzlist /
# PVE::LXC::config_list; here the guests of PVE::Cluster::get_vmlist of the plugin's type
sub new {
    my ($class, $vzdump) = @_;
    my $self = bless { vzdump => $vzdump }, $class;
    my $type = $class->type();
    my $ids = PVE::Cluster::get_vmlist()->{ids};
    $self->{vmlist} = { map { ($_ => {}) } grep { $ids->{$_}->{type} eq $type } keys %$ids };
    return $self;
}

sub vmlist { my ($self) = @_; return [keys %{ $self->{vmlist} }] }

sub config_file {
    my ($self, $vmid) = @_;
    return PVE::Cluster::base_dir() . '/nodes/' . PVE::INotify::nodename() . '/' . $self->config_dir() . "/$vmid.conf";
}

# a guest is running while the test has it registered (its disks or snapshot directory)
sub vm_status {
    my ($self, $vmid) = @_;
    my $running = RealVZDump::guest($vmid) ? 1 : 0;
    return wantarray ? ($running, $running ? 'running' : 'stopped') : $running;
}

# AbstractConfig->set_lock / remove_lock: "lock: backup" in the config file
sub lock_vm {
    my ($self, $vmid) = @_;
    RealVZDump::set_lock($self->config_file($vmid), $self->lock_label(), 'backup');
}

sub unlock_vm {
    my ($self, $vmid) = @_;
    RealVZDump::remove_lock($self->config_file($vmid), 'backup');
}

sub cleanup { }

# what QemuServerArchive and PctArchive ask of their caller
sub provider { my ($self) = @_; return $self->{vzdump}->{'backup-provider'} }

sub debugmsg {
    my ($self, $level, $msg, $logfd) = @_;
    PVE::VZDump::Plugin::debugmsg($level, $msg, $logfd // $self->{logfd});
}

1;
