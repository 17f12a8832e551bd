package PVE::HA::Env::PVE2;

# Stand-in for pve-ha-manager's PVE::HA::Env::PVE2 (another package: the HA stack's environment
# on a node). pve-manager's PVE::VZDump only loads it; none of its functions is called by the
# backup code, so this stand-in has none and any call fails loudly. Nothing here is upstream code.

use strict;
use warnings;

1;
