package PVE::VZDump::LXC;

# Double of pve-container's guest plugin for vzdump (src/PVE/VZDump/LXC.pm, PVE 9 and 8.4
# alike), loaded by pve-manager's real PVE::VZDump through its own plugin loader (the harness
# points VZDump.pm's "/usr/share/perl5/<plugin>.pm" at perl/t/guest). The real plugin needs a
# container (lxc-start, its volumes to snapshot and mount); here a directory the test made
# stands for the mounted snapshot. It mirrors, method by method:
#
#   new        bless { vzdump }, its vmlist (pve-container: PVE::LXC::config_list; here the
#              guests of PVE::Cluster::get_vmlist of type lxc). check_bin('lxc-stop', ...) is
#              left out.
#   type       'lxc'
#   vm_status  ($running, 'running'|'stopped'): the guests a test registered are running
#   lock_vm    PVE::LXC::Config->set_lock($vmid, 'backup'): "lock: backup" into the config file,
#              refused with "CT is locked (<lock>)" when it has one; unlock_vm removes it
#   prepare    load_config, "CT Name: <hostname>", $task->{hostname}, the id map
#              (PVE::LXC::parse_id_maps: t/lib/PctUserns.pm)
#   snapshot   $task->{snapdir}: the test's directory (the real one snapshots and mounts)
#   assemble   pct.conf from the config file without lock/parent/snapshots/pending, pct.fw from
#              /etc/pve/firewall/<vmid>.fw or empty (the non-PBS branch) - t/lib/PctArchive.pm
#   archive    the backup-provider branch (PctArchive::archive_external) with vzdump's findexcl;
#              the tar branch (a vzdump archive file) for a privileged container as upstream
#              builds it: tar cpf - --totals COMMON_TAR_FLAGS --one-file-system, pct.conf and
#              pct.fw from the tmpdir, the snapshot with vzdump's exclusions (unanchored, then
#              anchored), piped through cstream (bwlimit) and the compressor into $filename by
#              the real PVE::VZDump::Plugin::cmd; the PBS branch is not doubled and dies
#   cleanup    nothing to unmount
#
# Nothing here is upstream code.

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

sub type { return 'lxc' }

sub config_dir { return 'lxc' }

sub lock_label { return 'CT' }

sub prepare {
    my ($self, $task, $vmid, $mode) = @_;
    my $conf = PVE::Tools::file_get_contents($self->config_file($vmid));
    my ($hostname) = $conf =~ m/^hostname:\s*(\S+)/m;
    $self->loginfo("CT Name: $hostname") if defined($hostname);
    $task->{hostname} = $hostname || "CT$vmid";
    my ($unprivileged) = $conf =~ m/^unprivileged:\s*(\d)/m;
    RealVZDump::guest($vmid)->{unprivileged} = $unprivileged // 0;
    RealVZDump::prepared($task);
}

sub snapshot {
    my ($self, $task, $vmid) = @_;
    $task->{snapdir} = RealVZDump::guest($vmid)->{snapdir};
}

sub assemble {
    my ($self, $task, $vmid) = @_;
    my $out = '';
    my $section;
    for my $line (split(/^/, PVE::Tools::file_get_contents($self->config_file($vmid)))) {
        $section = $1 if $line =~ m/^\[(.*)\]\s*$/;
        next if defined($section);
        next if $line =~ m/^(?:lock|parent):/;
        $out .= $line;
    }
    my $fw = PVE::Cluster::base_dir() . "/firewall/$vmid.fw";
    PctArchive::assemble($task->{tmpdir}, $out, -e $fw ? PVE::Tools::file_get_contents($fw) : undef);
    $task->{fw} = 1;
}

sub archive {
    my ($self, $task, $vmid, $filename, $comp) = @_;
    my $guest = RealVZDump::guest($vmid);
    return $self->archive_tar($task, $vmid, $filename, $comp) if !$self->{vzdump}->{'backup-provider'};
    local $self->{opts} = RealVZDump::plugin_opts($self->{vzdump});
    PctArchive::archive_external($self, $task, {
        snapdir => $task->{snapdir}, exclude => $self->{vzdump}->{findexcl}, unprivileged => $guest->{unprivileged},
    });
}

sub archive_tar {
    my ($self, $task, $vmid, $filename, $comp) = @_;
    my $opts = $self->{vzdump}->{opts};
    die "this double of pve-container has no PBS branch\n" if $opts->{pbs};
    die "this double of pve-container archives privileged containers only to a file (no user namespace)\n"
        if RealVZDump::guest($vmid)->{unprivileged};
    my $tar = ['tar', 'cpf', '-', '--totals', @PVE::Storage::Plugin::COMMON_TAR_FLAGS,
        '--one-file-system', '--warning=no-file-ignored'];
    push @$tar, "--directory=$task->{tmpdir}", './etc/vzdump/pct.conf';
    push @$tar, './etc/vzdump/pct.fw' if $task->{fw};
    push @$tar, "--directory=$task->{snapdir}";
    my @findexcl = @{ $self->{vzdump}->{findexcl} };
    push @$tar, '--no-anchored', map { "--exclude=$_" } grep { !m|^/| } @findexcl;
    push @$tar, '--anchored', map { "--exclude=.$_" } grep { m|^/| } @findexcl;
    push @$tar, '.';
    my $cmd = [$tar];
    push @$cmd, ['cstream', '-t', $opts->{bwlimit} * 1024] if $opts->{bwlimit};
    push @$cmd, [split(/\s+/, $comp)] if $comp;
    push @{ $cmd->[-1] }, \('>' . PVE::Tools::shellquote($filename));
    $self->cmd($cmd);
}

1;
