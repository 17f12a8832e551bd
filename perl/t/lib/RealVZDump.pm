package RealVZDump;

# Backup jobs run by pve-manager's real PVE::VZDump (with pve-guest-common's PVE::VZDump::Common,
# ::Plugin, ::JobBase), for the tests that run inside the real PVE code when the extracts have
# pve-manager and pve-guest-common ($pve->{vzdump}; VZDumpDriver stands in for it otherwise). A job
# is started as the vzdump API (pve-manager PVE/API2/VZDump.pm, vzdump) starts it:
#
#   verify_vzdump_parameters($param, 1); command_line($param); get_included_guests($param) and
#   the skip list of other nodes' guests; parse_mailto_exclude_path($param); then, as its worker,
#   the signal handlers dying "interrupted by signal", $param->{vmids}, PVE::VZDump->new($cmdline,
#   $param, $skiplist), getlock($upid), exec_backup($rpcenv, $user).
#
# The worker's output (its STDERR, which PVE's fork_worker makes the task log) goes to a file
# whose lines become $job->{log}; lines printed in this process are also shown to $job->{watch}
# as they come. The guests are the test's: their config files go where pmxcfs has them
# (nodes/<node>/qemu-server|lxc/<vmid>.conf, firewall/<vmid>.fw: PVE::Cluster's get_vmlist and
# the guest plugins read them), their disks or snapshot directory to the guest-plugin doubles
# (perl/t/guest/PVE/VZDump/*.pm) through guest($vmid).
#
# Same interface as VZDumpDriver: new_job(%opts), run(@tasks) → \@tasks with state ('ok' |
# 'err'), msg, target, backup_time, size; $job->{log}; $job->provider() after a run. Task specs:
# { vmid, type => 'qemu'|'lxc', conf, firewall, disks (qemu) | snapdir (lxc), after_archive =>
# sub ($job, $task) }. Job options: storage, dir, notes ('notes-template'), protected, bwlimit,
# 'prune-backups' (property string), remove, script, compress, 'exclude-path' (list), pve_version.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Handle;

# PVE:: modules are those the harness loaded (PVEUpstream::load_vzdump): none is loaded here.

my $guests = {};
my $current;

sub guest { my ($vmid) = @_; return $guests->{$vmid} }
sub current { return $current }

# the guest plugin's prepare hands over vzdump's own task hash: what exec_backup_task made of it
sub prepared {
    my ($task) = @_;
    my $g = $guests->{ $task->{vmid} } or return;
    $g->{vzdump_task} = $task;
}

sub plugin_opts {
    my ($vzdump) = @_;
    return { dir => $current->{opts}->{dir}, bwlimit => $vzdump->{opts}->{bwlimit}, pve_version => $current->{opts}->{pve_version} };
}

