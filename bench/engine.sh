#!/usr/bin/env bash
# Benchmark: the engine, berthd against dockerd 20.10 in the same run, both driven by
# the same docker CLI over their own Unix sockets, with the same busybox image (a
# `docker import` of scripts/busybox-rootfs.sh):
#   run      `docker run --rm busybox true` (hyperfine medians; target: berthd at most
#            a quarter of dockerd's time), and in the same hyperfine run the docker CLI
#            against bench/standin.py, which answers at once and runs nothing: the CLI's
#            own share of every run
#   burst    50 `docker run -d busybox true` started concurrently (xargs -P 50), until
#            all have exited (`docker wait`): median of BURST_RUNS wall times
#   idle RSS VmRSS of the daemon after start and image import, and again after the
#            workload with no containers left: dockerd + its containerd vs berthd
#   shim RSS 10 `sleep 1000` containers: median VmRSS of their containerd-shim-runc-v2
#            vs berth-shim processes (target: berth-shim under 2 MiB), and the anonymous
#            part of it (RssAnon; the rest is the binary's pages, shared by all shims)
# Both daemons are private (own socket, data root, exec root, pidfile under one temp
# dir; both without a default bridge: dockerd --bridge=none --iptables=false, berthd
# --bridge none; dockerd with its own containerd; bench/lib.sh) and
# everything (containers, daemons, shims, mounts, cgroups, temp dirs) is removed on exit.
#
# berthd is optional: when ${CARGO_TARGET_DIR:-target}/bin/berthd (scripts/build.sh)
# (or $BERTHD) is missing it is left out with a note and only dockerd is measured; when
# it is present but cannot start, import or run busybox the script exits 1; a daemon
# that fails some of the concurrent starts gets "failed" in that row, the other figures
# are still printed, and the script exits 1.
#
# usage: sudo bench/engine.sh
#   env: RUNS=20 WARMUP=3 BURST=50 BURST_RUNS=3 SHIMS=10 BERTHD=path
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berthd=${BERTHD:-$target/bin/berthd}
runs=${RUNS:-20}
warmup=${WARMUP:-3}
burst=${BURST:-50}
burst_runs=${BURST_RUNS:-3}
shims=${SHIMS:-10}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_need_root
bench_need_tools hyperfine python3 docker dockerd xargs tar

# Short: the sockets live here (Unix socket paths must stay under 108 bytes).
tmp=$(mktemp -d /tmp/bde.XXXXXX)
tag=$(basename "$tmp")
bench_init

daemons=(dockerd)
if [ -x "$berthd" ]; then
	daemons+=(berthd)
	berth_shim=$(dirname "$(readlink -f "$berthd")")/berth-shim
	bench_check_berthd
else
	echo "note: berthd not found at $berthd (build it with scripts/build.sh, or set BERTHD):" \
		"measuring dockerd only, no comparison" >&2
fi
declare -A pid=()

trap bench_cleanup EXIT


rss_kb() { # VmRSS (or the field $2) of pid $1 in kB (0 when gone)
	awk -v k="${2:-VmRSS}:" '$1 == k {print $2; f=1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}
# The daemon's own memory: dockerd plus the containerd it started; berthd alone.
daemon_rss_kb() {
	local d=$1 total p
	total=$(rss_kb "${pid[$d]}")
	if [ "$d" = dockerd ]; then
		# shellcheck disable=SC2013 # pids, one word each
		for p in $(grep -l -s -F "$tmp/dockerd/exec/containerd/containerd.toml" /proc/[0-9]*/cmdline | cut -d/ -f3); do
			total=$((total + $(rss_kb "$p")))
		done
	fi
	echo "$total"
}
# Pids of the shims of daemon $1's containers.
shim_pids() {
	local d=$1 p exe
	for p in /proc/[0-9]*; do
		p=${p#/proc/}
		exe=$(readlink "/proc/$p/exe" 2>/dev/null) || continue
		case $d in
		dockerd)
			[ "$(basename "$exe")" = containerd-shim-runc-v2 ] &&
				grep -q -s -F "$tmp/dockerd/" "/proc/$p/cmdline" && echo "$p"
			;;
		berthd)
			# The berth-shim beside our berthd, or any berth-shim naming our temp dir.
			if [ "$exe" = "$berth_shim" ] || { [ "$(cat "/proc/$p/comm" 2>/dev/null)" = berth-shim ] &&
				grep -q -s -F "$tmp/berthd/" "/proc/$p/cmdline"; }; then
				echo "$p"
			fi
			;;
		esac
	done
	return 0
}
bench_busybox_tar

