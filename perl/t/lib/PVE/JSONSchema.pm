package PVE::JSONSchema;

# Clean-room test double of the PVE::JSONSchema pieces the storage code needs, written from
# reference/pve-storage-api.md §12.4: formats, standard options, property strings and the
# value checks SectionConfig applies to storage.cfg values.

use strict;
use warnings;

use Exporter qw(import);

our @EXPORT_OK = qw(get_standard_option parse_property_string register_standard_option);

my $formats = {};
my $format_validators = {};
my $standard_options = {};

sub register_format {
    my ($name, $format, $validator) = @_;
    die "JSON schema format '$name' already registered\n" if $formats->{$name};
    if ($validator) {
        die "A \$validator function can only be specified for hash-based formats\n"
            if ref($format) ne 'HASH';
        $format_validators->{$name} = $validator;
    }
    $formats->{$name} = $format;
}

sub get_format {
    my ($name) = @_;
    return $formats->{$name};
}

sub register_standard_option {
    my ($name, $schema) = @_;
    die "standard option '$name' already registered\n" if $standard_options->{$name};
    $standard_options->{$name} = $schema;
}

sub get_standard_option {
    my ($name, $base) = @_;
    my $std = $standard_options->{$name};
    die "no such standard option '$name'\n" if !$std;
    my $res = $base || {};
    for my $opt (keys %$std) {
        next if defined($res->{$opt});
        $res->{$opt} = $std->{$opt};
    }
    return $res;
}

sub parse_boolean {
    my ($bool) = @_;
    return 1 if $bool =~ m/^(?:1|on|yes|true)$/i;
    return 0 if $bool =~ m/^(?:0|off|no|false)$/i;
    return undef;
}

sub parse_storage_id {
    my ($storeid, $noerr) = @_;
    if ($storeid !~ m/^[a-z][a-z0-9\-\_\.]*[a-z0-9]$/i) {
        return undef if $noerr;
        die "storage ID '$storeid' contains illegal characters\n";
    }
    return $storeid;
}

sub pve_verify_node_name {
    my ($node, $noerr) = @_;
    if ($node !~ m/^(?:[a-zA-Z0-9](?:[a-zA-Z0-9\-]*[a-zA-Z0-9])?)$/) {
        return undef if $noerr;
        die "value does not look like a valid node name\n";
    }
    return $node;
}

# Returns an error string or undef; the shapes follow upstream's check_prop messages.
sub check_value {
    my ($value, $schema) = @_;

    my $type = $schema->{type} // 'string';
    if ($type eq 'boolean') {
        # As upstream's check_type: a schema check takes only 0 and 1 (parsers map yes/on/... first).
        return "type check ('boolean') failed - got '$value'" if $value ne '0' && $value ne '1';
    } elsif ($type eq 'integer') {
        return "type check ('integer') failed - got '$value'" if $value !~ m/^[+-]?\d+$/;
    } elsif ($type eq 'number') {
        return "type check ('number') failed - got '$value'"
            if $value !~ m/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
    }
    if ($type eq 'integer' || $type eq 'number') {
        return "value must have a minimum value of $schema->{minimum}"
            if defined($schema->{minimum}) && $value < $schema->{minimum};
        return "value must have a maximum value of $schema->{maximum}"
            if defined($schema->{maximum}) && $value > $schema->{maximum};
    }
    if ($type eq 'string') {
        return "value must be at most $schema->{maxLength} characters"
            if defined($schema->{maxLength}) && length($value) > $schema->{maxLength};
        return "value must be at least $schema->{minLength} characters"
            if defined($schema->{minLength}) && length($value) < $schema->{minLength};
        if (defined(my $pattern = $schema->{pattern})) {
            return "value does not match the regex pattern" if $value !~ m/^$pattern$/;
        }
        if (my $format = $schema->{format}) {
            my $err = check_format($format, $value);
            return $err if defined($err);
        }
    }
    if (my $enum = $schema->{enum}) {
        return "value '$value' does not have a value in the enumeration '" . join(', ', @$enum) . "'"
            if !grep { $_ eq $value } @$enum;
    }
    return undef;
}

sub check_format {
    my ($format, $value) = @_;

    if (!ref($format)) {
        my $registered = $formats->{$format};
        return undef if !$registered; # unknown names are not validated here
        if (ref($registered) eq 'CODE') {
            eval { $registered->($value) };
            if (my $err = $@) {
                chomp $err;
                return $err;
            }
            return undef;
        }
        $format = $registered;
    }
    eval { parse_property_string($format, $value) };
    if (my $err = $@) {
        chomp $err;
        return "invalid format - $err";
    }
    return undef;
}

