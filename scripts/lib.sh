#!/usr/bin/env bash
# Shared by scripts/setup.sh and scripts/test.sh (sourced, not run): the
# repository root, the cargo target dir, a root check, and cargo on PATH
# under sudo.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
target=${CARGO_TARGET_DIR:-$repo/target}

# sudo resets PATH; find the invoking user's rustup toolchain.
if ! command -v cargo >/dev/null; then
	for home in "${HOME:-}" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
		if [ -n "$home" ] && [ -x "$home/.cargo/bin/cargo" ]; then
			export PATH="$home/.cargo/bin:$PATH"
			export RUSTUP_HOME=${RUSTUP_HOME:-$home/.rustup}
			export CARGO_HOME=${CARGO_HOME:-$home/.cargo}
			break
		fi
	done
fi

need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "error: $1 needs root (namespaces, cgroups, mounts); run: sudo $0" >&2
		exit 1
	fi
}
