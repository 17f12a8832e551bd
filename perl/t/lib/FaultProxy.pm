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

use FindBin;
use IPC::Open2;
use JSON::PP;

my $json = JSON::PP->new->utf8->canonical;

sub start {
    my ($class, $endpoint) = @_;
    my $pid = open2(my $out, my $in, "$FindBin::Bin/bin/fault-proxy", $endpoint);
    my $url = <$out>;
    die "fault proxy did not start\n" if !defined($url);
    chomp($url);
    return bless { pid => $pid, in => $in, out => $out, url => $url }, $class;
}

# One line to the proxy (a plan or an archive-tier line, see t/bin/fault-proxy), its answer back.
sub send {
    my ($self, $msg) = @_;
    my $in = $self->{in};
    print $in $json->encode($msg) . "\n";
    $in->flush();
    my $line = readline($self->{out});
    die "fault proxy gone\n" if !defined($line);
    chomp($line);
    return $line;
}

sub plan {
    my ($self, $rules) = @_;
    $self->send($rules);
}

sub restores {
    my ($self) = @_;
    return $json->decode($self->send({ restores => JSON::PP::true }))->{restores};
}

sub stop {
    my ($self) = @_;
    return if !$self->{pid};
    close($self->{in});
    waitpid($self->{pid}, 0);
    $self->{pid} = undef;
}

sub DESTROY {
    my ($self) = @_;
    $self->stop();
}

1;
