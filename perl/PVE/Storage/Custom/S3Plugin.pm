package PVE::Storage::Custom::S3Plugin;

# Proxmox VE storage plugin for S3-compatible object stores (type 's3').
#
# The plugin never speaks HTTP: every remote operation runs the pve-s3 host once, with one JSON
# request on stdin and one JSON envelope on stdout (docs/PROTOCOL.md). PVE needs real files for
# restores, ISOs, templates and snippets, so the storage's `path` is a local cache directory in
# PVE's usual layout; downloads land there in activate_volume, and local-only files (vzdump
# archives, GUI uploads) are listed until the vzdump hook or `sync-local` puts them in the bucket.
#
# No `use PVE::Storage` here: this file is loaded while PVE::Storage is still being compiled
# (reference §2.5), so PVE::Storage functions are only called fully qualified at run time.

use strict;
use warnings;

use Digest::SHA ();
use Encode ();
use Fcntl qw(:flock O_RDWR O_CREAT);
use File::Path qw(make_path);
use IO::File;
use JSON::PP;
use POSIX qw(ENOENT EWOULDBLOCK);

use PVE::JSONSchema;
use PVE::Tools qw(run_command file_get_contents file_set_contents);
use PVE::Storage::Plugin;
use PVE::Storage::Custom::S3Plugin::Rules;

use base qw(PVE::Storage::Plugin);

use constant {
    MIN_API => 11, # sensitive-properties (the secret stays out of storage.cfg) exists since 11
    MAX_API => 15, # highest API this plugin was checked against
};

my $DEFAULT_HOST_BIN = '/usr/lib/pve-s3/pve-s3-host';
my $DEFAULT_PRIV_DIR = '/etc/pve/priv/storage';
my $DEFAULT_CACHE_BASE = '/var/lib/pve-s3/cache';

my $STATUS_TTL = 20; # pvestatd asks every 10 s; one host run per storage every other cycle
# A failure that took long to find out (a black-holed endpoint: up to $OP_TIMEOUT->{status} on
# pvestatd's single loop) is not re-probed more often than a healthy bucket; a quick one (refused,
# no such bucket: ~0.4 s) is, so activate_storage (vzdump start) sees a recovery sooner.
my $STATUS_FAIL_TTL = 20;
my $STATUS_QUICK_FAIL_TTL = 10;
my $STATUS_SLOW = 1; # seconds: a failed probe that took longer is a slow one
my $SYNC_INTERVAL = 60; # at most one background sync-local start per minute
my $EVICT_INTERVAL = 3600;
my $SNIPPET_INTERVAL = 300;
my $ABORT_STALE_INTERVAL = 86400; # multipart uploads left by killed writers, once a day
my $WAITING_WARN = 900; # a local file not in the bucket after 15 minutes is worth a warning # hookscripts changed in the bucket reach every node within minutes

# Cached copies not used for this long are evicted (seconds). Snippets are never evicted: a
# hookscript runs before any activation, so it must already be on disk.
my $EVICT_AGE = {
    backup => 1 * 86400,
    iso => 7 * 86400,
    vztmpl => 7 * 86400,
};

# Per-op timeouts (s) of docs/PROTOCOL.md §8. status and activate run on pvestatd's serial loop
# (reference §11: about 2 s); a healthy host run takes ~0.4 s, and the host answers by itself
# 1 s before it would be killed.
my $OP_TIMEOUT = {
    version => 3,
    status => 3,
    activate => 3,
    stat => 30,
    'get-attr' => 30,
    'set-attr' => 30,
    'check-lock' => 30,
    'manifest-key' => 30,
    list => 300,
    delete => 300,
    'abort-stale-uploads' => 300,
    download => 86400,
    upload => 86400,
    'sync-local' => 86400,
    # Backup Provider (docs/BACKUP-PROVIDER.md §3): a backup of several TB is legitimately long,
    # so backup-vm has no timeout (0); the host bounds every S3 and NBD request itself.
    'backup-init' => 30,
    'backup-vm' => 0,
    'backup-discard' => 300,
    'backup-log' => 300,
    # Show Configuration runs this inside the API call: it reads the manifest or the archive's head
    'archive-config' => 30,
    # an archive without a frame index is read whole into images before init returns
    'restore-vm-init' => 0,
    'restore-volume-start' => 120,
    'restore-volume-stop' => 120,
    'restore-vm-cleanup' => 300,
    # containers (docs/BACKUP-PROVIDER.md §7): the tar of a whole container and the download of
    # its archive are as long as they are; the host bounds every S3 request itself
    'backup-container-prepare' => 30,
    'backup-container' => 0,
    'backup-container-end' => 300,
    'restore-container-init' => 0,
    'restore-container-cleanup' => 300,
    # never run by the plugin: the detached server restore-volume-start starts
    'restore-volume-serve' => 0,
};

# PVE_S3_STATUS_TIMEOUT (seconds, at least the default) widens the bound of status/activate on
# a node too slow to start the host within it; every other storage on pvestatd's loop waits that
# much longer when the bucket is away. The Perl tests set it so that a loaded test machine does not
# turn a healthy bucket into an outage.
sub op_timeout {
    my ($op) = @_;
    my $timeout = $OP_TIMEOUT->{$op} // 300;
    if ($op eq 'status' || $op eq 'activate') {
        my $wide = $ENV{PVE_S3_STATUS_TIMEOUT} // '';
        $timeout = int($wide) if $wide =~ m/^\d{1,3}$/ && $wide > $timeout;
    }
    return $timeout;
}

# activate_volume's check of a cached copy: VM start waits for it, so it is short, and failing
# it only means the cached copy is used as is.
my $FRESHNESS_TIMEOUT = 10;

# Ops whose stderr is progress worth showing in the task log.
my $OP_PROGRESS = { download => 1, upload => 1, 'sync-local' => 1 };

# The host's rules this side needs (names, directories, properties), as the table the build
# generates from the host's own (scripts/gen-perl-rules.mjs): never restated here.
my $RULES = PVE::Storage::Custom::S3Plugin::Rules::table();
# <path>/.pve-s3 and every directory in it: root's alone (records, journals and locks name the
# backups); the host's rule (store/state-dir.ts STATE_DIR_MODE)
my $STATE_DIR_MODE = $RULES->{stateDirMode};

my $CONTENT_SUBDIR = $RULES->{contentDir};