# what pve-guest-common's PVE::AbstractConfig->set_lock / remove_lock do to the guest's config file
# (the real ones need qemu-server's PVE::QemuConfig / pve-container's PVE::LXC::Config, not loaded)
sub set_lock {
    my ($file, $kind, $lock) = @_;
    my $conf = PVE::Tools::file_get_contents($file);
    die "$kind is locked ($1)\n" if $conf =~ m/^lock:\s*(\S+)/m; # check_lock
    $conf =~ s/^(?=\[)|\z/lock: $lock\n/m;
    PVE::Tools::file_set_contents($file, $conf);
}

sub remove_lock {
    my ($file, $lock) = @_;
    my $conf = PVE::Tools::file_get_contents($file);
    die "no lock found trying to remove $lock lock\n" if $conf !~ s/^lock:\s*\Q$lock\E\n//m;
    PVE::Tools::file_set_contents($file, $conf);
}

sub new_job {
    my ($class, %opts) = @_;
    make_path("$opts{dir}/tmp");
    return bless { log => [], opts => {%opts} }, $class;
}

sub provider { return $_[0]->{vzdump} && $_[0]->{vzdump}->{'backup-provider'} }

sub config_path {
    my ($task) = @_;
    my $dir = $task->{type} eq 'lxc' ? 'lxc' : 'qemu-server';
    return PVE::Cluster::base_dir() . '/nodes/' . PVE::INotify::nodename() . "/$dir/$task->{vmid}.conf";
}

sub run {
    my ($self, @tasks) = @_;
    my $o = $self->{opts};
    $guests = {};
    for my $t (@tasks) {
        my $file = config_path($t);
        make_path($file =~ s|/[^/]+$||r);
        # the config as the node has it: the #qmdump#map lines are vzdump's (assemble)
        PVE::Tools::file_set_contents($file, $t->{conf} =~ s/^#qmdump#.*\n//mgr);
        my $fw = PVE::Cluster::base_dir() . "/firewall/$t->{vmid}.fw";
        make_path($fw =~ s|/[^/]+$||r);
        if (defined($t->{firewall})) {
            PVE::Tools::file_set_contents($fw, $t->{firewall});
        } else {
            unlink($fw);
        }
        $guests->{ $t->{vmid} } = {
            spec => $t,
            disks => $t->{disks},
            snapdir => $t->{snapdir},
            qsd_holder => $t,
            after_archive => $t->{after_archive} ? sub { $t->{after_archive}->($self, $_[0]) } : undef,
        };
    }

    my $param = {
        vmid => join(',', map { $_->{vmid} } @tasks),
        storage => $o->{storage},
        mode => 'snapshot',
        tmpdir => "$o->{dir}/tmp",
    };
    $param->{'notes-template'} = $o->{notes} if defined($o->{notes});
    $param->{$_} = $o->{$_} for grep { defined($o->{$_}) } qw(protected bwlimit remove script prune-backups compress);
    # an array, as the API schema hands it over
    $param->{'exclude-path'} = [@{ $o->{'exclude-path'} }] if $o->{'exclude-path'};

    my $rpcenv = PVE::RPCEnvironment::get();
    my $user = 'root@pam';
    my $nodename = PVE::INotify::nodename();
    @PVE::Notify::SENT = ();
    $current = $self;

    my $out = "$o->{dir}/task-" . ++$self->{runs} . '.log';
    open(my $saved, '>&', \*STDERR) or die "dup STDERR: $!\n";
    open(STDERR, '>', $out) or die "cannot write $out: $!\n";
    STDERR->autoflush(1);
    open(my $outfh, '>>', $out) or die "cannot write $out: $!\n";
    $outfh->autoflush(1);
    tie(*STDERR, 'RealVZDump::TaskOutput', $self, $outfh);
    my $vzdump;
    eval {
        # the API's part
        PVE::VZDump::verify_vzdump_parameters($param, 1);
        my $cmdline = PVE::VZDump::Common::command_line($param);
        my $vmids_per_node = PVE::VZDump::get_included_guests($param);
        my $local_vmids = delete $vmids_per_node->{$nodename} // [];
        push @$local_vmids, @{ delete $vmids_per_node->{''} // [] };
        my $skiplist = [map { @$_ } values %$vmids_per_node];
        PVE::VZDump::parse_mailto_exclude_path($param);

        # the worker's
        local $SIG{INT} = local $SIG{TERM} = local $SIG{QUIT} = local $SIG{HUP} = local $SIG{PIPE} =
            sub { die "interrupted by signal\n" };
        $param->{vmids} = $local_vmids;
        $vzdump = $self->{vzdump} = PVE::VZDump->new($cmdline, $param, $skiplist);
        my $upid = sprintf('UPID:%s:%08X:%08X:%08X:vzdump:%s:%s:', $nodename, $$,
            PVE::ProcFSTools::read_proc_starttime($$), time(), $param->{vmid}, $user);
        my $lock = $vzdump->getlock($upid);
        $vzdump->exec_backup($rpcenv, $user);
        close($lock);
    };
    my $err = $@;
    untie(*STDERR);
    open(STDERR, '>&', $saved) or die "restore STDERR: $!\n";
    close($outfh);
    $current = undef;
    $self->{error} = $err;
    $self->{notification} = $PVE::Notify::SENT[-1];
    $self->{log} = [split(/\n/, PVE::Tools::file_get_contents($out))];
    # what exec_backup (or the API's part before it) died with, for a test's diagnostics
    push @{ $self->{log} }, "(the job died: $err)" if $err;

    my $table = { map { ($_->{vmid} => $_) } @{ $self->{notification}->{data}->{'guest-table'}->{data} // [] } };
    for my $t (@tasks) {
        my $g = $guests->{ $t->{vmid} };
        my $real = $g->{vzdump_task} // {};
        my $row = $table->{ $t->{vmid} } // {};
        $t->{state} = $real->{state} // $row->{status};
        $t->{$_} = $real->{$_} for grep { defined($real->{$_}) } qw(msg target backup_time size tmplog hostname);
        $t->{target} //= $row->{filename};
        $t->{msg} //= $1 if !$real->{state} && join("\n", @{ $self->{log} }) =~ m/^ERROR: Backup of VM $t->{vmid} failed - (.*)$/m;
        $t->{task_log} = eval { PVE::Tools::file_get_contents($real->{tmplog}) } if $real->{tmplog};
    }
    return \@tasks;
}

package RealVZDump::TaskOutput;

# STDERR while a job runs: each print goes to the task's output file (a fork's prints too) and,
# in this process, line by line to $job->{watch}

sub TIEHANDLE {
    my ($class, $job, $fh) = @_;
    return bless { job => $job, fh => $fh, pid => $$, partial => '' }, $class;
}

sub PRINT {
    my ($self, @args) = @_;
    my $data = join(defined($,) ? $, : '', @args) . (defined($\) ? $\ : '');
    syswrite($self->{fh}, $data);
    return 1 if $$ != $self->{pid} || !$self->{job}->{watch};
    $self->{partial} .= $data;
    while ($self->{partial} =~ s/^(.*)\n//) {
        $self->{job}->{watch}->($1);
    }
    return 1;
}

sub PRINTF {
    my ($self, $fmt, @args) = @_;
    return $self->PRINT(sprintf($fmt, @args));
}

sub WRITE {
    my ($self, $buf, $len, $offset) = @_;
    return $self->PRINT(substr($buf, $offset // 0, $len));
}

# a fork re-opening STDERR (run_command's and qemu-storage-daemon's children) gets the real one
sub OPEN {
    my ($self, $mode, @rest) = @_;
    untie(*STDERR);
    return @rest ? open(STDERR, $mode, @rest) : open(STDERR, $mode);
}

sub FILENO { return fileno($_[0]->{fh}) }
sub BINMODE { return 1 }
sub CLOSE { return 1 }

1;
