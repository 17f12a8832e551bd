#!/usr/bin/perl
# A request the bucket answers 503 once is retried, and the backup job's task log says so when it
# happens (not only when the job fails): one line per retry naming the request, the key, the part,
# the cause and the attempt, never a secret, a signature or a URL's query. The backups are run by
# pve-manager's real PVE::VZDump (t/lib/RealVZDump.pm) inside the real PVE code of PVE 9 and 8.4
# (t/lib/VZDumpDriver.pm when the extracts lack pve-manager; the project's test double without
# $PVE_UPSTREAM_DIR), the bucket behind the project's fault
# proxy (t/lib/FaultProxy.pm): the upload's line reaches the job log through backup_vm's host
# call, the prune's through prune_backups' log function, and free_image's on its output.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use FaultProxy;
use HostGateway;
use PVEUpstream;
use QemuServerArchive;
use QsdExports;
use RealVZDump;
use VZDumpDriver;

HostGateway::skip_unless_ready(qw(qemu-storage-daemon zstd));
my $pve = PVEUpstream::setup(backup_provider => '1', vzdump => 1);
my $VZDUMP = $pve->{vzdump} ? 'RealVZDump' : 'VZDumpDriver';

my $tmp = $pve->{tmp};
my $gw = HostGateway::start_in($pve, 'retry', timeout => 600);
my ($endpoint, $region, $ak, $sk, $bucket, $s3) = @$gw{qw(endpoint region access_key secret_key bucket s3)};
$ENV{PVE_S3_AUTOSYNC} = '0';
my $proxy = FaultProxy->start($endpoint);
my $at = quotemeta($proxy->{url});

my $storeid = 'retry-s3';
$pve->api('create', {
    storage => $storeid, type => 's3', bucket => $bucket, endpoint => $proxy->{url}, region => $region,
    access_key => $ak, secret_key => $sk, prefix => 'pve/', force_path_style => 1,
    multipart_chunk_size => 5, max_concurrent_uploads => 1, content => 'backup', path => "$tmp/cache",
    'prune-backups' => 'keep-last=1',
});

# 12 MiB that do not compress: three parts of 5 MiB
my $M = 1024 * 1024;
my $image = "$tmp/drive-scsi0.raw";
QsdExports::make_image($image, [[data => 12 * $M]]);
my $conf = "memory: 512\nscsi0: local:100/vm-100-disk-0.raw,size=12M\n#qmdump#map:scsi0:drive-scsi0:local:raw:\n";
my $served = 0;

sub backup_job {
    $served++;
    my $disks = { 'drive-scsi0' => QsdExports::served_copy($image, "$tmp/served$served") };
    my $job = $VZDUMP->new_job(storage => $storeid, dir => "$tmp/vz");
    my ($t) = @{ $job->run({ vmid => 100, type => 'qemu', conf => $conf, disks => $disks }) };
    return ($job, $t);
}

# what no line may carry: the secret, or anything of a signed request
sub clean {
    my ($lines, $what) = @_;
    my @bad = grep { index($_, $sk) >= 0 || m/Signature|Credential|X-Amz-|authorization/i } @$lines;
    is_deeply(\@bad, [], "$what: no secret, signature or signed URL in any line");
}

# --- the upload: part 2 answered 503 once -------------------------------------------------------

$proxy->plan([{ match => { method => 'PUT', pathIncludes => 'partNumber=2' }, fault => { kind => 'status', status => 503 }, times => 1 }]);
my ($job1, $t1) = backup_job();
$proxy->plan([]);
is($t1->{state}, 'ok', 'the backup succeeds after the retry') or diag(join("\n", @{ $job1->{log} }));
my @retries1 = grep { m/retrying/ } @{ $job1->{log} };
is(scalar(@retries1), 1, 'one line for the one retry') or diag(join("\n", @retries1));
like($retries1[0] // '', qr/^INFO: retrying UploadPart of 'pve\/dump\/\Q$t1->{target}\E' part 2 at $at after 503 SlowDown: attempt 2 of 6 in \d+\.\d s$/,
    'the job log names the request, key, part, cause and attempt');
clean($job1->{log}, 'the upload');

# --- vzdump's prune after the next backup: its delete answered 503 once ----------------------------

sleep(1); # another second, another archive name
$proxy->plan([{ match => { method => 'POST', pathIncludes => '?delete' }, fault => { kind => 'status', status => 503 }, times => 1 }]);
my ($job2, $t2) = backup_job();
$proxy->plan([]);
is($t2->{state}, 'ok', 'the second backup and its prune succeed') or diag(join("\n", @{ $job2->{log} }));
ok(grep({ m/^INFO: pruned 1 backup\(s\) not covered by keep-retention policy$/ } @{ $job2->{log} }), "vzdump's prune removed one backup")
    or diag(join("\n", @{ $job2->{log} }));
my @retries2 = grep { m/retrying/ } @{ $job2->{log} };
is(scalar(@retries2), 1, "one line for the prune's retry") or diag(join("\n", @retries2));
like($retries2[0] // '', qr/^INFO: retrying DeleteObjects of 'pve\/dump\/\Q$t1->{target}\E\.[a-z0-9.]+' at $at after 503 SlowDown: attempt 2 of 6 in \d+\.\d s$/,
    "prune_backups' log function got the host's retry line");
ok(!grep({ m/^INFO: deleted \d+ volume/ } @{ $job2->{log} }), "the delete's answer is not logged as a note");
clean($job2->{log}, 'the prune');
is_deeply([grep { m/\Q$t1->{target}\E/ } @{ $s3->list_keys($bucket, 'pve/') }], [], 'the first backup is gone');

# --- free_image (Remove in the GUI, pvesm free): its output gets the line -----------------------

my $cfg = PVE::Storage::config();
my $out = '';
{
    open(my $fh, '>', \$out) or die;
    my $old = select($fh);
    $proxy->plan([{ match => { method => 'POST', pathIncludes => '?delete' }, fault => { kind => 'status', status => 503 }, times => 1 }]);
    eval { PVE::Storage::vdisk_free($cfg, "$storeid:backup/$t2->{target}") };
    my $err = $@;
    $proxy->plan([]);
    select($old);
    close($fh);
    is($err, '', 'vdisk_free succeeds after the retry');
}
like($out, qr/^retrying DeleteObjects of 'pve\/dump\/\Q$t2->{target}\E\.[a-z0-9.]+' at $at after 503 SlowDown: attempt 2 of 6 in \d+\.\d s$/m,
    "free_image prints the host's retry line");
clean([split(/\n/, $out)], 'free_image');
is_deeply([grep { m/-100-/ } @{ $s3->list_keys($bucket, 'pve/') }], [], 'the second backup is gone too');

$proxy->stop();
done_testing();
