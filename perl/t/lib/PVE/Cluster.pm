package PVE::Cluster;

# Clean-room test double of the PVE::Cluster bits storage code touches (reference §12.5).

use strict;
use warnings;

use Exporter qw(import);

our @EXPORT_OK = qw(cfs_read_file cfs_write_file cfs_register_file cfs_lock_storage get_vmlist);

our $FILES = { 'datacenter.cfg' => {} };

sub cfs_read_file {
    my ($name) = @_;
    return $FILES->{$name};
}

sub cfs_write_file {
    my ($name, $data) = @_;
    $FILES->{$name} = $data;
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
