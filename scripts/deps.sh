#!/usr/bin/env bash
# Installs the Debian packages Berth needs to build, test and benchmark,
# idempotently: only the missing ones, after one `apt-get update`. Installs
# nothing outside apt; the Rust toolchain (rustup, see rust-version in
# Cargo.toml) must already be on PATH.
#
# usage: sudo scripts/deps.sh
set -euo pipefail

packages=(
	build-essential pkg-config libseccomp-dev # building (libseccomp crate)
	busybox-static                            # test and bench root filesystems
	runc crun                                 # peers for the runc contract and the benchmark
	docker.io containerd                      # dockerd --add-runtime integration, image interop
	skopeo umoci debootstrap                  # image format interop, Debian base images
	hyperfine time                            # bench/
	iproute2 python3 util-linux curl          # tests and scripts (nsenter, unshare: the cluster test; curl: bench/cluster.sh)
	containernetworking-plugins iptables      # berth-net: CNI bridge, host-local, portmap, firewall
	nftables conntrack                        # berth-net: the routing mesh and service VIPs (nft); conntrack drops a dead replica's unanswered connections
	etcd-server protobuf-compiler libprotobuf-dev # berth-cluster: etcd for the HA tests; protoc and its well-known .proto files for etcd-client
	wrk                                       # bench/mesh.sh
	python3-venv                              # crates/berthd/tests/python_sdk.rs (docker SDK from PyPI)
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "error: missing packages (${missing[*]}); run as root: sudo $0" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
	echo "error: cargo not found on PATH; install Rust with rustup (https://rustup.rs)" >&2
	echo "       (under sudo, keep PATH: sudo env PATH=\"\$PATH\" $0)" >&2
	exit 1
fi
