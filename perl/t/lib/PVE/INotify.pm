package PVE::INotify;

# Clean-room test double: the node name only (reference §12.5).

use strict;
use warnings;

our $NODENAME = 'testnode';

sub nodename {
    return $NODENAME;
}

1;
