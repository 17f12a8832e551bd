package VZDumpDriver;

# The project's double of vzdump as it drives a backup provider: used by the tests only when the
# extracts lack pve-manager / pve-guest-common (and without PVE_UPSTREAM_DIR, inside the
# project's test double, as CI runs them); with them the tests run pve-manager's real
# PVE::VZDump through RealVZDump.pm, which has this module's interface. This module does what
# VZDump.pm's functions do, in their order and with their arguments, calling the real (or double)
# PVE::Storage functions. Cited from pve-manager PVE/VZDump.pm (PVE 9 master and stable-8 behave
# the same here):
#
#   new_job      VZDump::new: activate_storage, then storage_info: storage_config, the storage's
#                prune-backups, storage_has_feature('backup-provider') and
#                PVE::Storage::new_backup_provider($cfg, $storeid, $log); job options over them
#   run          exec_backup: job_init($starttime), exec_backup_task per guest, job_cleanup()
#                (after a job failure too, in an eval)
#   task         exec_backup_task: the backup-limit / protected-count check through volume_list,
#                backup_init($vmid, $vmtype, $backup_time) and its result checked, the guest
#                plugin's archive (passed in: qemu-server's archive_external, pve-container's
#                archive), then with volid "<storage>:backup/<archive-name>" update_volume_attribute
#                notes and protected, prune_backups, and only then backup_cleanup($vmid, $vmtype, 1,
#                {}); on any error backup_cleanup($vmid, $task->{vmtype}, 0, { error => $err });
#                last backup_handle_log_file($vmid, $tmplog) with the closed task log
#
# Log lines go where debugmsg puts them: the job log (here an array; with $job->{task_output}, a
# file handle, also there: what a forked child logs reaches only that) and, with a task log, the
# file "$logdir/<type>-<vmid>.log".

use strict;
use warnings;

use File::Path qw(make_path rmtree);
use POSIX qw(strftime);

# PVE::Storage and PVE::JSONSchema are those the harness (PVEUpstream) loaded: this module is
# loaded before it and must not load any PVE:: module itself.

# VZDump::debugmsg → pve-guest-common's PVE::VZDump::Plugin::debugmsg: "ERROR:", "INFO:" or
# "WARN:" (any other level: "ERROR:") before each line, to the task and to the log fd
my $PREFIX = { err => 'ERROR:', info => 'INFO:', warn => 'WARN:' };
sub debugmsg {
    my ($self, $level, $msg, $logfd) = @_;
    chomp($msg);
    return if !$msg;
    my $pre = $PREFIX->{$level} // $PREFIX->{err};
    for my $line (split(/\n/, $msg)) {
        push @{ $self->{log} }, "$pre $line";
        # the task's output (upstream: STDERR), which a fork's lines reach too (backup_container)
        syswrite($self->{task_output}, "$pre $line\n") if $self->{task_output};
        $self->{watch}->("$pre $line") if $self->{watch}; # a test acting on what it sees
        print $logfd strftime('%F %H:%M:%S', localtime()) . " $pre $line\n" if $logfd;
    }
}

# %opts: storage, dir (scratch: task logs, tmpdirs), and vzdump's job options: 'notes-template',
# protected, 'prune-backups' (hash), remove (default 1, as vzdump's schema), bwlimit (KiB/s)
sub new_job {
    my ($class, %opts) = @_;
    my $self = bless { log => [], opts => {%opts} }, $class;
    my $storage = $opts{storage};
    my $cfg = PVE::Storage::config();
    PVE::Storage::activate_storage($cfg, $storage);

    # storage_info
    my $scfg = PVE::Storage::storage_config($cfg, $storage);
    die "can't use storage '$storage' for backups - wrong content type\n" if !$scfg->{content}->{backup};
    my $prune = PVE::JSONSchema::parse_property_string('prune-backups', $scfg->{'prune-backups'})
        if defined($scfg->{'prune-backups'});
    die "storage '$storage' is not a backup provider (PVE_S3_BACKUP_PROVIDER unset?)\n"
        if !PVE::Storage::storage_has_feature($cfg, $storage, 'backup-provider');
    $self->{provider} = PVE::Storage::new_backup_provider($cfg, $storage, sub { $self->debugmsg($_[0], $_[1]) });

    my $o = $self->{opts};
    $o->{scfg} = $scfg;
    $o->{'prune-backups'} //= $prune // { 'keep-all' => 1 }; # vzdump's default
    $o->{remove} //= 1;
    $o->{remove} = 0 if $o->{'prune-backups'}->{'keep-all'};
    make_path("$o->{dir}/log");
    return $self;
}

