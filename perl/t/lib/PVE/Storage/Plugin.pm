package PVE::Storage::Plugin;

# Clean-room test double of PVE's storage plugin base class (with the SectionConfig parts it
# inherits upstream), written from reference/pve-storage-api.md §3, §5, §6 and §12.1. Nothing
# here is copied from Proxmox code. The global property namespace of PVE 8.4 or 9.x is seeded
# by stand-in in-tree plugins so init() reproduces the real duplicate/undefined checks.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path);
use List::Util qw(shuffle);
use POSIX qw(ENOENT);

# PVE::Cluster belongs to another package (pve-cluster): its stand-in is shared with the runs
# inside the real code.
use lib dirname(__FILE__) . '/../../../standin';

use PVE::Cluster qw(cfs_register_file);
use PVE::JSONSchema;
use PVE::Tools;

use constant KNOWN_COMPRESSION_FORMATS => ('gz', 'lzo', 'zst', 'bz2');
use constant COMPRESSOR_RE => join('|', KNOWN_COMPRESSION_FORMATS);
use constant LOG_EXT => '.log';
use constant NOTES_EXT => '.notes';

our @SHARED_STORAGE = qw(iscsi nfs cifs rbd cephfs iscsidirect zfs drbd pbs);

# the flags of every tar PVE runs on a container's files (vzdump, pct restore), as upstream's
our @COMMON_TAR_FLAGS = qw(
    --one-file-system
    -p --sparse --numeric-owner --acls
    --xattrs --xattrs-include=user.* --xattrs-include=security.capability
    --warning=no-file-ignored --warning=no-xattr-write
);

my $vtype_subdirs = {
    images => 'images',
    rootdir => 'private',
    iso => 'template/iso',
    vztmpl => 'template/cache',
    backup => 'dump',
    snippets => 'snippets',
    import => 'import',
};

# --- the global namespace (reference §3.4) --------------------------------------------------

my $str = { type => 'string' };
my $bool = { type => 'boolean' };
my $int = { type => 'integer' };

sub base_property_list {
    my ($flavour) = @_;
    my $props = {
        type => { type => 'string', description => 'Storage type.' },
        storage => PVE::JSONSchema::get_standard_option('pve-storage-id', {}),
        nodes => { type => 'string', description => 'List of nodes.', optional => 1 },
        content => { type => 'string', description => 'Allowed content types.', optional => 1 },
        disable => { %$bool, optional => 1 },
        'prune-backups' => PVE::JSONSchema::get_standard_option('prune-backups', {}),
        'max-protected-backups' => { type => 'integer', minimum => -1, optional => 1 },
        shared => { %$bool, optional => 1 },
        subdir => { %$str, optional => 1 },
        format => { %$str, optional => 1 },
        preallocation => { %$str, optional => 1 },
        'content-dirs' => { %$str, optional => 1 },
        options => { %$str, optional => 1 },
        port => { type => 'integer', minimum => 1, maximum => 65535, optional => 1 },
    };
    if ($flavour eq '8.4') {
        $props->{maxfiles} = { type => 'integer', minimum => 0, optional => 1 };
    } else {
        $props->{'snapshot-as-volume-chain'} = { %$bool, optional => 1 };
    }
    return $props;
}

