# Sourced by rgw-common.sh and swift-common.sh: what the throw-away test gateways' scripts share
# (installing their Debian packages, the lock on DIR, purging DIR). Each caller passes its own
# log and die functions, so messages keep the gateway's name. Not meant to be run on its own.

# gw_install_packages LOG DIE APT_LOG COMMAND:PACKAGE... -- installs the packages whose command
# is missing. apt-get runs with DEBIAN_FRONTEND=noninteractive and, while it runs, a policy-rc.d
# that forbids starting services: the tests start their own daemons in DIR, and a system-wide
# copy (Swift's proxy with 20 workers, memcached, Ceph) on the default ports would only take
# memory and ports on a 2-core CI machine.
gw_install_packages() {
  local log=$1 die=$2 apt_log=$3
  shift 3
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null ||
      "$die" "missing packages ${need[*]}; install them as root: apt-get install --no-install-recommends ${need[*]}"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null || "$die" "missing packages ${need[*]} and no apt-get to install them"
  mkdir -p "$(dirname "$apt_log")"
  "$log" "installing ${need[*]} with apt (log: $apt_log)"
  local policy=/usr/sbin/policy-rc.d placed=0
  if [ ! -e "$policy" ] && "${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy" 2>/dev/null; then
    placed=1
  fi
  local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
    -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}")
  local ok=1
  if ! "${install[@]}" >>"$apt_log" 2>&1; then
    # a fresh machine (or CI image) has no package lists yet
    "$log" "apt-get install failed; running apt-get update and retrying"
    if ! "${sudo[@]}" apt-get update -q -o DPkg::Lock::Timeout=300 >>"$apt_log" 2>&1; then
      ok=0
      tail -n 20 "$apt_log" >&2
    elif ! "${install[@]}" >>"$apt_log" 2>&1; then
      ok=2
      tail -n 20 "$apt_log" >&2
    fi
  fi
  [ "$placed" = 0 ] || "${sudo[@]}" rm -f "$policy"
  [ "$ok" != 0 ] || "$die" "apt-get update failed; see $apt_log"
  [ "$ok" != 2 ] || "$die" "apt-get install ${need[*]} failed; see $apt_log"
  "$log" "installed ${need[*]}"
}

# gw_lock DIR DIE WAIT_S WHAT -- serialises the up/down runs on one DIR (two test runs at once);
# the lock is fd 9 on DIR, so daemons must be started with 9<&- (or they hold it forever).
gw_lock() {
  mkdir -p "$1"
  exec 9<"$1"
  flock -w "$3" 9 || "$2" "another $4 holds $1 for too long"
}

# gw_purge DIR MARK LOG DIE WHAT -- deletes DIR's contents, only if DIR carries MARK (or is
# empty): a mistyped DIR can never wipe anything else. DIR itself stays (the lock is on it).
gw_purge() {
  [ -d "$1" ] || return 0
  [ -f "$1/$2" ] || [ -z "$(ls -A "$1")" ] || "$4" "refusing to delete $1: it has no $2 marker, so it was not made by $5"
  find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  "$3" "purged $1"
}
