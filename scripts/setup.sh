#!/usr/bin/env bash
# First command of the README: installs the Debian packages Berth needs
# (scripts/deps.sh), builds the workspace in release mode (scripts/build.sh),
# then does Berth's main job once on an embedded default: makes a busybox base
# image from the host's busybox-static and runs a container of it that prints
# a greeting, its hostname and its user.
#
# usage: sudo scripts/setup.sh        (state in $BERTH_ROOT, default /var/lib/berth)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "setup"
bash "$repo/scripts/deps.sh"
bash "$repo/scripts/build.sh"

berth=$target/bin/berth
echo "+ $berth image bootstrap busybox" >&2
"$berth" image bootstrap busybox
echo "+ $berth run --rm busybox sh -c 'echo hello from berth; hostname; id'" >&2
"$berth" run --rm busybox sh -c 'echo hello from berth; hostname; id'
