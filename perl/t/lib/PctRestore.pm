package PctRestore;

# pct restore of a backup-provider archive, for the container restore tests: what pve-container
# does (src/PVE/API2/LXC.pm create_vm's worker and src/PVE/LXC/Create.pm, PVE 9 and 8.4 alike), in
# its order and with its arguments, calling the real PVE::Storage functions:
#
#   recover_config             recover_config_from_external_backup: PVE::Storage::extract_vzdump_config
#   restore_archive            the storage has the feature 'backup-provider': new_backup_provider
#                              with the log function printing "<LEVEL>: <message>", then
#   restore_external_archive   dies for a privileged container before asking the provider;
#                              restore_get_mechanism($volname, $storeid) → ('tar', 'lxc') checked;
#                              restore_container_init($volname, $storeid, {}); for 'tar' the
#                              'tar-path' must be a regular file and goes to restore_tar_archive
#                              with $untrusted = 1; restore_container_cleanup($volname,
#                              $storeid, {}) always, its error kept behind the restore's
#   restore_tar_archive        tar_compression_option from the name; check_tar_archive (tar -tvf
#                              --numeric-owner: 'sbin' found, at least 10 members); the command of
#                              restore_tar_archive_command (userns prefix, tar xpf - <compression>
#                              --totals COMMON_TAR_FLAGS -C rootdir --skip-old-files --anchored
#                              --exclude ./dev/*, cstream -t bwlimit×1024 before it) with the archive
#                              as stdin
#   restore_configuration      restore_configuration_from_external_backup: recover_config again,
#                              a new provider's archive_get_firewall_config($volname, $storeid)
#
# The commands are run here with the archive on stdin as run_command's input => '<&fd' does (the
# double's run_command has no such input).

use strict;
use warnings;

use PctUserns;

# Returns { config, firewall, log => [lines] }; dies as pct restore would.
sub restore {
    my ($cfg, $volid, $rootdir, $conf, %o) = @_;
    my $log = [];
    my ($storeid, $volname) = PVE::Storage::parse_volume_id($volid);
    my $raw = PVE::Storage::extract_vzdump_config($cfg, $volid);
    restore_archive($cfg, $volid, $rootdir, $conf, 0, $o{bwlimit}, $log, $o{watch});
    my $provider = new_provider($cfg, $storeid, $log);
    my $raw2 = PVE::Storage::extract_vzdump_config($cfg, $volid);
    die "the config changed between reads\n" if $raw2 ne $raw;
    my $fw = $provider->archive_get_firewall_config($volname, $storeid);
    return { config => $raw, firewall => $fw, log => $log };
}

sub new_provider {
    my ($cfg, $storeid, $log) = @_;
    my $log_function = sub {
        my ($log_level, $message) = @_;
        my $prefix = $log_level eq 'err' ? 'ERROR' : uc($log_level);
        push @$log, "$prefix: $message";
    };
    return PVE::Storage::new_backup_provider($cfg, $storeid, $log_function);
}

sub restore_archive {
    my ($cfg, $archive, $rootdir, $conf, $no_unpack_error, $bwlimit, $log, $watch) = @_;
    my ($storeid, $volname) = PVE::Storage::parse_volume_id($archive, 1);
    PVE::Storage::storage_check_enabled($cfg, $storeid);
    die "storage '$storeid' is not a backup provider\n"
        if !PVE::Storage::storage_has_feature($cfg, $storeid, 'backup-provider');
    my $provider = new_provider($cfg, $storeid, $log);
    return restore_external_archive($provider, $storeid, $volname, $rootdir, $conf, $no_unpack_error, $bwlimit, $watch);
}

sub restore_external_archive {
    my ($backup_provider, $storeid, $volname, $rootdir, $conf, $no_unpack_error, $bwlimit, $watch) = @_;

    die "refusing to restore privileged container backup from external source\n"
        if !$conf->{unprivileged};

    my ($mechanism, $vmtype) = $backup_provider->restore_get_mechanism($volname, $storeid);
    die "cannot restore non-LXC guest of type '$vmtype'\n" if $vmtype ne 'lxc';

    my $info = $backup_provider->restore_container_init($volname, $storeid, {});
    $watch->($info) if $watch; # a test looking at what the provider handed over
    eval {
        if ($mechanism eq 'tar') {
            my $tar_path = $info->{'tar-path'}
                or die "did not get path to tar file from backup provider\n";
            die "not a regular file '$tar_path'" if !-f $tar_path;
            restore_tar_archive($tar_path, $rootdir, $conf, $no_unpack_error, $bwlimit, 1);
        } else {
            die "this test driver restores the 'tar' mechanism only, not '$mechanism'\n";
        }
    };
    my $err = $@;
    eval { $backup_provider->restore_container_cleanup($volname, $storeid, {}); };
    if (my $cleanup_err = $@) {
        die $cleanup_err if !$err;
        warn $cleanup_err;
    }
    die $err if $err;
}

