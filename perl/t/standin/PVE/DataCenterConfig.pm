package PVE::DataCenterConfig;

# Stand-in for pve-cluster's PVE::DataCenterConfig: registers datacenter.cfg with the cluster
# file system as the real module does, with a parser for the plain "key: value" lines the
# storage code reads (bwlimit stays a property string, as the real parser leaves it to callers
# through parse_property_string). Nothing here is upstream code.

use strict;
use warnings;

use PVE::Cluster qw(cfs_register_file);

sub parse_datacenter_config {
    my ($filename, $raw) = @_;
    my $res = {};
    for my $line (split(/\n/, $raw // '')) {
        next if $line =~ m/^\s*(?:#|$)/;
        $res->{$1} = $2 if $line =~ m/^([a-z][a-z0-9_-]*):\s*(.*?)\s*$/;
    }
    return $res;
}

sub write_datacenter_config {
    my ($filename, $cfg) = @_;
    return join('', map { "$_: $cfg->{$_}\n" } sort keys %$cfg);
}

cfs_register_file('datacenter.cfg', \&parse_datacenter_config, \&write_datacenter_config);

1;
