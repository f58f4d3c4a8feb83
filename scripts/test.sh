#!/usr/bin/env bash
# Second command of the README: installs missing Debian packages
# (scripts/deps.sh) and runs every test of the workspace, including the
# real-container tests that need root (debug build: it compiles much faster
# than the LTO release build and the tests assert behaviour, not speed).
#
# usage: sudo scripts/test.sh [extra cargo test args...]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need_root "the test suite"
bash "$repo/scripts/deps.sh"

cd "$repo"
# The Debian base-image test downloads ~40 MB from the Debian mirror the machine uses.
export BERTH_TEST_DEBIAN=${BERTH_TEST_DEBIAN:-1}
cargo test --workspace --no-fail-fast "$@" -- --test-threads=2
