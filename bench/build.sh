#!/usr/bin/env bash
# Benchmark: Dockerfile builds, berthd against dockerd 20.10's classic builder in the same
# run, both driven by the same docker CLI (DOCKER_BUILDKIT=0) over their own Unix sockets,
# from the same busybox image (a `docker import` of scripts/busybox-rootfs.sh) and the same
# build contexts:
#   single  FROM, ENV, WORKDIR, COPY of a source tree (SRC_FILES files of 4 KiB), two RUNs,
#           another COPY, LABEL, CMD
#   multi   two stages: a RUN that packs the sources in the first, COPY --from into the second
# Each is built
#   cold    `docker build --no-cache`: every step runs (target: berthd within 1.2x of dockerd)
#   warm    the same build again, unchanged: every step from the cache (target: berthd at
#           least 3x faster than dockerd)
# as hyperfine medians, both daemons in one hyperfine run per figure, with the docker CLI
# against bench/standin.py (which reads the context and answers at once) in the same run:
# the CLI's own share of every build, printed beside the ratios "net" of it; and Berth's own
# CLI (`berth build`, beside berthd) against berthd, the way a Berth user builds. Both daemons are
# private (own socket, data root, exec root, pidfile under one temp dir, no default
# bridge; bench/lib.sh) and everything is removed on exit.
#
# usage: sudo bench/build.sh
#   env: RUNS=10 WARMUP=2 SRC_FILES=200 BERTHD=path
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berthd=${BERTHD:-$target/bin/berthd}
berth=$(dirname "$berthd")/berth
runs=${RUNS:-10}
warmup=${WARMUP:-2}
src_files=${SRC_FILES:-200}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_need_root
bench_need_tools hyperfine python3 docker dockerd tar
[ -x "$berthd" ] || {
	echo "error: berthd not found at $berthd (scripts/build.sh, or set BERTHD)" >&2
	exit 1
}
bench_check_berthd
[ -x "$berth" ] || {
	echo "error: berth not found beside $berthd (scripts/build.sh)" >&2
	exit 1
}

tmp=$(mktemp -d /tmp/bdb.XXXXXX)
tag=$(basename "$tmp")
bench_init
daemons=(dockerd berthd)
declare -A pid=()
trap bench_cleanup EXIT


# The contexts.
ctx=$tmp/ctx
mkdir -p "$ctx/single/src" "$ctx/multi/src"
for i in $(seq "$src_files"); do
	head -c 4096 /dev/urandom | base64 >"$ctx/single/src/f$i.txt"
done
cp -r "$ctx/single/src/." "$ctx/multi/src/"
echo "key=value" >"$ctx/single/config.txt"
cat >"$ctx/single/Dockerfile" <<'EOF'
FROM busybox
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
RUN cat src/* | wc -c > size.txt
RUN for i in 1 2 3; do echo "$i" >> log.txt; done
COPY config.txt ./
LABEL bench=single
CMD ["cat", "size.txt"]
EOF
cat >"$ctx/multi/Dockerfile" <<'EOF'
FROM busybox AS build
COPY src/ /src/
RUN tar -cf /out.tar /src
FROM busybox
COPY --from=build /out.tar /
LABEL bench=multi
CMD ["ls", "-l", "/out.tar"]
EOF

mkdir -p "$tmp/standin"
python3 "$repo/bench/standin.py" "$tmp/standin/d.sock" &
pid[standin]=$!
for _ in $(seq 50); do [ -S "$tmp/standin/d.sock" ] && break; sleep 0.1; done

bench_busybox_tar
for d in "${daemons[@]}"; do
	echo "starting a private $d under $tmp/$d" >&2
	# shellcheck disable=SC2046 # the flags are words
	start_daemon "$d" $(no_net_flags "$d")
	dk "$d" import "$tmp/busybox.tar" busybox:latest >/dev/null
	for c in single multi; do
		# A first build checks it works, and fills the cache for the warm runs.
		if ! DOCKER_BUILDKIT=0 dk "$d" build -q -t "bench-$c" "$ctx/$c" >"$tmp/$d-$c.out" 2>&1; then
			echo "error: $d cannot build $c:" >&2
			tail -20 "$tmp/$d-$c.out" >&2
			exit 1
		fi
	done
done

for c in single multi; do
	for mode in cold warm; do
		flags="-q"
		[ "$mode" = cold ] && flags="-q --no-cache"
		cmds=(-n standin "DOCKER_BUILDKIT=0 DOCKER_HOST=unix://$tmp/standin/d.sock docker build $flags -t bench-$c $ctx/$c")
		for d in "${daemons[@]}"; do
			cmds+=(-n "$d" "DOCKER_BUILDKIT=0 DOCKER_HOST=unix://$(sock "$d") docker build $flags -t bench-$c $ctx/$c")
		done
		cmds+=(-n berth "$berth -H unix://$(sock berthd) build $flags -t bench-$c $ctx/$c")
		echo "timing $c $mode builds ($runs runs)" >&2
		hyperfine --warmup "$warmup" --runs "$runs" --style basic \
			--export-json "$tmp/$c-$mode.json" "${cmds[@]}" >&2
	done
done

python3 - "$tmp" <<'EOF'
import json, sys
tmp = sys.argv[1]
print()
print(f"{'build':<14}{'CLI only':>10}{'dockerd ms':>12}{'berthd ms':>11}{'ratio':>8}{'net of CLI':>12}{'berth build':>13}{'ratio':>8}  target (on the ratios)")
for c in ("single", "multi"):
    for mode, target, limit in (("cold", "<= 1.2x", 1.2), ("warm", "<= 0.33x (3x faster)", 1 / 3)):
        res = {r["command"]: r for r in json.load(open(f"{tmp}/{c}-{mode}.json"))["results"]}
        cli = res["standin"]["median"] * 1000
        dk, bt = res["dockerd"]["median"] * 1000, res["berthd"]["median"] * 1000
        ratio = bt / dk
        net = max(bt - cli, 0) / max(dk - cli, 1e-9)
        own = res["berth"]["median"] * 1000
        met = "met" if ratio <= limit else "NOT met"
        met_own = "met" if own / dk <= limit else "NOT met"
        print(f"{c + ' ' + mode:<14}{cli:>10.1f}{dk:>12.1f}{bt:>11.1f}{ratio:>7.2f}x{net:>11.2f}x{own:>13.1f}{own / dk:>7.2f}x  {target}: docker CLI {met}, berth CLI {met_own}")
print()
print("medians of hyperfine runs; the stand-in and both daemons in each hyperfine run;")
print("'CLI only' is the docker CLI against bench/standin.py, 'net of CLI' the ratio of what")
print("each daemon adds to it; 'berth build' is Berth's CLI against berthd")
EOF
