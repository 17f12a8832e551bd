package PVE::Storage;

# Clean-room test double of PVE::Storage (reference/pve-storage-api.md §12.2): the API version
# constants, the regex variables, the wrappers the core puts around plugin methods, archive_info
# and PVE's prune marking. It does not scan a Custom directory; load_custom_plugin() emulates
# the loader's checks for one module on request.

use strict;
use warnings;

use File::Basename;
use POSIX qw(strftime);
use Time::Local qw(timelocal);

use PVE::JSONSchema;
use PVE::Tools;
use PVE::Storage::Plugin;
use PVE::Cluster;

our $APIVER = 15;
our $APIAGE = 6;

sub APIVER { return $APIVER }
sub APIAGE { return $APIAGE }

# Tests select a release: '8.4' → 11/2, '9.0' → 12/3, '9.1' → 13/4, '14' → 14/5, '9' → 15/6.
sub set_api {
    my ($ver, $age) = @_;
    ($APIVER, $APIAGE) = ($ver, $age);
}

our ($ISO_EXT_RE_0, $VZTMPL_EXT_RE_1, $BACKUP_EXT_RE_2, $SAFE_CHAR_CLASS_RE,
    $SAFE_CHAR_WITH_WHITESPACE_CLASS_RE, $IMPORT_EXT_RE_1);

# Upstream assigns these only after init(); a plugin that uses them at file scope sees undef.
sub init_regexes {
    $ISO_EXT_RE_0 = qr/\.(?:iso|img)/i;
    $VZTMPL_EXT_RE_1 = qr/\.(?|(tar)(?!\.)|tar\.(gz|xz|zst|bz2))/i;
    my $comp = PVE::Storage::Plugin::COMPRESSOR_RE;
    $BACKUP_EXT_RE_2 = qr/\.(tgz|(?:tar|vma)(?:\.($comp))?)/;
    $SAFE_CHAR_CLASS_RE = qr/[a-zA-Z0-9\-\.\+\=\_]/;
    $SAFE_CHAR_WITH_WHITESPACE_CLASS_RE = qr/[ a-zA-Z0-9\-\.\+\=\_]/;
    $IMPORT_EXT_RE_1 = qr/\.(ova|ovf|qcow2|raw|vmdk)/;
}

sub clear_regexes {
    ($ISO_EXT_RE_0, $VZTMPL_EXT_RE_1, $BACKUP_EXT_RE_2, $SAFE_CHAR_CLASS_RE,
        $SAFE_CHAR_WITH_WHITESPACE_CLASS_RE, $IMPORT_EXT_RE_1) = ();
}

# Emulates the loader (§2.1 step 3) for one module, in production order: regexes undef while
# the plugin file is required, init() afterwards. Returns undef on success or the warning text.
sub load_custom_plugin {
    my ($module) = @_;
    clear_regexes();
    my $msg;
    eval {
        (my $file = "$module.pm") =~ s|::|/|g;
        require $file;
        die "not derived from PVE::Storage::Plugin\n" if !$module->isa('PVE::Storage::Plugin');
        die "does not provide an api() method\n" if !$module->can('api');
        my $api = $module->api();
        my $min = APIVER() - APIAGE();
        die "API version $api is newer than current (" . APIVER() . ")\n" if $api > APIVER();
        die "API version $api is too old (minimum $min)\n" if $api < $min;
        $module->register();
        $msg = "Plugin \"$module\" is implementing an older storage API\n" if $api != APIVER();
    };
    if (my $err = $@) {
        init_regexes();
        return "Error loading storage plugin \"$module\": $err";
    }
    init_regexes();
    return $msg;
}

init_regexes();

# --- configuration --------------------------------------------------------------------------

# Unit tests hand a configuration in here; when it is unset, storage.cfg is read through
# PVE::Cluster like upstream's config() / write_config() / lock_storage_config().
our $CONFIG;

sub config {
    return $CONFIG if defined($CONFIG);
    return PVE::Cluster::cfs_read_file('storage.cfg');
}

sub write_config {
    my ($cfg) = @_;
    PVE::Cluster::cfs_write_file('storage.cfg', $cfg);
}

