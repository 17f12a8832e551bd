#!/usr/bin/env bash
# swift-up.sh [DIR] | --install-packages -- a throw-away single-node OpenStack Swift (proxy with the s3api and tempauth
# middlewares, one account, container and object server on one device, memcached) on 127.0.0.1,
# for the integration tests: a second real S3 implementation beside RadosGW. Everything lives in
# DIR (default $PVE_S3_SWIFT_DIR or /tmp/pve-s3-swift); the device is the plain directory
# DIR/srv/d1 (mount_check off), which needs user.* extended attributes. Installs Debian's Swift
# and memcached packages when missing.
#
# Idempotent: running daemons are reused, stopped ones restarted on their data; a DIR whose
# creation did not finish is made again. Prints the S3 settings (also in DIR/s3.env, in the S3_*
# names the CLIs read) and SWIFT_STARTED=1 when this run had to start any daemon. Progress and
# errors go to stderr. Stop with swift-down.sh [DIR] [--purge].
#
# --install-packages: only install the Debian packages when missing (CI's set-up), start nothing.
#
# Knobs (only read when DIR is first created; later runs keep DIR/ports.env):
#   PVE_S3_SWIFT_PORT [8480] (the S3 endpoint); the account, container and object servers and
#   memcached take the next four ports.
# Any run: PVE_S3_SWIFT_WAIT_S [60] per daemon.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,19p' "$0" | cut -c3-; exit 0 ;; esac
INSTALL_ONLY=0
if [ "${1:-}" = --install-packages ]; then INSTALL_ONLY=1; shift; fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=swift-common.sh
source "$HERE/swift-common.sh" "${1:-}"

# Fixed, public test credentials: this gateway only ever listens on loopback. tempauth's user
# `tester` of account `pves3` is the S3 access key `pves3:tester`.
ACCOUNT=pves3
USER_NAME=tester
ACCESS_KEY=$ACCOUNT:$USER_NAME
SECRET_KEY=pveS3SwiftTestSecret0000000000000001
REGION=us-east-1
WAIT_S=${PVE_S3_SWIFT_WAIT_S:-60}

ensure_packages() {
  local apt_log
  if [ "$INSTALL_ONLY" = 1 ]; then apt_log=$(mktemp -t pve-s3-swift-apt.XXXXXX); else apt_log=$SWIFT_DIR/log/apt.log; fi
  gw_install_packages swift_log swift_die "$apt_log" swift-proxy-server:swift-proxy swift-account-server:swift-account \
    swift-container-server:swift-container swift-object-server:swift-object swift-ring-builder:swift \
    memcached:memcached curl:curl flock:util-linux
  [ "$INSTALL_ONLY" = 0 ] || rm -f "$apt_log"
}

# The object server keeps each object's metadata in user.* extended attributes of its file.
check_xattrs() {
  "$SWIFT_PY" - "$SWIFT_DIR/srv/d1" <<'EOF' 2>"$SWIFT_DIR/log/xattr-check.err" ||
import os, sys, tempfile
fd, path = tempfile.mkstemp(dir=sys.argv[1])
try:
    os.setxattr(path, 'user.pve-s3-check', b'x' * 1024)
finally:
    os.close(fd)
    os.unlink(path)
EOF
    swift_die "$SWIFT_DIR/srv/d1 does not take user.* extended attributes ($(tail -n 1 "$SWIFT_DIR/log/xattr-check.err")), which Swift's object server needs; put DIR on ext4/xfs/btrfs (PVE_S3_SWIFT_DIR)"
}

write_config() {
  local user conf name port
  user=$(id -un)
  {
    echo '# Written by test/s3/swift-up.sh: a disposable test cluster, not a template for real use.'
    echo '[swift-hash]'
    echo "swift_hash_path_suffix = $(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"
    echo '[storage-policy:0]'
    echo 'name = Policy-0'
    echo 'default = yes'
  } >"$ETC/swift.conf"
  for name in account container object; do
    case $name in account) port=$ACCOUNT_PORT ;; container) port=$CONTAINER_PORT ;; object) port=$OBJECT_PORT ;; esac
    cat >"$ETC/$name-server.conf" <<EOF
