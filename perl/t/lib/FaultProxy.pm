package FaultProxy;

# The project's fault proxy (t/bin/fault-proxy, test/helpers/fault-proxy.ts) in front of the test
# gateway, for the Perl tests:
#
#   my $proxy = FaultProxy->start($endpoint);   # $proxy->{url}: what a storage's endpoint names
#   $proxy->plan([ FaultRule... ]);               # replaces the fault plan
#   $proxy->send({ archive => { re => '^pve/dump/x$', storageClass => 'GLACIER' } });  # archive-tier lines
#   $proxy->restores();                           # [ { key, tier, days, at } ... ] accepted so far
#   $proxy->stop();                               # also when the object goes away

use strict;
use warnings;

use JSON::PP;
use parent 'LineHelper';

my $json = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, $endpoint) = @_;
    return $class->spawn('fault-proxy', $endpoint);
}

# One line to the proxy (a plan or an archive-tier line, see t/bin/fault-proxy), its answer back.
sub send {
    my ($self, $msg) = @_;
    return $self->exchange($json->encode($msg));
}

sub plan {
    my ($self, $rules) = @_;
    $self->send($rules);
}

sub restores {
    my ($self) = @_;
    return $json->decode($self->send({ restores => JSON::PP::true }))->{restores};
}

1;