# Upstream's cfs_lock_file reports failure in $@ instead of dying; lock_storage_config turns it
# into a die, prefixed with $errmsg.
sub lock_storage_config {
    my ($code, $errmsg) = @_;
    PVE::Cluster::cfs_lock_file('storage.cfg', undef, $code);
    if (my $err = $@) {
        $errmsg ? die "$errmsg: $err" : die $err;
    }
}

sub storage_config {
    my ($cfg, $storeid, $noerr) = @_;
    die "no storage ID specified\n" if !$storeid;
    my $scfg = $cfg->{ids}->{$storeid};
    die "storage '$storeid' does not exist\n" if !$noerr && !$scfg;
    return $scfg;
}

sub storage_check_node {
    my ($cfg, $storeid, $node, $noerr) = @_;
    my $scfg = storage_config($cfg, $storeid);
    if ($scfg->{nodes} && $node && !$scfg->{nodes}->{$node}) {
        return undef if $noerr;
        die "storage '$storeid' is not available on node '$node'\n";
    }
    return $scfg;
}

sub storage_check_enabled {
    my ($cfg, $storeid, $node, $noerr) = @_;
    my $scfg = storage_config($cfg, $storeid);
    if ($scfg->{disable}) {
        return undef if $noerr;
        die "storage '$storeid' is disabled\n";
    }
    return storage_check_node($cfg, $storeid, $node, $noerr);
}

sub plugin_of {
    my ($scfg) = @_;
    return PVE::Storage::Plugin->lookup($scfg->{type});
}

sub parse_volume_id {
    return PVE::Storage::Plugin::parse_volume_id(@_);
}

sub parse_volname {
    my ($cfg, $volid) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->parse_volname($volname);
}

sub path {
    my ($cfg, $volid, $snapname) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    my ($path, $owner, $vtype) = plugin_of($scfg)->path($scfg, $volname, $storeid, $snapname);
    return wantarray ? ($path, $owner, $vtype) : $path;
}

sub storage_has_feature {
    my ($cfg, $storeid, $feature) = @_;
    my $scfg = storage_config($cfg, $storeid);
    return PVE::Storage::Plugin::storage_has_feature($scfg->{type}, $feature);
}

sub get_backup_dir {
    my ($cfg, $storeid) = @_;
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->get_subdir($scfg, 'backup');
}

sub get_iso_dir {
    my ($cfg, $storeid) = @_;
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->get_subdir($scfg, 'iso');
}

sub get_vztmpl_dir {
    my ($cfg, $storeid) = @_;
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->get_subdir($scfg, 'vztmpl');
}

# --- activation -----------------------------------------------------------------------------

sub activate_storage {
    my ($cfg, $storeid, $cache) = @_;
    $cache //= {};
    my $scfg = storage_check_enabled($cfg, $storeid);
    return if $cache->{activated}->{$storeid};
    my $plugin = plugin_of($scfg);
    my $online = eval { $plugin->check_connection($storeid, $scfg) };
    if (my $err = $@) {
        die "connection check for storage '$storeid' failed - $err";
    }
    die "storage '$storeid' is not online\n" if !$online;
    $plugin->activate_storage($storeid, $scfg, $cache);
    $cache->{activated}->{$storeid} = 1;
}

sub activate_volumes {
    my ($cfg, $vollist, $snapname, $hints) = @_;
    my $cache = {};
    my %storages;
    for my $volid (@$vollist) {
        my ($storeid) = parse_volume_id($volid);
        $storages{$storeid} = 1;
    }
    activate_storage($cfg, $_, $cache) for sort keys %storages;
    for my $volid (@$vollist) {
        my ($storeid, $volname) = parse_volume_id($volid);
        my $scfg = storage_config($cfg, $storeid);
        plugin_of($scfg)->activate_volume($storeid, $scfg, $volname, $snapname, $cache, $hints);
    }
}

sub deactivate_volumes {
    my ($cfg, $vollist, $snapname) = @_;
    my @errors;
    for my $volid (@$vollist) {
        eval {
            my ($storeid, $volname) = parse_volume_id($volid);
            my $scfg = storage_config($cfg, $storeid);
            plugin_of($scfg)->deactivate_volume($storeid, $scfg, $volname, $snapname, {});
        };
        if (my $err = $@) {
            warn $err;
            push @errors, $volid;
        }
    }
    die "volume deactivation failed: " . join(' ', @errors) . "\n" if @errors;
}