# Written by test/s3/swift-up.sh.
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $port
# one process: no forked workers on a 2-core CI machine
workers = 0
user = $user
swift_dir = $ETC
devices = $SWIFT_DIR/srv
mount_check = false
log_level = INFO

[pipeline:main]
pipeline = $name-server

[app:$name-server]
use = egg:swift#$name
EOF
  done
  # s3api before tempauth (it turns S3 signatures into the request tempauth checks); slo for
  # multipart uploads, copy for CopyObject/UploadPartCopy; versioned_writes is what the proxy
  # would insert by itself. No ratelimit, no bulk, no staticweb: nothing the tests use.
  cat >"$ETC/proxy-server.conf" <<EOF
# Written by test/s3/swift-up.sh.
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PROXY_PORT
workers = 0
user = $user
swift_dir = $ETC
log_level = INFO

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

[filter:catch_errors]
use = egg:swift#catch_errors

[filter:gatekeeper]
use = egg:swift#gatekeeper

[filter:healthcheck]
use = egg:swift#healthcheck

[filter:proxy-logging]
use = egg:swift#proxy_logging

[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$MEMCACHED_PORT

[filter:listing_formats]
use = egg:swift#listing_formats

[filter:s3api]
use = egg:swift#s3api
location = $REGION

[filter:tempauth]
use = egg:swift#tempauth
user_${ACCOUNT}_${USER_NAME} = $SECRET_KEY .admin

[filter:copy]
use = egg:swift#copy

[filter:slo]
use = egg:swift#slo

[filter:dlo]
use = egg:swift#dlo

[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
}

# One ring per server type, one device each, 2^4 partitions: built in one python process (three
# swift-ring-builder runs of three steps each cost ~10 s of start-up on a busy 2-core machine).
build_rings() {
  "$SWIFT_PY" - "$ETC" "$ACCOUNT_PORT" "$CONTAINER_PORT" "$OBJECT_PORT" >"$SWIFT_DIR/log/rings.log" 2>&1 <<'EOF' ||
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for name, port in zip(('account', 'container', 'object'), sys.argv[2:5]):
    b = RingBuilder(4, 1, 1)
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 1})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (etc, name))
EOF
    swift_die "building the rings failed; see $SWIFT_DIR/log/rings.log"
}

create() {
  : >"$SWIFT_DIR/$SWIFT_MARK"
  mkdir -p "$SWIFT_DIR"/{etc,run,log,srv/d1}
  cat >"$SWIFT_DIR/ports.env" <<EOF
PROXY_PORT=${PVE_S3_SWIFT_PORT:-8480}
ACCOUNT_PORT=$((${PVE_S3_SWIFT_PORT:-8480} + 1))
CONTAINER_PORT=$((${PVE_S3_SWIFT_PORT:-8480} + 2))
OBJECT_PORT=$((${PVE_S3_SWIFT_PORT:-8480} + 3))
MEMCACHED_PORT=$((${PVE_S3_SWIFT_PORT:-8480} + 4))
EOF
  # shellcheck source=/dev/null
  source "$SWIFT_DIR/ports.env"
  check_xattrs
  write_config
  build_rings
  swift_log "created a Swift in $SWIFT_DIR"
}

port_of() {
  case "$1" in
    memcached) echo "$MEMCACHED_PORT" ;; account) echo "$ACCOUNT_PORT" ;; container) echo "$CONTAINER_PORT" ;;
    object) echo "$OBJECT_PORT" ;; proxy) echo "$PROXY_PORT" ;;
  esac
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_daemon() { # name
  local name=$1 bin port args
  bin=$(swift_bin "$name")
  port=$(port_of "$name")
  if port_open "$port"; then
    swift_die "port $port ($name of $SWIFT_DIR) is already in use by another process; stop it or use a new DIR with PVE_S3_SWIFT_PORT"
  fi
  if [ "$name" = memcached ]; then
    args=(-l 127.0.0.1 -p "$port" -U 0 -m 16 -P "$SWIFT_DIR/run/memcached.pid")
    [ "$(id -u)" != 0 ] || args+=(-u root)
  else
    # -v: log to stderr (our log file) instead of syslog
    args=("$ETC/$name-server.conf" -v)
  fi
  # fd 9 is our lock on DIR: a daemon inheriting it would hold the lock forever.
  # setsid: its own session, so a Ctrl-C in the caller's terminal does not reach it.
  setsid "$bin" "${args[@]}" </dev/null >>"$SWIFT_DIR/log/$name.log" 2>&1 9<&- &
  echo $! >"$SWIFT_DIR/run/$name.pid-started"
  STARTED=1
  swift_log "started $name (pid $!)"
}

