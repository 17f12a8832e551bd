package FileBytes;

# A file's bytes in and out, as they are (no layer, no newline added), for the tests and their
# helpers: one rule for every file they write or read back.

use strict;
use warnings;

use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);

our @EXPORT_OK = qw(read_file read_file_if_exists write_file);

# Makes the file's directory first, as a test's tree is written file by file.
sub write_file {
    my ($file, $data) = @_;
    make_path(dirname($file));
    open(my $fh, '>', $file) or die "cannot write $file: $!\n";
    binmode($fh);
    print $fh $data;
    close($fh) or die "cannot write $file: $!\n";
}

sub read_file {
    my ($file) = @_;
    open(my $fh, '<', $file) or die "cannot read $file: $!\n";
    binmode($fh);
    local $/;
    my $data = <$fh>;
    close($fh);
    return $data;
}

# undef for a file the test may never have made (a log nothing wrote to)
sub read_file_if_exists {
    my ($file) = @_;
    return -e $file ? read_file($file) : undef;
}

1;
