package PVE::RADOS;

# Stand-in for librados2-perl's PVE::RADOS: the RBD plugin loads it; no Ceph cluster is used.

use strict;
use warnings;

sub new { die "PVE::RADOS: no Ceph cluster in the test harness\n" }

1;
