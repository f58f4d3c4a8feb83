#!/usr/bin/env bash
# Release build of the workspace, linked statically (no dynamic loader or relocations at
# each start: berth-runc starts in well under a millisecond), with the binaries copied to
# target/bin/. libseccomp is linked from Debian's libseccomp.a (libseccomp-dev).
#
# usage: scripts/build.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "$repo"
host=$(rustc -vV | sed -n 's/^host: //p')
multiarch=$(gcc -print-multiarch 2>/dev/null || echo "${host%%-unknown-*}-linux-gnu")
# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros.
LIBSECCOMP_LINK_TYPE=static \
	LIBSECCOMP_LIB_PATH=/usr/lib/$multiarch \
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
	cargo build --release --workspace --target "$host"
mkdir -p "$target/bin"
for b in "$target/$host/release/"*; do
	if [ -f "$b" ] && [ -x "$b" ]; then
		cp -f "$b" "$target/bin/"
	fi
done
echo "built: $(ls "$target/bin" | tr '\n' ' ')" >&2
