#!/usr/bin/env bash
# Makes an OCI bundle in DIR: DIR/rootfs from scripts/busybox-rootfs.sh and
# DIR/config.json equal to `runc spec` (written by `berth-runc spec` when the
# release binary exists and works, else by `runc spec`) with process.args set
# to ARGS (default: sh) and process.terminal false.
#
# usage: scripts/busybox-bundle.sh DIR [ARGS...]
set -euo pipefail

if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [ARGS...]" >&2
	exit 2
fi
dir=$1
shift
[ $# -gt 0 ] || set -- sh

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$repo/target}
berth_runc=${BERTH_RUNC:-$target/bin/berth-runc}

mkdir -p "$dir"
if [ -e "$dir/config.json" ]; then
	echo "error: $dir/config.json exists" >&2
	exit 1
fi
bash "$here/busybox-rootfs.sh" "$dir/rootfs"

if [ -x "$berth_runc" ] && "$berth_runc" spec --bundle "$dir" 2>/dev/null && [ -s "$dir/config.json" ]; then
	:
else
	if ! command -v runc >/dev/null; then
		echo "error: neither $berth_runc nor runc can write config.json" >&2
		exit 1
	fi
	rm -f "$dir/config.json"
	runc spec --bundle "$dir"
fi

python3 - "$dir/config.json" "$@" <<'PY'
import json, sys
path, args = sys.argv[1], sys.argv[2:]
with open(path) as f:
    spec = json.load(f)
spec["process"]["args"] = args
spec["process"]["terminal"] = False
with open(path, "w") as f:
    json.dump(spec, f, indent="\t")
PY
