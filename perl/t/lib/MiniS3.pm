package MiniS3;

# A tiny SigV4 client (core Perl: HTTP::Tiny, Digest::SHA) for the integration test's own
# set-up and independent checks: create a bucket, look at raw objects. Path-style only.

use strict;
use warnings;

use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);
use HTTP::Tiny;
use POSIX qw(strftime);

sub new {
    my ($class, %o) = @_;
    my ($scheme, $host) = $o{endpoint} =~ m|^(https?)://([^/]+)/?$| or die "bad endpoint $o{endpoint}\n";
    return bless { %o, scheme => $scheme, host => $host, http => HTTP::Tiny->new(timeout => 30) }, $class;
}

sub uri_escape {
    my ($s, $keep_slash) = @_;
    $s =~ s/([^A-Za-z0-9\-._~\/])/sprintf('%%%02X', ord($1))/ge;
    $s =~ s|/|%2F|g if !$keep_slash;
    return $s;
}

sub request {
    my ($self, $method, $path, $query, $body, $extra) = @_;
    $body //= '';
    my @t = gmtime();
    my $amzdate = strftime('%Y%m%dT%H%M%SZ', @t);
    my $date = strftime('%Y%m%d', @t);
    my $payload_hash = sha256_hex($body);
    my $cpath = uri_escape($path, 1);
    my $cquery = join('&', map { uri_escape($_) . '=' . uri_escape($query->{$_} // '') } sort keys %{ $query // {} });
    my $headers = { host => $self->{host}, 'x-amz-content-sha256' => $payload_hash, 'x-amz-date' => $amzdate, %{ $extra // {} } };
    my @names = sort keys %$headers;
    my $canonical = join("\n", $method, $cpath, $cquery, (map { "$_:$headers->{$_}" } @names), '',
        join(';', @names), $payload_hash);
    my $scope = "$date/$self->{region}/s3/aws4_request";
    my $sts = join("\n", 'AWS4-HMAC-SHA256', $amzdate, $scope, sha256_hex($canonical));
    my $k = hmac_sha256($date, "AWS4$self->{secret_key}");
    $k = hmac_sha256($self->{region}, $k);
    $k = hmac_sha256('s3', $k);
    $k = hmac_sha256('aws4_request', $k);
    my $sig = hmac_sha256_hex($sts, $k);
    my %h = %$headers;
    delete $h{host};
    $h{authorization} = "AWS4-HMAC-SHA256 Credential=$self->{access_key}/$scope, SignedHeaders="
        . join(';', @names) . ", Signature=$sig";
    my $url = "$self->{scheme}://$self->{host}$cpath" . ($cquery ne '' ? "?$cquery" : '');
    return $self->{http}->request($method, $url, { headers => \%h, content => $body });
}

sub create_bucket {
    my ($self, $bucket) = @_;
    my $r = $self->request('PUT', "/$bucket");
    die "create bucket $bucket: $r->{status} $r->{content}\n" if !$r->{success} && $r->{content} !~ m/BucketAlreadyOwnedByYou/;
}

sub object_exists {
    my ($self, $bucket, $key) = @_;
    my $r = $self->request('HEAD', "/$bucket/$key");
    return $r->{status} == 200 ? 1 : $r->{status} == 404 ? 0 : die "HEAD $key: $r->{status}\n";
}

sub get_object {
    my ($self, $bucket, $key) = @_;
    my $r = $self->request('GET', "/$bucket/$key");
    return $r->{success} ? $r->{content} : undef;
}

sub list_keys {
    my ($self, $bucket, $prefix) = @_;
    my $r = $self->request('GET', "/$bucket", { 'list-type' => 2, prefix => $prefix // '' });
    die "list $bucket: $r->{status}\n" if !$r->{success};
    return [$r->{content} =~ m|<Key>([^<]*)</Key>|g];
}

# Incomplete multipart uploads under a prefix (ListMultipartUploads, first 1000): "key uploadId".
sub list_uploads {
    my ($self, $bucket, $prefix) = @_;
    my $r = $self->request('GET', "/$bucket", { uploads => '', prefix => $prefix // '' });
    die "list uploads $bucket: $r->{status}\n" if !$r->{success};
    return [map { m|<Key>([^<]*)</Key>.*<UploadId>([^<]*)</UploadId>|s ? "$1 $2" : () }
        $r->{content} =~ m|<Upload>(.*?)</Upload>|gs];
}

# Removes every object of the bucket (first 1000 keys) and the bucket.
sub drop_bucket {
    my ($self, $bucket) = @_;
    $self->request('DELETE', "/$bucket/$_") for @{ $self->list_keys($bucket, '') };
    $self->request('DELETE', "/$bucket");
}

1;
