package LineHelper;

# A test helper process of t/bin (the fault proxy, the freeze relay) driven by lines: it prints
# its URL on the first line of stdout, then answers each line it reads on stdin with one line,
# and ends with stdin. FaultProxy and FreezeRelay say what their lines mean.

use strict;
use warnings;

use FindBin;
use IPC::Open2;

sub spawn {
    my ($class, $script, @args) = @_;
    my $pid = open2(my $out, my $in, "$FindBin::Bin/bin/$script", @args);
    my $url = <$out>;
    die "$script did not start\n" if !defined($url);
    chomp($url);
    return bless { pid => $pid, in => $in, out => $out, url => $url, script => $script }, $class;
}

# One line to the helper, its answer back (without the line feed).
sub exchange {
    my ($self, $line) = @_;
    my $in = $self->{in};
    print $in "$line\n";
    $in->flush();
    my $answer = readline($self->{out});
    die "$self->{script} gone\n" if !defined($answer);
    chomp($answer);
    return $answer;
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
    local ($?, $@);
    $self->stop();
}

1;
