package PctArchive;

# pve-container's part of a container backup to a backup provider: what src/PVE/VZDump/LXC.pm does
# (PVE 9 and 8.4 alike), in its order and with its arguments. Used by the guest-plugin double
# perl/t/guest/PVE/VZDump/LXC.pm under pve-manager's real PVE::VZDump, and by VZDumpDriver's tasks:
#
#   prepare   PVE::LXC::parse_id_maps → the task's id_map and root_uid (PctUserns::id_map)
#   assemble  "$tmpdir/etc/vzdump/pct.conf" (the config), "$tmpdir/etc/vzdump/pct.fw" (the guest's
#             firewall config, or an empty file without one: vzdump's non-PBS branch)
#   archive   (the snapshot directory stands for the mounted snapshot, sources ['.'] as in
#             suspend mode) the backup-provider branch: the warning for a privileged container,
#             backup_get_mechanism($vmid, 'lxc') must be 'directory', $info = { directory,
#             sources, 'backup-user-id' => root_uid, 'firewall-config' when pct.fw exists,
#             'bandwidth-limit' => bwlimit × 1024 }, backup_container_prepare($vmid, $info), then
#             backup_container($vmid, $guest_config, $findexcl, $info) in
#             PVE::LXC::Namespaces::run_in_userns with the id map (directly without one).
#
# $findexcl is vzdump's exclusion list (VZDump.pm new: the job's exclude-path, one per pattern).

use strict;
use warnings;

use File::Path qw(make_path);

use FileBytes qw(read_file write_file);
use PctUserns;

# archive($job, $task, conf => text, firewall => text|undef, snapdir => dir, exclude => [..],
# unprivileged => 0|1) for VZDumpDriver: assemble, then archive_external.
sub archive {
    my ($job, $task, %ct) = @_;
    assemble($task->{tmpdir}, $ct{conf}, $ct{firewall});
    return archive_external($job, $task, \%ct);
}

# assemble: the config, and the guest's firewall config or an empty file (the non-PBS branch)
sub assemble {
    my ($tmpdir, $conf, $firewall) = @_;
    make_path("$tmpdir/etc/vzdump/");
    write_file("$tmpdir/etc/vzdump/pct.conf", $conf);
    write_file("$tmpdir/etc/vzdump/pct.fw", $firewall // '');
}

# $ct: { snapdir, exclude (vzdump's findexcl), unprivileged }; $job->{opts}->{pve_version} picks
# pve-container's run_in_userns
sub archive_external {
    my ($job, $task, $ct) = @_;
    my $vmid = $task->{vmid};
    my $provider = $job->provider();
    my $opts = $job->{opts};
    my $logfd = $task->{logfd};
    my ($id_map, $root_uid) = PctUserns::id_map({ unprivileged => $ct->{unprivileged} // 1 });
    my $tmpdir = $task->{tmpdir};

    # archive, backup-provider branch
    $job->debugmsg('info', "starting external backup via " . $provider->provider_name(), $logfd);
    if (!scalar(@$id_map) || $root_uid == 0) {
        $job->debugmsg('warn', "external backup of privileged container can only be restored as"
            . " unprivileged which might not work in all cases", $logfd);
    }
    my $mechanism = $provider->backup_get_mechanism($vmid, 'lxc');
    die "mechanism '$mechanism' requested by backup provider is not supported for containers\n"
        if $mechanism ne 'directory';
    $job->debugmsg('info', "using backup mechanism '$mechanism'", $logfd);

    my $guest_config = read_file("$tmpdir/etc/vzdump/pct.conf");
    my $firewall_file = "$tmpdir/etc/vzdump/pct.fw";
    my $info = {
        directory => $ct->{snapdir},
        sources => ['.'],
        'backup-user-id' => $root_uid,
    };
    $info->{'firewall-config'} = read_file($firewall_file) if -e $firewall_file;
    $info->{'bandwidth-limit'} = $opts->{bwlimit} * 1024 if $opts->{bwlimit};

    $provider->backup_container_prepare($vmid, $info);
    my $findexcl = $ct->{exclude} // [];
    if (scalar(@$id_map)) {
        PctUserns::run_in_userns(
            $opts->{pve_version},
            sub { $provider->backup_container($vmid, $guest_config, $findexcl, $info) },
            $id_map,
        );
    } else {
        $provider->backup_container($vmid, $guest_config, $findexcl, $info);
    }
    return;
}

1;
