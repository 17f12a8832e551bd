package PVE::VZDump::QemuServer;

# Double of qemu-server's guest plugin for vzdump (src/PVE/VZDump/QemuServer.pm, PVE 9 and 8.4
# alike), loaded by pve-manager's real PVE::VZDump through its own plugin loader (the harness
# points VZDump.pm's "/usr/share/perl5/<plugin>.pm" at perl/t/guest). The real plugin needs a
# running VM and qm; this one serves the guest's disks with qemu-storage-daemon
# (t/lib/QemuServerArchive.pm) and mirrors, method by method:
#
#   new        bless { vzdump }, its vmlist (qemu-server: PVE::QemuServer::vzlist; here the
#              guests of PVE::Cluster::get_vmlist of type qemu). check_bin('qm') is left out.
#   type       'qemu'
#   vm_status  ($running, 'running'|'stopped'): the guests a test registered are running
#   lock_vm    PVE::QemuConfig->set_lock($vmid, 'backup'): "lock: backup" into the config file,
#              refused with "VM is locked (<lock>)" when it has one; unlock_vm removes it
#   prepare    load_config, "VM Name: <name>", $task->{disks} (one per registered device)
#   snapshot   nothing (as qemu-server)
#   assemble   qemu-server.conf from the config file, without lock:/parent: lines and pending,
#              snapshot or special sections, then one "#qmdump#map:<virtdev>:<drive>:<storeid>:
#              <format>:" per disk; /etc/pve/firewall/<vmid>.fw copied to qemu-server.fw
#   archive    the backup-provider branch: archive_external (QemuServerArchive); the other
#              branches (VMA file, PBS) are not doubled and die
#   cleanup    nothing left: archive_external stops its NBD server itself (nbd-stop /
#              backup-access-teardown)
#
# The disks come from the test (RealVZDump::guest($vmid)->{disks}: { 'drive-<virtdev>' =>
# image }); the config, from the node's config file the test wrote. Nothing here is upstream code.

use strict;
use warnings;

use PVE::Cluster;
use PVE::Tools;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

# what both guest doubles share, loaded by path: once the real code is loaded perl/t/lib is not on
# @INC (this file itself is found by VZDump.pm's loader by path)
BEGIN { require(abs_path(dirname(__FILE__) . '/../../../lib/GuestPluginDouble.pm')) }
use parent -norequire, qw(GuestPluginDouble);

sub type { return 'qemu' }

sub config_dir { return 'qemu-server' }

sub lock_label { return 'VM' }

sub prepare {
    my ($self, $task, $vmid, $mode) = @_;
    my $conf = PVE::Tools::file_get_contents($self->config_file($vmid));
    my ($name) = $conf =~ m/^name:\s*(\S+)/m;
    $self->loginfo("VM Name: $name") if defined($name);
    my $guest = RealVZDump::guest($vmid) // die "VM $vmid is not running (no test guest registered)\n";
    $task->{disks} = [map {
        my ($virtdev) = m/^drive-(.+)$/ or die "device '$_' is not drive-<virtdev>\n";
        { virtdev => $virtdev, qmdevice => $_, path => $guest->{disks}->{$_}, storeid => 'local', format => 'raw', type => 'file' }
    } sort keys %{ $guest->{disks} }];
    RealVZDump::prepared($task);
}

sub snapshot { }

sub assemble {
    my ($self, $task, $vmid) = @_;
    my $out = '';
    my $section;
    for my $line (split(/^/, PVE::Tools::file_get_contents($self->config_file($vmid)))) {
        next if $line =~ m/^\#(?:vzdump|qmdump)\#/;
        $section = $1 if $line =~ m/^\[(.*)\]\s*$/;
        next if defined($section);
        next if $line =~ m/^lock:/ || $line =~ m/^parent:/;
        $out .= $line;
    }
    $out .= "#qmdump#map:$_->{virtdev}:$_->{qmdevice}:$_->{storeid}:$_->{format}:\n"
        for sort { $a->{virtdev} cmp $b->{virtdev} } @{ $task->{disks} };
    PVE::Tools::file_set_contents("$task->{tmpdir}/qemu-server.conf", $out);
    my $fw = PVE::Cluster::base_dir() . "/firewall/$vmid.fw";
    PVE::Tools::file_copy($fw, "$task->{tmpdir}/qemu-server.fw") if -f $fw;
}

sub archive {
    my ($self, $task, $vmid, $filename, $comp) = @_;
    die "this double of qemu-server archives to a backup provider only\n"
        if !$self->{vzdump}->{'backup-provider'};
    my $guest = RealVZDump::guest($vmid);
    local $self->{opts} = RealVZDump::plugin_opts($self->{vzdump});
    QemuServerArchive::archive_external($self, $task, $guest);
    $guest->{after_archive}->($task) if $guest->{after_archive};
}

1;
