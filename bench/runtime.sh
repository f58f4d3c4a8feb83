#!/usr/bin/env bash
# Benchmark: create+start+wait+delete of /bin/true in a busybox bundle
# (`RUNTIME run`), berth-runc against runc and crun in the same hyperfine run,
# printing median times and their ratio to runc; then the peak RSS of
# `RUNTIME create` (GNU time %M, create then delete, median of RSS_RUNS).
#
# crun refuses cgroup v1 hybrid hosts ("cgroups in hybrid mode not
# supported"), so on such a host every crun call runs inside `unshare -m`
# after unmounting /sys/fs/cgroup/unified in that namespace. That wrapper
# (unshare + sh + umount) is timed on its own and subtracted in the "crun net"
# row; runc and berth-runc run unwrapped against the real hybrid hierarchy.
#
# berth-runc is optional: when ${CARGO_TARGET_DIR:-target}/bin/berth-runc (scripts/build.sh)
# (or $BERTH_RUNC) is missing it is left out with a note; when it is present
# but cannot run the bundle it is left out and the script exits 1.
#
# usage: sudo bench/runtime.sh
#   env: RUNS=50 WARMUP=5 RSS_RUNS=15 BERTH_RUNC=path
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berth_runc=${BERTH_RUNC:-$target/bin/berth-runc}
runs=${RUNS:-50}
warmup=${WARMUP:-5}
rss_runs=${RSS_RUNS:-15}

if [ "$(id -u)" -ne 0 ]; then
	echo "error: the benchmark creates containers and needs root; run: sudo $0" >&2
	exit 1
fi
for tool in hyperfine python3 runc unshare; do
	command -v "$tool" >/dev/null || {
		echo "error: $tool not found; run scripts/deps.sh" >&2
		exit 1
	}
done
[ -x /usr/bin/time ] || {
	echo "error: /usr/bin/time not found (Debian package time)" >&2
	exit 1
}

tmp=$(mktemp -d /tmp/berth-bench.XXXXXX)
status=0
runtimes=()

hybrid=false
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
	hybrid=true
