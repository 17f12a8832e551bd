#!/usr/bin/perl
# A container's root file system for the container backup tests (vitest and prove both run it),
# and a listing of a tree that two trees can be compared by.
#
#   ct-tree.pl make DIR     makes the tree (as root: owners are host uids 100000+, as on the
#                           rootfs of an unprivileged container with PVE's default id map) and
#                           prints JSON: { "exclude": [vzdump's exclusion patterns for it],
#                           "absent": [paths a restore must not have: excluded by vzdump, by the
#                           unprivileged backup (lost+found) or by pct restore (./dev/*)] }
#   ct-tree.pl list DIR [--without PATH]... [--any-mtime PATH]...
#                           one line per entry, sorted: type, mode, owner, size, mtime, content
#                           SHA-256, link target, device, allocated KiB (sparse files), every
#                           xattr in hex (user.*, security.capability, the ACL xattrs
#                           system.posix_acl_*), and for hard links the first name of the inode;
#                           --without leaves an entry out, --any-mtime its mtime
use strict;
use warnings;

use Digest::SHA;
use File::Find;
use File::Path qw(make_path);
use POSIX qw(mkfifo);

my $B = 100000; # the container's root on the host

sub run {
    my @cmd = @_;
    system(@cmd) == 0 or die "@cmd failed: $?\n";
}

sub spew {
    my ($file, $data) = @_;
    open(my $fh, '>', $file) or die "cannot write $file: $!\n";
    binmode($fh);
    print $fh $data;
    close($fh) or die "close $file: $!\n";
}

sub own {
    my ($uid, $gid, @paths) = @_;
    for my $p (@paths) {
        POSIX::lchown($uid, $gid, $p) or die "lchown $p: $!\n";
    }
}

sub rnd {
    my ($n, $seed) = @_;
    my $out = '';
    my $x = Digest::SHA::sha256("seed$seed");
    while (length($out) < $n) {
        $x = Digest::SHA::sha256($x);
        $out .= $x;
    }
    return substr($out, 0, $n);
}

sub make_tree {
    my ($root) = @_;
    die "make needs root (owners, a device node)\n" if $> != 0;
    make_path($root);
    my @dirs = qw(sbin etc usr/bin usr/lib home/user/shared srv/skip tmp var/tmp var/run var/cache/apt run dev);
    make_path(map { "$root/$_" } @dirs);
    spew("$root/sbin/init", rnd(10_000, 1));
    chmod(0755, "$root/sbin/init");
    symlink('usr/bin', "$root/bin") or die;
    spew("$root/etc/hostname", "ct100\n");
    spew("$root/etc/shadow", "root:*:19000:0:99999:7:::\n");
    chmod(0640, "$root/etc/shadow");
    spew("$root/etc/empty", '');
    spew("$root/etc/\x{c3}\x{bc}n\x{c3}\x{af}code name", "unicode\n");
    my $long = "$root/usr/lib/" . join('/', ('a-rather-long-directory-name') x 5);
    make_path($long);
    spew("$long/" . ('f' x 120), rnd(3000, 2));
    symlink('/usr/share/zoneinfo/UTC', "$root/etc/localtime") or die; # absolute, dangling here
    spew("$root/usr/lib/libx.so.1", rnd(70_000, 3));
    symlink('libx.so.1', "$root/usr/lib/libx.so") or die;
    spew("$root/usr/bin/perl", rnd(200_000, 4));
    chmod(0755, "$root/usr/bin/perl");
    link("$root/usr/bin/perl", "$root/usr/bin/perl5.36") or die;
    link("$root/usr/bin/perl", "$root/usr/lib/perl-hardlink") or die;
    spew("$root/usr/bin/sudo", rnd(5000, 5));
    spew("$root/usr/bin/ping", rnd(4000, 6));
    spew("$root/home/user/notes.txt", "notes\n" x 1000);
    spew("$root/home/user/secret", "s3cr3t\n");
    spew("$root/home/user/shared/doc", "shared\n");
    mkfifo("$root/run/ctl.fifo", 0600) or die "mkfifo: $!\n";
    run('mknod', '-m', '666', "$root/dev/null", 'c', '1', '3');
    # excluded: vzdump's standard ones, one anywhere, one from the top
    spew("$root/tmp/junk", 'junk');
    spew("$root/var/tmp/junk2", 'junk');
    spew("$root/var/run/x.pid", "42\n");
    spew("$root/var/cache/apt/pkgcache.bin", rnd(1000, 7));
    spew("$root/srv/skip/data", rnd(1000, 8));
    spew("$root/srv/keep", "kept\n");

    # a sparse file: 64 MiB with data at the start, in the middle and at the end
    open(my $fh, '>', "$root/home/user/big.sparse") or die;
    binmode($fh);
    print $fh rnd(1 << 20, 9);
    seek($fh, 40 << 20, 0);
    print $fh rnd(256 << 10, 10);
    seek($fh, (64 << 20) - 4096, 0);
    print $fh rnd(4096, 11);
    close($fh);

    # owners as the host sees an unprivileged container's files
    find({ no_chdir => 1, wanted => sub { own($B, $B, $_) } }, $root);
    own($B + 33, $B + 42, "$root/etc/shadow");
    own($B + 1000, $B + 1000, map { "$root/home/user/$_" } '', 'notes.txt', 'secret', 'shared', 'shared/doc', 'big.sparse');
    own($B + 65534, $B + 65534, "$root/srv/keep");
    chmod(0750, "$root/home/user");
    chmod(0600, "$root/home/user/secret");
    chmod(01777, "$root/tmp", "$root/var/tmp");
    chmod(04755, "$root/usr/bin/sudo"); # after chown: chown clears set-uid
    chmod(0755, "$root/usr/bin/ping");
    # xattrs, ACLs (with the container's uids as the host stores them), a file capability
    run('setfattr', '-n', 'user.comment', '-v', 'hello world', "$root/home/user/notes.txt");
    run('setfattr', '-n', 'user.bin', '-v', '0x00ff10', "$root/home/user/notes.txt");
    run('setfattr', '-n', 'user.dir', '-v', 'on a directory', "$root/home/user");
    run('setfacl', '-m', 'u:' . ($B + 33) . ':rwx,g:' . ($B + 100) . ':r-x', "$root/home/user/shared");
    run('setfacl', '-d', '-m', 'u:' . ($B + 33) . ':rw-', "$root/home/user/shared");
    run('setfacl', '-m', 'u:' . ($B + 33) . ':r--', "$root/home/user/shared/doc");
    # a v3 (namespaced) capability owned by the container's root, as setcap inside it writes
    run('setcap', '-n', $B, 'cap_net_raw+ep', "$root/usr/bin/ping");
    # what the container's root cannot read: PVE leaves it out of unprivileged backups
    make_path("$root/lost+found");
    spew("$root/lost+found/#1234", 'lost');
    chmod(0700, "$root/lost+found");
    # mtimes last (a fixed time, so that listings compare)
    my @all;
    find({ no_chdir => 1, wanted => sub { push @all, $_ } }, $root);
    for my $p (reverse sort @all) {
        next if -l $p;
        utime(1_700_000_000, 1_700_000_000, $p);
    }
    run('touch', '-h', '-d', '@1700000000', grep { -l $_ } @all);

    return {
        exclude => ['/tmp/?*', '/var/tmp/?*', '/var/run/?*.pid', 'pkgcache.bin', '/srv/skip'],
        absent => [
            './tmp/junk', './var/tmp/junk2', './var/run/x.pid', './var/cache/apt/pkgcache.bin',
            './srv/skip', './srv/skip/data', './lost+found', './lost+found/#1234', './dev/null',
        ],
    };
}