sub in_tree_properties {
    my ($flavour) = @_;
    my $groups = {
        dir => {
            path => { type => 'string', format => 'pve-storage-path' },
            mkdir => $bool,
            'create-base-path' => $bool,
            'create-subdirs' => $bool,
            is_mountpoint => $str,
            bwlimit => PVE::JSONSchema::get_standard_option('bwlimit', {}),
        },
        nfs => { server => { type => 'string', format => 'pve-storage-server' }, export => $str },
        cifs => { share => $str, domain => $str, smbversion => $str, password => { %$str, maxLength => 256 } },
        rbd => {
            pool => $str, 'data-pool' => $str, monhost => $str, krbd => $bool, keyring => $str,
            username => $str, namespace => $str, authsupported => $str,
        },
        cephfs => { 'fs-name' => $str, fuse => $bool },
        iscsi => { portal => $str, target => $str },
        btrfs => { nocow => $bool },
        lvm => { vgname => $str, base => $str, saferemove => $bool, saferemove_throughput => $str, tagged_only => $bool },
        lvmthin => { thinpool => $str },
        zfspool => { blocksize => $str, sparse => $bool, mountpoint => $str },
        zfs => {
            iscsiprovider => $str, comstar_hg => $str, comstar_tg => $str, lio_tpg => $str,
            nowritecache => $bool, 'zfs-base-path' => $str,
        },
        pbs => {
            datastore => $str,
            fingerprint => PVE::JSONSchema::get_standard_option('fingerprint-sha256', {}),
            'encryption-key' => $str,
            'master-pubkey' => $str,
        },
        esxi => { 'skip-cert-verification' => $bool },
    };
    if ($flavour eq '8.4') {
        $groups->{glusterfs} = { server2 => $str, transport => $str, volume => $str };
    } else {
        $groups->{lvm}->{'saferemove-stepsize'} = $int;
    }
    return $groups;
}

# The full list of global names of a flavour, for tests that look for redefinitions.
sub global_property_names {
    my ($flavour) = @_;
    my @names = keys %{ base_property_list($flavour) };
    my $groups = in_tree_properties($flavour);
    push @names, keys %{ $groups->{$_} } for keys %$groups;
    return [sort @names];
}

my $pdata;

sub private {
    return $pdata;
}

# Restores a pristine state: base properties plus stand-in in-tree plugins of 8.4 or 9.x.
sub reset_for_tests {
    my ($flavour) = @_;
    $flavour //= '9';
    $pdata = {
        propertyList => base_property_list($flavour),
        options => {},
        plugins => {},
        plugindata => {},
        flavour => $flavour,
    };
    my $groups = in_tree_properties($flavour);
    for my $type (sort keys %$groups) {
        my $class = "PVE::Storage::TestInTree::$type";
        my $props = $groups->{$type};
        no strict 'refs';
        no warnings 'redefine';
        @{"${class}::ISA"} = ('PVE::Storage::Plugin');
        *{"${class}::type"} = sub { $type };
        *{"${class}::plugindata"} = sub { { content => [{ backup => 1, iso => 1, none => 1 }, { backup => 1 }] } };
        *{"${class}::properties"} = sub { return { map { $_ => { %{ $props->{$_} } } } keys %$props } };
        *{"${class}::options"} = sub {
            return {
                (map { $_ => { optional => 1 } } keys %$props),
                content => { optional => 1 },
                nodes => { optional => 1 },
                disable => { optional => 1 },
            };
        };
        $class->register();
    }
    return $pdata;
}

reset_for_tests('9');

# --- SectionConfig part ---------------------------------------------------------------------

sub register {
    my ($class) = @_;
    my $type = $class->type();
    die "duplicate plugin registration (type = $type)" if defined($pdata->{plugins}->{$type});
    $pdata->{plugindata}->{$type} = $class->plugindata();
    $pdata->{plugins}->{$type} = $class;
}

sub plugindata {
    return {};
}

sub properties {
    return {};
}

sub options {
    return {};
}

