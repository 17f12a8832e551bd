# Sourced by swift-up.sh and swift-down.sh: where the throw-away Swift lives and how its daemons
# are recognised. Not meant to be run on its own.
# shellcheck source=gateway-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/gateway-lib.sh"

SWIFT_DIR=${1:-${PVE_S3_SWIFT_DIR:-/tmp/pve-s3-swift}}
case "$SWIFT_DIR" in -*) echo "swift: DIR must come first, got '$SWIFT_DIR'" >&2; exit 2 ;; esac
# Written into a directory on creation; purge refuses to delete a directory without it, so a
# mistyped DIR argument can never wipe anything else.
SWIFT_MARK=.pve-s3-swift
# The daemons, in start order; each runs "<binary> DIR/etc/<name>.conf" (memcached: its port).
SWIFT_DAEMONS=(memcached account container object proxy)
# Debian's scripts run /usr/bin/python3; a python3 earlier in PATH (pyenv) has no swift module.
SWIFT_PY=/usr/bin/python3

swift_t0=$(date +%s%N)
swift_log() {
  local ms=$((($(date +%s%N) - swift_t0) / 1000000))
  printf '[swift %3d.%ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2
}
swift_die() { swift_log "ERROR: $*"; exit 1; }

swift_bin() { # name -> the binary that runs it
  case "$1" in
    memcached) echo /usr/bin/memcached ;;
    *) echo "/usr/bin/swift-$1-server" ;;
  esac
}

# Every daemon we start carries DIR in its command line (its config file, or for memcached the
# pid file): requiring that string in /proc/PID/cmdline means a recycled pid, or another Swift's
# daemons of the same binary, are never signalled.
swift_pid_of() { # name -> prints pid if the pidfile names a live process of ours
  local f=$SWIFT_DIR/run/$1.pid-started p cmd
  [ -f "$f" ] || return 1
  p=$(cat "$f" 2>/dev/null) || return 1
  [[ $p =~ ^[0-9]+$ ]] || return 1
  cmd=$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) || return 1
  [[ $cmd == *"$(basename "$(swift_bin "$1")")"* && $cmd == *"$SWIFT_DIR/"* ]] || return 1
  echo "$p"
}

# A zombie counts as gone: whoever adopted the daemon may be slow to reap it.
swift_proc_running() {
  local stat
  stat=$({ cat "/proc/$1/stat"; } 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat:0:1}" != Z ]
}

swift_stop_one() { # name
  local p i
  p=$(swift_pid_of "$1") || { rm -f "$SWIFT_DIR/run/$1.pid-started"; return 0; }
  kill -TERM "$p" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do swift_proc_running "$p" || break; sleep 0.1; done
  if swift_proc_running "$p"; then
    swift_log "$1 (pid $p) ignored SIGTERM, sending SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
  else
    swift_log "stopped $1 (pid $p)"
  fi
  rm -f "$SWIFT_DIR/run/$1.pid-started"
}

swift_stop_all() { # the proxy first, so nothing half-written reaches the object server at the end
  local i
  for ((i = ${#SWIFT_DAEMONS[@]} - 1; i >= 0; i--)); do swift_stop_one "${SWIFT_DAEMONS[$i]}"; done
}

swift_purge() { gw_purge "$SWIFT_DIR" "$SWIFT_MARK" swift_log swift_die swift-up.sh; }

swift_lock() { gw_lock "$SWIFT_DIR" swift_die "${SWIFT_LOCK_WAIT_S:-600}" swift-up/swift-down; }
