package PVE::SSHInfo;

# Stand-in for pve-cluster's PVE::SSHInfo: present so the storage code loads; the tests are on
# one node, so anything that would ssh to another one fails loudly instead of pretending.

use strict;
use warnings;

for my $name (qw(get_ssh_info ssh_info_to_command_base ssh_info_to_command ssh_info_to_ssh_opts)) {
    no strict 'refs';
    *{$name} = sub { die "PVE::SSHInfo::$name: no other node in the test harness\n" };
}

1;