my $rule_re = sub {
    my ($r) = @_;
    return ($r->{flags} // '') eq 'i' ? qr/$r->{re}/i : qr/$r->{re}/;
};
my $VOLUME_RE = { map { $_ => $rule_re->($RULES->{names}->{volume}->{$_}) } keys %{ $RULES->{names}->{volume} } };
my @REFUSE_RE = map { $rule_re->($_) } @{ $RULES->{names}->{refuse} };
my @TEMPORARY_RE = map { $rule_re->($_) } @{ $RULES->{names}->{temporary} };
my $OWNER_RE = $rule_re->($RULES->{names}->{backupOwner});
my $STD_BACKUP_RE = $rule_re->($RULES->{names}->{standardBackup});

# The host's reply to a listing is a few hundred bytes per volume: megabytes at thousands of
# backups, which JSON::PP decodes in about a second of CPU and JSON::XS in a twentieth of it. Every
# PVE node has JSON::XS (qemu-server depends on libjson-xs-perl; the package does too); JSON::PP
# stays the fallback. Both read and write JSON::PP's booleans.
my $json = (eval { require JSON::XS; JSON::XS->new } // JSON::PP->new)->utf8->canonical;

# --- loading -------------------------------------------------------------------------------

my $api_warned;

sub api {
    my $ver = PVE::Storage->can('APIVER') ? PVE::Storage::APIVER() : MIN_API;
    if ($ver < MIN_API) {
        # Returning MIN_API makes the loader reject us cleanly; say why once per process.
        warn "pve-s3: Proxmox VE storage API $ver is too old for the s3 storage plugin (needs API "
            . MIN_API
            . ", PVE 8.4 or newer) - not loading\n"
            if !$api_warned++;
        return MIN_API;
    }
    return $ver > MAX_API ? MAX_API : $ver;
}

sub type {
    return 's3';
}

sub plugindata {
    return {
        content => [
            { backup => 1, iso => 1, vztmpl => 1, snippets => 1, none => 1 },
            { backup => 1, iso => 1, vztmpl => 1, snippets => 1 },
        ],
        'sensitive-properties' => { map { $_ => 1 } @{ $RULES->{sensitive} } },
        # The Backup Provider (docs/BACKUP-PROVIDER.md §2.1): on unless PVE_S3_BACKUP_PROVIDER=0
        # (the classic path: local file, vzdump hook). PVE reads features per type when the
        # plugin is registered, so a per-storage key could not switch it.
        (($ENV{PVE_S3_BACKUP_PROVIDER} // '') eq '0' ? () : (features => { 'backup-provider' => 1 })),
    };
}

sub new_backup_provider {
    my ($class, $scfg, $storeid, $log_function) = @_;
    require PVE::Storage::Custom::S3Plugin::BackupProvider;
    return PVE::Storage::Custom::S3Plugin::BackupProvider->new($class, $scfg, $storeid, $log_function);
}

# Volumes are reachable from every node (the bucket), so migration with an ISO attached works
# and deletes take the cluster-wide lock. Pending local files are visible only on their node.
push @PVE::Storage::Plugin::SHARED_STORAGE, 's3'
    if !grep { $_ eq 's3' } @PVE::Storage::Plugin::SHARED_STORAGE;

# The host's property schema (host/src/config/schema.ts), as PVE's JSON schema words; a fresh
# copy each time, since PVE may annotate what it is given.
sub own_properties {
    my $props = $RULES->{properties};
    return { map { $_ => { %{ $props->{$_} } } } keys %$props };
}

# PVE globals we reuse (never define). Only those present in this PVE's schema are listed in
# options(), so names that exist in one major only are safe here.
my $GLOBAL_OPTIONS = { map { $_ => { optional => 1 } } @{ $RULES->{globalOptions} } };

my $OWN_REQUIRED = { map { $_ => 1 } @{ $RULES->{required} } };
my $OWN_FIXED = { bucket => 1 };

our $in_properties;

# Defensive (reference §3.5): init() calls this exactly once, after every plugin registered.
# Names someone else already defines are left to them, so a clash never stops PVE loading.
sub properties {
    my ($class) = @_;

    my $own = own_properties();
    return $own if $in_properties;
    local $in_properties = 1;

    my %taken;
    eval {
        my $pdata = PVE::Storage::Plugin->private();
        $taken{$_} = 1 for keys %{ $pdata->{propertyList} // {} };
        for my $type (keys %{ $pdata->{plugins} // {} }) {
            my $plugin = $pdata->{plugins}->{$type};
            next if $plugin eq $class || $type eq 's3';
            my $props = eval { $plugin->properties() } // {};
            # pve-common >= 9.2: a plugin isolating its properties only takes the names it exposes.
            my $pd = $pdata->{plugindata}->{$type} // {};
            my $expose = $pd->{'expose-properties'};
            for my $name (keys %$props) {
                next if $pd->{'isolate-properties'}
                    && !(ref($expose) eq 'HASH' ? $expose->{$name} : $expose);
                $taken{$name} = 1;
            }
        }
    };
    delete $own->{$_} for keys %taken;
    return $own;
}

sub options {
    my ($class) = @_;

    my $wanted = { %$GLOBAL_OPTIONS };
    for my $name (keys %{ own_properties() }) {
        my $opt = {};
        $opt->{optional} = 1 if !$OWN_REQUIRED->{$name};
        $opt->{fixed} = 1 if $OWN_FIXED->{$name};
        $wanted->{$name} = $opt;
    }

    my $known = eval { PVE::Storage::Plugin->private()->{propertyList} } // {};
    # Before init() nothing is known yet; hand out everything rather than nothing.
    return $wanted if !%$known;
    return { map { $_ => $wanted->{$_} } grep { exists $known->{$_} } keys %$wanted };
}

# --- configuration and secrets -------------------------------------------------------------

sub default_cache_dir {
    my ($storeid) = @_;
    return "$DEFAULT_CACHE_BASE/$storeid";
}

# Parsing storage.cfg passes $create = 1, so this also fills `path` for existing sections.
sub check_config {
    my ($class, $sectionId, $config, $create, $skipSchemaCheck) = @_;

    $config->{path} //= default_cache_dir($sectionId) if $create;
    return $class->SUPER::check_config($sectionId, $config, $create, $skipSchemaCheck);
}

sub priv_dir {
    return $ENV{PVE_S3_PRIV_DIR} // $DEFAULT_PRIV_DIR;
}

sub secret_file {
    my ($storeid) = @_;
    return priv_dir() . "/$storeid.pw";
}

sub set_secret {
    my ($storeid, $secret) = @_;

    die "secret_key must not contain a line break\n" if $secret =~ m/[\r\n]/;
    die "secret_key must not be empty\n" if $secret eq '';
    my $dir = priv_dir();
    make_path($dir, { mode => 0700 }) if !-d $dir;
    file_set_contents(secret_file($storeid), "$secret\n", 0600);
}

sub delete_secret {
    my ($storeid) = @_;
    my $file = secret_file($storeid);
    unlink($file) or $! == ENOENT or die "unable to delete secret file '$file' - $!\n";
}

sub read_secret {
    my ($storeid) = @_;
    my $file = secret_file($storeid);
    return undef if !-f $file;
    my $data = file_get_contents($file);
    my ($line) = split(/\n/, $data, 2);
    return defined($line) && $line ne '' ? $line : undef;
}

# `pvesm add` learns at once, before anything is written, when the host this plugin needs is
# missing or speaks another protocol (a plugin and host from different package versions).
sub check_host_version {
    my ($storeid, $scfg) = @_;
    my $res = host_call($storeid, $scfg, 'version', {});
    my $protocol = $res->{protocol} // '?';
    die "pve-s3 host speaks protocol $protocol, this plugin needs 1 - install matching pve-s3 packages\n"
        if $protocol ne '1';
}

sub on_add_hook {
    my ($class, $storeid, $scfg, %sensitive) = @_;

    check_host_version($storeid, $scfg);
    if (defined($sensitive{secret_key})) {
        set_secret($storeid, $sensitive{secret_key});
    } else {
        # A leftover from an earlier storage of the same ID must not be picked up silently.
        delete_secret($storeid);
    }
    eval { check_object_lock($storeid, $scfg) };
    if (my $err = $@) {
        # PVE writes no storage.cfg section when this dies, and calls no on_delete_hook
        delete_secret($storeid);
        die $err;
    }
    # The key that signs this storage's manifests (issue 10 §7): how it is made and where it
    # lives is the host's business. An existing one is kept, so adding a storage again keeps
    # its backups verified; if this fails, the first upload makes it.
    my $err;
    eval { (undef, $err) = host_try($storeid, $scfg, 'manifest-key', { action => 'create' }) };
    $err = { message => $@ =~ s/\s+$//r } if $@;
    if (invalid_value($err)) {
        delete_secret($storeid);
        die "$err->{message}\n";
    }
    # (no host installed at all is check_host_version's business, not a second warning; a quiet
    # error is one the storage's settings ask for, the host says which: docs/PROTOCOL.md §3)
    warn "warning: no manifest key created for storage '$storeid' ($err->{message}); the first upload creates it\n"
        if $err && ($err->{code} // '') ne 'HostMissing' && !$err->{quiet};
    return undef;
}

# PVE's schema checks each key alone; the rules across keys (glacier_days > transition_days,
# lock_mode only with lock_days, kms_key_id only with aws:kms, use_ssl against the endpoint's
# scheme) and the finer ones (a prefix without '..') are the host's, which names the key, the
# value and what is allowed. Such a storage would fail every operation, so adding or changing it
# is refused; a missing secret is not a bad value (pvesm set --secret_key may come next): the
# host says ConfigMissing for it.
sub invalid_value {
    my ($err) = @_;
    return $err && ($err->{code} // '') eq 'ConfigInvalid';
}

# `pvesm set … --lock_days N` asks the bucket, as `pvesm add` does. PVE hands on_update_hook only
# the options being set, and the check needs the whole storage (bucket, endpoint, keys): API >= 13
# passes it to on_update_hook_full; before, it is read back (a deletion in the same call cannot
# have touched lock_days, which is being set).
sub on_update_hook {
    my ($class, $storeid, $update, %sensitive) = @_;

    my $whole;
    if (defined($update->{lock_days})) {
        my $current = PVE::Storage::config()->{ids}->{$storeid} // {};
        $whole = { %$current, %$update };
    }
    return update_storage($storeid, $whole, %sensitive);
}

sub on_update_hook_full {
    my ($class, $storeid, $scfg, $update, $delete, $sensitive) = @_;

    my $whole = { %$scfg, %$update };
    delete $whole->{$_} for @{ $delete // [] };
    # the storage as it will be, checked by the host before anything is written (API >= 13 only:
    # before, PVE does not say what is deleted, so the whole is not known here)
    my (undef, $err) = host_try($storeid, $whole, 'manifest-key', { action => 'show' });
    die "$err->{message}\n" if invalid_value($err);
    return update_storage($storeid, defined($update->{lock_days}) ? $whole : undef, %{ $sensitive // {} });
}

sub update_storage {
    my ($storeid, $whole, %sensitive) = @_;

    if (exists($sensitive{secret_key})) {
        if (defined($sensitive{secret_key})) {
            set_secret($storeid, $sensitive{secret_key});
        } else {
            delete_secret($storeid);
        }
    }
    check_object_lock($storeid, $whole) if $whole;
    return undef;
}

# lock_days asks for locked writes, which a bucket without Object Lock (or without versioning)
# refuses: said when the storage is added or changed, not by its first backup. The host's
# 'check-lock' decides (docs/PROTOCOL.md); a bucket that cannot be asked now is only warned about.
sub check_object_lock {
    my ($storeid, $scfg) = @_;

    return if !defined($scfg->{lock_days});
    my ($res, $err) = host_try($storeid, $scfg, 'check-lock', {});
    if ($err) {
        warn "could not check the Object Lock of bucket '$scfg->{bucket}' - $err->{message}\n";
        return;
    }
    die "$res->{message}\n" if !$res->{ok};
}

# The manifest key stays: the bucket's objects are signed with it, and a storage added again
# under the same ID finds them verified (docs/ARCHITECTURE.md, "Manifest key").
sub on_delete_hook {
    my ($class, $storeid, $scfg) = @_;
    delete_secret($storeid);
    return undef;
}

# --- the host runner -----------------------------------------------------------------------

sub host_command {
    my $bin = $ENV{PVE_S3_HOST_BIN} // $DEFAULT_HOST_BIN;
    $bin =~ s/^\s+|\s+$//g;
    return [split(/\s+/, $bin)];
}

# storage.cfg text form of every value (docs/PROTOCOL.md §2.1).
sub storage_object {
    my ($storeid, $scfg) = @_;

    my $obj = { id => "$storeid" };
    for my $key (keys %$scfg) {
        next if $key eq 'type';
        my $value = $scfg->{$key};
        next if !defined($value);
        if (ref($value) eq 'HASH') {
            if ($key eq 'content-dirs') {
                $value = join(',', map { "$_=$value->{$_}" } sort keys %$value);
            } else {
                $value = join(',', sort grep { $value->{$_} } keys %$value);
            }
        } elsif (ref($value)) {
            next;
        }
        $obj->{$key} = "$value";
    }
    my $secret = read_secret($storeid);
    $obj->{secret_key} = $secret if defined($secret);
    return $obj;
}

# Runs one host operation. Returns ($result, undef) or (undef, $error) where $error is the
# envelope's error object (or one of the runner's own: HostMissing, HostTimeout, HostFailed).
sub host_try {
    my ($storeid, $scfg, $op, $args, %opts) = @_;

    my $timeout = $opts{timeout} // op_timeout($op);
    my $request = {
        v => 1,
        op => $op,
        ($timeout > 0 ? (deadline_ms => int(($timeout > 2 ? $timeout - 1 : $timeout) * 1000)) : ()),
        # a caller that cannot read the secret file (backup_container runs as the container's
        # root) hands over the storage object it took while it could
        storage => $opts{storage} // storage_object($storeid, $scfg),
        args => $args // {},
    };
    my $cmd = host_command();
    my $exe = $cmd->[0];
    if (!defined($exe) || ($exe =~ m|/| && !-x $exe)) {
        return (undef, {
            code => 'HostMissing',
            message => "pve-s3 host '" . ($exe // '') . "' not found or not executable - install pve-s3 or set PVE_S3_HOST_BIN",
            retryable => JSON::PP::false,
        });
    }

    my $stdout = '';
    my $last_err;
    my $progress = $opts{progress} // $OP_PROGRESS->{$op};
    my $exitcode = eval {
        run_command(
            $cmd,
            input => $json->encode($request),
            outfunc => sub { $stdout .= "$_[0]\n" },
            errfunc => sub {
                my $line = shift;
                return if $line !~ m/\S/;
                # notes: every line but the answer's (the last), e.g. the host's retries, one
                # line behind, for a caller that reports the answer itself
                $opts{notes}->($last_err) if $opts{notes} && defined($last_err);
                $last_err = $line;
                print "$line\n" if $progress;
                $opts{line}->($line) if $opts{line};
            },
            ($timeout > 0 ? (timeout => $timeout) : ()),
            noerr => 1,
        );
    };
    if (my $err = $@) {
        if ($err =~ m/got timeout/) {
            return (undef, {
                code => 'HostTimeout',
                message => "pve-s3 host operation '$op' on storage '$storeid' timed out after ${timeout}s",
                retryable => JSON::PP::true,
            });
        }
        chomp $err;
        return (undef, { code => 'HostFailed', message => $err, retryable => JSON::PP::false });
    }

    my $envelope = eval { $json->decode($stdout) };
    if (ref($envelope) ne 'HASH' || !exists($envelope->{ok})) {
        my $msg = $last_err // "pve-s3 host exited with code $exitcode without a reply";
        return (undef, { code => 'HostFailed', message => $msg, retryable => JSON::PP::false });
    }
    if ($envelope->{ok} && $exitcode == 0) {
        return ($envelope->{result} // {}, undef);
    }
    my $error = ref($envelope->{error}) eq 'HASH' ? $envelope->{error} : {};
    $error->{code} //= 'HostFailed';
    $error->{message} //= $last_err // "pve-s3 host operation '$op' failed (exit code $exitcode)";
    $error->{message} =~ s/[\r\n].*//s;
    return (undef, $error);
}

sub host_call {
    my ($storeid, $scfg, $op, $args, %opts) = @_;
    my ($result, $error) = host_try($storeid, $scfg, $op, $args, %opts);
    die "$error->{message}\n" if $error;
    return $result;
}

# --- volume names and paths ----------------------------------------------------------------

# A file name of a content type, as the host decides it: refused characters, the length a local
# file can have, the shape of the type.
sub valid_name {
    my ($vtype, $name) = @_;

    return 0 if !defined($name) || $name eq '' || !$VOLUME_RE->{$vtype};
    for my $re (@REFUSE_RE) {
        return 0 if $name =~ $re;
    }
    {
        use bytes;
        return 0 if length($name) > $RULES->{names}->{maxNameBytes};
    }
    return $name =~ $VOLUME_RE->{$vtype} ? 1 : 0;
}

# Only the four file content types; anything else (images, '..', control characters, a second
# slash) is refused before the host is ever asked.
sub parse_volname {
    my ($class, $volname) = @_;

    my ($vtype, $name) = defined($volname) ? ($volname =~ m!^([a-z]+)/(.*)$!s) : ();
    die "unable to parse s3 volume name '" . ($volname // '') . "'\n"
        if !defined($vtype) || !valid_name($vtype, $name);
    my $vmid;
    $vmid = $2 if $vtype eq 'backup' && $name =~ $OWNER_RE;
    return ($vtype, $name, $vmid, undef, undef, undef, 'raw');
}

# A file being written (ours, PVE's, a browser's): never a pending upload nor a cached copy.
sub is_temporary_name {
    my ($name) = @_;
    return scalar(grep { $name =~ $_ } @TEMPORARY_RE) ? 1 : 0;
}

# The first template of a `format` list whose $N groups all matched, each group lower-cased
# (name-rules.ts formatFrom); undef when the name does not match at all.
sub format_from {
    my ($templates, $name, $re) = @_;

    return undef if $name !~ $re;
    my @g = map { defined($-[$_]) ? lc(substr($name, $-[$_], $+[$_] - $-[$_])) : undef } 0 .. $#-;
    for my $t (@$templates) {
        my $complete = 1;
        (my $out = $t) =~ s/\$(\d)/defined($g[$1]) ? $g[$1] : do { $complete = 0; '' }/ge;
        return $out if $complete;
    }
    return $templates->[-1];
}

sub filesystem_path {
    my ($class, $scfg, $volname, $snapname) = @_;

    die "storage type 's3' does not support snapshots\n" if defined($snapname);
    my ($vtype, $name, $vmid) = $class->parse_volname($volname);
    my $path = $class->get_subdir($scfg, $vtype) . "/$name";
    return wantarray ? ($path, $vmid, $vtype) : $path;
}

# Deterministic and cheap: PVE 8.4 calls it before activation for ISOs, hookscripts never activate.
sub path {
    my ($class, $scfg, $volname, $storeid, $snapname) = @_;
    return $class->filesystem_path($scfg, $volname, $snapname);
}

sub state_dir {
    my ($scfg) = @_;
    die "storage definition has no path\n" if !$scfg->{path};
    return "$scfg->{path}/$RULES->{stateDir}";
}

sub record_file {
    my ($scfg, $vtype, $name) = @_;
    return state_dir($scfg) . "/$RULES->{recordsDir}/$vtype/$name.json";
}

sub read_record {
    my ($scfg, $vtype, $name) = @_;
    my $file = record_file($scfg, $vtype, $name);
    return undef if !-f $file;
    my $rec = eval { $json->decode(file_get_contents($file)) };
    return ref($rec) eq 'HASH' ? $rec : undef;
}

# A local file is a cached copy of a bucket object if its record matches size and mtime;
# anything else there is pending (docs/PROTOCOL.md §6). The host decides the same way
# (store/local-cache.ts localOnlyFiles): test/contract/rules-cases.json "pending" holds both to it.
sub local_state {
    my ($scfg, $vtype, $name, $path) = @_;
    my @st = stat($path);
    return ('missing') if !@st;
    my $rec = read_record($scfg, $vtype, $name);
    return ('cached', \@st, $rec)
        if $rec && defined($rec->{size}) && defined($rec->{mtime})
        && $rec->{size} == $st[7] && $rec->{mtime} == $st[9];
    return ('pending', \@st, $rec);
}

# The host writes the record after a download; make sure of it, or the copy would look like a
# pending upload and be pushed back by sync-local.
sub ensure_record {
    my ($scfg, $vtype, $name, $path, $etag) = @_;
    my ($state, $st) = local_state($scfg, $vtype, $name, $path);
    return if $state ne 'pending';
    my $file = record_file($scfg, $vtype, $name);
    make_path(state_dir($scfg) . "/$RULES->{recordsDir}/$vtype", { mode => $STATE_DIR_MODE });
    my $rec = { volname => "$vtype/$name", size => $st->[7], mtime => $st->[9], etag => $etag // '' };
    file_set_contents($file, $json->encode($rec), 0600);
}

sub remove_local {
    my ($class, $scfg, $volname) = @_;
    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    my (undef, $name) = $class->parse_volname($volname);
    my @files = ($path, "$path.notes", "$path.protected", record_file($scfg, $vtype, $name));
    my $log = $vtype eq 'backup' ? backup_log_name($name) : undef;
    push @files, $class->get_subdir($scfg, 'backup') . "/$log" if defined($log);
    for my $file (@files) {
        unlink($file) or $! == ENOENT or warn "unable to remove '$file' - $!\n";
    }
}

# --- storage level -------------------------------------------------------------------------

sub ensure_cache_dirs {
    my ($scfg) = @_;
    my $path = $scfg->{path} or die "storage definition has no path\n";
    make_path($path, { mode => 0755 }) if !-d $path;
    my $state = state_dir($scfg);
    make_path($state, { mode => $STATE_DIR_MODE }) if !-d $state;
    # one an earlier version created 0755
    chmod($STATE_DIR_MODE, $state) if ((stat($state))[2] & 07777) != $STATE_DIR_MODE;
}

# A probe answers only for the configuration it ran with: after `pvesm set` (a corrected secret,
# endpoint or bucket) or a re-add, the old result must not be served. The secret never enters
# the key, not even hashed (a digest of it in status.json could be tested against guesses
# offline): its file's identity does (device, inode, size, mtime, ctime), which changes whenever
# a new secret is written.
sub status_key {
    my ($storeid, $scfg) = @_;
    my $obj = storage_object($storeid, $scfg);
    delete $obj->{secret_key};
    my @st = stat(secret_file($storeid));
    $obj->{secret_file} = @st ? join(':', @st[0, 1, 7, 9, 10]) : '';
    return Digest::SHA::sha256_hex($json->encode($obj));
}

sub read_status_cache {
    my ($scfg, $storeid) = @_;
    my $file = eval { state_dir($scfg) . '/status.json' } or return undef;
    my $data = eval { $json->decode(file_get_contents($file)) };
    return undef if ref($data) ne 'HASH' || !defined($data->{at});
    return undef if defined($storeid) && ($data->{key} // '') ne status_key($storeid, $scfg);
    my $ttl = $data->{active} ? $STATUS_TTL : $data->{slow} ? $STATUS_FAIL_TTL : $STATUS_QUICK_FAIL_TTL;
    my $age = time() - $data->{at};
    return undef if $age < 0 || $age >= $ttl;
    return $data;
}

sub write_status_cache {
    my ($scfg, $data, $storeid) = @_;
    eval {
        my $dir = state_dir($scfg);
        return if !-d $dir;
        my $rec = { %$data, at => time() };
        $rec->{key} = status_key($storeid, $scfg) if defined($storeid);
        file_set_contents("$dir/status.json", $json->encode($rec), 0600);
    };
}

# What status/activate remember about a failed probe: the message, and whether retrying later
# may help (activate_storage tells an outage from a misconfiguration by it).
sub failed_status {
    my ($err, $msg, $started) = @_;
    my $data = { active => 0, total => 0, used => 0, avail => 0, error => $msg };
    $data->{code} = $err->{code} if $err && defined($err->{code});
    $data->{transient} = 1 if $err && $err->{retryable};
    $data->{slow} = 1 if time() - $started > $STATUS_SLOW;
    return $data;
}

# Never dies, never waits longer than the status timeout (pvestatd runs all storages serially).
sub probe_status {
    my ($storeid, $scfg) = @_;

    my $cached = read_status_cache($scfg, $storeid);
    return $cached if $cached;
    my $started = time();
    my ($res, $err) = eval { host_try($storeid, $scfg, 'status', {}) };
    $err //= { message => $@ } if !$res && !$err;
    my $data;
    if ($res && $res->{active}) {
        $data = {
            active => 1,
            total => int($res->{total} // 0),
            used => int($res->{used} // 0),
            avail => int($res->{avail} // 0),
        };
    } else {
        my $msg = $err ? $err->{message} : 'bucket not active';
        chomp $msg;
        $data = failed_status($err, $msg, $started);
    }
    write_status_cache($scfg, $data, $storeid);
    return $data;
}

sub status {
    my ($class, $storeid, $scfg, $cache) = @_;

    my $data = eval { probe_status($storeid, $scfg) }
        // { active => 0, total => 0, used => 0, avail => 0 };
    eval { $class->warn_waiting_files($storeid, $scfg) };
    eval { $class->background_maintenance($storeid, $scfg) } if $data->{active};
    return ($data->{total}, $data->{avail}, $data->{used}, $data->{active} ? 1 : 0);
}

sub activate_storage {
    my ($class, $storeid, $scfg, $cache) = @_;

    ensure_cache_dirs($scfg);
    # PVE's activation makes a directory per content type and dies on 'none' ("unknown vtype"),
    # which PVE's parser takes alone since plugindata lists it (as PBS's does): none has no directory
    my $dirs = $scfg->{content} && $scfg->{content}->{none} ? { %$scfg, content => {} } : $scfg;
    $class->SUPER::activate_storage($storeid, $dirs, $cache);

    # The bucket check is status's probe (one HeadBucket, same bound): pvestatd calls
    # activate_storage and then status every 10 s, and one cached host run answers both (a
    # black-holed endpoint costs at most one bounded run per $STATUS_FAIL_TTL).
    my $failed = probe_status($storeid, $scfg);
    return 1 if $failed->{active};
    # Said once per probe (a cached answer carries 'at'), not every 10 s from pvestatd.
    warn "storage '$storeid': bucket not reachable ($failed->{error}) - only cached and local "
        . "volumes are usable until it is back\n"
        if $failed->{transient} && !defined($failed->{at});
    # A misconfiguration (no such bucket, refused credentials, no secret) fails activation, so
    # `pvesm add` refuses it. An outage does not: VM starts with a cached ISO, restores from the
    # cache and vzdump spooling into the dump dir keep working (reference §11, "decide what
    # offline means"); what needs the bucket fails by itself with the host's message, and status
    # reports the storage inactive.
    die(($failed->{error} // "storage '$storeid' is not reachable") . "\n") if !$failed->{transient};
    return 1;
}

sub deactivate_storage {
    my ($class, $storeid, $scfg, $cache) = @_;
    return 1;
}

sub check_connection {
    my ($class, $storeid, $scfg) = @_;
    return 1;
}

# --- listing -------------------------------------------------------------------------------

# Notes sidecars are UTF-8 on disk (as PVE writes them); the rest of the plugin works on
# characters, and the JSON encoder would otherwise encode the bytes a second time.
sub read_notes_file {
    my ($file) = @_;
    my $bytes = file_get_contents($file);
    my $text = eval { Encode::decode('UTF-8', $bytes, Encode::FB_CROAK) };
    return defined($text) ? $text : $bytes;
}

sub first_line {
    my ($text) = @_;
    return undef if !defined($text);
    my ($line) = split(/\n/, $text, 2);
    return $line;
}

sub volume_item {
    my ($storeid, $vol) = @_;

    my $item = {
        volid => "$storeid:$vol->{volname}",
        content => $vol->{content},
        format => $vol->{format},
        size => int($vol->{size} // 0),
        ctime => int($vol->{ctime} // $vol->{mtime} // 0),
    };
    if ($vol->{content} eq 'backup') {
        $item->{vmid} = int($vol->{vmid}) if defined($vol->{vmid});
        $item->{subtype} = $vol->{subtype} // 'unknown';
        my $notes = first_line($vol->{notes});
        # the GUI has no column for S3 Object Lock nor for an archived backup: its notes column
        # says them (display only, the notes themselves are read and written through the
        # attribute calls). The archive state goes first, where a narrow column still shows it:
        # such a backup cannot be restored before S3 brought it back.
        my $archive = ref($vol->{archive}) eq 'HASH' ? $vol->{archive}->{text} : undef;
        $notes = join(' ', grep { defined($_) && $_ ne '' }
            (defined($archive) ? "[$archive]" : undef), $notes,
            (defined($vol->{locked}) ? "[$vol->{locked}]" : undef));
        $item->{notes} = $notes if defined($notes) && $notes ne '';
        $item->{protected} = 1 if $vol->{protected};
        # No manifest (another tool uploaded it) means "not verified", not a failed check: PVE's
        # GUI shows a missing verification as None, 'failed' as a red error.
        $item->{verification} = { state => 'ok' } if $vol->{verified};
    }
    return $item;
}

sub listing_format {
    my ($vtype, $name) = @_;
    my $rule = $RULES->{names}->{volume}->{$vtype} or return 'raw';
    return format_from($rule->{format}, $name, $VOLUME_RE->{$vtype}) // 'raw';
}

# The vzdump log of a backup archive: vzdump names it after a standard name's base name.
sub backup_log_name {
    my ($name) = @_;
    my $std = $RULES->{names}->{standardBackup};
    return undef if $name !~ $STD_BACKUP_RE || $5 ne listing_format('backup', $name);
    return format_from([$std->{log}], $name, $STD_BACKUP_RE);
}

# A pending local file as the bucket would describe it; backups get PVE's archive_info view.
sub local_volume {
    my ($class, $scfg, $vtype, $name, $st) = @_;

    my $path = $class->get_subdir($scfg, $vtype) . "/$name";
    my $vol = {
        volname => "$vtype/$name",
        content => $vtype,
        size => $st->[7],
        ctime => $st->[9],
        format => listing_format($vtype, $name),
    };
    if ($vtype eq 'backup') {
        my $info = eval { PVE::Storage::archive_info($name) } // {};
        $vol->{subtype} = $info->{type} // 'unknown';
        $vol->{vmid} = $info->{vmid} if defined($info->{vmid});
        $vol->{ctime} = $info->{ctime} if $info->{is_std_name};
        $vol->{notes} = eval { read_notes_file("$path.notes") } if -f "$path.notes";
        $vol->{protected} = -e "$path.protected" ? 1 : 0;
    }
    return $vol;
}

# Files in the cache that the bucket does not have yet: vzdump archives before the hook
# uploaded them, GUI uploads before sync-local ran. Partial and temporary files are skipped.
sub pending_local {
    my ($class, $scfg, $vtypes, $quiet) = @_;

    my @res;
    return \@res if !$scfg->{path};
    my $now = time();
    for my $vtype (@$vtypes) {
        my $dir = eval { $class->get_subdir($scfg, $vtype) } or next;
        opendir(my $dh, $dir) or next;
        for my $name (sort readdir($dh)) {
            next if is_temporary_name($name);
            my $volname = "$vtype/$name";
            next if !eval { $class->parse_volname($volname); 1 };
            my $path = "$dir/$name";
            next if !-f $path;
            my ($state, $st) = local_state($scfg, $vtype, $name, $path);
            next if $state ne 'pending';
            next if $quiet && $now - $st->[9] < $quiet;
            push @res, $class->local_volume($scfg, $vtype, $name, $st);
        }
        closedir($dh);
    }
    return \@res;
}

sub list_volumes {
    my ($class, $storeid, $scfg, $vmid, $content_types) = @_;

    # As PVE's base plugin: with a vmid, ISOs and templates are left out, backups narrowed to the
    # guest, and snippets (not tied to a guest) still listed.
    my @types = grep { $CONTENT_SUBDIR->{$_} } @{ $content_types // [] };
    @types = grep { $_ eq 'backup' || $_ eq 'snippets' } @types if defined($vmid);
    return [] if !@types;

    my $args = { content => [sort @types] };
    # The host's vmid filter drops snippets too; narrow here when they are wanted.
    $args->{vmid} = int($vmid) if defined($vmid) && !grep { $_ eq 'snippets' } @types;
    my $res = host_call($storeid, $scfg, 'list', $args);

    my $wanted = sub {
        my ($vol) = @_;
        return 0 if !grep { $_ eq ($vol->{content} // '') } @types;
        return 1 if !defined($vmid) || $vol->{content} ne 'backup';
        return defined($vol->{vmid}) && $vol->{vmid} == $vmid;
    };
    my %seen;
    my @items;
    for my $vol (@{ $res->{volumes} // [] }, @{ $class->pending_local($scfg, \@types) }) {
        next if !$wanted->($vol);
        next if $seen{ $vol->{volname} }++;
        push @items, volume_item($storeid, $vol);
    }
    return [sort { lc($a->{volid}) cmp lc($b->{volid}) } @items];
}

sub list_images {
    my ($class, $storeid, $scfg, $vmid, $vollist, $cache) = @_;
    return [];
}

# --- volumes -------------------------------------------------------------------------------

# The activation lock of one volume. Its file exists only while the lock is held or waited for,
# so locks/ does not keep a file per volume ever activated: the holder unlinks it before letting
# go. That is safe only because every taker, once it holds the lock, checks that the path still
# names the file it locked and starts over if not; a waiter that opened the file before the
# holder unlinked it would otherwise lock a name-less inode while a third taker locks a new file.
sub lock_volume {
    my ($scfg, $vtype, $name, $nonblock) = @_;

    my $dir = state_dir($scfg) . '/locks';
    make_path($dir, { mode => $STATE_DIR_MODE }) if !-d $dir;
    my $file = "$dir/$vtype.$name.lock";
    for (;;) {
        my $fh = IO::File->new($file, O_RDWR | O_CREAT, 0600) or die "unable to open lock '$file' - $!\n";
        if (!flock($fh, LOCK_EX | ($nonblock ? LOCK_NB : 0))) {
            return undef if $nonblock && $! == EWOULDBLOCK;
            die "unable to lock '$file' - $!\n";
        }
        my @held = stat($fh);
        my @named = stat($file);
        return { fh => $fh, file => $file } if @named && $held[0] == $named[0] && $held[1] == $named[1];
        close($fh);
    }
}

sub unlock_volume {
    my ($lock) = @_;
    unlink($lock->{file});
    close($lock->{fh});
}

sub with_volume_lock {
    my ($scfg, $vtype, $name, $code) = @_;

    my $lock = lock_volume($scfg, $vtype, $name);
    my $res = eval { $code->() };
    my $err = $@;
    unlock_volume($lock);
    die $err if $err;
    return $res;
}

# A cached copy is valid only while the bucket still holds the object it copies: an ISO or
# template replaced under the same name (from another node, or by a tool) must not be served
# stale for as long as guests keep using it. One HEAD decides; when the bucket cannot be asked,
# the copy is used with a warning, so VM starts and restores from cache survive an outage.
sub cached_copy_current {
    my ($storeid, $scfg, $volname, $rec) = @_;

    # A known outage (status or activate_storage found it moments ago) is not waited for again.
    my $known = read_status_cache($scfg, $storeid);
    if ($known && !$known->{active} && $known->{transient}) {
        warn "warning: bucket of '$storeid' not reachable ($known->{error}); using the cached copy of "
            . "'$storeid:$volname' unchecked\n";
        return 1;
    }
    my ($res, $err) = host_try($storeid, $scfg, 'stat', { volname => $volname }, timeout => $FRESHNESS_TIMEOUT);
    if ($err) {
        die "$err->{message}\n" if is_remote_missing($err);
        warn "warning: could not check the cached copy of '$storeid:$volname' against the bucket "
            . "($err->{message}); using it\n";
        return 1;
    }
    my $obj = $res->{volume} // {};
    return 0 if !defined($obj->{size}) || $obj->{size} != $rec->{size};
    my $etag = $rec->{etag} // '';
    return $etag ne '' && $etag eq ($obj->{etag} // '') ? 1 : 0;
}

sub activate_volume {
    my ($class, $storeid, $scfg, $volname, $snapname, $cache, $hints) = @_;

    die "storage type 's3' does not support snapshots\n" if defined($snapname);
    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    my (undef, $name) = $class->parse_volname($volname);

    ensure_cache_dirs($scfg);
    my $dir = $class->get_subdir($scfg, $vtype);
    make_path($dir, { mode => 0755 }) if !-d $dir;

    with_volume_lock($scfg, $vtype, $name, sub {
        my ($state, undef, $rec) = local_state($scfg, $vtype, $name, $path);
        if ($state eq 'cached' && cached_copy_current($storeid, $scfg, $volname, $rec)) {
            # Mark the copy as used now: eviction goes by the record's mtime.
            utime(undef, undef, record_file($scfg, $vtype, $name));
        } elsif ($state ne 'pending') {
            # Missing, or a copy of an object since replaced: the host downloads to a temporary
            # name, verifies, then renames over $path, so a reader never sees a partial file.
            my $args = { volname => $volname, dest => $path };
            $args->{force} = JSON::PP::true if $state eq 'cached';
            # The host refuses a volume that is not verified (no manifest signed with this
            # storage's key), naming the commands that let the admin proceed.
            my $res = host_call($storeid, $scfg, 'download', $args);
            die "download of '$storeid:$volname' did not produce '$path'\n" if !-f $path;
            ensure_record($scfg, $vtype, $name, $path, $res->{etag});
        }
        # A pending file is the newest data there is; use it as is.
        chmod(0755, $path) if $vtype eq 'snippets'; # hookscripts must be executable
    });
    return 1;
}

sub deactivate_volume {
    my ($class, $storeid, $scfg, $volname, $snapname, $cache) = @_;
    return 1;
}

sub is_remote_missing {
    my ($err) = @_;
    return $err && ($err->{code} // '') =~ m/^(?:NoSuchKey|NotFound)$/;
}

# The GUI's volume details and vzdump/qmrestore ask this. A local file (pending, or a copy of
# the object) answers without the bucket; otherwise one stat bounded by $timeout. An outage is
# not an error here (the details view must open while the bucket is away): size 0 and a warning.
sub volume_size_info {
    my ($class, $scfg, $storeid, $volname, $timeout) = @_;

    my ($path) = $class->filesystem_path($scfg, $volname);
    my ($size, $ctime);
    if (my @st = stat($path)) {
        ($size, $ctime) = ($st[7], $st[9]) if -f _;
    }
    if (!defined($size)) {
        my %opts;
        $opts{timeout} = $timeout > 1 ? int($timeout) : 1 if defined($timeout) && $timeout > 0;
        my ($res, $err) = host_try($storeid, $scfg, 'stat', { volname => $volname }, %opts);
        if ($res) {
            $size = int($res->{volume}->{size} // 0);
            $ctime = $res->{volume}->{ctime};
        } elsif ($err->{retryable}) {
            warn "could not get the size of '$storeid:$volname' from the bucket ($err->{message})\n";
            $size = 0;
        } else {
            die "$err->{message}\n";
        }
    }
    return wantarray ? ($size, 'raw', $size, undef, $ctime) : $size;
}

sub free_image {
    my ($class, $storeid, $scfg, $volname, $isBase, $format) = @_;

    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    die "cannot remove protected volume '$volname' on '$storeid'\n"
        if $vtype eq 'backup' && -e "$path.protected";

    my ($res, $err) = host_try(
        $storeid, $scfg, 'delete', { volnames => [$volname] }, notes => sub { print "$_[0]\n" },
    );
    if ($err) {
        die "cannot remove protected volume '$volname' on '$storeid'\n"
            if ($err->{code} // '') eq 'VolumeProtected';
        die "$err->{message}\n";
    }
    # S3 Object Lock keeps the archive (issue 14 section 2): not a failure, the volume stays
    # whole and a later free or prune removes it once its retention has passed
    if (my ($held) = @{$res->{locked} // []}) {
        warn "kept volume '$volname' on '$storeid': $held->{reason}\n";
        return undef;
    }
    $class->remove_local($scfg, $volname);
    return undef;
}

# Whether an archive's local sidecars stand in for the bucket's after a failed get-attr/set-attr:
# the object is missing and the file is here (not uploaded yet), or the bucket cannot be asked
# now (an outage, a timeout) and the file is still pending. vzdump sets notes and the protected
# flag before the hook uploads, and PVE::Storage::update_volume_attribute asks for the current
# flag first: failing there would fail the guest's backup because of a bucket outage. The upload
# (hook or sync-local) carries the sidecars up.
sub local_sidecars_answer {
    my ($scfg, $volname, $path, $err) = @_;
    return 1 if is_remote_missing($err) && -f $path;
    return 0 if !$err->{retryable};
    my ($vtype, $name) = (split(m|/|, $volname, 2));
    my ($state) = local_state($scfg, $vtype, $name, $path);
    return $state eq 'pending';
}

sub get_volume_attribute {
    my ($class, $scfg, $storeid, $volname, $attribute) = @_;

    return undef if $attribute ne 'notes' && $attribute ne 'protected';
    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    return undef if $vtype ne 'backup';

    my ($res, $err) = host_try($storeid, $scfg, 'get-attr', { volname => $volname, attr => $attribute });
    if ($err) {
        die "$err->{message}\n" if !local_sidecars_answer($scfg, $volname, $path, $err);
        # Not uploaded yet: the local sidecars are the truth until the upload carries them.
        return -e "$path.protected" ? 1 : 0 if $attribute eq 'protected';
        return -f "$path.notes" ? read_notes_file("$path.notes") : '';
    }
    my $value = $res->{value};
    return $value ? 1 : 0 if $attribute eq 'protected';
    return $value // '';
}

sub update_volume_attribute {
    my ($class, $scfg, $storeid, $volname, $attribute, $value) = @_;

    die "attribute '$attribute' is not supported for storage type 's3'\n"
        if $attribute ne 'notes' && $attribute ne 'protected';
    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    die "only backups can have notes\n" if $attribute eq 'notes' && $vtype ne 'backup';
    die "only backups support attribute '$attribute'\n" if $vtype ne 'backup';

    my $send = $attribute eq 'protected'
        ? ($value ? JSON::PP::true : JSON::PP::false)
        : ($value // '');
    my ($res, $err) = host_try(
        $storeid, $scfg, 'set-attr', { volname => $volname, attr => $attribute, value => $send },
    );
    if ($err) {
        die "$err->{message}\n" if !local_sidecars_answer($scfg, $volname, $path, $err);
        if ($attribute eq 'protected') {
            if ($value) {
                file_set_contents("$path.protected", '', 0644);
            } else {
                unlink("$path.protected") or $! == ENOENT
                    or die "could not delete protection file '$path.protected' - $!\n";
            }
        } elsif (defined($value) && $value ne '') {
            file_set_contents("$path.notes", $value, 0644, 1);
        } else {
            unlink("$path.notes") or $! == ENOENT or die "could not delete notes - $!\n";
        }
        return undef;
    }
    if ($attribute eq 'protected' && !$value) {
        # A stale local marker would otherwise keep blocking deletion.
        unlink("$path.protected");
    }
    return undef;
}

# PVE's own marking (PVE::Storage::prune_mark_backup_group) over the merged listing; removals
# go through the host's batch delete, which refuses protected backups on its own as well.
# Only trusted backups are counted (issue 10 §5): objects the host does not list as verified
# (no valid manifest of this storage vouches for them) are kept and left out of their group, so
# a planted or half-written object never pushes a verified backup out. PVE's API knows only the
# marks keep/remove/protected/renamed, so they are marked 'renamed' ("not part of the
# retention"). Local archives not uploaded yet are trusted: vzdump prunes before its backup-end
# hook uploads the new archive, which must count as it does on a dir storage.
sub prune_backups {
    my ($class, $scfg, $storeid, $keep, $vmid, $type, $dryrun, $logfunc) = @_;

    $logfunc //= sub { print "$_[1]\n" };
    my $backups = $class->list_volumes($storeid, $scfg, $vmid, ['backup']);
    my %pending = map { ("$storeid:$_->{volname}" => 1) } @{ $class->pending_local($scfg, ['backup']) };

    my $prune_list = [];
    my $groups = {};
    for my $backup (@$backups) {
        my $volid = $backup->{volid};
        my (undef, $volname) = split(/:/, $volid, 2);
        my (undef, $name) = $class->parse_volname($volname);
        my $info = eval { PVE::Storage::archive_info($name) } // {};
        my $backup_type = $info->{type} // 'unknown';
        next if defined($type) && $type ne $backup_type;

        my $entry = { ctime => $backup->{ctime}, type => $backup_type, volid => $volid };
        $entry->{mark} = 'protected' if $backup->{protected};
        $entry->{vmid} = $backup->{vmid} if $backup->{vmid};
        my $trusted = $backup->{verification} || $pending{$volid};
        if ($info->{is_std_name} && !$trusted && !$entry->{mark}) {
            $entry->{ctime} = $info->{ctime};
            $entry->{mark} = 'renamed';
            $logfunc->('info', "keeping unverified backup '$volid' (not counted by the retention)")
                if !$dryrun;
        } elsif ($info->{is_std_name}) {
            $entry->{ctime} = $info->{ctime};
            push @{ $groups->{"$backup_type/$info->{vmid}"} }, $entry;
        } else {
            $entry->{mark} //= 'renamed';
        }
        push @$prune_list, $entry;
    }
    PVE::Storage::prune_mark_backup_group($groups->{$_}, $keep) for sort keys %$groups;

    my $failed;
    if (!$dryrun) {
        my @remove = grep { $_->{mark} eq 'remove' } @$prune_list;
        for my $entry (@remove) {
            $logfunc->('info', "removing backup '$entry->{volid}'");
        }
        my @volnames = map { (split(/:/, $_->{volid}, 2))[1] } @remove;
        if (@volnames) {
            my ($res, $err) = host_try(
                $storeid, $scfg, 'delete', { volnames => \@volnames },
                notes => sub { $logfunc->('info', $_[0]) },
            );
            if ($err) {
                $logfunc->('err', "error when removing backups - $err->{message}");
                $failed = 1;
            } else {
                my $held = { map { $_->{volname} => $_->{reason} } @{$res->{locked} // []} };
                for my $volname (@volnames) {
                    if (defined(my $reason = $held->{$volname})) {
                        $logfunc->('warn', "kept backup '$storeid:$volname': $reason");
                        next;
                    }
                    $class->remove_local($scfg, $volname);
                }
            }
        }
    }
    die "error pruning backups - check log\n" if $failed;
    return $prune_list;
}

# --- getting local files into the bucket (DESIGN.md §6) ------------------------------------

# Synchronous: used by tools and tests; the background path below runs the same op detached.
sub sync_local {
    my ($class, $storeid, $scfg, %args) = @_;
    my $req = {};
    $req->{quiet_seconds} = int($args{quiet_seconds}) if defined($args{quiet_seconds});
    $req->{dryrun} = JSON::PP::true if $args{dryrun};
    return host_call($storeid, $scfg, 'sync-local', $req);
}

# Uploads one local file with its local sidecars (what the vzdump hook does at backup-end). The
# host finds the sidecars (.notes, .protected, the vzdump log) and refuses to replace an object
# already in the bucket unless `replace` is given (never a protected backup).
sub upload_local_volume {
    my ($class, $storeid, $scfg, $volname, %opts) = @_;

    my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
    die "volume '$storeid:$volname' has no local file '$path'\n" if !-f $path;
    my $args = { volname => $volname, src => $path, sidecars => JSON::PP::true };
    $args->{replace} = JSON::PP::true if $opts{replace};
    my $remove = $opts{remove_source} // ($vtype eq 'backup' && !$scfg->{keep_local});
    $args->{remove_source} = $remove ? JSON::PP::true : JSON::PP::false;
    return host_call($storeid, $scfg, 'upload', $args);
}

sub stamp_due {
    my ($scfg, $name, $interval) = @_;
    my $file = state_dir($scfg) . "/$name.stamp";
    my @st = stat($file);
    return 0 if @st && time() - $st[9] < $interval && $st[9] <= time();
    my $fh = IO::File->new($file, O_RDWR | O_CREAT, 0600) or return 0;
    close($fh);
    utime(undef, undef, $file);
    return 1;
}

# Called from status (pvestatd, every 10 s): rate-limited, never blocks for network work.
sub background_maintenance {
    my ($class, $storeid, $scfg) = @_;

    return if ($ENV{PVE_S3_AUTOSYNC} // '1') eq '0';
    return if !$scfg->{path} || !-d state_dir($scfg);

    if (stamp_due($scfg, 'evict', $EVICT_INTERVAL)) {
        eval { $class->evict_cache($storeid, $scfg) };
        warn "pve-s3: cache eviction for '$storeid' failed: $@" if $@;
    }
    # only files sync-local would take now: quiet for the host's syncQuietSeconds
    my $pending = $class->pending_local($scfg, [sort keys %$CONTENT_SUBDIR], $RULES->{syncQuietSeconds});
    if (@$pending && stamp_due($scfg, 'sync', $SYNC_INTERVAL)) {
        $class->spawn_detached($storeid, $scfg, 'sync-local');
    }
    if ($scfg->{content}->{snippets} && stamp_due($scfg, 'snippets', $SNIPPET_INTERVAL)) {
        $class->spawn_detached($storeid, $scfg, 'snippets');
    }
    # Multipart uploads a killed writer left behind cost storage until aborted, and not every
    # bucket has the lifecycle rule that would do it.
    if (stamp_due($scfg, 'abort-stale', $ABORT_STALE_INTERVAL)) {
        $class->spawn_detached($storeid, $scfg, 'abort-stale-uploads');
    }
}

# Local files that should have reached the bucket long ago (a failing sync, a bucket away): said
# from status, so pvestatd puts it in the system log, at most every $WAITING_WARN seconds, with
# the background sync's last error for the oldest one (the host keeps it in sync-state.json).
sub warn_waiting_files {
    my ($class, $storeid, $scfg) = @_;

    return if !$scfg->{path} || !-d state_dir($scfg);
    my $waiting = $class->pending_local($scfg, [sort keys %$CONTENT_SUBDIR], $WAITING_WARN);
    return if !@$waiting || !stamp_due($scfg, 'waiting-warning', $WAITING_WARN);

    my $now = time();
    my ($oldest, $age);
    for my $vol (@$waiting) {
        my @st = stat($class->get_subdir($scfg, $vol->{content}) . '/' . (split(m|/|, $vol->{volname}, 2))[1]);
        next if !@st || (defined($age) && $now - $st[9] <= $age);
        ($oldest, $age) = ($vol->{volname}, $now - $st[9]);
    }
    return if !defined($oldest);
    my $state = eval { $json->decode(file_get_contents(state_dir($scfg) . '/sync-state.json')) };
    my $last = ref($state) eq 'HASH' && ref($state->{files}) eq 'HASH' ? $state->{files}->{$oldest} : undef;
    my $why = !ref($last) ? 'no background sync has tried it yet'
        : $last->{result} eq 'error' ? "last sync failed: $last->{reason}"
        : "last sync: $last->{result}" . ($last->{reason} ? " ($last->{reason})" : '');
    $why =~ s/[\x00-\x1f\x7f]/?/g;
    warn sprintf("storage '%s': %d local file(s) not uploaded to the bucket for more than %d minutes "
        . "(oldest: %s, %d min; %s) - see 'pve-s3-maintenance --storage %s --action status'\n",
        $storeid, scalar(@$waiting), $WAITING_WARN / 60, $oldest, $age / 60, $why, $storeid);
}

# Guest hookscripts are only ever resolved with path() (no activation), so snippets from the
# bucket must already be on disk: fetch the missing or changed ones in the background. Only
# verified ones: a snippet anyone with write access to the bucket planted would run as root.
sub prefetch_snippets {
    my ($class, $storeid, $scfg) = @_;

    my ($res, $err) = host_try($storeid, $scfg, 'list', { content => ['snippets'] });
    return if $err;
    my @fetched;
    for my $vol (@{ $res->{volumes} // [] }) {
        my $volname = $vol->{volname} // next;
        next if !$vol->{verified};
        next if !eval { $class->parse_volname($volname); 1 };
        my ($path, undef, $vtype) = $class->filesystem_path($scfg, $volname);
        my (undef, $name) = $class->parse_volname($volname);
        my ($state, undef, $rec) = local_state($scfg, $vtype, $name, $path);
        next if $state eq 'pending';
        next if $state eq 'cached' && ($rec->{etag} // '') eq ($vol->{etag} // '');
        eval {
            if ($state eq 'missing') {
                $class->activate_volume($storeid, $scfg, $volname, undef, {});
            } else {
                # Changed in the bucket: the host renames the new copy over the old one, so a
                # guest starting meanwhile finds one or the other, never nothing.
                with_volume_lock($scfg, $vtype, $name, sub {
                    my $r = host_call($storeid, $scfg, 'download',
                        { volname => $volname, dest => $path, force => JSON::PP::true });
                    ensure_record($scfg, $vtype, $name, $path, $r->{etag});
                    chmod(0755, $path);
                });
            }
        };
        push @fetched, $volname if !$@;
    }
    return \@fetched;
}

# What a detached job runs, in a fresh perl: see spawn_detached.
sub run_background_job {
    my ($class, $job, $storeid, $scfg) = @_;

    if ($job eq 'sync-local') {
        # The host logs each file's outcome and keeps the last one in the state dir.
        host_try($storeid, $scfg, 'sync-local', {});
    } elsif ($job eq 'snippets') {
        $class->prefetch_snippets($storeid, $scfg);
    } elsif ($job eq 'abort-stale-uploads') {
        # older than the storage's abort_incomplete_days: the host applies its default
        host_try($storeid, $scfg, 'abort-stale-uploads', {});
    } else {
        die "unknown background job '$job'\n";
    }
}

# The program a detached job execs. Its first act, before this new interpreter opens anything,
# closes every descriptor above stderr that the exec did not (the caller's non-close-on-exec
# ones): nothing in it owns them yet, so nothing is closed behind PerlIO's back.
my $JOB_PROGRAM = <<'JOB';
BEGIN { require POSIX; POSIX::close($_) for 3 .. 1023 }
use strict;
use warnings;
my $req = do { local $/; <STDIN> };
open(STDIN, '<', '/dev/null');
require JSON::PP;
$req = JSON::PP->new->utf8->decode($req);
$0 = "pve-s3 $req->{job} $req->{storeid}";
require PVE::Storage;
require PVE::Storage::Custom::S3Plugin;
PVE::Storage::Custom::S3Plugin->run_background_job($req->{job}, $req->{storeid}, $req->{scfg});
JOB

# Starts a job ('sync-local', 'snippets', 'abort-stale-uploads') that outlives the caller (pvestatd, a pvedaemon
# worker) and holds none of its descriptors (sockets, its pid-file lock): the grandchild execs a
# fresh perl at once, which gets the job on its stdin. Closing the inherited descriptors with
# POSIX::close in the forked perl instead broke every later pipe: PerlIO still counted its own
# handles on those numbers, so when run_command's stdin pipe reused one, `close $writer` did not
# close it and the host never saw the end of its request (it waited until the op's timeout).
sub spawn_detached {
    my ($class, $storeid, $scfg, $job) = @_;

    my $req = $json->encode({ job => $job, storeid => "$storeid", scfg => $scfg });
    my $perl = $^X =~ m|^(/[\w./+-]+)$| ? $1 : '/usr/bin/perl';
    # The same modules as the caller (on a node the default @INC; in tests the harness's).
    my $lib = join(':', map { m|^(/[^:]+)$| ? $1 : () } grep { !ref($_) } @INC);

    my $pid = fork() // die "fork failed: $!\n";
    if ($pid) {
        waitpid($pid, 0);
        return;
    }
    # Child: a second fork so the grandchild is reparented and the caller never waits for it.
    eval {
        POSIX::setsid();
        pipe(my $rd, my $wr) or die "pipe failed: $!\n";
        my $grandchild = fork();
        if (!defined($grandchild) || $grandchild) {
            close($rd);
            print $wr $req if defined($grandchild);
            close($wr);
            POSIX::_exit(0);
        }
        close($wr);
        open(STDIN, '<&', $rd) or die "dup failed: $!\n";
        open(STDOUT, '>', '/dev/null');
        open(STDERR, '>', '/dev/null');
        $ENV{PERL5LIB} = $lib;
        exec($perl, '-e', $JOB_PROGRAM);
    };
    POSIX::_exit(1);
}

sub open_files {
    my %open;
    opendir(my $proc, '/proc') or return \%open;
    for my $pid (grep { m/^\d+$/ } readdir($proc)) {
        opendir(my $fds, "/proc/$pid/fd") or next;
        for my $fd (grep { m/^\d+$/ } readdir($fds)) {
            my $target = readlink("/proc/$pid/fd/$fd");
            $open{$target} = 1 if defined($target);
        }
        closedir($fds);
    }
    closedir($proc);
    return \%open;
}

# Eviction policy (perl/README.md): only cached copies (a matching cache record) of backups,
# ISOs and templates, never pending files or snippets, never a file open in any process.
# 1. Age: unused (by activate_volume) for longer than cache_max_age days, or when that is not
#    set, $EVICT_AGE per content type; cache_max_age 0 disables eviction by age.
# 2. Size: with cache_max_size (GiB) > 0, least recently used copies go until the cached copies
#    fit the budget.
sub evict_cache {
    my ($class, $storeid, $scfg, $now) = @_;

    $now //= time();
    my @cached;
    for my $vtype (sort keys %$EVICT_AGE) {
        my $dir = eval { $class->get_subdir($scfg, $vtype) } or next;
        opendir(my $dh, $dir) or next;
        for my $name (sort readdir($dh)) {
            next if $name =~ m/^\./;
            my $path = "$dir/$name";
            next if !-f $path || !eval { $class->parse_volname("$vtype/$name"); 1 };
            my ($state, $st) = local_state($scfg, $vtype, $name, $path);
            next if $state ne 'cached';
            my @rst = stat(record_file($scfg, $vtype, $name));
            next if !@rst;
            push @cached, { vtype => $vtype, name => $name, path => $path, size => $st->[7], used => $rst[9] };
        }
        closedir($dh);
    }
    @cached = sort { $a->{used} <=> $b->{used} || $a->{path} cmp $b->{path} } @cached;

    my $open;
    my @evicted;
    my $evict = sub {
        my ($c) = @_;
        $open //= open_files();
        return 0 if $open->{ $c->{path} };
        # An activation in progress (it holds the volume lock between checking the copy and
        # handing its path to PVE) or one since this scan (it touched the record) keeps the copy.
        my $lock = eval { lock_volume($scfg, $c->{vtype}, $c->{name}, 1) } // return 0;
        my $gone = eval {
            my @rst = stat(record_file($scfg, $c->{vtype}, $c->{name}));
            return 0 if !@rst || $rst[9] != $c->{used};
            unlink($c->{path}) or return 0;
            unlink(record_file($scfg, $c->{vtype}, $c->{name}));
            return 1;
        };
        unlock_volume($lock);
        return 0 if !$gone;
        push @evicted, "$c->{vtype}/$c->{name}";
        $c->{gone} = 1;
        return 1;
    };

    for my $c (@cached) {
        my $limit = defined($scfg->{cache_max_age})
            ? $scfg->{cache_max_age} * 86400
            : $EVICT_AGE->{ $c->{vtype} };
        $evict->($c) if $limit > 0 && $now - $c->{used} >= $limit;
    }
    my $budget = ($scfg->{cache_max_size} // 0) * 1024 * 1024 * 1024;
    if ($budget > 0) {
        my $total = 0;
        $total += $_->{size} for grep { !$_->{gone} } @cached;
        for my $c (grep { !$_->{gone} } @cached) {
            last if $total <= $budget;
            $total -= $c->{size} if $evict->($c);
        }
    }
    return \@evicted;
}

# API 14: what this storage is, across nodes and storage IDs: the same bucket and prefix at the
# same endpoint is the same storage. Nothing secret.
sub get_identity {
    my ($class, $scfg, $storeid) = @_;
    my $endpoint = lc($scfg->{endpoint} // '');
    $endpoint =~ s|/+$||;
    $endpoint = (($scfg->{use_ssl} // 1) ? 'https' : 'http') . "://$endpoint" if $endpoint !~ m|^https?://|;
    return "s3:$endpoint/" . ($scfg->{bucket} // '') . '/' . ($scfg->{prefix} // '');
}

# --- image operations: this storage holds no disks -----------------------------------------

sub refuse {
    my ($what) = @_;
    die "storage type 's3' does not support $what (it holds backups, ISO images, container "
        . "templates and snippets only)\n";
}

sub alloc_image { refuse('disk images') }
sub clone_image { refuse('cloning disk images') }
sub create_base { refuse('base images') }
sub rename_volume { refuse('renaming volumes') }
sub rename_snapshot { refuse('snapshots') }
sub volume_resize { refuse('resizing volumes') }
sub volume_snapshot { refuse('snapshots') }
sub volume_snapshot_rollback { refuse('snapshots') }
sub volume_snapshot_delete { refuse('snapshots') }
sub volume_rollback_is_possible { refuse('snapshots') }
sub volume_snapshot_info { refuse('snapshots') }

sub volume_has_feature {
    my ($class, $scfg, $feature, $storeid, $volname, $snapname, $running, $opts) = @_;
    return undef;
}

sub volume_export_formats {
    return ();
}

sub volume_import_formats {
    return ();
}

1;
