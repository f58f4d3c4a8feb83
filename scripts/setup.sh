#!/usr/bin/env bash
# First command of the README: installs the Debian packages Berth needs
# (scripts/deps.sh), builds the workspace in release mode (scripts/build.sh), then does Berth's
# main job once on an embedded default: runs a busybox container with
# berth-runc that prints a greeting, its hostname and its user, and cleans up.
#
# usage: sudo scripts/setup.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "setup"
bash "$repo/scripts/deps.sh"

cd "$repo"
bash "$repo/scripts/build.sh"

berth_runc=${BERTH_RUNC:-$target/bin/berth-runc}
id=berth-hello-$$
tmp=$(mktemp -d)
cleanup() {
	"$berth_runc" delete --force "$id" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

BERTH_RUNC=$berth_runc bash "$repo/scripts/busybox-bundle.sh" "$tmp/bundle" \
	sh -c 'echo hello from berth; hostname; id'
echo "+ $berth_runc run --bundle $tmp/bundle $id" >&2
"$berth_runc" run --bundle "$tmp/bundle" "$id"
