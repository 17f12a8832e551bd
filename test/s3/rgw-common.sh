# Sourced by rgw-up.sh and rgw-down.sh: where the throw-away cluster lives and how its
# daemons are recognised. Not meant to be run on its own.
# shellcheck source=gateway-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway-lib.sh"

RGW_DIR=${1:-${PVE_S3_RGW_DIR:-/tmp/pve-s3-rgw}}
case "$RGW_DIR" in -*) echo "rgw: DIR must come first, got '$RGW_DIR'" >&2; exit 2 ;; esac
# Written into a directory on creation; purge refuses to delete a directory without it, so a
# mistyped DIR argument can never wipe anything else.
RGW_MARK=.pve-s3-rgw
CONF_NAME=ceph.conf

rgw_t0=$(date +%s%N)
rgw_log() {
  local ms=$((($(date +%s%N) - rgw_t0) / 1000000))
  printf '[rgw %3d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
rgw_die() { rgw_log "ERROR: $*"; exit 1; }

# Every daemon we start gets `-c DIR/ceph.conf` on its command line; requiring that string in
# /proc/PID/cmdline (besides the binary name) means a recycled pid, or the benchmark cluster's
# daemons of the same binary, are never signalled.
rgw_pid_of() { # name binary -> prints pid if the pidfile names a live process of ours
  local f=$RGW_DIR/run/$1.pid-started p cmd
  [ -f "$f" ] || return 1
  p=$(cat "$f" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  cmd=$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) || return 1
  [[ $cmd == *"$2"* && $cmd == *" -c $RGW_DIR/$CONF_NAME "* ]] || return 1
  echo "$p"
}

# A zombie counts as gone: whoever adopted the daemon may be slow to reap it (or never, as a
# container's PID 1 that is not an init).
rgw_proc_running() {
  local stat
  stat=$({ cat "/proc/$1/stat"; } 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

rgw_stop_one() { # name binary [KILL] -> 0 if it exited by itself after TERM (clean), 1 if it needed KILL
  local p i
  p=$(rgw_pid_of "$1" "$2") || { rm -f "$RGW_DIR/run/$1.pid-started"; return 0; }
  if [ "${3:-}" = KILL ]; then
    kill -KILL "$p" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do rgw_proc_running "$p" || break; sleep 0.1; done
    rgw_log "killed $1 (pid $p)"
    rm -f "$RGW_DIR/run/$1.pid-started"
    return 1
  fi
  kill -TERM "$p" 2>/dev/null || true
  # memstore writes all object data to disk during a clean OSD shutdown: give it time
  for ((i = 0; i < ${RGW_STOP_WAIT_S:-120} * 10; i++)); do
    rgw_proc_running "$p" || break
    sleep 0.1
  done
  if rgw_proc_running "$p"; then
    rgw_log "$1 (pid $p) ignored SIGTERM, sending SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    rm -f "$RGW_DIR/run/$1.pid-started"
    return 1
  fi
  rgw_log "stopped $1 (pid $p)"
  rm -f "$RGW_DIR/run/$1.pid-started"
  return 0
}

rgw_stop_all() { # [KILL]: the data is about to be deleted, so skip the clean shutdown (radosgw
  # facing a dead OSD can take minutes to exit on SIGTERM)
  rgw_stop_one rgw radosgw "${1:-}" || true
  if rgw_pid_of osd.0 ceph-osd >/dev/null; then
    # The marker tells the next rgw-up that memstore's saved copy is current.
    if rgw_stop_one osd.0 ceph-osd "${1:-}"; then : >"$RGW_DIR/osd/clean-shutdown"; fi
  fi
  rgw_stop_one mon.a ceph-mon "${1:-}" || true
}

rgw_purge() { gw_purge "$RGW_DIR" "$RGW_MARK" rgw_log rgw_die rgw-up.sh; }

rgw_lock() { gw_lock "$RGW_DIR" rgw_die "${RGW_LOCK_WAIT_S:-600}" rgw-up/rgw-down; }
