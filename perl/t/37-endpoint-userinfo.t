#!/usr/bin/perl
# An endpoint written with credentials (http://user:password@host) is refused without the
# password appearing anywhere PVE shows or keeps the refusal: pvesm add's error, a hand-edited
# storage.cfg read by pvestatd (storage_info, every 10 s, into the syslog) and by a backup's
# volume listing, and the host's log file (docs/SECURITY.md). Inside the real PVE 9 and 8.4.
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;

use FileBytes qw(read_file read_file_if_exists write_file);
use HostGateway;
use PVEUpstream;

HostGateway::skip_unless_ready();
# the refusal is PVE's schema and parser at work: nothing to learn from the test double
my $pve = PVEUpstream::setup(needs => 'upstream');

my $tmp = $pve->{tmp};
my $log = "$tmp/host.log";
my $gw = HostGateway::start_in($pve, 'ui');
my $password = 'Pa55-w0rd-of-the-gateway-admin';
(my $hostport = $gw->{endpoint}) =~ s|^https?://||;
my $endpoint = "http://admin:$password\@$hostport";

my %add = (
    storage => 'ui-s3', type => 's3', bucket => $gw->{bucket}, endpoint => $endpoint,
    region => $gw->{region}, access_key => $gw->{access_key}, secret_key => $gw->{secret_key},
    prefix => 'pve/', force_path_style => 1, content => 'backup', path => "$tmp/cache",
);

my @warnings;
local $SIG{__WARN__} = sub { push @warnings, @_ };

# PVE's schema for the key (its pattern, from the host's rules) refuses it before the plugin runs,
# in a message that does not repeat the value (the host's own refusal hides it too:
# test/integration/sec-endpoint-userinfo.test.ts)
eval { $pve->api('create', \%add) };
my $err = $@;
like($err, qr/endpoint: value does not match/, 'pvesm add with user:password@ in the endpoint: refused');
unlike($err, qr/\Q$password\E/, '... without the password in the message');
unlike(read_file("$pve->{etc_pve}/storage.cfg"), qr/ui-s3/, '... and no storage.cfg section');

# the same endpoint written into storage.cfg by hand: PVE's parser skips the section, saying so
# without the value, on every read (pvestatd's storage_info every 10 s goes to the syslog)
write_file("$pve->{etc_pve}/storage.cfg", PVEUpstream::local_storage_cfg()
    . "s3: ui-s3\n\tbucket $gw->{bucket}\n\tendpoint $endpoint\n\tregion $gw->{region}\n"
    . "\taccess_key $gw->{access_key}\n\tprefix pve/\n\tforce_path_style 1\n\tcontent backup\n"
    . "\tpath $tmp/cache\n\n");
my $cfg = $pve->config();
ok(!$cfg->{ids}->{'ui-s3'}, 'a hand-written section with it is skipped by PVE');
my $said = join('', @warnings);
like($said, qr/unable to parse value of 'endpoint'/, '... saying which key');
unlike($said, qr/\Q$password\E/, '... and never the password');
unlike(read_file_if_exists($log) // '', qr/\Q$password\E/, "the host's log file never holds the password");

done_testing();
