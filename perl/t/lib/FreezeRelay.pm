package FreezeRelay;

# The freeze relay (t/bin/freeze-relay, test/helpers/freeze-relay.ts) in front of the test
# gateway, for the Perl tests: a gateway that stops answering as `kill -STOP` on radosgw makes it,
# without stopping the gateway the other tests share.
#
#   my $relay = FreezeRelay->start($endpoint);   # $relay->{url}: what a storage's endpoint names
#   $relay->freeze(); ... $relay->thaw();
#   $relay->stop();                               # also when the object goes away

use strict;
use warnings;

use FindBin;
use IPC::Open2;

sub start {
    my ($class, $endpoint) = @_;
    my $pid = open2(my $out, my $in, "$FindBin::Bin/bin/freeze-relay", $endpoint);
    my $url = <$out>;
    die "freeze relay did not start\n" if !defined($url);
    chomp($url);
    return bless { pid => $pid, in => $in, out => $out, url => $url }, $class;
}

sub send_line {
    my ($self, $cmd) = @_;
    my $in = $self->{in};
    print $in "$cmd\n";
    $in->flush();
    my $line = readline($self->{out});
    die "freeze relay gone\n" if !defined($line) || $line ne "ok\n";
}

sub freeze { $_[0]->send_line('freeze') }
sub thaw { $_[0]->send_line('thaw') }

sub stop {
    my ($self) = @_;
    return if !$self->{pid};
    close($self->{in});
    waitpid($self->{pid}, 0);
    $self->{pid} = undef;
}

sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    $self->stop();
}

1;