wait_port() { # name
  local name=$1 port deadline=$((SECONDS + WAIT_S))
  port=$(port_of "$name")
  until port_open "$port"; do
    if ! swift_pid_of "$name" >/dev/null; then
      tail -n 15 "$SWIFT_DIR/log/$name.log" >&2 2>/dev/null || true
      swift_die "$name exited while starting; see $SWIFT_DIR/log/$name.log"
    fi
    ((SECONDS < deadline)) || swift_die "timed out after ${WAIT_S}s waiting for $name on 127.0.0.1:$port; see $SWIFT_DIR/log/$name.log"
    sleep 0.1
  done
}

bring_up() {
  # "ready" is only written once a first bring-up answered S3: an interrupted creation is redone
  if [ ! -f "$SWIFT_DIR/ready" ]; then
    swift_stop_all
    swift_purge
    create
  fi
  # shellcheck source=/dev/null
  source "$SWIFT_DIR/ports.env"
  if [ "${PVE_S3_SWIFT_PORT:-$PROXY_PORT}" != "$PROXY_PORT" ]; then
    swift_log "note: $SWIFT_DIR was created with port $PROXY_PORT; PVE_S3_SWIFT_PORT applies to a new DIR only"
  fi
  local name
  # all at once: each is a Python process importing the same modules, and they do not depend on
  # each other to start
  for name in "${SWIFT_DAEMONS[@]}"; do swift_pid_of "$name" >/dev/null || start_daemon "$name"; done
  for name in "${SWIFT_DAEMONS[@]}"; do wait_port "$name"; done
  # The proxy answers once its pipeline is loaded; a request with a made-up S3 signature then
  # goes through s3api and tempauth (SignatureDoesNotMatch proves both are in place).
  local deadline=$((SECONDS + WAIT_S)) answer
  until answer=$(curl -s --max-time 10 -H "Authorization: AWS $ACCOUNT:probe:AAAA" -H "Date: $(date -uR)" "http://127.0.0.1:$PROXY_PORT/" 2>/dev/null) &&
    [[ $answer == *"<Code>SignatureDoesNotMatch</Code>"* ]]; do
    ((SECONDS < deadline)) || swift_die "the proxy on 127.0.0.1:$PROXY_PORT does not answer S3 requests (got: ${answer:0:200}); see $SWIFT_DIR/log/proxy.log"
    sleep 0.2
  done
  : >"$SWIFT_DIR/ready"
}

ensure_packages
[ "$INSTALL_ONLY" = 0 ] || exit 0

mkdir -p "$SWIFT_DIR"
SWIFT_DIR=$(cd "$SWIFT_DIR" && pwd)
if [ -z "$(ls -A "$SWIFT_DIR")" ]; then
  : >"$SWIFT_DIR/$SWIFT_MARK"
elif [ ! -f "$SWIFT_DIR/$SWIFT_MARK" ]; then
  swift_die "$SWIFT_DIR is not empty and was not made by swift-up.sh; choose another DIR (or PVE_S3_SWIFT_DIR)"
fi
ETC=$SWIFT_DIR/etc
STARTED=0
trap 'rc=$?; [ $rc = 0 ] || swift_log "FAILED (exit $rc); logs in $SWIFT_DIR/log"' EXIT

swift_lock
bring_up

cat >"$SWIFT_DIR/s3.env.new" <<EOF
S3_ENDPOINT=http://127.0.0.1:$PROXY_PORT
S3_REGION=$REGION
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_FORCE_PATH_STYLE=true
S3_PROVIDER=swift
EOF
mv "$SWIFT_DIR/s3.env.new" "$SWIFT_DIR/s3.env"
swift_log "ready: http://127.0.0.1:$PROXY_PORT (settings in $SWIFT_DIR/s3.env)"
cat "$SWIFT_DIR/s3.env"
echo "SWIFT_STARTED=$STARTED"
