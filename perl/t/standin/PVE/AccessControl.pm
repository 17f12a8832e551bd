package PVE::AccessControl;

# Stand-in for pve-access-control's PVE::AccessControl: the storage API's delete drops the
# storage's ACL entries through remove_storage_access; here that is recorded for the tests.

use strict;
use warnings;

our @REMOVED_STORAGE_ACCESS;

sub remove_storage_access {
    my ($storeid) = @_;
    push @REMOVED_STORAGE_ACCESS, $storeid;
}

sub pve_verify_tokenid {
    my ($tokenid, $noerr) = @_;
    return $tokenid if defined($tokenid) && $tokenid =~ m/^\S+@\S+!\S+$/;
    return undef if $noerr;
    die "value '" . ($tokenid // '') . "' does not look like a valid token ID\n";
}

1;
