package PVE::Tools;

# Clean-room test double of the PVE::Tools functions the s3 plugin uses, written from
# reference/pve-storage-api.md §12.3. run_command really runs the command (the tests run a stub
# host through it), with the upstream option set, error strings and timeout behaviour.

use strict;
use warnings;

use Exporter qw(import);
use Fcntl qw(:flock O_RDONLY O_WRONLY O_CREAT O_EXCL);
use IO::File;
use IO::Select;
use IPC::Open3;
use POSIX qw(WNOHANG);
use Symbol qw(gensym);

our @EXPORT_OK = qw(
    run_command
    file_get_contents
    file_set_contents
    file_read_firstline
    lock_file
    lock_file_full
    run_fork_with_timeout
    split_list
    trim
    extract_param
    extract_sensitive_params
    dir_glob_foreach
    dir_glob_regex
    shell_quote
    df
    $IPV4RE
    $IPV6RE
);

# Address patterns other PVE modules import from here (simplified shapes, not upstream's).
our $IPV4RE = qr/(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)/;
our $IPV6RE = qr/(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}/;

# Every run_command call, for tests that want to look at argv or options.
our @CALLS;

my %RUN_OPTS = map { $_ => 1 } qw(
    outfunc errfunc logfunc timeout errmsg input output noerr quiet umask afterfork keeplocale
);

sub shell_quote {
    my ($s) = @_;
    return "''" if !defined($s) || $s eq '';
    return $s if $s =~ m/^[A-Za-z0-9_\-.\/=:,+@%]+$/;
    $s =~ s/'/'\\''/g;
    return "'$s'";
}

sub cmd_to_string {
    my ($cmd) = @_;
    return $cmd if !ref($cmd);
    if (ref($cmd->[0])) {
        return join(' | ', map { cmd_to_string($_) } @$cmd);
    }
    return join(' ', map { shell_quote($_) } @$cmd);
}

sub run_command {
    my ($cmd, %param) = @_;

    for my $p (keys %param) {
        die "got unknown parameter '$p' for run_command\n" if !$RUN_OPTS{$p};
    }
    my $cmdstr = cmd_to_string($cmd);
    push @CALLS, { cmd => $cmd, param => {%param} };

    my @argv;
    if (!ref($cmd)) {
        @argv = $cmd =~ m/\|/ ? ('/bin/bash', '-c', "set -o pipefail && $cmd") : ($cmd);
    } elsif (ref($cmd->[0])) {
        @argv = ('/bin/bash', '-o', 'pipefail', '-c', $cmdstr);
    } else {
        @argv = @$cmd;
    }

    my ($outfunc, $errfunc, $timeout, $input) = @param{qw(outfunc errfunc timeout input)};
    my $logfunc = $param{logfunc};
    $outfunc //= $logfunc if $logfunc;
    $errfunc //= $logfunc if $logfunc;
    my $noerr = $param{noerr};
    my $errmsg = $param{errmsg};

    my ($pid, $laststderr, $exitcode);
    my $oldtimeout;
    eval {
        local $SIG{ALRM} = sub { die "got timeout\n" };
        $oldtimeout = alarm($timeout) if $timeout;

        my $writer = IO::File->new();
        my $reader = IO::File->new();
        my $error = gensym;
        $pid = open3($writer, $reader, $error, @argv) || die "failed to execute\n";
        print $writer $input if defined($input);
        close($writer);

        my $select = IO::Select->new($reader, $error);
        my %buf = ($reader => '', $error => '');
        while ($select->count) {
            for my $h ($select->can_read()) {
                my $n = sysread($h, my $chunk, 8192);
                if (!$n) {
                    $select->remove($h);
                    next;
                }
                $buf{$h} .= $chunk;
                while ($buf{$h} =~ s/^([^\n]*)\n//) {
                    my $line = $1;
                    if ($h == $reader) {
                        $outfunc ? $outfunc->($line) : ($param{quiet} || print "$line\n");
                    } else {
                        $laststderr = $line if $line =~ m/\S/;
                        $errfunc ? $errfunc->($line) : ($param{quiet} || print STDERR "$line\n");
                    }
                }
            }
        }
        for my $h ($reader, $error) {
            next if $buf{$h} eq '';
            my $line = $buf{$h};
            if ($h == $reader) {
                $outfunc ? $outfunc->($line) : ($param{quiet} || print "$line\n");
            } else {
                $laststderr = $line if $line =~ m/\S/;
                $errfunc ? $errfunc->($line) : ($param{quiet} || print STDERR "$line\n");
            }
        }
        waitpid($pid, 0);
        $exitcode = $? >> 8;
        my $sig = $? & 127;
        die "got signal $sig\n" if $sig;
        if ($exitcode) {
            if ($errmsg && defined($laststderr)) {
                die "$laststderr\n";
            }
            die "exit code $exitcode\n";
        }
        alarm(0);
    };
    my $err = $@;
    alarm(0);
    alarm($oldtimeout) if $oldtimeout;

    if ($err) {
        if ($pid && $err eq "got timeout\n") {
            kill(9, $pid);
            waitpid($pid, 0);
            die "command '$cmdstr' failed: $err";
        }
        if ($errmsg) {
            die "$errmsg: $err";
        } elsif (!$noerr) {
            die "command '$cmdstr' failed: $err";
        }
    }
    return $exitcode;
}

