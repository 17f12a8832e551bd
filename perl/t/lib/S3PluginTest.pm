package S3PluginTest;

# Shared set-up of the plugin's unit tests: the PVE test double in @INC, the plugin loaded the
# way PVE loads it, a throw-away cache and priv dir, and the recording stub host.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use JSON::PP;

use FileBytes qw(read_file write_file);

use PVE::Storage;
use PVE::Storage::Plugin;

our @EXPORT = qw(
    $PLUGIN setup_storage stub_reply stub_ok stub_err stub_requests clear_requests last_request
    write_file read_file json_true json_false
);

our $PLUGIN = 'PVE::Storage::Custom::S3Plugin';
my $T_DIR = abs_path(dirname(__FILE__) . '/..');
my $json = JSON::PP->new->utf8->canonical;

sub json_true { JSON::PP::true }
sub json_false { JSON::PP::false }

# Loads (first call) or re-registers the plugin against a pristine 8.4 or 9.x schema.
sub load_plugin {
    my ($flavour) = @_;
    $flavour //= '9';
    PVE::Storage::Plugin::reset_for_tests($flavour);
    if ($flavour eq '8.4') {
        PVE::Storage::set_api(11, 2);
    } else {
        PVE::Storage::set_api(15, 6);
    }
    if (!$INC{'PVE/Storage/Custom/S3Plugin.pm'}) {
        my $warn = PVE::Storage::load_custom_plugin($PLUGIN);
        die $warn if defined($warn) && $warn =~ m/^Error/;
    } else {
        $PLUGIN->register();
    }
    PVE::Storage::Plugin->init();
}

# A storage as PVE hands it to the plugin (check_config output), with its secret file written.
sub setup_storage {
    my (%opts) = @_;

    load_plugin($opts{flavour});
    my $tmp = tempdir('pve-s3-t-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $ENV{PVE_S3_PRIV_DIR} = "$tmp/priv";
    $ENV{PVE_S3_STUB_DIR} = "$tmp/stub";
    $ENV{PVE_S3_HOST_BIN} = "$^X $T_DIR/bin/stub-host";
    $ENV{PVE_S3_AUTOSYNC} = '0';
    make_path("$tmp/stub");

    my $storeid = $opts{storeid} // 's3test';
    my $raw = {
        bucket => 'pve-bucket',
        endpoint => '127.0.0.1:7480',
        access_key => 'AKIDTEST',
        path => "$tmp/cache",
        content => 'backup,iso,vztmpl,snippets',
        prefix => 'pve/',
        %{ $opts{props} // {} },
    };
    my $scfg = $PLUGIN->check_config($storeid, $raw, 1, 0);
    $scfg->{shared} = 1;
    my $secret = exists($opts{secret}) ? $opts{secret} : 'S3cr3t/Key+With=Chars';
    $PLUGIN->on_add_hook($storeid, $scfg, defined($secret) ? (secret_key => $secret) : ());
    make_path($scfg->{path});
    return { tmp => $tmp, storeid => $storeid, scfg => $scfg, secret => $secret };
}

sub stub_reply {
    my ($op, $reply) = @_;
    my $file = defined($op) ? "$ENV{PVE_S3_STUB_DIR}/reply-$op.json" : "$ENV{PVE_S3_STUB_DIR}/reply.json";
    write_file($file, $json->encode($reply));
}

sub stub_ok {
    my ($op, $result, %extra) = @_;
    stub_reply($op, { envelope => { ok => JSON::PP::true, result => $result }, %extra });
}

sub stub_err {
    my ($op, $code, $message, %extra) = @_;
    my $status = delete $extra{status};
    my $error = { code => $code, message => $message, retryable => JSON::PP::false };
    $error->{status} = $status if defined($status);
    stub_reply($op, { envelope => { ok => JSON::PP::false, error => $error }, %extra });
}

sub stub_requests {
    my $file = "$ENV{PVE_S3_STUB_DIR}/requests.jsonl";
    return [] if !-f $file;
    return [map { $json->decode($_) } grep { m/\S/ } split(/\n/, read_file($file))];
}

sub clear_requests {
    unlink("$ENV{PVE_S3_STUB_DIR}/requests.jsonl");
    unlink(glob("$ENV{PVE_S3_STUB_DIR}/reply*.json"));
}

sub last_request {
    my $all = stub_requests();
    return $all->[-1];
}

1;