fi
# Runs "$@" in a private mount namespace without the cgroup v2 half of a
# hybrid hierarchy (crun only).
crun_wrap=()
if $hybrid; then
	# shellcheck disable=SC2016 # expanded by the inner sh
	crun_wrap=(unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec "$0" "$@"')
fi

# Sets wrap and bin for runtime $1: run as "${wrap[@]}" "${bin[@]}" ARGS.
argv() {
	wrap=()
	case $1 in
	berth-runc) bin=("$berth_runc" --root "$tmp/state/berth-runc") ;;
	runc) bin=(runc --root "$tmp/state/runc") ;;
	crun)
		wrap=("${crun_wrap[@]}")
		bin=(crun --root "$tmp/state/crun")
		;;
	esac
}
rt() {
	local name=$1
	shift
	argv "$name"
	"${wrap[@]}" "${bin[@]}" "$@"
}
# One shell-quoted command line for hyperfine.
quoted() {
	local name=$1
	shift
	argv "$name"
	printf '%q ' "${wrap[@]}" "${bin[@]}" "$@"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	for name in "${runtimes[@]}"; do
		[ -d "$tmp/state/$name" ] || continue
		for dir in "$tmp/state/$name"/*/; do
			[ -d "$dir" ] || continue
			rt "$name" delete --force "$(basename "$dir")" >/dev/null 2>&1 || true
		done
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building the busybox bundle in $tmp/bundle" >&2
bash "$repo/scripts/busybox-bundle.sh" "$tmp/bundle" /bin/true >/dev/null
# A probe bundle sharing the rootfs: proves each runtime really runs it.
mkdir -p "$tmp/probe"
python3 - "$tmp/bundle" "$tmp/probe" <<'PY'
import json, sys
bundle, probe = sys.argv[1:]
with open(bundle + "/config.json") as f:
    spec = json.load(f)
spec["root"]["path"] = bundle + "/rootfs"
spec["process"]["args"] = ["/bin/echo", "berth-bench-ok"]
with open(probe + "/config.json", "w") as f:
    json.dump(spec, f, indent="\t")
PY

candidates=()
if [ -x "$berth_runc" ]; then
	candidates+=(berth-runc)
else
	echo "note: $berth_runc not found (run scripts/build.sh); comparing runc and crun only" >&2
fi
candidates+=(runc)
if command -v crun >/dev/null; then
	candidates+=(crun)
else
	echo "note: crun not found; comparing without it" >&2
fi

for name in "${candidates[@]}"; do
	runtimes+=("$name")
	out=$(rt "$name" run --bundle "$tmp/probe" "probe-$name" </dev/null 2>&1) || true
	if [ "$out" != berth-bench-ok ]; then
		echo "warning: $name failed to run the probe bundle; left out. its output:" >&2
		printf '%s\n' "$out" | sed 's/^/    /' >&2
		status=1
		unset 'runtimes[${#runtimes[@]}-1]'
	fi
done
[ ${#runtimes[@]} -gt 0 ] || exit 1

names=()
hf=(hyperfine --warmup "$warmup" --runs "$runs" --export-json "$tmp/hyperfine.json")
for name in "${runtimes[@]}"; do
	names+=("$name")
	hf+=(-n "$name"
		--prepare "$(quoted "$name" delete --force "bench-$name") >/dev/null 2>&1 || true"
		"$(quoted "$name" run --bundle "$tmp/bundle" "bench-$name")")
done
if [ ${#crun_wrap[@]} -gt 0 ] && [[ " ${runtimes[*]} " == *" crun "* ]]; then
	names+=(crun-wrapper)
	hf+=(-n crun-wrapper --prepare true "$(printf '%q ' "${crun_wrap[@]}" true)")
fi
"${hf[@]}" </dev/null

echo "peak RSS of create, $rss_runs runs each" >&2
for name in "${runtimes[@]}"; do
	: >"$tmp/rss-$name"
	for i in $(seq "$rss_runs"); do
		argv "$name"
		"${wrap[@]}" /usr/bin/time -f %M -a -o "$tmp/rss-$name" \
			"${bin[@]}" create --bundle "$tmp/bundle" "rss-$name-$i" </dev/null >/dev/null
		rt "$name" delete --force "rss-$name-$i" >/dev/null
	done
done

python3 - "$tmp" "$hybrid" "${names[@]}" <<'PY'
import json, statistics, sys

tmp, hybrid, names = sys.argv[1], sys.argv[2] == "true", sys.argv[3:]
with open(tmp + "/hyperfine.json") as f:
    results = json.load(f)["results"]
ms = {name: statistics.median(r["times"]) * 1000 for name, r in zip(names, results)}
rss = {}
for name in names:
    try:
        with open(f"{tmp}/rss-{name}") as f:
            vals = [int(line) for line in f if line.strip().isdigit()]
        rss[name] = statistics.median(vals) if vals else None
    except FileNotFoundError:
        rss[name] = None

rows = [(n, ms[n], rss.get(n)) for n in names if n != "crun-wrapper"]
if "crun-wrapper" in ms and "crun" in ms:
    rows.append(("crun net", ms["crun"] - ms["crun-wrapper"], rss.get("crun")))
base = ms.get("runc")

with open("/proc/loadavg") as f:
    load = f.read().split()[:3]
print()
print(f"runs: {len(results[0]['times'])} each; cgroups: {'v1 hybrid' if hybrid else 'not hybrid'};"
      f" load average at the end: {' '.join(load)} (other work on the host skews timings)")
print(f"{'runtime':<12} {'median ms':>10} {'vs runc':>8} {'create RSS KiB':>15}")
for name, m, r in rows:
    ratio = f"{m / base:.2f}x" if base else "-"
    r = f"{r:.0f}" if r is not None else "-"
    print(f"{name:<12} {m:>10.1f} {ratio:>8} {r:>15}")
if "crun-wrapper" in ms:
    print(f"\ncrun ran inside `unshare -m sh -c 'umount /sys/fs/cgroup/unified && exec crun ...'`"
          f" (hybrid cgroups); that wrapper alone: {ms['crun-wrapper']:.1f} ms median,"
          " subtracted in 'crun net'.")
if "berth-runc" in ms and "crun" in ms:
    net = ms["crun"] - ms.get("crun-wrapper", 0)
    print(f"berth-runc / crun net: {ms['berth-runc'] / net:.2f}x")
PY
exit "$status"
