#!/usr/bin/env bash
# Benchmark: images, Berth against dockerd in the same run (hyperfine, medians and ratios).
#
# The image: a debootstrap Debian (`berth image bootstrap debian:SUITE`) plus RANDOM_MB of
# random files in 5 layers, built once with `docker build` on top of Berth's Debian (saved
# by Berth, loaded by docker), then saved by docker: the same archive for both.
#   load    `berth image load -i big.tar`      vs `docker load -i big.tar`
#   save    `berth image save -o out.tar big`  vs `docker save -o out.tar big`
#   unpack  first `berth run --rm big true` (every layer unpacked into a snapshot) minus a
#           second one: throughput in MB/s of uncompressed layer data
#   run     a container of an already unpacked image: `berth run --rm` vs `docker run --rm`
#           (runc, no network)
#   load+run  load then the first container: Berth unpacks layers at the first run, dockerd
#           at load, so this row compares the whole way to a running container
# The dockerd and the berthd are private (own socket, data root, exec root, pidfile; dockerd
# with overlay2) and are stopped at the end. The berth CLI talks to its berthd over HTTP, as
# the docker CLI to dockerd.
#
# usage: sudo bench/image.sh
#   env: RANDOM_MB=500 RUNS=5 SUITE=bookworm BERTH=path (default: target/bin/berth from
#        scripts/build.sh, built if missing) DEBIAN_TAR=path (a `berth image save` of debian:SUITE to skip debootstrap)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
random_mb=${RANDOM_MB:-500}
runs=${RUNS:-5}
suite=${SUITE:-bookworm}
layers=5

if [ "$(id -u)" -ne 0 ]; then
	echo "error: the benchmark mounts and runs containers and needs root; run: sudo $0" >&2
	exit 1
fi
for tool in hyperfine python3 dockerd docker debootstrap; do
	command -v "$tool" >/dev/null || {
		echo "error: $tool not found; run scripts/deps.sh" >&2
		exit 1
	}
done

berth=${BERTH:-$target/bin/berth}
berthd=$(dirname "$berth")/berthd
if [ -z "${BERTH:-}" ] && { [ ! -x "$berth" ] || [ ! -x "$berthd" ] || [ ! -x "$target/bin/berth-runc" ]; }; then
	echo "building berth, berthd and berth-runc (scripts/build.sh)" >&2
	bash "$repo/scripts/build.sh"
fi
[ -x "$berth" ] || {
	echo "error: $berth not found" >&2
	exit 1
}

# Everything on the same disk (/var/tmp, not a tmpfs), the docker socket path short.
work=$(mktemp -d /var/tmp/berth-bench-image.XXXXXX)
droot=$(mktemp -d /tmp/bdb.XXXXXX)
broot=$work/berth
B=("$berth" -H "unix://$droot/berth.sock")
export DOCKER_HOST="unix://$droot/docker.sock"
dockerd_pid=
berthd_pid=