sub file_get_contents {
    my ($filename, $max) = @_;
    my $fh = IO::File->new($filename, '<') or die "unable to open file '$filename' - $!\n";
    binmode($fh);
    local $/;
    my $content = <$fh>;
    close($fh);
    $content //= '';
    die "file '$filename' too long - aborting\n" if defined($max) && length($content) > $max;
    return $content;
}

sub file_set_contents {
    my ($filename, $data, $perm, $force_utf8) = @_;

    $perm //= 0644;
    my $tmp = "$filename.tmp.$$";
    eval {
        my $fh = IO::File->new($tmp, O_WRONLY | O_CREAT, $perm) or die "unable to open file '$tmp' - $!\n";
        chmod($perm, $tmp);
        if ($force_utf8) {
            binmode($fh, ':encoding(UTF-8)');
        } else {
            binmode($fh);
        }
        print $fh $data or die "unable to write '$tmp' - $!\n";
        close($fh) or die "closing file '$tmp' failed - $!\n";
        rename($tmp, $filename) or die "rename '$tmp' to '$filename' failed - $!\n";
    };
    if (my $err = $@) {
        unlink($tmp);
        die $err;
    }
}

sub file_read_firstline {
    my ($path) = @_;
    my $fh = IO::File->new($path, '<') or return undef;
    my $line = <$fh>;
    close($fh);
    return undef if !defined($line);
    chomp $line;
    return $line;
}

sub lock_file_full {
    my ($filename, $timeout, $shared, $code, @param) = @_;

    $timeout //= 10;
    my $res = eval {
        my $fh = IO::File->new(">>$filename") or die "can't open file - $!\n";
        my $mode = $shared ? LOCK_SH : LOCK_EX;
        my $deadline = time() + $timeout;
        while (!flock($fh, $mode | LOCK_NB)) {
            die "can't lock file '$filename' - got timeout\n" if time() >= $deadline;
            select(undef, undef, undef, 0.1);
        }
        my $r = eval { $code->(@param) };
        my $e = $@;
        close($fh);
        die $e if $e;
        $r;
    };
    return $res; # on error $@ holds the message, as upstream
}

sub lock_file {
    my ($filename, $timeout, $code, @param) = @_;
    return lock_file_full($filename, $timeout, 0, $code, @param);
}

sub run_fork_with_timeout {
    my ($timeout, $code, @param) = @_;

    require JSON::PP;
    pipe(my $rd, my $wr) or die "pipe failed - $!\n";
    my $pid = fork() // die "fork failed - $!\n";
    if (!$pid) {
        close($rd);
        my $res = eval { $code->(@param) };
        my $out = JSON::PP->new->allow_nonref->encode({ result => $res, error => $@ || undef });
        print $wr $out;
        close($wr);
        POSIX::_exit(0);
    }
    close($wr);
    my ($data, $timed_out) = ('', 0);
    eval {
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm($timeout);
        local $/;
        $data = <$rd> // '';
        alarm(0);
    };
    if ($@) {
        $timed_out = 1;
        kill(9, $pid);
    }
    waitpid($pid, 0);
    close($rd);
    if ($timed_out) {
        warn "got timeout\n";
        return wantarray ? (undef, 1) : undef;
    }
    my $res = $data ne '' ? JSON::PP->new->allow_nonref->decode($data) : {};
    die $res->{error} if $res->{error};
    return wantarray ? ($res->{result}, 0) : $res->{result};
}

sub df {
    my ($path, $timeout) = @_;
    return { total => 0, used => 0, avail => 0 };
}

sub split_list {
    my ($listtxt) = @_;
    return () if !defined($listtxt);
    return split(/\0/, $listtxt) if $listtxt =~ m/\0/;
    return grep { $_ ne '' } split(/[,;\s]+/, $listtxt);
}

sub trim {
    my ($txt) = @_;
    return $txt if !defined($txt);
    $txt =~ s/^\s+//;
    $txt =~ s/\s+$//;
    return $txt;
}

sub extract_param {
    my ($param, $key) = @_;
    my $res = $param->{$key};
    delete $param->{$key};
    return $res;
}

sub extract_sensitive_params {
    my ($param, $sensitive_list, $delete_list) = @_;

    my %delete = map { $_ => 1 } ($delete_list || [])->@*;
    my $sensitive = {};
    for my $opt (@$sensitive_list) {
        if (exists($param->{$opt})) {
            $sensitive->{$opt} = extract_param($param, $opt);
        } elsif ($delete{$opt}) {
            $sensitive->{$opt} = undef;
        }
    }
    return $sensitive;
}

sub dir_glob_regex {
    my ($dir, $regex) = @_;
    opendir(my $dh, $dir) or return wantarray ? () : undef;
    my @list = grep { m/^$regex$/ } readdir($dh);
    closedir($dh);
    return wantarray ? @list : $list[0];
}

sub dir_glob_foreach {
    my ($dir, $regex, $func) = @_;
    opendir(my $dh, $dir) or return;
    while (defined(my $name = readdir($dh))) {
        if (my @caps = ($name =~ m/^($regex)$/)) {
            shift @caps;
            $func->($name, @caps);
        }
    }
    closedir($dh);
}

1;
