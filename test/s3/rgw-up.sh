#!/usr/bin/env bash
# rgw-up.sh [DIR] -- a throw-away single-node Ceph (1 mon, 1 memstore OSD, no mgr, no cephx)
# with RadosGW on 127.0.0.1, for the integration tests. Everything lives in DIR
# (default $PVE_S3_RGW_DIR or /tmp/pve-s3-rgw). Installs Debian's Ceph packages when missing.
#
# Idempotent: running daemons are reused, stopped ones restarted on their data; a memstore OSD
# that died without a clean shutdown has lost its data, so the cluster is then rebuilt.
# Prints the S3 settings (also in DIR/s3.env, in the S3_* names the CLIs read) and
# RGW_STARTED=1 when this run had to start any daemon. Progress and errors go to stderr.
# Stop with rgw-down.sh [DIR] [--purge].
#
# Knobs (only read when DIR is first created; later runs keep DIR/ports.env):
#   PVE_S3_RGW_PORT [7480]  PVE_S3_MON_PORT [3300]  PVE_S3_MON_V1_PORT [6789]
#   PVE_S3_MEMSTORE_BYTES [8 GiB: what memstore reports as capacity; data lives in the OSD's RAM]
#   PVE_S3_RGW_TCP_NODELAY [0]: 1 adds tcp_nodelay=1 to rgw_frontends (docs/PROVIDERS.md, Ceph
#     RadosGW: without it a small answer on a kept-alive connection waits ~40 ms for the client's
#     delayed ACK); 0 keeps Ceph's default, the gateway most users run, which tests and benchmarks see
# Any run: PVE_S3_RGW_WAIT_S [180] per daemon; PVE_S3_RGW_DEBUG [0] (radosgw log level when started).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,18p' "$0" | cut -c3-; exit 0 ;; esac
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rgw-common.sh
source "$HERE/rgw-common.sh" "${1:-}"

# Fixed, public test credentials: this gateway only ever listens on loopback.
ACCESS_KEY=PVES3TESTACCESSKEY01
SECRET_KEY=pveS3TestSecretKey0000000000000000000001
REGION=us-east-1
USER_ID=tester
WAIT_S=${PVE_S3_RGW_WAIT_S:-180}
# The testing KMS backend's key for SSE-KMS tests (key id testkey-1): 32 fixed bytes, base64.
KMS_KEY_B64=cHZlLXMzIHRlc3Qga21zIGtleSAwMDAwMDAwMDAwMDE=

mkdir -p "$RGW_DIR"
RGW_DIR=$(cd "$RGW_DIR" && pwd)
if [ -z "$(ls -A "$RGW_DIR")" ]; then
  : >"$RGW_DIR/$RGW_MARK"
elif [ ! -f "$RGW_DIR/$RGW_MARK" ]; then
  rgw_die "$RGW_DIR is not empty and was not made by rgw-up.sh; choose another DIR (or PVE_S3_RGW_DIR)"
fi
CONF=$RGW_DIR/$CONF_NAME
C=(-c "$CONF")
STARTED=0
trap 'rc=$?; [ $rc = 0 ] || rgw_log "FAILED (exit $rc); logs in $RGW_DIR/log"' EXIT

ensure_packages() {
  gw_install_packages rgw_log rgw_die "$RGW_DIR/log/apt.log" ceph-mon:ceph-mon ceph-osd:ceph-osd radosgw:radosgw \
    radosgw-admin:radosgw ceph:ceph-common monmaptool:ceph-common curl:curl flock:util-linux
}

start_daemon() { # name binary args...
  local name=$1 bin=$2
  shift 2
  # fd 9 is our lock on DIR: a daemon inheriting it would hold the lock forever.
  # setsid: its own session, so a Ctrl-C in the caller's terminal does not reach it.
  setsid "$bin" "$@" </dev/null >>"$RGW_DIR/log/$name.out" 2>&1 9<&- &
  echo $! >"$RGW_DIR/run/$name.pid-started"
  STARTED=1
  rgw_log "started $name (pid $!)"
}

daemon_log() { # name -> its ceph log file
  echo "$RGW_DIR/log/${1/rgw/client.rgw.gw}.log"
}