sub parse_property_string {
    my ($format, $data, $path, $additional_properties) = @_;

    my $validator;
    if (!ref($format)) {
        my $name = $format;
        $format = $formats->{$name} or die "unknown format '$name'\n";
        $validator = $format_validators->{$name};
        die "format '$name' is not a property-string format\n" if ref($format) ne 'HASH';
    }

    my $default_key;
    for my $key (keys %$format) {
        $default_key = $key if $format->{$key}->{default_key};
    }

    my $res = {};
    for my $part (split(/,/, $data)) {
        next if $part =~ m/^\s*$/;
        my ($k, $v);
        if ($part =~ m/^([^=]+)=(.*)$/) {
            ($k, $v) = ($1, $2);
        } elsif (defined($default_key)) {
            ($k, $v) = ($default_key, $part);
        } else {
            die "value without key, but schema does not define a default key\n";
        }
        my $schema = $format->{$k};
        if ($schema && $schema->{alias}) {
            $k = $schema->{alias};
            $schema = $format->{$k};
        }
        die "duplicate key in comma-separated list property: $k\n" if exists($res->{$k});
        if (!$schema) {
            die "invalid key in comma-separated list property: $k\n" if !$additional_properties;
            $res->{$k} = $v;
            next;
        }
        if (($schema->{type} // '') eq 'boolean') {
            my $b = parse_boolean($v);
            $v = $b if defined($b);
        }
        if (defined(my $err = check_value($v, $schema))) {
            die "$k: $err\n";
        }
        $res->{$k} = $v;
    }
    for my $k (keys %$format) {
        next if $format->{$k}->{optional} || $format->{$k}->{alias};
        die "$k: property is missing and it is not optional\n" if !exists($res->{$k});
    }
    $res = $validator->($res) if $validator;
    return $res;
}

# --- what PVE registers before any storage plugin loads ------------------------------------

my $prune_keep = sub {
    my ($desc) = @_;
    return { type => 'integer', minimum => '0', optional => 1, description => $desc };
};

register_format(
    'prune-backups',
    {
        'keep-all' => { type => 'boolean', optional => 1, description => 'Keep all backups.' },
        'keep-last' => $prune_keep->('Keep the last <N> backups.'),
        'keep-hourly' => $prune_keep->('Keep backups for the last <N> different hours.'),
        'keep-daily' => $prune_keep->('Keep backups for the last <N> different days.'),
        'keep-weekly' => $prune_keep->('Keep backups for the last <N> different weeks.'),
        'keep-monthly' => $prune_keep->('Keep backups for the last <N> different months.'),
        'keep-yearly' => $prune_keep->('Keep backups for the last <N> different years.'),
    },
    sub {
        my ($keep) = @_;
        my $keep_all = delete $keep->{'keep-all'};
        if (!grep { $_ } values %$keep) {
            return { 'keep-all' => 1 };
        }
        die "keep-all cannot be set together with other options.\n" if $keep_all;
        return $keep;
    },
);

register_format('pve-storage-id', sub { parse_storage_id($_[0]) });
register_format('pve-node', sub { pve_verify_node_name($_[0]) });
register_format(
    'pve-storage-path',
    sub {
        die "value does not look like a valid absolute path\n" if $_[0] !~ m|^/[^;\(\)]+|;
        return $_[0];
    },
);
register_format(
    'pve-storage-server',
    sub {
        die "value does not look like a valid server name or IP address\n"
            if $_[0] !~ m/^[A-Za-z0-9.\-:\[\]]+$/;
        return $_[0];
    },
);
register_format(
    'pve-fingerprint',
    sub {
        die "value does not look like a valid fingerprint\n"
            if $_[0] !~ m/^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/;
        return $_[0];
    },
);
register_format(
    'bwlimit',
    {
        default => { type => 'number', minimum => '0', optional => 1 },
        restore => { type => 'number', minimum => '0', optional => 1 },
        migration => { type => 'number', minimum => '0', optional => 1 },
        clone => { type => 'number', minimum => '0', optional => 1 },
        move => { type => 'number', minimum => '0', optional => 1 },
    },
);

register_standard_option('pve-storage-id', {
    description => "The storage identifier.",
    type => 'string',
    format => 'pve-storage-id',
});
register_standard_option('pve-node-list', {
    description => "List of nodes.",
    type => 'string',
    format => 'pve-node-list',
});
register_standard_option('prune-backups', {
    description => "The retention options.",
    type => 'string',
    format => 'prune-backups',
    optional => 1,
});
register_standard_option('bwlimit', {
    description => "Set I/O bandwidth limit for various operations (in KiB/s).",
    type => 'string',
    format => 'bwlimit',
    optional => 1,
});
register_standard_option('fingerprint-sha256', {
    description => "Certificate SHA 256 fingerprint.",
    type => 'string',
    format => 'pve-fingerprint',
});

1;
