package PVE::Storage::Custom::S3Plugin::BackupProvider;

# The s3 storage as a PVE Backup Provider (docs/BACKUP-PROVIDER.md §2). Thin: every method is one
# host operation through the plugin's runner (the secret goes over stdin); the host does the work.
# VMs: mechanism nbd to back up, qemu-img to restore; containers: directory and tar.

use strict;
use warnings;

use MIME::Base64 qw(decode_base64 encode_base64);

use PVE::Storage;
use PVE::Storage::Plugin;

use base qw(PVE::BackupProvider::Plugin::Base);

sub new {
    my ($class, $storage_plugin, $scfg, $storeid, $log_function) = @_;

    return bless {
        'storage-plugin' => $storage_plugin,
        scfg => $scfg,
        storeid => $storeid,
        log => $log_function // sub { print "$_[1]\n" },
    }, $class;
}

sub provider_name {
    my ($self) = @_;
    return "pve-s3 (bucket '" . ($self->{scfg}->{bucket} // '?') . "')";
}

# One host operation; its progress lines go to the task log as they come (quiet: not logged).
# The storage object goes with it: the one taken by backup_container_prepare when there is one
# (backup_container runs as the container's root, which cannot read the secret file).
sub host {
    my ($self, $op, $args, %opts) = @_;
    my $log = $self->{log};
    return PVE::Storage::Custom::S3Plugin::host_call(
        $self->{storeid}, $self->{scfg}, $op, $args,
        ($opts{quiet} ? () : (line => sub { $log->('info', $_[0]) })),
        ($self->{'storage-object'} ? (storage => $self->{'storage-object'}) : ()),
    );
}

sub bytes_b64 {
    my ($text) = @_;
    utf8::encode($text) if utf8::is_utf8($text);
    return encode_base64($text, '');
}

sub job_init {
    my ($self, $start_time) = @_;
    # one HeadBucket: a wrong bucket or refused credentials fail the job before any guest
    $self->host('activate', {});
    return;
}

sub job_cleanup {
    my ($self) = @_;
    return; # nothing outlives a host process
}

sub backup_init {
    my ($self, $vmid, $vmtype, $start_time) = @_;

    my $res = $self->host('backup-init', { vmid => int($vmid), type => $vmtype, time => int($start_time) });
    $self->{guest} = {
        vmid => $vmid,
        volname => $res->{volname},
        # which run made the archive: the discard of a failed one removes only that (docs/PROTOCOL.md)
        run => $res->{run},
        time => int($start_time),
        stored => 0,
    };
    return { 'archive-name' => $res->{archive} };
}

sub backup_get_mechanism {
    my ($self, $vmid, $vmtype) = @_;
    return 'nbd' if $vmtype eq 'qemu';
    return 'directory' if $vmtype eq 'lxc';
    die "pve-s3: cannot back up guest type '$vmtype'\n";
}

sub backup_vm_query_incremental {
    my ($self, $vmid, $volumes) = @_;
    return undef; # no dirty bitmaps yet (docs/BACKUP-PROVIDER.md §5.5)
}

sub backup_vm {
    my ($self, $vmid, $guest_config, $volumes, $info) = @_;

    my $g = $self->{guest} // die "pve-s3: backup_vm without backup_init\n";
    my $devices = [
        map {
            {
                name => $_,
                size => int($volumes->{$_}->{size}),
                nbd_path => $volumes->{$_}->{'nbd-path'},
                bitmap_mode => $volumes->{$_}->{'bitmap-mode'} // 'none',
            }
        } sort keys %$volumes
    ];
    my $args = {
        volname => $g->{volname},
        run => $g->{run},
        time => $g->{time},
        config_b64 => bytes_b64($guest_config),
        devices => $devices,
    };
    $args->{firewall_b64} = bytes_b64($info->{'firewall-config'}) if defined($info->{'firewall-config'});
    $args->{bwlimit_kib} = int($info->{'bandwidth-limit'} / 1024) if $info->{'bandwidth-limit'};

    my $res = $self->host('backup-vm', $args);
    $g->{size} = $res->{size};
    $g->{stored} = 1;
    return;
}

# Still privileged (pve-container VZDump/LXC.pm archive): the work directory the container's
# root may write, and the storage object with the secret for backup_container.
sub backup_container_prepare {
    my ($self, $vmid, $info) = @_;

    my $g = $self->{guest} // die "pve-s3: backup_container_prepare without backup_init\n";
    $self->{'storage-object'} =
        PVE::Storage::Custom::S3Plugin::storage_object($self->{storeid}, $self->{scfg});
    # owner: this worker; a work directory it abandons (killed) is removed by the next backup
    $self->host('backup-container-prepare', {
        volname => $g->{volname},
        user_id => int($info->{'backup-user-id'}),
        owner_pid => int($$),
    });
    $g->{container} = 1;
    return;
}

# Runs as the container's root, in a fork: nothing set on $self here is seen afterwards
# (backup_cleanup asks the host for the size).
sub backup_container {
    my ($self, $vmid, $guest_config, $exclude_patterns, $info) = @_;

    my $g = $self->{guest} // die "pve-s3: backup_container without backup_init\n";
    die "pve-s3: backup_container without backup_container_prepare\n" if !$g->{container};
    my $args = {
        volname => $g->{volname},
        run => $g->{run},
        directory => $info->{directory},
        sources => [ $info->{sources}->@* ],
        exclude => [ ($exclude_patterns // [])->@* ],
        # vzdump's own tar flags, of the PVE this runs in
        tar_flags => [ @PVE::Storage::Plugin::COMMON_TAR_FLAGS ],
        user_id => int($info->{'backup-user-id'}),
        config_b64 => bytes_b64($guest_config),
    };
    $args->{firewall_b64} = bytes_b64($info->{'firewall-config'}) if defined($info->{'firewall-config'});
    $args->{bwlimit_kib} = int($info->{'bandwidth-limit'} / 1024) if $info->{'bandwidth-limit'};
    $self->host('backup-container', $args);
    return;
}

sub backup_cleanup {
    my ($self, $vmid, $vmtype, $success, $info) = @_;

    my $g = $self->{guest};
    if ($success && $g && $g->{container}) {
        # the backup ran in a fork: the host removes its work directory and gives the size
        my $res = $self->host('backup-container-end', { volname => $g->{volname} });
        $g->{size} = $res->{size};
        $g->{stored} = 1;
    }
    if ($success && $g && $g->{stored}) {
        return { stats => { 'archive-size' => $g->{size} } };
    }
    if ($g) {
        # no trace of a failed backup: a host process still running is stopped, its run's uploads aborted
        $g->{stored} = 0;
        $self->host('backup-discard', { volname => $g->{volname}, run => $g->{run} });
    }
    return {};
}

sub backup_handle_log_file {
    my ($self, $vmid, $filename) = @_;

    my $g = delete $self->{guest};
    # a failed backup keeps no archive, so no .log either
    return if !$g || !$g->{stored} || !defined($filename) || !-f $filename;
    # VZDump calls this outside its error handling: a failure here must not fail the job
    eval { $self->host('backup-log', { volname => $g->{volname}, src => $filename }) };
    $self->{log}->('warn', "unable to store the task log with the backup - $@") if $@;
    return;
}

# --- restore (qemu-server restore_external_archive, PVE::Storage::extract_vzdump_config) ---------

sub restore_get_mechanism {
    my ($self, $volname) = @_;

    my $type = eval { PVE::Storage::archive_info($volname)->{type} } // '';
    return ('qemu-img', 'qemu') if $type eq 'qemu';
    return ('tar', 'lxc') if $type eq 'lxc';
    die "pve-s3: '$volname' is not a VM or container backup\n";
}

sub b64_bytes {
    my ($b64) = @_;
    return defined($b64) ? decode_base64($b64) : undef;
}

# The configs come with restore_vm_init (read with the archive it opened); Show Configuration
# calls these alone, in the API daemon: the host reads the manifest or the archive's head only.
sub archive_config {
    my ($self, $volname, $which) = @_;

    my $r = $self->{restore}->{$volname};
    return $r->{$which} if $r;
    # quiet: Show Configuration's API daemon has no task log to write to
    my $res = $self->host('archive-config', { volname => $volname, which => $which }, quiet => 1);
    return b64_bytes($res->{text_b64});
}

sub archive_get_guest_config {
    my ($self, $volname, $storeid) = @_;
    return $self->archive_config($volname, 'guest');
}

sub archive_get_firewall_config {
    my ($self, $volname, $storeid) = @_;
    return $self->archive_config($volname, 'firewall');
}

sub restore_vm_init {
    my ($self, $volname) = @_;

    # owner: this worker; a restore it abandons (killed) is cleaned up by the next one
    my $res = $self->host('restore-vm-init', { volname => $volname, owner_pid => int($$) });
    $self->{restore}->{$volname} = {
        dir => $res->{dir},
        guest => b64_bytes($res->{config_b64}),
        firewall => b64_bytes($res->{firewall_b64}),
    };
    return { map { ($_->{name} => { size => int($_->{size}) }) } @{ $res->{devices} } };
}

sub restore_dir {
    my ($self, $volname) = @_;
    my $r = $self->{restore}->{$volname} // die "pve-s3: restore of '$volname' was not initialised\n";
    return $r->{dir};
}

sub restore_vm_volume_init {
    my ($self, $volname, $device_name, $info) = @_;

    my $res = $self->host(
        'restore-volume-start', { dir => $self->restore_dir($volname), device => $device_name },
    );
    return { 'qemu-img-path' => $res->{path} };
}

sub restore_vm_volume_cleanup {
    my ($self, $volname, $device_name, $info) = @_;

    $self->host(
        'restore-volume-stop', { dir => $self->restore_dir($volname), device => $device_name },
    );
    return;
}

sub restore_vm_cleanup {
    my ($self, $volname) = @_;

    my $r = delete $self->{restore}->{$volname} or return;
    $self->host('restore-vm-cleanup', { dir => $r->{dir} });
    return;
}

# pve-container Create.pm restore_external_archive: tar wants a regular file, so the archive is
# downloaded (verified) into a restore directory of this worker, removed by the cleanup.
sub restore_container_init {
    my ($self, $volname, $storeid, $info) = @_;

    my $res = $self->host('restore-container-init', { volname => $volname, owner_pid => int($$) });
    $self->{'ct-restore'}->{$volname} = $res->{dir};
    return { 'tar-path' => $res->{path} };
}

sub restore_container_cleanup {
    my ($self, $volname, $storeid, $info) = @_;

    my $dir = delete $self->{'ct-restore'}->{$volname} or return;
    $self->host('restore-container-cleanup', { dir => $dir });
    return;
}

1;
