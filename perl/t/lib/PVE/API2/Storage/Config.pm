package PVE::API2::Storage::Config;

# Clean-room test double of pve-storage's storage configuration API (pvesm add/set/remove and
# the GUI go through it), written from reference/pve-storage-api.md §3.6: the API layer validates
# the parameters against the schema, takes the sensitive ones out (they reach the plugin's hooks
# only), and inside the storage.cfg lock: create = check_config, on_add_hook, activate when
# enabled (on failure on_delete_hook and the error), write; update = check_config(create 0),
# the deletion checks, on_update_hook (API < 13) or on_update_hook_full, apply, write;
# delete = on_delete_hook, remove, write, then the storage's ACL entries go.

use strict;
use warnings;

use PVE::AccessControl;
use PVE::JSONSchema;
use PVE::Storage;
use PVE::Storage::Plugin;
use PVE::Tools;

# As PVE::RESTHandler::handle before any method runs: the parameters are checked against the
# method's schema (PVE::JSONSchema::validate), and raise_param_exc dies with a PVE::Exception that
# stringifies as "400 Parameter verification failed." and a line "<key>: <error>" per bad one.
sub verify_params {
    my ($param) = @_;

    my $props = PVE::Storage::Plugin->private()->{propertyList};
    my $errors = {};
    for my $k (keys %$param) {
        next if !defined($param->{$k}) || !$props->{$k};
        my $err = PVE::JSONSchema::check_value($param->{$k}, $props->{$k});
        $errors->{$k} = $err if defined($err);
    }
    return if !%$errors;
    die "400 Parameter verification failed.\n" . join('', map { "$_: $errors->{$_}\n" } sort keys %$errors);
}

sub create {
    my ($class, $param) = @_;

    verify_params($param);
    my $type = delete $param->{type};
    my $storeid = delete $param->{storage};
    delete $param->{nodes} if !$param->{nodes};
    my $sensitive = PVE::Tools::extract_sensitive_params(
        $param, PVE::Storage::Plugin::sensitive_properties($type), []);
    my $plugin = PVE::Storage::Plugin->lookup($type);
    my $opts = $plugin->check_config($storeid, { %$param, type => $type }, 1, 0);

    my $returned;
    PVE::Storage::lock_storage_config(sub {
        my $cfg = PVE::Storage::config();
        die "storage ID '$storeid' already defined\n" if $cfg->{ids}->{$storeid};
        $cfg->{ids}->{$storeid} = $opts;
        $returned = $plugin->on_add_hook($storeid, $opts, %$sensitive);
        eval {
            PVE::Storage::activate_storage($cfg, $storeid)
                if PVE::Storage::storage_check_enabled($cfg, $storeid, undef, 1);
        };
        if (my $err = $@) {
            eval { $plugin->on_delete_hook($storeid, $opts) };
            warn "$@\n" if $@;
            die $err;
        }
        PVE::Storage::write_config($cfg);
    }, "create storage failed");

    my $res = { storage => $storeid, type => $type };
    $res->{config} = $returned if $returned;
    return $res;
}

sub update {
    my ($class, $param) = @_;

    verify_params($param);
    my $storeid = delete $param->{storage};
    delete $param->{digest};
    my $delete = delete $param->{delete};
    $delete = [PVE::Tools::split_list($delete)] if $delete;
    my $type;
    my $returned;
    PVE::Storage::lock_storage_config(sub {
        my $cfg = PVE::Storage::config();
        my $scfg = PVE::Storage::storage_config($cfg, $storeid);
        $type = $scfg->{type};
        my $sensitive = PVE::Tools::extract_sensitive_params(
            $param, PVE::Storage::Plugin::sensitive_properties($type), $delete);
        my $plugin = PVE::Storage::Plugin->lookup($type);
        my $opts = $plugin->check_config($storeid, $param, 0, 0);
        delete $opts->{type};
        if ($delete) {
            my $options = $plugin->private()->{options}->{$type};
            for my $k (@$delete) {
                my $d = $options->{$k} || die "no such option '$k'\n";
                die "unable to delete required option '$k'\n" if !$d->{optional};
                die "unable to delete fixed option '$k'\n" if $d->{fixed};
                die "cannot set and delete property '$k' at the same time!\n" if defined($opts->{$k});
            }
        }
        $returned = $plugin->api() < 13
            ? $plugin->on_update_hook($storeid, $opts, %$sensitive)
            : $plugin->on_update_hook_full($storeid, $scfg, $opts, $delete, $sensitive);
        delete $scfg->{$_} for @{ $delete // [] };
        $scfg->{$_} = $opts->{$_} for keys %$opts;
        PVE::Storage::write_config($cfg);
    }, "update storage failed");

    my $res = { storage => $storeid, type => $type };
    $res->{config} = $returned if $returned;
    return $res;
}

sub delete {
    my ($class, $param) = @_;

    my $storeid = $param->{storage};
    PVE::Storage::lock_storage_config(sub {
        my $cfg = PVE::Storage::config();
        my $scfg = PVE::Storage::storage_config($cfg, $storeid);
        PVE::Storage::Plugin->lookup($scfg->{type})->on_delete_hook($storeid, $scfg);
        delete $cfg->{ids}->{$storeid};
        PVE::Storage::write_config($cfg);
    }, "delete storage failed");
    PVE::AccessControl::remove_storage_access($storeid);
    return undef;
}

1;
