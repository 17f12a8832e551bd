package PVE::APIClient::LWP;

# Stand-in for libpve-apiclient-perl's PVE::APIClient::LWP: the PBS plugin loads it; no
# Proxmox Backup Server is used.

use strict;
use warnings;

sub new { die "PVE::APIClient::LWP: no remote API in the test harness\n" }

1;