sub abs_filesystem_path {
    my ($cfg, $volid, $allow_blockdev) = @_;
    activate_volumes($cfg, [$volid]);
    my $path = path($cfg, $volid);
    return $path if -f $path || ($allow_blockdev && -b $path);
    die "can't find file '$volid'\n";
}

# --- listing, deletion, attributes ----------------------------------------------------------

sub volume_list {
    my ($cfg, $storeid, $vmid, $content) = @_;
    my $scfg = storage_config($cfg, $storeid);
    my @ctypes = qw(rootdir images vztmpl iso backup snippets import);
    my $cts = $content ? [$content] : [@ctypes];
    $cts = [grep { defined($scfg->{content}->{$_}) } @$cts];
    return [] if !@$cts;
    activate_storage($cfg, $storeid);
    my $res = plugin_of($scfg)->list_volumes($storeid, $scfg, $vmid, $cts);
    return [sort { lc($a->{volid}) cmp lc($b->{volid}) } @$res];
}

sub vdisk_free {
    my ($cfg, $volid) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    my $plugin = plugin_of($scfg);
    activate_storage($cfg, $storeid);
    my $cleanup = $plugin->cluster_lock_storage($storeid, $scfg->{shared}, undef, sub {
        my (undef, undef, undef, undef, undef, $isBase, $format) = $plugin->parse_volname($volname);
        return $plugin->free_image($storeid, $scfg, $volname, $isBase, $format);
    });
    $cleanup->() if ref($cleanup) eq 'CODE';
}

sub get_volume_attribute {
    my ($cfg, $volid, $attribute) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->get_volume_attribute($scfg, $storeid, $volname, $attribute);
}

our $PRIVILEGED = 1;

sub get_max_protected_backups {
    my ($scfg, $storeid) = @_;
    return $scfg->{'max-protected-backups'} if defined($scfg->{'max-protected-backups'});
    return $PRIVILEGED ? -1 : 5;
}