wait_until() { # description name binary command...
  local desc=$1 name=$2 bin=$3
  shift 3
  local deadline=$((SECONDS + WAIT_S)) log
  log=$(daemon_log "$name")
  until timeout 15 "$@" >/dev/null 2>&1; do
    if ! rgw_pid_of "$name" "$bin" >/dev/null; then
      tail -n 15 "$RGW_DIR/log/$name.out" "$log" >&2 2>/dev/null || true
      rgw_die "$name exited while waiting for $desc; see $log and $RGW_DIR/log/$name.out"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 15 "$log" >&2 2>/dev/null || true
      rgw_die "timed out after ${WAIT_S}s waiting for $desc; see $log"
    fi
    sleep 0.3
  done
}

create_cluster() {
  case "${PVE_S3_RGW_TCP_NODELAY:-0}" in 0 | 1) ;; *) rgw_die "PVE_S3_RGW_TCP_NODELAY is '$PVE_S3_RGW_TCP_NODELAY': allowed are 0 (Ceph's default) and 1" ;; esac
  : >"$RGW_DIR/$RGW_MARK"
  mkdir -p "$RGW_DIR"/{run,log,mon,osd/ceph-0,rgw,crash}
  cat >"$RGW_DIR/ports.env" <<EOF
RGW_PORT=${PVE_S3_RGW_PORT:-7480}
MON_PORT=${PVE_S3_MON_PORT:-3300}
MON_V1_PORT=${PVE_S3_MON_V1_PORT:-6789}
MEMSTORE_BYTES=${PVE_S3_MEMSTORE_BYTES:-8589934592}
TCP_NODELAY=${PVE_S3_RGW_TCP_NODELAY:-0}
EOF
  # shellcheck source=/dev/null
  source "$RGW_DIR/ports.env"
  local fsid mon_addr frontend_opts=''
  if [ "$TCP_NODELAY" = 1 ]; then frontend_opts=' tcp_nodelay=1'; fi
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mon_addr="[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_V1_PORT]"
  cat >"$CONF.new" <<EOF
# Written by test/s3/rgw-up.sh: a disposable test cluster, not a template for real use.
[global]
fsid = $fsid
mon_host = $mon_addr
public_network = 127.0.0.0/8
cluster_network = 127.0.0.0/8
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# radosgw would insist on 'secure' mon sessions, which need cephx: without this it retries forever
ms_mon_client_mode = crc
keyring = /dev/null
# one OSD: unreplicated pools and few PGs (radosgw creates ~8 pools; the default 32 PGs each
# would exceed the per-OSD PG limit and pool creation would fail)
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
# a nearly full /tmp must not make the monitor shut itself down in the middle of a test run
mon_data_avail_warn = 2
mon_data_avail_crit = 1
run_dir = $RGW_DIR/run
admin_socket = $RGW_DIR/run/\$name.asok
pid_file = $RGW_DIR/run/\$name.pid
log_file = $RGW_DIR/log/\$name.log
mon_cluster_log_file = $RGW_DIR/log/cluster.log
crash_dir = $RGW_DIR/crash
mon_data = $RGW_DIR/mon/\$cluster-\$id
osd_data = $RGW_DIR/osd/\$cluster-\$id

[osd]
# objects live in the OSD's RAM; memstore writes them to osd_data only on a clean shutdown,
# which the default fast shutdown skips
osd_objectstore = memstore
memstore_device_bytes = $MEMSTORE_BYTES
osd_fast_shutdown = false

[client.rgw.gw]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT$frontend_opts
rgw_data = $RGW_DIR/rgw
# SSE-C and SSE-KMS over plain http, with the 'testing' KMS backend holding one fixed key
rgw_crypt_require_ssl = false
rgw_crypt_s3_kms_backend = testing
rgw_crypt_s3_kms_encryption_keys = testkey-1=$KMS_KEY_B64
# a lifecycle "day" lasts 10 s so that expiration can be observed in a test
rgw_lc_debug_interval = 10
# deleted objects' RAM is reclaimed within a minute instead of hours
rgw_gc_obj_min_wait = 30
rgw_gc_processor_period = 30
EOF
  mv "$CONF.new" "$CONF"
  monmaptool --create --addv a "$mon_addr" --fsid "$fsid" "$RGW_DIR/monmap" >"$RGW_DIR/log/monmap.log" 2>&1 ||
    rgw_die "monmaptool failed; see $RGW_DIR/log/monmap.log"
  ceph-mon "${C[@]}" --mkfs -i a --monmap "$RGW_DIR/monmap" >"$RGW_DIR/log/mon-mkfs.log" 2>&1 ||
    rgw_die "ceph-mon --mkfs failed; see $RGW_DIR/log/mon-mkfs.log"
  rgw_log "created cluster $fsid in $RGW_DIR"
}