declare -A idle_rss=() after_rss=() burst_s=() shim_kb=() shim_anon_kb=() nshims=()
for d in "${daemons[@]}"; do
	echo "starting a private $d under $tmp/$d" >&2
	# shellcheck disable=SC2046 # the flags are words
	start_daemon "$d" $(no_net_flags "$d")
	dk "$d" import "$tmp/busybox.tar" busybox:latest >/dev/null
	if [ "$(dk "$d" run --rm busybox echo ok)" != ok ]; then
		echo "error: $d cannot run busybox" >&2
		exit 1
	fi
	sleep 2
	idle_rss[$d]=$(daemon_rss_kb "$d")
done

# 1. Run latency, both daemons and the stand-in in one hyperfine run.
mkdir -p "$tmp/standin"
python3 "$repo/bench/standin.py" "$tmp/standin/d.sock" &
pid[standin]=$!
for _ in $(seq 50); do [ -S "$tmp/standin/d.sock" ] && break; sleep 0.1; done
cmds=(-n standin "DOCKER_HOST=unix://$tmp/standin/d.sock docker run --rm busybox true")
for d in "${daemons[@]}"; do
	cmds+=(-n "$d" "DOCKER_HOST=unix://$(sock "$d") docker run --rm busybox true")
done
echo "timing docker run --rm busybox true ($runs runs)" >&2
hyperfine --warmup "$warmup" --runs "$runs" --style basic \
	--export-json "$tmp/run.json" "${cmds[@]}" >&2