sub update_volume_attribute {
    my ($cfg, $volid, $attribute, $value) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    my $plugin = plugin_of($scfg);
    my ($vtype, undef, $vmid) = $plugin->parse_volname($volname);
    my $max = get_max_protected_backups($scfg, $storeid);

    # Like PVE: only backups with a vmid (standard names) are counted. As upstream
    # update_volume_attribute, the current flag is asked for before the limit is looked at, so
    # even an unlimited (root) vzdump --protected reads the attribute first (seen inside the real
    # code: with the limit checked first, this double hid that read failing in an outage).
    if ($vtype eq 'backup' && $vmid && $attribute eq 'protected' && $value
        && !$plugin->get_volume_attribute($scfg, $storeid, $volname, 'protected') && $max > -1) {
        my $backups = $plugin->list_volumes($storeid, $scfg, $vmid, ['backup']);
        my ($backup) = grep { $_->{volid} eq $volid } @$backups;
        my $subtype = $backup ? $backup->{subtype} : undef;
        my $count = grep { $_->{protected} && (!defined($subtype) || ($_->{subtype} // '') eq $subtype) } @$backups;
        die "The number of protected backups per guest is limited to $max on storage '$storeid'\n"
            if $count >= $max;
    }
    return $plugin->update_volume_attribute($scfg, $storeid, $volname, $attribute, $value);
}

# As upstream volume_size_info for a storage volume (the GUI's volume details, vzdump, restores):
# the plugin answers, with the caller's timeout.
sub volume_size_info {
    my ($cfg, $volid, $timeout) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->volume_size_info($scfg, $storeid, $volname, $timeout);
}

# As upstream storage_info (pvestatd's loop): with $content, only enabled storages holding one
# of those types are listed; each enabled one is activated (a failure is warned, not fatal),
# then asked for its status; an inactive one keeps zeros.
sub storage_info {
    my ($cfg, $content) = @_;
    my @ctypes = PVE::Tools::split_list($content);
    my $info = {};
    my $cache = {};
    for my $storeid (sort keys %{ $cfg->{ids} }) {
        my $scfg = $cfg->{ids}->{$storeid};
        my $enabled = !$scfg->{disable};
        next if defined($content) && (!$enabled || !grep { $scfg->{content}->{$_} } @ctypes);
        my $entry = {
            type => $scfg->{type},
            shared => $scfg->{shared} ? 1 : 0,
            content => PVE::Storage::Plugin::content_hash_to_string($scfg->{content} // {}),
            enabled => $enabled ? 1 : 0,
            total => 0, used => 0, avail => 0, active => 0,
        };
        $info->{$storeid} = $entry;
        next if !$enabled;
        eval { activate_storage($cfg, $storeid, $cache) };
        if (my $err = $@) {
            warn $err;
            next;
        }
        my ($total, $avail, $used, $active) = eval {
            plugin_of($scfg)->status($storeid, $scfg, $cache);
        };
        warn $@ if $@;
        next if !$active;
        @$entry{qw(total avail used active)} = (int($total), int($avail), int($used), $active);
    }
    return $info;
}

# --- backups --------------------------------------------------------------------------------

sub decompressor_info {
    my ($format, $comp) = @_;
    if ($format eq 'tgz' && !defined($comp)) {
        ($format, $comp) = ('tar', 'gz');
    }
    my $table = {
        tar => {
            gz => ['tar', '-z'],
            lzo => ['tar', '--lzop'],
            zst => ['tar', '--zstd'],
            bz2 => ['tar', '--bzip2'],
        },
        vma => {
            gz => ['zcat'],
            lzo => ['lzop', '-d', '-c'],
            zst => ['zstd', '-q', '-d', '-c'],
            bz2 => ['bzcat', '-q'],
        },
    };
    die "ERROR: archive format not defined\n" if !defined($table->{$format});
    my $decomp;
    $decomp = $table->{$format}->{$comp} if $comp;
    return { format => $format, compression => $comp, decompressor => $decomp };
}

sub archive_info {
    my ($archive) = @_;
    my $name = basename($archive);
    my $re = $BACKUP_EXT_RE_2;
    if ($name =~ m/^(vzdump-(lxc|openvz|qemu)-.+$re)$/) {
        my ($filename, $type, $ext, $comp) = ($1, $2, $3, $4);
        my ($format) = $ext =~ m/^(tgz|tar|vma)/;
        my $info = decompressor_info($format, $comp);
        $info->{filename} = $filename;
        $info->{type} = $type;
        if ($name =~ m/^(vzdump-\Q$type\E-([1-9][0-9]{2,8})-(\d{4})_(\d{2})_(\d{2})-(\d{2})_(\d{2})_(\d{2}))\.\Q$ext\E$/) {
            $info->{logfilename} = $1 . PVE::Storage::Plugin::LOG_EXT;
            $info->{notesfilename} = $filename . PVE::Storage::Plugin::NOTES_EXT;
            $info->{vmid} = int($2);
            $info->{ctime} = timelocal($8, $7, $6, $5, $4 - 1, $3);
            $info->{is_std_name} = 1;
        } else {
            $info->{is_std_name} = 0;
        }
        return $info;
    }
    die "ERROR: couldn't determine archive info from '$archive'\n";
}

sub protection_file_path {
    my ($path) = @_;
    return "$path.protected";
}

sub archive_remove {
    my ($archive_path) = @_;
    die "cannot remove protected archive '$archive_path'\n" if -e protection_file_path($archive_path);
    unlink($archive_path) or die "removing archive $archive_path failed: $!\n";
    my $info = eval { archive_info($archive_path) } // {};
    my $dir = dirname($archive_path);
    unlink("$dir/$info->{logfilename}") if $info->{logfilename};
    unlink("$dir/$info->{notesfilename}") if $info->{notesfilename};
}

# Marks one pass of a keep-* option: newest first, N distinct period ids.
my $mark_pass = sub {
    my ($entries, $count, $id_of) = @_;
    return if !$count;
    my (%held, %chosen);
    for my $e (@$entries) {
        $held{ $id_of->($e->{ctime}) } = 1 if defined($e->{mark}) && $e->{mark} eq 'keep';
    }
    for my $e (@$entries) {
        my $id = $id_of->($e->{ctime});
        next if defined($e->{mark}) || $held{$id};
        if (!$chosen{$id}) {
            last if scalar(keys %chosen) >= $count;
            $chosen{$id} = 1;
            $e->{mark} = 'keep';
        } else {
            $e->{mark} = 'remove';
        }
    }
};

sub prune_mark_backup_group {
    my ($group, $keep) = @_;

    my @positive = grep { $_ ne 'keep-all' && $keep->{$_} > 0 } keys %$keep;
    if ($keep->{'keep-all'} || !@positive) {
        for my $e (@$group) {
            next if $e->{mark} && $e->{mark} ne 'remove';
            $e->{mark} = 'keep';
        }
        return;
    }
    my $sorted = [sort { $b->{ctime} <=> $a->{ctime} } @$group];
    my $fmt = sub {
        my ($f) = @_;
        return sub { strftime($f, localtime($_[0])) };
    };
    $mark_pass->($sorted, $keep->{'keep-last'}, sub { $_[0] });
    $mark_pass->($sorted, $keep->{'keep-hourly'}, $fmt->('%H/%j/%Y'));
    $mark_pass->($sorted, $keep->{'keep-daily'}, $fmt->('%j/%Y'));
    $mark_pass->($sorted, $keep->{'keep-weekly'}, $fmt->('%V/%G'));
    $mark_pass->($sorted, $keep->{'keep-monthly'}, $fmt->('%m/%Y'));
    $mark_pass->($sorted, $keep->{'keep-yearly'}, $fmt->('%Y'));
    $_->{mark} //= 'remove' for @$sorted;
    return;
}

sub new_backup_provider {
    my ($cfg, $storeid, $log_function) = @_;
    my $scfg = storage_config($cfg, $storeid);
    return plugin_of($scfg)->new_backup_provider($scfg, $storeid, $log_function);
}

sub file_size_info {
    my ($filename, $timeout, $file_format, $untrusted) = @_;
    return PVE::Storage::Plugin::file_size_info($filename, $timeout, $file_format, $untrusted);
}

# As upstream extract_vzdump_config: a storage type with the backup-provider feature is asked
# through its provider (archive_get_guest_config); for archives on a file storage the archive is
# activated (abs_filesystem_path) and the guest config read with tar; VMA needs the vma tool,
# which is not in Debian, so it is refused here.
sub extract_vzdump_config {
    my ($cfg, $volid) = @_;
    my ($storeid, $volname) = parse_volume_id($volid);
    if (defined($storeid) && storage_has_feature($cfg, $storeid, 'backup-provider')) {
        my $scfg = storage_config($cfg, $storeid);
        my $log = sub { print(($_[0] eq 'err' ? 'ERROR' : uc($_[0])) . ": $_[1]\n") };
        return plugin_of($scfg)->new_backup_provider($scfg, $storeid, $log)->archive_get_guest_config($volname, $storeid);
    }
    my $archive = abs_filesystem_path($cfg, $volid);
    my $info = archive_info($archive);
    my $re;
    if ($info->{type} eq 'lxc' || $info->{type} eq 'openvz') {
        $re = qr!^(\./etc/vzdump/(?:pct|vps)\.conf)$!;
    } elsif ($info->{format} eq 'tar') {
        $re = qr!^(\./qemu-server\.conf)$!;
    } else {
        die "test double: extracting the config of a VMA archive needs the vma tool\n";
    }
    my $file;
    PVE::Tools::run_command(['tar', 'tf', $archive], outfunc => sub { $file //= $1 if $_[0] =~ $re });
    die "ERROR: archive contains no configuration file\n" if !$file;
    my $raw = '';
    PVE::Tools::run_command(['tar', '-xpOf', $archive, $file, '--occurrence'], outfunc => sub { $raw .= "$_[0]\n" });
    return wantarray ? ($raw, $file) : $raw;
}

sub prune_backups {
    my ($cfg, $storeid, $keep, $vmid, $type, $dryrun, $logfunc) = @_;
    my $scfg = storage_config($cfg, $storeid);
    die "storage '$storeid' does not support backups\n" if !$scfg->{content}->{backup};
    if (!defined($keep)) {
        die "no prune-backups options configured for storage '$storeid'\n"
            if !defined($scfg->{'prune-backups'});
        $keep = PVE::JSONSchema::parse_property_string('prune-backups', $scfg->{'prune-backups'});
    }
    activate_storage($cfg, $storeid);
    return plugin_of($scfg)->prune_backups($scfg, $storeid, $keep, $vmid, $type, $dryrun, $logfunc);
}

1;