sub init {
    my ($class) = @_;

    # As pve-common master: restart from a pristine copy of the base list in a new hash, so a
    # second init() works and stale references taken earlier show up in tests.
    my $base = ($pdata->{'base-property-list'} //= { %{ $pdata->{propertyList} } });
    my $list = { map { $_ => { %{ $base->{$_} } } } keys %$base };
    $pdata->{propertyList} = $list;
    $pdata->{options} = {};

    my @types = shuffle(keys %{ $pdata->{plugins} });
    for my $type (@types) {
        my $props = $pdata->{plugins}->{$type}->properties();
        for my $p (keys %$props) {
            die "duplicate property '$p'" if exists($list->{$p});
            my $copy = { %{ $props->{$p} } };
            $copy->{optional} = 1;
            $list->{$p} = $copy;
        }
    }
    for my $type (shuffle(@types)) {
        my $opts = $pdata->{plugins}->{$type}->options();
        for my $p (keys %$opts) {
            die "undefined property '$p'" if !exists($list->{$p});
        }
        $pdata->{options}->{$type} = $opts;
    }
    $list->{type}->{enum} = [sort @types];
}

sub lookup {
    my ($class, $type) = @_;
    my $plugin = $pdata->{plugins}->{$type};
    die "unknown section type '$type'\n" if !$plugin;
    return $plugin;
}

sub lookup_types {
    return [sort keys %{ $pdata->{plugins} }];
}

sub check_value {
    my ($class, $type, $key, $value, $storeid, $skipSchemaCheck) = @_;

    return $value if $key eq 'type' && $type eq $value;
    my $opts = $pdata->{options}->{$type};
    die "unknown section type '$type'\n" if !$opts;
    die "unexpected property '$key'\n" if !defined($opts->{$key});
    my $schema = $pdata->{propertyList}->{$key};
    die "unknown property type\n" if !$schema;

    my $ct = $schema->{type} // 'string';
    $value = 1 if $ct eq 'boolean' && !defined($value);
    die "got undefined value\n" if !defined($value);
    die "property contains a line feed\n" if $value =~ m/[\n\r]/;

    if (!$skipSchemaCheck) {
        my $err = PVE::JSONSchema::check_value($value, $schema);
        die "$err\n" if defined($err);
    }
    return $value + 0 if $ct eq 'boolean' || $ct eq 'integer' || $ct eq 'number';
    return $value;
}

sub decode_value {
    my ($class, $type, $key, $value) = @_;

    my $valid = $pdata->{plugindata}->{$type}->{content}->[0] // {};
    if ($key eq 'content') {
        my $res = {};
        for my $c (PVE::Tools::split_list($value)) {
            if (!$valid->{$c}) {
                warn "storage does not support content type '$c'\n";
                next;
            }
            $res->{$c} = 1;
        }
        die "unable to combine 'none' with other content types\n" if $res->{none} && keys(%$res) > 1;
        die "storage does not support content type 'none'\n" if !%$res && !$valid->{none};
        return $res;
    } elsif ($key eq 'nodes') {
        my $res = {};
        for my $node (PVE::Tools::split_list($value)) {
            $res->{$node} = 1 if PVE::JSONSchema::pve_verify_node_name($node);
        }
        return $res;
    } elsif ($key eq 'content-dirs') {
        my $res = {};
        for my $pair (PVE::Tools::split_list($value)) {
            my ($c, $dir) = split(/=/, $pair, 2);
            if (!$valid->{$c}) {
                warn "storage does not support content type '$c'\n";
                next;
            }
            $res->{$c} = $dir;
        }
        return $res;
    }
    return $value;
}

sub check_config {
    my ($class, $sectionId, $config, $create, $skipSchemaCheck) = @_;

    my $type = $class->type();
    my $opts = $pdata->{options}->{$type} // {};
    my $settings = { type => $type };
    for my $k (keys %$config) {
        my $value = $config->{$k};
        die "can't change value of fixed parameter '$k'\n"
            if !$create && defined($opts->{$k}) && $opts->{$k}->{fixed};
        die "got undefined value for option '$k'\n" if !defined($value);
        my $tmp = $class->check_value($type, $k, $value, $sectionId, $skipSchemaCheck);
        $settings->{$k} = $class->decode_value($type, $k, $tmp);
    }
    if ($create) {
        for my $k (keys %$opts) {
            next if $opts->{$k}->{optional};
            die "missing value for required option '$k'\n" if !defined($config->{$k});
        }
    }
    return $settings;
}

sub parse_config {
    my ($class, $filename, $raw) = @_;

    my $ids = {};
    my $order = {};
    my $pri = 0;
    my ($type, $id, $section);
    my $finish = sub {
        return if !defined($id);
        my $plugin = eval { $class->lookup($type) };
        if (!$plugin) {
            warn "ignore config line: unsupported type '$type'\n";
        } else {
            my $cfg = eval { $plugin->check_config($id, $section, 1, 1) };
            if (my $err = $@) {
                warn "$filename: skipping section '$id' - $err";
            } else {
                $cfg->{content} //= { %{ $pdata->{plugindata}->{$type}->{content}->[1] // {} } };
                $cfg->{shared} = 1 if grep { $_ eq $type } @SHARED_STORAGE;
                $ids->{$id} = $cfg;
                $order->{$id} = $pri++;
            }
        }
        ($type, $id, $section) = ();
    };
    for my $line (split(/\n/, $raw // '')) {
        next if $line =~ m/^\s*(?:#|$)/;
        if ($line =~ m/^(\S+):\s*(\S+)\s*$/) {
            $finish->();
            ($type, $id, $section) = ($1, $2, {});
        } elsif ($line =~ m/^\s+(\S+)(?:\s+(.*?))?\s*$/ && $section) {
            $section->{$1} = $2 // 1;
        }
    }
    $finish->();
    return { ids => $ids, order => $order };
}

# As upstream PVE::Storage::Plugin::write_config (SectionConfig): one "type: id" line per
# section, then its properties indented, lists and content as comma lists.
sub write_config {
    my ($class, $filename, $cfg) = @_;

    my $order = $cfg->{order} // {};
    my $out = '';
    for my $id (sort { ($order->{$a} // 1e9) <=> ($order->{$b} // 1e9) || $a cmp $b } keys %{ $cfg->{ids} }) {
        my $section = $cfg->{ids}->{$id};
        $out .= "$section->{type}: $id\n";
        for my $k (sort keys %$section) {
            next if $k eq 'type';
            my $v = $section->{$k};
            $v = join(',', sort grep { $v->{$_} } keys %$v) if ref($v) eq 'HASH';
            $out .= "\t$k $v\n";
        }
        $out .= "\n";
    }
    return $out;
}

cfs_register_file(
    'storage.cfg',
    sub { __PACKAGE__->parse_config(@_) },
    sub { __PACKAGE__->write_config(@_) },
);

# --- storage plugin part --------------------------------------------------------------------

sub parse_volume_id {
    my ($volid, $noerr) = @_;
    if ($volid =~ m/^([a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$/i) {
        return wantarray ? ($1, $2) : $1;
    }
    return undef if $noerr;
    die "unable to parse volume ID '$volid'\n";
}

sub sensitive_properties {
    my ($type) = @_;
    my $data = $pdata->{plugindata}->{$type} // {};
    if (my $list = $data->{'sensitive-properties'}) {
        return [sort keys %$list];
    }
    return [qw(encryption-key keyring master-pubkey password)];
}

sub storage_has_feature {
    my ($type, $feature) = @_;
    return ($pdata->{plugindata}->{$type}->{features} // {})->{$feature} ? 1 : 0;
}

sub valid_content_types {
    my ($type) = @_;
    return $pdata->{plugindata}->{$type}->{content}->[0] // {};
}

# As upstream content_hash_to_string: in hash order, not sorted (storage_info's 'content'; seen
# inside the real code, where a test comparing it to a sorted list failed).
sub content_hash_to_string {
    my ($hash) = @_;
    my @res = grep { $hash->{$_} } keys %$hash;
    return @res ? join(',', @res) : undef;
}

sub get_vtype_subdirs {
    return $vtype_subdirs;
}

sub get_subdir {
    my ($class, $scfg, $vtype) = @_;
    my $path = $scfg->{path};
    die "storage definition has no path\n" if !$path;
    die "unknown vtype '$vtype'\n" if !exists($vtype_subdirs->{$vtype});
    my $subdir = ($scfg->{'content-dirs'} // {})->{$vtype} // $vtype_subdirs->{$vtype};
    return "$path/$subdir";
}

sub parse_volname {
    my ($class, $volname) = @_;

    my $iso = $PVE::Storage::ISO_EXT_RE_0;
    my $vztmpl = $PVE::Storage::VZTMPL_EXT_RE_1;
    my $backup = $PVE::Storage::BACKUP_EXT_RE_2;

    if ($volname =~ m!^(\d+)/(\S+)/(\d+)/(\S+)$!) {
        return ('images', $4, $3, $2, $1, 0, $4 =~ m/\.(raw|qcow2|vmdk)$/ ? $1 : 'raw');
    } elsif ($volname =~ m!^(\d+)/(\S+)$!) {
        my ($vmid, $name) = ($1, $2);
        my $fmt = $name =~ m/\.(raw|qcow2|vmdk|subvol)$/ ? $1 : 'raw';
        return ('images', $name, $vmid, undef, undef, $name =~ m/^base-/ ? 1 : 0, $fmt);
    } elsif ($volname =~ m!^iso/([^/]+$iso)$!) {
        return ('iso', $1, undef, undef, undef, undef, 'raw');
    } elsif ($volname =~ m!^vztmpl/([^/]+$vztmpl)$!) {
        return ('vztmpl', $1, undef, undef, undef, undef, 'raw');
    } elsif ($volname =~ m!^rootdir/(\d+)$!) {
        return ('rootdir', $1, $1);
    } elsif ($volname =~ m!^backup/([^/]+$backup)$!) {
        my $fn = $1;
        if ($fn =~ m/^vzdump-(openvz|lxc|qemu)-(\d+)-.+/) {
            return ('backup', $fn, $2, undef, undef, undef, 'raw');
        }
        return ('backup', $fn, undef, undef, undef, undef, 'raw');
    } elsif ($volname =~ m!^snippets/([^/]+)$!) {
        return ('snippets', $1, undef, undef, undef, undef, 'raw');
    }
    die "unable to parse directory volume name '$volname'\n";
}

sub filesystem_path {
    my ($class, $scfg, $volname, $snapname) = @_;
    my ($vtype, $name, $vmid) = $class->parse_volname($volname);
    my $dir = $class->get_subdir($scfg, $vtype);
    $dir .= "/$vmid" if $vtype eq 'images';
    my $path = "$dir/$name";
    return wantarray ? ($path, $vmid, $vtype) : $path;
}

sub path {
    my ($class, $scfg, $volname, $storeid, $snapname) = @_;
    return $class->filesystem_path($scfg, $volname, $snapname);
}

sub check_connection {
    my ($class, $storeid, $scfg) = @_;
    return 1;
}

sub activate_storage {
    my ($class, $storeid, $scfg, $cache) = @_;

    my $path = $scfg->{path};
    die "storage definition has no path\n" if !$path;
    die "unable to activate storage '$storeid' - directory '$path' does not exist\n" if !-d $path;

    my $create = $scfg->{'create-subdirs'} // $scfg->{mkdir} // 1;
    if ($create) {
        my %seen;
        for my $vtype (keys %{ $scfg->{content} // {} }) {
            next if !exists($vtype_subdirs->{$vtype});
            my $sub = $class->get_subdir($scfg, $vtype);
            die "storage '$storeid': content types share the directory '$sub'\n" if $seen{$sub}++;
            make_path($sub) if !-d $sub;
        }
    }
    return 1;
}

sub deactivate_storage {
    my ($class, $storeid, $scfg, $cache) = @_;
    return;
}

sub activate_volume {
    my ($class, $storeid, $scfg, $volname, $snapname, $cache, $hints) = @_;
    my $path = $class->filesystem_path($scfg, $volname, $snapname);
    die "volume '$storeid:$volname' does not exist\n" if !-e $path;
    return;
}

sub deactivate_volume {
    my ($class, $storeid, $scfg, $volname, $snapname, $cache) = @_;
    return;
}

sub status {
    my ($class, $storeid, $scfg, $cache) = @_;
    my $res = PVE::Tools::df($scfg->{path}, 2);
    return ($res->{total}, $res->{avail}, $res->{used}, $res->{total} ? 1 : 0);
}

sub on_add_hook {
    my ($class, $storeid, $scfg, %sensitive) = @_;
    return undef;
}

sub on_update_hook {
    my ($class, $storeid, $scfg, %sensitive) = @_;
    return undef;
}

sub on_update_hook_full {
    my ($class, $storeid, $scfg, $update, $delete, $sensitive) = @_;
    return $class->on_update_hook($storeid, $update, %{ $sensitive // {} });
}

sub on_delete_hook {
    my ($class, $storeid, $scfg) = @_;
    return undef;
}

sub get_volume_attribute {
    my ($class, $scfg, $storeid, $volname, $attribute) = @_;
    return undef;
}

sub update_volume_attribute {
    my ($class, $scfg, $storeid, $volname, $attribute, $value) = @_;
    die "attribute '$attribute' is not supported for storage type '$scfg->{type}'\n";
}

sub cluster_lock_storage {
    my ($class, $storeid, $shared, $timeout, $func, @param) = @_;
    return $func->(@param);
}

sub new_backup_provider {
    my ($class, $scfg, $storeid, $log_function) = @_;
    die "implement me if enabling the feature 'backup-provider' in plugindata()->{features}\n";
}

# As upstream Storage/Plugin.pm file_size_info (PVE 8.4 and 9): stat the file (dying when that
# fails and the image is untrusted), then ask `qemu-img info --output=json` with the expected
# format, refusing for an untrusted image a backing file, a qcow2 data-file or a multi-extent vmdk.
sub file_size_info {
    my ($filename, $timeout, $file_format, $untrusted) = @_;
    my @st = stat($filename);
    if (!@st) {
        my $msg = "failed to stat '$filename'" . (-l $filename ? ' - dangling symlink?' : '') . "\n";
        die $msg if $untrusted;
        warn $msg;
        return undef;
    }
    $file_format = 'raw' if $file_format && !grep { $_ eq $file_format } qw(raw qcow2 qed vmdk vpc vhdx vdi iso subvol);
    if (-d _) {
        die "expected format '$file_format', but '$filename' is a directory\n"
            if $untrusted && $file_format && $file_format ne 'subvol';
        return wantarray ? (0, 'subvol', 0, undef, $st[10]) : 0;
    }
    my $json = '';
    eval {
        PVE::Tools::run_command(
            ['/usr/bin/qemu-img', 'info', '--output=json', ($file_format ? ('-f', $file_format) : ()), $filename],
            timeout => $timeout // 10, outfunc => sub { $json .= "$_[0]\n" }, errfunc => sub { warn "$_[0]\n" },
        );
    };
    warn $@ if $@;
    if (!$json) {
        die "failed to query file information with qemu-img\n" if $untrusted;
        return wantarray ? (undef, undef, undef, undef, $st[10]) : undef;
    }
    require JSON::PP;
    my $info = eval { JSON::PP::decode_json($json) };
    die "could not parse qemu-img info command output for '$filename' - $@\n" if $@;
    if ($untrusted) {
        if (my $fs = $info->{'format-specific'}) {
            die "$filename: 'data-file' references are not allowed!\n" if $fs->{type} eq 'qcow2' && $fs->{data}->{'data-file'};
            die "$filename: multiple children or extents are not allowed!\n"
                if $fs->{type} eq 'vmdk' && (@{ $info->{children} // [] } > 1 || @{ $fs->{data}->{extents} // [] } > 1);
        }
    }
    my ($size, $format, $used, $parent) = @$info{qw(virtual-size format actual-size backing-filename)};
    die "backing file not allowed for untrusted image '$filename'!\n" if $untrusted && $parent;
    die "size '" . ($size // '') . "' not an integer\n" if ($size // '') !~ m/^\d+$/;
    die "used '" . ($used // '') . "' not an integer\n" if ($used // '') !~ m/^\d+$/;
    return wantarray ? (int($size), $format, int($used), $parent, $st[10]) : int($size);
}

sub free_image {
    my ($class, $storeid, $scfg, $volname, $isBase, $format) = @_;
    die "cannot remove protected volume '$volname' on '$storeid'\n"
        if $class->get_volume_attribute($scfg, $storeid, $volname, 'protected');
    my $path = $class->filesystem_path($scfg, $volname);
    unlink($path) or $! == ENOENT or die "unlink '$path' failed - $!\n";
    return undef;
}

1;
