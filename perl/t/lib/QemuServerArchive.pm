package QemuServerArchive;

# qemu-server's part of a VM backup to a backup provider: what src/PVE/VZDump/QemuServer.pm
# (PVE 9 and 8.4 alike) does, in its order and with its arguments, with qemu-storage-daemon
# standing for the VM's QEMU (QsdExports). Used by the guest-plugin double perl/t/guest/PVE/
# VZDump/QemuServer.pm under pve-manager's real PVE::VZDump, and by VZDumpDriver's tasks.
#
#   assemble          qemu-server.conf / qemu-server.fw in the task's tmpdir (VZDumpDriver only;
#                     the plugin double has its own assemble, from the guest's config file)
#   archive_external  backup_get_mechanism($vmid, 'qemu'); backup_vm_query_incremental($vmid,
#                     { $dev => { size } }) and its answer checked; the QMP backup-access-setup,
#                     nbd-server-start on "<root>/<vmid>-nbd.backup-access" (root =
#                     "/run/qemu-server/<vmid>.backup-access.<pid>/", here under the job's dir)
#                     and one writable block-export-add per device; backup_access_to_volume_info's
#                     volumes ({ size, 'bitmap-mode', 'nbd-path', 'bitmap-name' }); $param with
#                     'bandwidth-limit' (bwlimit × 1024) and 'firewall-config'; backup_vm with the
#                     signal handlers dying "interrupted by signal"; then the NBD server is stopped
#                     (cleanup's nbd-stop / backup-access-teardown).
#
# $job: provider(), debugmsg($level, $msg, $logfd), {opts}->{dir} (scratch), {opts}->{bwlimit}.

use strict;
use warnings;

use File::Path qw(make_path rmtree);

use FileBytes qw(read_file write_file);
use QsdExports;

# archive($job, $task, conf => text, firewall => text|undef, disks => { device => image file })
# for VZDumpDriver: assemble, then archive_external. The running server is $task->{qsd} while
# backup_vm runs (a test may kill it).
sub archive {
    my ($job, $task, %vm) = @_;
    assemble($task->{tmpdir}, $vm{conf}, $vm{firewall});
    return archive_external($job, $task, { %vm, qsd_holder => $task });
}

# assemble: the config vzdump archives, and the guest's firewall config when it has one
sub assemble {
    my ($tmpdir, $conf, $firewall) = @_;
    write_file("$tmpdir/qemu-server.conf", $conf);
    write_file("$tmpdir/qemu-server.fw", $firewall) if defined($firewall);
}

# $vm: { disks => { device => image file }, qsd_holder => hash that gets {qsd} while it runs }
sub archive_external {
    my ($job, $task, $vm) = @_;
    my $vmid = $task->{vmid};
    my $provider = $job->provider();
    my $opts = $job->{opts};
    my $logfd = $task->{logfd};
    my $holder = $vm->{qsd_holder} // {};
    my $conffile = "$task->{tmpdir}/qemu-server.conf";
    my $firewall_file = "$task->{tmpdir}/qemu-server.fw";

    my $root = "$opts->{dir}/run/$vmid.backup-access.$$/";
    make_path($root);
    chmod(0700, $root) or die "unable to chmod directory $root\n";
    my $guest_config = read_file($conffile);
    $job->debugmsg('info', "starting external backup via " . $provider->provider_name(), $logfd);

    my $qsd;
    eval {
        local $SIG{INT} = local $SIG{TERM} = local $SIG{QUIT} = local $SIG{HUP} = local $SIG{PIPE} =
            sub { die "interrupted by signal\n" };

        my $mechanism = $provider->backup_get_mechanism($vmid, 'qemu');
        die "mechanism '$mechanism' requested by backup provider is not supported for VMs\n"
            if $mechanism ne 'file-handle' && $mechanism ne 'nbd';
        die "this test driver serves the 'nbd' mechanism only, not '$mechanism'\n" if $mechanism ne 'nbd';
        $job->debugmsg('info', "using backup mechanism '$mechanism'", $logfd);

        my $disks = $vm->{disks};
        my $devices = { map { ($_ => { size => -s $disks->{$_} }) } keys %$disks };
        my $incremental_info = $provider->backup_vm_query_incremental($vmid, $devices);
        for my $device (sort keys %$devices) {
            my $mode = $incremental_info->{$device} // next;
            die "invalid incremental mode '$mode' returned by backup provider plugin\n"
                if $mode ne 'new' && $mode ne 'use' && $mode ne 'none';
            die "this test driver has no dirty bitmaps (mode '$mode' for $device)\n" if $mode ne 'none';
        }

        $job->debugmsg('info', "starting NBD server", $logfd);
        my $nbd_path = "$root/$vmid-nbd.backup-access";
        $qsd = $holder->{qsd} = QsdExports->start($nbd_path, $disks, "$opts->{dir}/qsd-$vmid.log");
        $job->debugmsg('info', "adding NBD export for $_", $logfd) for sort keys %$devices;

        # no bitmap: backup-access-setup reports no bitmap-action, so the mode is 'none'
        my $volumes = {
            map {
                ($_ => { 'bitmap-mode' => 'none', size => $devices->{$_}->{size}, 'nbd-path' => $nbd_path, 'bitmap-name' => undef })
            } keys %$devices
        };
        my $param = {};
        $param->{'bandwidth-limit'} = $opts->{bwlimit} * 1024 if $opts->{bwlimit};
        $param->{'firewall-config'} = read_file($firewall_file) if -e $firewall_file;
        $provider->backup_vm($vmid, $guest_config, $volumes, $param);
    };
    my $err = $@;
    $qsd->stop() if $qsd;
    delete $holder->{qsd};
    rmtree($root);
    die $err if $err;
}

1;