sub tar_compression_option {
    my ($archive) = @_;
    my %compression_map = ('.gz' => '-z', '.bz2' => '-j', '.xz' => '-J', '.lzo' => '--lzop', '.zst' => '--zstd');
    if ($archive =~ /\.tar(\.[^.]+)?$/) {
        if (defined($1)) {
            die "unrecognized compression format: $1\n" if !defined($compression_map{$1});
            return $compression_map{$1};
        }
        return;
    }
    die "file does not look like a template archive: $archive\n";
}

sub check_tar_archive {
    my ($archive) = @_;
    my $found_sbin;
    my $member_count = 0;
    my $cmd = ['tar', '-tvf', $archive];
    my $c = tar_compression_option($archive);
    push @$cmd, $c if $c;
    push @$cmd, '--numeric-owner';
    open(my $fh, '-|', @$cmd) or die "tar: $!\n";
    while (my $line = <$fh>) {
        chomp $line;
        $member_count++;
        my $size_re = qr/\d+(?:,\d+)?/;
        my ($type, $perms, $uid, $gid, $size, $date, $time, $file_info) =
            $line =~ m!^([a-zA-Z\-])(\S+)\s+(\d+)/(\d+)\s+($size_re)\s+(\S+)\s+(\S+)\s+(.*)$!;
        next if !defined($type);
        die "found multi-volume member in archive\n" if $type eq 'M';
        $found_sbin = 1 if ($file_info =~ m!^(?:\./)?sbin/$! && $type eq 'd')
            || ($file_info =~ m!^(?:\./)?sbin ->! && $type eq 'l')
            || ($file_info =~ m!^(?:\./)?sbin link to! && $type eq 'h');
    }
    close($fh) or die "command '@$cmd' failed: exit code " . ($? >> 8) . "\n";
    die "no 'sbin' directory (or link) found in archive '$archive'\n" if !$found_sbin;
    die "less than 10 members in archive '$archive'\n" if $member_count < 10;
}

sub restore_tar_archive_command {
    my ($conf, $compression_opt, $rootdir, $bwlimit, $untrusted) = @_;
    my ($id_map, $root_uid, $root_gid) = PctUserns::id_map($conf);
    my $userns_cmd = PctUserns::userns_command($id_map);
    die "refusing to restore privileged container backup from external source\n"
        if $untrusted && ($root_uid == 0 || $root_gid == 0);
    my $cmd = [@$userns_cmd, 'tar', 'xpf', '-'];
    push @$cmd, $compression_opt if $compression_opt;
    push @$cmd, '--totals';
    push @$cmd, @PVE::Storage::Plugin::COMMON_TAR_FLAGS;
    push @$cmd, '-C', $rootdir;
    push @$cmd, '--skip-old-files', '--anchored', '--exclude', './dev/*';
    $cmd = [['cstream', '-t', $bwlimit * 1024], $cmd] if defined($bwlimit);
    return $cmd;
}

sub restore_tar_archive {
    my ($archive, $rootdir, $conf, $no_unpack_error, $bwlimit, $untrusted) = @_;
    my $compression_opt = tar_compression_option($archive);
    check_tar_archive($archive) if $untrusted;
    my $cmd = restore_tar_archive_command($conf, $compression_opt, $rootdir, $bwlimit, $untrusted);
    eval { run_with_input($cmd, $archive) };
    die $@ if $@ && !$no_unpack_error;
}

sub run_with_input {
    my ($cmd, $file) = @_;
    my @argv = ref($cmd->[0])
        ? ('/bin/bash', '-o', 'pipefail', '-c', join(' | ', map { join(' ', map { quote($_) } @$_) } @$cmd))
        : @$cmd;
    my $pid = fork() // die "fork: $!\n";
    if (!$pid) {
        open(STDIN, '<', $file) or POSIX::_exit(126);
        exec(@argv) or POSIX::_exit(127);
    }
    waitpid($pid, 0);
    die "command '@argv' failed: exit code " . ($? >> 8) . "\n" if $?;
}

sub quote {
    my ($s) = @_;
    return $s if $s =~ m!^[A-Za-z0-9_./=:,+*-]+$! && $s !~ m/\*/;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

1;
