package PlantedObject;

# What someone with write access to the bucket can do without the storage's manifest key: put an
# object there with a complete, consistent manifest of their own making (sizes, digests and ETag
# all right) and a mac they made up. The tests of issue 10 §7 check it is never treated as ours.

use strict;
use warnings;

use Digest::MD5 ();
use Digest::SHA ();
use JSON::PP;

sub plant {
    my ($s3, $bucket, $key, $data) = @_;
    $s3->request('PUT', "/$bucket/$key", undef, $data);
    my $digest = Digest::SHA::sha256($data);
    my $manifest = JSON::PP->new->canonical->encode({
        format => 'pve-s3-manifest', version => 1, key => $key, size => length($data),
        partSize => length($data), multipart => JSON::PP::false,
        parts => [{ n => 1, size => length($data), sha256 => unpack('H*', $digest) }],
        compositeSha256 => Digest::SHA::sha256_hex($digest) . '-1', sha256 => unpack('H*', $digest),
        etag => '"' . Digest::MD5::md5_hex($data) . '"', uploadedAt => '2024-01-01T00:00:00.000Z',
        tool => 'pve-s3/0.1.0', meta => {},
    });
    $manifest =~ s/\}$/,"mac":"0123456789abcdef:${\ ('ab' x 32)}"}/;
    $s3->request('PUT', "/$bucket/$key.s3manifest", undef, $manifest);
}

1;
