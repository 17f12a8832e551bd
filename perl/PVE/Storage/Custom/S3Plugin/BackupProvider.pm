package PVE::Storage::Custom::S3Plugin::BackupProvider;

# The s3 storage as a PVE Backup Provider (docs/BACKUP-PROVIDER.md §2). Thin: every method is one
# host operation through the plugin's runner (the secret goes over stdin); the host does the work.
# Backup side here; restore and container methods follow (issue 12).

use strict;
use warnings;

use MIME::Base64 qw(encode_base64);

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

# One host operation; its progress lines go to the task log as they come.
sub host {
    my ($self, $op, $args) = @_;
    my $log = $self->{log};
    return PVE::Storage::Custom::S3Plugin::host_call(
        $self->{storeid}, $self->{scfg}, $op, $args, line => sub { $log->('info', $_[0]) },
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
        time => int($start_time),
        stored => 0,
    };
    return { 'archive-name' => $res->{archive} };
}

sub backup_get_mechanism {
    my ($self, $vmid, $vmtype) = @_;
    return 'nbd' if $vmtype eq 'qemu';
    die "pve-s3: container backups through the backup provider are not supported yet\n" if $vmtype eq 'lxc';
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

sub backup_cleanup {
    my ($self, $vmid, $vmtype, $success, $info) = @_;

    my $g = $self->{guest};
    if ($success && $g && $g->{stored}) {
        return { stats => { 'archive-size' => $g->{size} } };
    }
    if ($g) {
        # no trace of a failed backup: a host process still running is stopped, uploads aborted
        $g->{stored} = 0;
        $self->host('backup-discard', { volname => $g->{volname} });
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

1;
