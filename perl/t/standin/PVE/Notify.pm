package PVE::Notify;

# Stand-in for pve-cluster's PVE::Notify (another package, and backed by the Rust
# Proxmox::RS::Notify that renders and sends notifications). What pve-manager's PVE::VZDump calls:
#
#   common_template_data()   as the real one: hostname (PVE::INotify::nodename), fqdn
#                            (PVE::Tools::get_fqdn of it) and, in a cluster, cluster-name
#   notify($severity, $template_name, $data, $fields, $config)
#                            the real one sends to the matching targets of notifications.cfg (or
#                            of $config); here the node has no targets, so it records what would
#                            be sent in @PVE::Notify::SENT for the test to read
#
# send_notification's legacy-sendmail branch builds a Proxmox::RS::Notify config itself; tests
# do not set mailto, so it is not reached (and would fail loudly: there is no such module).
# Nothing here is upstream code.

use strict;
use warnings;

use PVE::Cluster;
use PVE::INotify;
use PVE::Tools;

our @SENT;

sub common_template_data {
    my $hostname = PVE::INotify::nodename();
    my $data = { hostname => $hostname, fqdn => PVE::Tools::get_fqdn($hostname) };
    my $cluster = PVE::Cluster::get_clinfo()->{cluster};
    $data->{'cluster-name'} = $cluster->{name} if $cluster;
    return $data;
}

sub notify {
    my ($severity, $template_name, $template_data, $fields, $config) = @_;
    push @SENT, { severity => $severity, template => $template_name, data => $template_data, fields => $fields };
    return;
}

sub info { notify('info', @_) }
sub notice { notify('notice', @_) }
sub warning { notify('warning', @_) }
sub error { notify('error', @_) }

1;
