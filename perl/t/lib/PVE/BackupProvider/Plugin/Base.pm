package PVE::BackupProvider::Plugin::Base;

# Clean-room test double of pve-storage's PVE::BackupProvider::Plugin::Base (PVE >= 8.4), written
# from its documented contract: an abstract base whose every method dies until a subclass
# implements it. Inside the real code (PVEUpstream, $PVE_UPSTREAM_DIR set) the real module is
# loaded instead.

use strict;
use warnings;

for my $m (qw(new provider_name job_init job_cleanup backup_init backup_cleanup backup_get_mechanism
    backup_handle_log_file backup_vm_query_incremental backup_vm backup_container_prepare
    backup_container restore_get_mechanism archive_get_guest_config archive_get_firewall_config
    restore_vm_init restore_vm_cleanup restore_vm_volume_init restore_vm_volume_cleanup
    restore_container_init restore_container_cleanup)) {
    no strict 'refs';
    *{$m} = sub { die "implement me in subclass" };
}

1;
