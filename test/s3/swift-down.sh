#!/usr/bin/env bash
# swift-down.sh [DIR] [--purge] -- stop the proxy, object, container and account servers and
# memcached that swift-up.sh started in DIR (default $PVE_S3_SWIFT_DIR or /tmp/pve-s3-swift).
# Only pids recorded in DIR/run/*.pid-started that still run the expected binary with a path in
# DIR on their command line are signalled. The data stays for the next swift-up; --purge then
# deletes DIR's contents.
set -euo pipefail
dir_arg= purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,6p' "$0" | cut -c3-; exit 0 ;;
    -*) echo "swift-down.sh: unknown option '$a' (allowed: --purge)" >&2; exit 2 ;;
    *) [ -z "$dir_arg" ] || { echo "swift-down.sh: only one DIR allowed, got '$dir_arg' and '$a'" >&2; exit 2; }
       dir_arg=$a ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=swift-common.sh
source "$HERE/swift-common.sh" "$dir_arg"
if [ ! -d "$SWIFT_DIR" ]; then swift_log "nothing to stop: $SWIFT_DIR does not exist"; exit 0; fi
SWIFT_DIR=$(cd "$SWIFT_DIR" && pwd)
[ -f "$SWIFT_DIR/$SWIFT_MARK" ] || [ -z "$(ls -A "$SWIFT_DIR")" ] ||
  swift_die "$SWIFT_DIR was not made by swift-up.sh (no $SWIFT_MARK); not touching it"
swift_lock
swift_stop_all
[ "$purge" = 0 ] || swift_purge
