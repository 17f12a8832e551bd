package QsdExports;

# QEMU's own NBD server for the Perl tests, set up the way qemu-server's archive_external
# (src/PVE/VZDump/QemuServer.pm) sets up a VM for a backup provider: one server on a unix socket
# (QMP nbd-server-start), one export per device named after the device and writable for discard
# (block-export-add). Debian's qemu-storage-daemon (qemu-system-common) is that server without a
# VM. Also test images with holes (never written), written zeros and random data.

use strict;
use warnings;

use POSIX ();

my $QSD = '/usr/bin/qemu-storage-daemon';

# Writes $path from regions [kind, bytes] (kind: data = random, zero = written zeros, hole =
# never written); returns its size. Another file with the same regions differs in its data.
sub make_image {
    my ($path, $regions) = @_;
    open(my $fh, '>', $path) or die "cannot write $path: $!\n";
    binmode($fh);
    open(my $rnd, '<', '/dev/urandom') or die "/dev/urandom: $!\n";
    my $off = 0;
    for my $r (@$regions) {
        my ($kind, $len) = @$r;
        if ($kind ne 'hole') {
            sysseek($fh, $off, 0) // die "seek: $!\n";
            for (my $done = 0; $done < $len;) {
                my $n = $len - $done > 4 * 1024 * 1024 ? 4 * 1024 * 1024 : $len - $done;
                my $buf = "\0" x $n;
                if ($kind eq 'data') {
                    sysread($rnd, $buf, $n) == $n or die "short read from /dev/urandom\n";
                }
                syswrite($fh, $buf) == $n or die "write $path: $!\n";
                $done += $n;
            }
        }
        $off += $len;
    }
    truncate($fh, $off) or die "truncate $path: $!\n";
    close($fh);
    close($rnd);
    return $off;
}

# A copy that keeps the holes, for the server to serve (discards punch holes into it).
sub served_copy {
    my ($src, $dst) = @_;
    system('cp', '--sparse=always', $src, $dst) == 0 or die "cp $src failed\n";
    return $dst;
}

# Bytes allocated on disk (st_blocks): shows that discards reached the file.
sub allocated {
    my ($path) = @_;
    my @st = stat($path) or die "stat $path: $!\n";
    return $st[12] * 512;
}

# start($socket, { device-name => file, ... }, $log) - the server with one export per device.
sub start {
    my ($class, $socket, $devices, $log) = @_;
    my @cmd = ($QSD);
    my @names = sort keys %$devices;
    for my $i (0 .. $#names) {
        push @cmd, '--blockdev', "driver=file,node-name=file$i,filename=$devices->{$names[$i]},discard=unmap",
            '--blockdev', "driver=raw,node-name=node$i,file=file$i,discard=unmap";
    }
    push @cmd, '--nbd-server', "addr.type=unix,addr.path=$socket";
    push @cmd, '--export', "type=nbd,id=$names[$_],node-name=node$_,name=$names[$_],writable=on" for 0 .. $#names;
    my $pid = fork() // die "fork: $!\n";
    if (!$pid) {
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>>', $log // '/dev/null');
        exec(@cmd) or POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, owner => $$, socket => $socket }, $class;
    for (1 .. 400) {
        return $self if -S $socket;
        last if waitpid($pid, POSIX::WNOHANG()) == $pid;
        select(undef, undef, undef, 0.025);
    }
    $self->stop('KILL');
    die "qemu-storage-daemon did not start (log: " . ($log // 'none') . ")\n";
}

sub stop {
    my ($self, $signal) = @_;
    my $pid = delete $self->{pid} or return;
    kill($signal // 'TERM', $pid);
    waitpid($pid, 0);
    unlink($self->{socket});
}

sub DESTROY {
    my ($self) = @_;
    # not from a forked child of the test (run_command's)
    $self->stop('KILL') if $self->{pid} && $self->{owner} == $$;
}

1;
