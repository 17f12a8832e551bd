package PVE::RPCEnvironment;

# Stand-in for pve-access-control's PVE::RPCEnvironment: the real base class
# (pve-common's PVE::RESTEnvironment) with the parts the storage API uses. The harness sets it
# up as pvesm does (setup_default_cli_env as root@pam), and root may do everything, as on a node;
# any other user is refused, so a test can never pass by a permission check that says yes.

use strict;
use warnings;

use PVE::AccessControl; # the real module loads it too; the storage API's delete relies on that
use PVE::Cluster;
use PVE::Exception qw(raise_perm_exc);
use PVE::RESTEnvironment;

use base qw(PVE::RESTEnvironment);

sub init {
    my ($class, $type, %params) = @_;
    $class = ref($class) || $class;
    my $self = $class->SUPER::init($type, %params);
    $self->{user_cfg} = {};
    return $self;
}

sub init_request {
    my ($self, %params) = @_;
    PVE::Cluster::cfs_update();
    $self->{result_attributes} = {};
}

sub get { return PVE::RESTEnvironment->get() }
sub is_worker { return PVE::RESTEnvironment->is_worker() }

sub check_full {
    my ($self, $username, $path, $privs, $any, $noerr) = @_;
    return 1 if defined($username) && $username eq 'root@pam';
    return undef if $noerr;
    raise_perm_exc("$path, " . join('|', @$privs));
}

sub check { my ($self, $user, $path, $privs, $noerr) = @_; return $self->check_full($user, $path, $privs, 0, $noerr) }
sub check_any { my ($self, $user, $path, $privs, $noerr) = @_; return $self->check_full($user, $path, $privs, 1, $noerr) }

sub log_cluster_msg { my ($self, $pri, $user, $msg) = @_; PVE::Cluster::log_msg($pri, $user, $msg) }
sub broadcast_tasklist { my ($self, $tlist) = @_; PVE::Cluster::broadcast_tasklist($tlist) }

1;