# 2. A burst of concurrent containers. A daemon that fails a start is reported (the
# row shows "failed") and the script exits 1 after the other figures.
status=0
for d in "${daemons[@]}"; do
	times=()
	for r in $(seq "$burst_runs"); do
		echo "$d: $burst concurrent docker run -d (round $r/$burst_runs)" >&2
		start=$(date +%s.%N)
		ok=true
		seq "$burst" | xargs -P "$burst" -I{} \
			env DOCKER_HOST="unix://$(sock "$d")" docker run -d --name "burst{}" busybox true \
			>/dev/null 2>"$tmp/burst.err" || ok=false
		dk "$d" ps -aq --filter name=burst | xargs -r docker -H "unix://$(sock "$d")" wait >"$tmp/codes" || ok=false
		end=$(date +%s.%N)
		if [ "$(grep -c '^0$' "$tmp/codes")" -ne "$burst" ]; then
			ok=false
		fi
		dk "$d" ps -aq --filter name=burst | xargs -r docker -H "unix://$(sock "$d")" rm -f >/dev/null
		if ! $ok; then
			echo "error: $d: not all $burst concurrent containers ran and exited 0" \
				"(exit codes: $(sort "$tmp/codes" | uniq -c | tr -s ' \n' ' '))" >&2
			sort -u "$tmp/burst.err" | head -5 >&2
			times=()
			status=1
			break
		fi
		times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")
	done
	if [ ${#times[@]} -gt 0 ]; then
		burst_s[$d]=$(printf '%s\n' "${times[@]}" | median)
	else
		burst_s[$d]='float("nan")'
	fi
done

# 3. Shims of long-running containers, then the daemons' memory with nothing running.
for d in "${daemons[@]}"; do
	echo "$d: $shims sleep containers" >&2
	for i in $(seq "$shims"); do
		dk "$d" run -d --name "idle$i" busybox sleep 1000 >/dev/null
	done
	sleep 1
	pids=$(shim_pids "$d")
	nshims[$d]=$(echo "$pids" | grep -c . || true)
	shim_kb[$d]=$(for p in $pids; do rss_kb "$p"; done | median)
	shim_anon_kb[$d]=$(for p in $pids; do rss_kb "$p" RssAnon; done | median)
	dk "$d" ps -aq | xargs docker -H "unix://$(sock "$d")" rm -f >/dev/null
	sleep 2
	after_rss[$d]=$(daemon_rss_kb "$d")
done

python3 - "$tmp/run.json" <<EOF
import json, math, sys
res = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
daemons = "${daemons[*]}".split()
burst = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${burst_s[$d]}"; done)}
idle = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${idle_rss[$d]}"; done)}
after = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${after_rss[$d]}"; done)}
shim = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${shim_kb[$d]}"; done)}
shim_anon = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${shim_anon_kb[$d]}"; done)}
nshim = {$(for d in "${daemons[@]}"; do printf '"%s": %s, ' "$d" "${nshims[$d]}"; done)}
have_b = "berthd" in daemons
mib = lambda kb: kb / 1024
rows = [
    ("run --rm busybox true", "ms", {d: res[d]["median"] * 1000 for d in daemons}, "berthd <= 0.25x dockerd"),
    ("$burst concurrent run -d", "s", burst, ""),
    ("daemon RSS, idle", "MiB", {d: mib(idle[d]) for d in daemons}, ""),
    ("daemon RSS, after work", "MiB", {d: mib(after[d]) for d in daemons}, ""),
    ("shim RSS (median of %s)" % "/".join(str(nshim[d]) for d in daemons), "MiB", {d: mib(shim[d]) for d in daemons}, "berth-shim < 2 MiB"),
    ("  of which anonymous", "MiB", {d: mib(shim_anon[d]) for d in daemons}, ""),
]
print()
print("dockerd: dockerd 20.10 + its containerd + containerd-shim-runc-v2 + runc")
print(f"{'benchmark':<28} {'unit':<4} {'dockerd':>10} {'berthd':>10} {'berthd/dockerd':>15}  target")
for name, unit, v, tgt in rows:
    fmt = lambda x: f"{'failed':>10}" if math.isnan(x) else f"{x:>10.2f}"
    b = fmt(v["berthd"]) if have_b else f"{'missing':>10}"
    ok = have_b and v["dockerd"] and not math.isnan(v["berthd"]) and not math.isnan(v["dockerd"])
    ratio = f"{v['berthd'] / v['dockerd']:>14.2f}x" if ok else f"{'-':>15}"
    print(f"{name:<28} {unit:<4} {fmt(v['dockerd'])} {b} {ratio}  {tgt}")
cli = res["standin"]["median"] * 1000
print(f"docker CLI alone (bench/standin.py answers at once): {cli:.2f} ms median; beyond it: "
      + ", ".join(f"{d} {res[d]['median'] * 1000 - cli:.2f} ms" for d in daemons))
if have_b:
    r = res["berthd"]["median"] / res["dockerd"]["median"]
    print(f"run latency target (<= 0.25x): {'met' if r <= 0.25 else 'NOT met'} ({r:.2f}x)")
    s = mib(shim["berthd"])
    if nshim["berthd"] == 0:
        print("shim RSS target (< 2 MiB): unknown (no berth-shim process found beside berthd)")
    else:
        print(f"shim RSS target (< 2 MiB): {'met' if s < 2 else 'NOT met'} ({s:.2f} MiB)")
else:
    print("berthd missing: nothing to compare (build it with scripts/build.sh)")
EOF
exit $status