osd_status() { timeout 10 ceph "${C[@]}" daemon osd.0 status 2>/dev/null; }

# Sets REBUILD=1 (and returns) when the data in DIR cannot be used any more.
bring_up() {
  REBUILD=0
  # "ready" is only written once a first bring-up got all the way to the S3 user, so any
  # half-made cluster from an interrupted run is simply made again.
  if [ ! -f "$RGW_DIR/ready" ]; then
    if [ -f "$CONF" ]; then REBUILD=1; rgw_log "previous creation of $RGW_DIR did not finish"; return; fi
    create_cluster
  fi
  # shellcheck source=/dev/null
  source "$RGW_DIR/ports.env"
  if [ "${PVE_S3_RGW_PORT:-$RGW_PORT}" != "$RGW_PORT" ] || [ "${PVE_S3_MON_PORT:-$MON_PORT}" != "$MON_PORT" ] ||
    [ "${PVE_S3_MON_V1_PORT:-$MON_V1_PORT}" != "$MON_V1_PORT" ]; then
    rgw_log "note: $RGW_DIR was created with RGW port $RGW_PORT, mon $MON_PORT/$MON_V1_PORT; the PVE_S3_*_PORT settings apply to a new DIR only"
  fi
  # a DIR made before the setting existed has Ceph's default
  if [ "${PVE_S3_RGW_TCP_NODELAY:-${TCP_NODELAY:-0}}" != "${TCP_NODELAY:-0}" ]; then
    rgw_log "note: $RGW_DIR was created with PVE_S3_RGW_TCP_NODELAY=${TCP_NODELAY:-0}; the setting applies to a new DIR only"
  fi

  if ! rgw_pid_of mon.a ceph-mon >/dev/null; then
    # Another cluster's monitor on our port would answer our ceph commands instead: refuse.
    local port
    for port in "$MON_PORT" "$MON_V1_PORT"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        rgw_die "port $port (monitor of $RGW_DIR) is already in use by another process; stop it or use a new DIR with PVE_S3_MON_PORT/PVE_S3_MON_V1_PORT"
      fi
    done
    start_daemon mon.a ceph-mon -f "${C[@]}" -i a
  fi
  wait_until "the monitor" mon.a ceph-mon ceph "${C[@]}" --connect-timeout 10 mon stat
  local fsid
  fsid=$(timeout 30 ceph "${C[@]}" fsid 2>/dev/null) || rgw_die "'ceph fsid' failed; see $(daemon_log mon.a)"
  grep -q "^fsid = $fsid\$" "$CONF" || rgw_die "the monitor on 127.0.0.1:$MON_PORT belongs to cluster $fsid, not to $RGW_DIR"

  if [ ! -f "$RGW_DIR/osd/created" ]; then
    [ -f "$RGW_DIR/osd/uuid" ] || cat /proc/sys/kernel/random/uuid >"$RGW_DIR/osd/uuid"
    local uuid id
    uuid=$(cat "$RGW_DIR/osd/uuid")
    # the same uuid again returns the same id, so a retry does not add a second OSD
    id=$(timeout 60 ceph "${C[@]}" osd new "$uuid" 0) || rgw_die "'ceph osd new' failed; see $(daemon_log mon.a)"
    [ "$id" = 0 ] || rgw_die "expected OSD id 0, the monitor gave '$id'"
    ceph-osd "${C[@]}" -i 0 --mkfs --osd-uuid "$uuid" >"$RGW_DIR/log/osd-mkfs.log" 2>&1 ||
      rgw_die "ceph-osd --mkfs failed; see $RGW_DIR/log/osd-mkfs.log"
    : >"$RGW_DIR/osd/created"
    : >"$RGW_DIR/osd/clean-shutdown"
  fi
  if ! rgw_pid_of osd.0 ceph-osd >/dev/null; then
    if [ ! -f "$RGW_DIR/osd/clean-shutdown" ]; then
      REBUILD=1
      rgw_log "the OSD was not shut down cleanly last time: memstore lost its data"
      return
    fi
    rm -f "$RGW_DIR/osd/clean-shutdown"
    start_daemon osd.0 ceph-osd -f "${C[@]}" -i 0
  fi
  # Ask the OSD itself: after a crash the osdmap can still say "up" for the dead instance.
  wait_until "the OSD to become active" osd.0 ceph-osd \
    bash -c 'ceph "$@" daemon osd.0 status | grep -q "\"state\": \"active\""' _ "${C[@]}"
  wait_until "the OSD to be up in the osdmap" osd.0 ceph-osd \
    bash -c 'ceph "$@" --connect-timeout 10 osd dump | grep -q "^osd\.0 up"' _ "${C[@]}"
  # A memstore OSD that was killed comes back empty while the pools still exist in the osdmap;
  # every radosgw request would then hang. (Caught here too when the marker logic cannot see
  # it, e.g. an OSD killed during its very first run.)
  if [ -n "$(timeout 30 ceph "${C[@]}" osd pool ls 2>/dev/null)" ] && osd_status | grep -Eq '"num_pgs": 0($|[^0-9])'; then
    REBUILD=1
    rgw_log "the OSD has no placement groups although pools exist: its data is gone"
    return
  fi

  if ! rgw_pid_of rgw radosgw >/dev/null; then
    if curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$RGW_PORT/"; then
      rgw_die "port $RGW_PORT already answers HTTP but not from this DIR's radosgw; stop that server or set PVE_S3_RGW_PORT (with a new DIR)"
    fi
    # the first start creates radosgw's pools and zone: a few seconds
    start_daemon rgw radosgw -f "${C[@]}" -n client.rgw.gw --debug-rgw "${PVE_S3_RGW_DEBUG:-0}"
  fi
  wait_until "radosgw to answer on 127.0.0.1:$RGW_PORT" rgw radosgw \
    curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$RGW_PORT/"

  local info
  if info=$(timeout 60 radosgw-admin "${C[@]}" user info --uid="$USER_ID" 2>/dev/null); then
    if ! grep -q "\"access_key\": \"$ACCESS_KEY\"" <<<"$info"; then
      timeout 60 radosgw-admin "${C[@]}" key create --uid="$USER_ID" --key-type=s3 \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>"$RGW_DIR/log/user-create.err" ||
        rgw_die "could not add the test key to user $USER_ID; see $RGW_DIR/log/user-create.err"
      rgw_log "added the test key to user $USER_ID"
    fi
  else
    timeout 60 radosgw-admin "${C[@]}" user create --uid="$USER_ID" --display-name="pve-s3 tests" \
      --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>"$RGW_DIR/log/user-create.err" ||
      rgw_die "could not create user $USER_ID; see $RGW_DIR/log/user-create.err"
    rgw_log "created user $USER_ID"
  fi
  : >"$RGW_DIR/ready"
}

ensure_packages
rgw_lock
bring_up
if [ "$REBUILD" = 1 ]; then
  rgw_log "rebuilding the cluster from scratch"
  rgw_stop_all KILL
  rgw_purge
  bring_up
  [ "$REBUILD" = 0 ] || rgw_die "the freshly created cluster is unusable; see $RGW_DIR/log"
fi

cat >"$RGW_DIR/s3.env.new" <<EOF
S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
S3_REGION=$REGION
S3_ACCESS_KEY=$ACCESS_KEY
S3_SECRET_KEY=$SECRET_KEY
S3_FORCE_PATH_STYLE=true
PVE_S3_RGW_CONF=$CONF
EOF
mv "$RGW_DIR/s3.env.new" "$RGW_DIR/s3.env"
rgw_log "ready: http://127.0.0.1:$RGW_PORT (settings in $RGW_DIR/s3.env)"
cat "$RGW_DIR/s3.env"
echo "RGW_STARTED=$STARTED"
