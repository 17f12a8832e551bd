package PVE::HA::Config;

# Stand-in for pve-ha-manager's PVE::HA::Config (another package; its resource types need the
# HA stack). pve-manager's PVE::VZDump asks vm_is_ha_managed($vmid, 'started') before a backup in
# stop mode. The real function (src/PVE/HA/Config.pm) reads /etc/pve/ha/resources.cfg and says 1
# when "vm:<vmid>" or "ct:<vmid>" is there (in the requested state); the test node has no HA
# resources, so it says undef as the real one does for a missing resources.cfg - unless a test
# wrote ha/resources.cfg, which is refused rather than half-parsed. Nothing here is upstream code.

use strict;
use warnings;

use PVE::Cluster;

sub vm_is_ha_managed {
    my ($vmid, $has_state) = @_;
    my $file = PVE::Cluster::base_dir() . '/ha/resources.cfg';
    die "PVE::HA::Config stand-in: $file exists, but this stand-in knows no HA resources\n" if -e $file;
    return undef;
}

1;
