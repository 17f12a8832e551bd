#!/usr/bin/env bash
# rgw-down.sh [DIR] [--purge] -- stop the radosgw, OSD and monitor that rgw-up.sh started in DIR
# (default $PVE_S3_RGW_DIR or /tmp/pve-s3-rgw). Only pids recorded in DIR/run/*.pid-started that
# still run the expected binary with DIR's ceph.conf are signalled. The OSD gets time for a
# clean shutdown so that the next rgw-up finds its data; --purge then deletes DIR's contents.
set -euo pipefail
dir_arg= purge=0
for a in "$@"; do
  case "$a" in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,5p' "$0" | cut -c3-; exit 0 ;;
    -*) echo "rgw-down.sh: unknown option '$a' (allowed: --purge)" >&2; exit 2 ;;
    *) [ -z "$dir_arg" ] || { echo "rgw-down.sh: only one DIR allowed, got '$dir_arg' and '$a'" >&2; exit 2; }
       dir_arg=$a ;;
  esac
done
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=rgw-common.sh
source "$HERE/rgw-common.sh" "$dir_arg"
if [ ! -d "$RGW_DIR" ]; then rgw_log "nothing to stop: $RGW_DIR does not exist"; exit 0; fi
RGW_DIR=$(cd "$RGW_DIR" && pwd)
[ -f "$RGW_DIR/$RGW_MARK" ] || [ -z "$(ls -A "$RGW_DIR")" ] ||
  rgw_die "$RGW_DIR was not made by rgw-up.sh (no $RGW_MARK); not touching it"
rgw_lock
if [ "$purge" = 1 ]; then
  rgw_stop_all KILL
  rgw_purge
else
  rgw_stop_all
fi