cleanup() {
	set +e
	if [ -n "$berthd_pid" ]; then
		"${B[@]}" ps -aq | xargs -r "${B[@]}" rm -f >/dev/null 2>&1
		kill "$berthd_pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$berthd_pid" 2>/dev/null || break; sleep 0.1; done
	fi
	if [ -n "$dockerd_pid" ]; then
		docker ps -aq | xargs -r docker rm -f >/dev/null 2>&1
		kill "$dockerd_pid" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
		kill -9 "$dockerd_pid" 2>/dev/null
	fi
	# containerd and shims started under our exec root.
	pkill_pids=$(grep -l -s "$droot/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3)
	for p in $pkill_pids; do kill -9 "$p" 2>/dev/null; done
	for d in "$droot" "$work"; do
		grep -o " $d[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
			umount -l "$m" 2>/dev/null
		done
	done
	rm -rf "$droot" "$work"
}
trap cleanup EXIT

echo "starting a private dockerd under $droot" >&2
dockerd --data-root "$work/docker" --exec-root "$droot/exec" --pidfile "$droot/pid" \
	-H "$DOCKER_HOST" --bridge none --iptables=false --ip-masq=false \
	--storage-driver overlay2 >"$droot/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do
	docker version >/dev/null 2>&1 && break
	kill -0 "$dockerd_pid" 2>/dev/null || {
		tail -20 "$droot/dockerd.log" >&2
		exit 1
	}
	sleep 0.2
done
docker version >/dev/null

echo "starting a private berthd under $droot" >&2
"$berthd" -H "unix://$droot/berth.sock" --data-root "$work/berth" --exec-root "$droot/bexec" \
	--pidfile "$droot/berthd.pid" >"$droot/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 100); do
	"${B[@]}" version >/dev/null 2>&1 && break
	kill -0 "$berthd_pid" 2>/dev/null || {
		tail -20 "$droot/berthd.log" >&2
		exit 1
	}
	sleep 0.1
done
"${B[@]}" version >/dev/null

# 1. The image.
if [ -n "${DEBIAN_TAR:-}" ]; then
	"${B[@]}" image load -q -i "$DEBIAN_TAR" >/dev/null
else
	echo "bootstrapping debian:$suite with debootstrap (downloads ~40 MB)" >&2
	"${B[@]}" image bootstrap -q "debian:$suite" >/dev/null
fi
"${B[@]}" image save -o "$work/debian.tar" "debian:$suite"
docker load -q -i "$work/debian.tar" >/dev/null
ctx=$work/ctx
mkdir -p "$ctx"
{
	echo "FROM debian:$suite"
	for i in $(seq "$layers"); do echo "COPY data$i /data$i"; done
} >"$ctx/Dockerfile"
per_layer=$((random_mb / layers))
for i in $(seq "$layers"); do
	mkdir -p "$ctx/data$i"
	# Ten files per layer, random (incompressible) content.
	for j in $(seq 10); do
		head -c "$((per_layer * 1024 * 1024 / 10))" /dev/urandom >"$ctx/data$i/f$j"
	done
done
echo "building big:bench (debian:$suite + $random_mb MB in $layers layers)" >&2
DOCKER_BUILDKIT=0 docker build -q -t big:bench "$ctx" >/dev/null
docker save -o "$work/big.tar" big:bench
rm -rf "$ctx"
tar_mb=$(du -m "$work/big.tar" | cut -f1)
echo "image archive: $tar_mb MB" >&2

# 2. Timings.
hf() { # name, then hyperfine args
	local name=$1
	shift
	hyperfine --runs "$runs" --warmup 1 --style basic --export-json "$work/$name.json" "$@" >&2
}

"${B[@]}" image load -q -i "$work/big.tar" >/dev/null
hf load \
	--prepare "${B[*]} image rm -f big:bench >/dev/null 2>&1; ${B[*]} image prune -af >/dev/null 2>&1 || true" \
	-n berth "${B[*]} image load -q -i $work/big.tar" \
	--prepare "docker rmi -f big:bench >/dev/null 2>&1; docker image prune -af >/dev/null 2>&1 || true" \
	-n docker "docker load -q -i $work/big.tar"

# Both stores hold big:bench again (the last run of each loaded it).
hf save \
	--prepare "rm -f $work/out.tar" \
	-n berth "${B[*]} image save -o $work/out.tar big:bench" \
	--prepare "rm -f $work/out.tar" \
	-n docker "docker save -o $work/out.tar big:bench"
rm -f "$work/out.tar"

# Unpack: the layer snapshots dropped before each first run (no container exists between
# runs, so nothing is mounted; the snapshotter reads its state from disk each time).
hf unpack \
	--prepare "rm -rf $broot/snapshots/snapshots/* $broot/snapshots/keys/*" \
	-n berth-first-run "${B[*]} run --rm big:bench true"

docker run --rm --network none big:bench true
hf run \
	-n berth "${B[*]} run --rm big:bench true" \
	-n docker "docker run --rm --network none big:bench true"

unpacked_mb=$(du -sm "$broot/snapshots" | cut -f1)

python3 - "$work" "$unpacked_mb" <<'EOF'
import json, sys
work, unpacked_mb = sys.argv[1], float(sys.argv[2])
def med(name):
    r = json.load(open(f"{work}/{name}.json"))["results"]
    return {x["command"]: x["median"] for x in r}
print(f"{'benchmark':<10} {'berth':>10} {'docker':>10} {'docker/berth':>13}")
for name in ("load", "save", "run"):
    m = med(name)
    b, d = m["berth"], m["docker"]
    print(f"{name:<10} {b:>9.3f}s {d:>9.3f}s {d / b:>12.2f}x")
first = med("unpack")["berth-first-run"]
second = med("run")["berth"]
unpack = max(first - second, 1e-6)
print(f"unpack     {unpacked_mb:.0f} MB of layers in {unpack:.3f}s "
      f"(first run {first:.3f}s - second run {second:.3f}s): {unpacked_mb / unpack:.0f} MB/s")
# Berth's load only stores blobs (layers are unpacked at the first run); dockerd's load
# also unpacks. Load until runnable compares the whole way to a first container.
b = med("load")["berth"] + first
d = med("load")["docker"] + med("run")["docker"]
print(f"{'load+run':<10} {b:>9.3f}s {d:>9.3f}s {d / b:>12.2f}x  (load, then the first container)")
EOF
