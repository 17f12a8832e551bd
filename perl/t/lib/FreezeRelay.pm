package FreezeRelay;

# The freeze relay (t/bin/freeze-relay, test/helpers/freeze-relay.ts) in front of the test
# gateway, for the Perl tests: a gateway that stops answering as `kill -STOP` on radosgw makes it,
# without stopping the gateway the other tests share.
#
#   my $relay = FreezeRelay->start($endpoint);   # $relay->{url}: what a storage's endpoint names
#   $relay->freeze(); ... $relay->thaw();
#   $relay->accepted();                           # connections accepted so far, frozen or not
#   $relay->stop();                               # also when the object goes away

use strict;
use warnings;

use parent 'LineHelper';

sub start {
    my ($class, $endpoint) = @_;
    return $class->spawn('freeze-relay', $endpoint);
}

sub send_line {
    my ($self, $cmd) = @_;
    my $answer = $self->exchange($cmd);
    die "freeze relay answered '$answer' to '$cmd'\n" if $answer ne 'ok';
}

sub freeze { $_[0]->send_line('freeze') }
sub thaw { $_[0]->send_line('thaw') }

# A frozen gateway still accepts connections, and a timed-out attempt's connection is closed:
# what a command sent into the freeze is counted here, each attempt that needed a new connection.
sub accepted {
    my ($self) = @_;
    my $n = $self->exchange('accepted');
    die "freeze relay answered '$n' to 'accepted'\n" if $n !~ m/^\d+$/;
    return $n;
}

1;