sub provider { return $_[0]->{provider} }

# @tasks: { vmid, type, archive => sub ($job, $task) } - archive is the guest plugin's part; it
# gets $task->{target} (the archive name), $task->{tmpdir}, $task->{logfd}. Without archive, the
# guest's spec as RealVZDump takes it: conf, firewall, and disks (qemu: QemuServerArchive) or
# snapdir (lxc: PctArchive, unprivileged as the conf says, the job's 'exclude-path'). Optional
# after_archive => sub ($job, $task) runs where vzdump goes on after the guest's archive.
sub run {
    my ($self, @tasks) = @_;
    my $provider = $self->{provider};
    my $starttime = time();
    eval {
        $provider->job_init($starttime);
        $self->task($_) for @tasks;
        $provider->job_cleanup();
    };
    if (my $err = $@) {
        eval { $provider->job_cleanup() };
        $err .= "job cleanup for external provider failed - $@" if $@;
        $self->debugmsg('err', "Backup job failed - $err");
        die $err;
    }
    return \@tasks;
}

sub task {
    my ($self, $task) = @_;
    my $opts = $self->{opts};
    my $provider = $self->{provider};
    my $cfg = PVE::Storage::config();
    my ($vmid, $vmtype) = @$task{qw(vmid type)};
    # vzdump's names are per second: two backups of a guest in one second cannot both exist
    sleep(1) while $self->{last_time}->{$vmid} && time() <= $self->{last_time}->{$vmid};
    $task->{backup_time} = $self->{last_time}->{$vmid} = time();
    my $logfd;
    eval {
        my $prune_options = $opts->{'prune-backups'};
        my $backup_limit = 0;
        if (!$prune_options->{'keep-all'}) {
            $backup_limit += $_ for values %$prune_options;
        }
        if (($backup_limit && !$opts->{remove}) || $opts->{protected}) {
            my @backups = grep { !$_->{subtype} || $_->{subtype} eq $vmtype }
                PVE::Storage::volume_list($cfg, $opts->{storage}, $vmid, 'backup')->@*;
            my $count = grep { !$_->{protected} } @backups;
            my $protected_count = scalar(@backups) - $count;
            if ($opts->{protected}) {
                my $max = PVE::Storage::get_max_protected_backups($opts->{scfg}, $opts->{storage});
                die "The number of protected backups per guest is limited to $max on storage "
                    . "'$opts->{storage}'\n" if $max > -1 && $protected_count >= $max;
            } elsif ($count >= $backup_limit) {
                die "There is a max backup limit of $backup_limit enforced by the target storage "
                    . "or the vzdump parameters. Either increase the limit or delete old backups.\n";
            }
        }

        $task->{vmtype} = $vmtype;
        $task->{tmpdir} = "$opts->{dir}/vzdumptmp$$\_$vmid";
        rmtree($task->{tmpdir});
        make_path($task->{tmpdir});
        $task->{tmplog} = "$opts->{dir}/log/$vmtype-$vmid.log";
        open($logfd, '>', $task->{tmplog}) or die "unable to create log file '$task->{tmplog}'";
        $task->{logfd} = $logfd;
        $self->debugmsg('info', "Starting Backup of VM $vmid ($vmtype)", $logfd);
        $self->debugmsg('info', "bandwidth limit: $opts->{bwlimit} KiB/s", $logfd) if $opts->{bwlimit};

        # snapshot mode: the provider's init comes before the guest is snapshotted
        my $init = $provider->backup_init($vmid, $vmtype, $task->{backup_time});
        die "backup init failed: did not receive a valid result from the backup provider\n"
            if !defined($init) || ref($init) ne 'HASH';
        my $archive_name = $init->{'archive-name'};
        die "backup init failed: did not receive an archive name from backup provider\n"
            if !defined($archive_name) || length($archive_name) == 0;
        die "backup init failed: illegal characters in archive name '$archive_name'\n"
            if $archive_name !~ m!^(${PVE::Storage::SAFE_CHAR_CLASS_RE}|/|:)+$!;
        $task->{target} = $archive_name;

        $self->debugmsg('info', "creating " . $provider->provider_name() . " archive '$task->{target}'", $logfd);
        if ($task->{archive}) {
            $task->{archive}->($self, $task);
        } elsif ($vmtype eq 'qemu') {
            QemuServerArchive::archive($self, $task, map { ($_ => $task->{$_}) } qw(conf firewall disks));
        } else {
            PctArchive::archive($self, $task, conf => $task->{conf}, firewall => $task->{firewall},
                snapdir => $task->{snapdir}, exclude => $opts->{'exclude-path'} // [],
                unprivileged => $task->{conf} =~ m/^unprivileged:\s*1/m ? 1 : 0);
        }
        $task->{after_archive}->($self, $task) if $task->{after_archive};

        my $volid = "$opts->{storage}:backup/$task->{target}";
        $task->{volid} = $volid;
        if (defined(my $notes = $opts->{notes})) { # 'notes-template' after generate_notes
            $self->debugmsg('info', "adding notes to backup", $logfd);
            eval { PVE::Storage::update_volume_attribute($cfg, $volid, 'notes', $notes) };
            $self->debugmsg('warn', "unable to add notes - $@", $logfd) if $@;
        }
        if ($opts->{protected}) {
            $self->debugmsg('info', "marking backup as protected", $logfd);
            eval { PVE::Storage::update_volume_attribute($cfg, $volid, 'protected', 1) };
            die "unable to set protected flag - $@\n" if $@;
        }
        if ($opts->{remove}) {
            my $keepstr = join(', ', map { "$_=$prune_options->{$_}" } sort keys %$prune_options);
            $self->debugmsg('info', "prune older backups with retention: $keepstr", $logfd);
            $task->{pruned} = PVE::Storage::prune_backups(
                $cfg, $opts->{storage}, $prune_options, $vmid, $vmtype, 0,
                sub { $self->debugmsg($_[0], $_[1], $logfd) },
            );
            my $pruned = grep { $_->{mark} eq 'remove' } @{ $task->{pruned} };
            $self->debugmsg('info', "pruned $pruned backup(s)"
                . ($pruned > 0 ? " not covered by keep-retention policy" : ''), $logfd);
        }
        my $res = $provider->backup_cleanup($vmid, $vmtype, 1, {});
        $task->{size} = $res->{stats}->{'archive-size'};
    };
    my $err = $@;
    rmtree($task->{tmpdir}) if $task->{tmpdir};
    if ($err) {
        $task->{state} = 'err';
        $task->{msg} = $err;
        $self->debugmsg('err', "Backup of VM $vmid failed - $err", $logfd);
        eval { $provider->backup_cleanup($vmid, $task->{vmtype}, 0, { error => $err }) };
        $self->debugmsg('warn', "backup cleanup for external provider failed - $@") if $@;
    } else {
        $task->{state} = 'ok';
        $self->debugmsg('info', "Finished Backup of VM $vmid", $logfd);
    }
    close($logfd) if $logfd;
    delete $task->{logfd};
    $provider->backup_handle_log_file($vmid, $task->{tmplog}) if $task->{tmplog};
    die $err if $err && $err =~ m/^interrupted by signal$/;
    return $task;
}

1;
