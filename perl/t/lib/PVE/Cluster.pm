package PVE::Cluster;

# Clean-room test double of the PVE::Cluster bits storage code touches (reference §12.5).

use strict;
use warnings;

our $FILES = { 'datacenter.cfg' => {} };

sub cfs_read_file {
    my ($name) = @_;
    return $FILES->{$name};
}

sub cfs_register_file {
    return;
}

sub cfs_lock_storage {
    my ($storeid, $timeout, $code, @param) = @_;
    return $code->(@param);
}

sub get_vmlist {
    return { ids => {} };
}

1;
