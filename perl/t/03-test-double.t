#!/usr/bin/perl
# The test double itself must not diverge from PVE (reference §12): prune marking on golden
# cases, run_command's error strings, archive_info, the config checks the plugin relies on.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::Local qw(timelocal);

use PVE::Storage;
use PVE::Tools qw(run_command);

sub at { my ($y, $m, $d, $h, $mi) = @_; return timelocal(0, $mi // 0, $h // 0, $d, $m - 1, $y) }

sub marks {
    my ($group, $keep) = @_;
    my @g = map { { id => $_->[0], ctime => $_->[1], ($_->[2] ? (mark => $_->[2]) : ()) } } @$group;
    PVE::Storage::prune_mark_backup_group(\@g, $keep);
    return { map { $_->{id} => $_->{mark} } @g };
}

is_deeply(marks([[a => at(2024, 1, 1)], [b => at(2024, 1, 2)], [c => at(2024, 1, 3)]], { 'keep-last' => 2 }),
    { a => 'remove', b => 'keep', c => 'keep' }, 'keep-last 2');

is_deeply(marks([[a => at(2024, 1, 1, 8)], [b => at(2024, 1, 1, 20)], [c => at(2024, 1, 2, 8)], [d => at(2024, 1, 2, 9)]],
    { 'keep-daily' => 2 }),
    { a => 'remove', b => 'keep', c => 'remove', d => 'keep' }, 'keep-daily: newest per day, same-day duplicates removed');

# 2020-12-31 (Thu) is ISO week 53 of 2020; 2021-01-03 (Sun) too; 2021-01-04 starts week 1 of 2021.
is_deeply(marks([[a => at(2020, 12, 31)], [b => at(2021, 1, 3)], [c => at(2021, 1, 4)]], { 'keep-weekly' => 2 }),
    { a => 'remove', b => 'keep', c => 'keep' }, 'keep-weekly uses ISO week-year (%V/%G) across the year boundary');

is_deeply(marks([[a => at(2024, 1, 1), 'protected'], [b => at(2024, 1, 2)], [c => at(2024, 1, 3)], [r => at(2024, 1, 4), 'renamed']],
    { 'keep-last' => 1 }),
    { a => 'protected', b => 'remove', c => 'keep', r => 'renamed' }, 'protected and renamed marks are preserved');

is_deeply(marks([[a => at(2024, 1, 1)], [b => at(2024, 1, 2), 'protected']], { 'keep-all' => 1 }),
    { a => 'keep', b => 'protected' }, 'keep-all keeps everything, protected stays protected');
is_deeply(marks([[a => at(2024, 1, 1)]], { 'keep-last' => 0 }), { a => 'keep' }, 'no positive value = keep all');

is_deeply(marks([[a => at(2024, 1, 1)], [b => at(2024, 1, 2)], [c => at(2024, 2, 1)], [d => at(2024, 3, 1)]],
    { 'keep-last' => 1, 'keep-monthly' => 2 }),
    { a => 'remove', b => 'keep', c => 'keep', d => 'keep' }, 'keep-last then keep-monthly skips months already kept');

is_deeply(PVE::JSONSchema::parse_property_string('prune-backups', 'keep-last=0'), { 'keep-all' => 1 },
    'prune-backups: no positive value → keep-all');
eval { PVE::JSONSchema::parse_property_string('prune-backups', 'keep-all=1,keep-last=2') };
is($@, "keep-all cannot be set together with other options.\n", 'keep-all with others refused');

my $info = PVE::Storage::archive_info('/x/vzdump-lxc-101-2024_05_06-07_08_09.tar.zst');
is_deeply({ map { $_ => $info->{$_} } qw(type vmid format compression is_std_name logfilename notesfilename) }, {
    type => 'lxc', vmid => 101, format => 'tar', compression => 'zst', is_std_name => 1,
    logfilename => 'vzdump-lxc-101-2024_05_06-07_08_09.log',
    notesfilename => 'vzdump-lxc-101-2024_05_06-07_08_09.tar.zst.notes',
}, 'archive_info on a standard name');
is($info->{ctime}, at(2024, 5, 6, 7, 8) + 9, 'archive_info ctime in local time');
is_deeply($info->{decompressor}, ['tar', '--zstd'], 'decompressor');
is(PVE::Storage::archive_info('vzdump-qemu-100-custom.vma')->{is_std_name}, 0, 'non-standard vzdump name');
eval { PVE::Storage::archive_info('backup.vma') };
is($@, "ERROR: couldn't determine archive info from 'backup.vma'\n", 'not a vzdump name');

my @out;
run_command(['/bin/echo', 'hello'], outfunc => sub { push @out, shift });
is_deeply(\@out, ['hello'], 'run_command outfunc per line');
my $in = '';
run_command(['/bin/cat'], input => "a\nb\n", outfunc => sub { $in .= "$_[0]|" });
is($in, 'a|b|', 'run_command input on stdin');
eval { run_command(['/bin/sh', '-c', 'exit 3']) };
is($@, "command '/bin/sh -c 'exit 3'' failed: exit code 3\n", 'non-zero exit');
is(run_command(['/bin/sh', '-c', 'exit 3'], noerr => 1), 3, 'noerr returns the exit code');
eval { run_command(['/bin/sh', '-c', 'echo oops >&2; exit 1'], errmsg => 'doing it', errfunc => sub {}) };
is($@, "doing it: oops\n", 'errmsg with the last stderr line');
eval { run_command(['/bin/sleep', '5'], timeout => 1) };
is($@, "command '/bin/sleep 5' failed: got timeout\n", 'timeout');
eval { run_command(['/bin/true'], bogus => 1) };
is($@, "got unknown parameter 'bogus' for run_command\n", 'unknown option');

done_testing();