sub xattrs {
    my ($root) = @_;
    my %x;
    open(my $fh, '-|', 'getfattr', '-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', $root)
        or die "getfattr: $!\n";
    my $file;
    while (my $l = <$fh>) {
        chomp $l;
        if ($l =~ m/^# file: (.*)$/) {
            $file = $1;
            $file =~ s/\\(\d{3})/chr(oct($1))/ge;
        } elsif ($l =~ m/^([^=]+)=(.*)$/ && defined($file)) {
            push @{ $x{$file} }, "$1=$2";
        }
    }
    close($fh);
    return \%x;
}

sub list_tree {
    my ($root, $without, $any_mtime) = @_;
    my %skip = map { $_ => 1 } @$without;
    my %no_mtime = map { $_ => 1 } @$any_mtime;
    my $x = xattrs($root);
    my (%first, @lines);
    my @paths;
    find({ no_chdir => 1, wanted => sub { push @paths, $_ } }, $root);
    for my $p (sort @paths) {
        (my $rel = $p) =~ s/^\Q$root\E/./;
        next if $skip{$rel};
        my @st = lstat($p) or die "lstat $p: $!\n";
        my $mode = $st[2];
        my $type = -l _ ? 'l' : -d _ ? 'd' : -f _ ? 'f' : -p _ ? 'p' : -c _ ? 'c' : -b _ ? 'b' : -S _ ? 's' : '?';
        my $line = sprintf('%s %s %04o %d:%d', $rel, $type, $mode & 07777, $st[4], $st[5]);
        $line .= " mtime=$st[9]" if $rel ne '.' && !$no_mtime{$rel};
        if ($type eq 'f') {
            $line .= " size=$st[7] sha=" . Digest::SHA->new(256)->addfile($p)->hexdigest;
            $line .= ' alloc=' . int($st[12] * 512 / 1024) . 'K';
            if ($st[3] > 1) {
                my $ino = "$st[0]:$st[1]";
                $first{$ino} //= $rel;
                $line .= " link-of=$first{$ino}";
            }
        }
        $line .= ' target=' . readlink($p) if $type eq 'l';
        $line .= sprintf(' rdev=%d,%d', $st[6] >> 8, $st[6] & 0xff) if $type eq 'c' || $type eq 'b';
        $line .= " $_" for sort @{ $x->{$p} // [] };
        push @lines, $line;
    }
    return join("\n", @lines) . "\n";
}

my $cmd = shift // '';
if ($cmd eq 'make') {
    my $r = make_tree(shift // die "usage: $0 make DIR\n");
    require JSON::PP;
    print JSON::PP->new->canonical->encode($r), "\n";
} elsif ($cmd eq 'list') {
    my $root = shift // die "usage: $0 list DIR [--without PATH]... [--any-mtime PATH]...\n";
    my (@without, @any_mtime);
    while (@ARGV) {
        my $o = shift;
        if ($o eq '--without') {
            push @without, shift;
        } elsif ($o eq '--any-mtime') {
            push @any_mtime, shift;
        } else {
            die "unknown option $o\n";
        }
    }
    print list_tree($root, \@without, \@any_mtime);
} else {
    die "usage: $0 make DIR | list DIR [--without PATH]... [--any-mtime PATH]...\n";
}
