#!/usr/bin/env bash
# Benchmark: networks, berthd against dockerd 20.10 in the same run, from the host to a
# published port (`docker run -p PORT:5000`) on 127.0.0.1, and the time to attach a running
# container to a user network. The server in the container and the client on the host are
# bench/tcpbench.rs (std only, built here with rustc as one static binary, bind-mounted into
# a busybox container):
#   rtt      one connection, RTT_COUNT round trips of RTT_SIZE bytes: median latency (us)
#   connect  CONNECTS new connections with one round trip each: median (us), what short
#            requests pay (NAT and conntrack set-up, or the userland proxy's second leg)
#   stream   STREAMS times STREAM_MIB MiB into a sink in the container: throughput (MiB/s;
#            two cores carry both ends, so single transfers vary by tens of percent)
#   attach   `docker network connect benchnet att` of a running container (hyperfine median,
#            the docker CLI's own ~20 ms included for both; each run after a disconnect)
# dockerd is measured twice, one private instance after the other, each with its default
# bridge (docker0) and iptables: first with its userland proxy (docker-proxy, the default;
# it carries 127.0.0.1 traffic), then with --userland-proxy=false (DNAT in iptables, with
# route_localnet). berthd (its default bridge on a device of its own, the CNI bridge,
# portmap and firewall plugins) runs throughout, and every round measures dockerd, berthd
# and the host's own loopback (tcpbench with no container) alternately, so both see the
# same machine. Figures are medians over all rounds; each ratio is berthd's over that of the
# dockerd it alternated with (berthd@proxy, berthd@iptables).
# Targets (issue 5): berthd no slower than dockerd's iptables path, faster than its
# userland proxy.
#
# Everything is private (own sockets, data roots, exec roots, pid files under one temp dir;
# bench/lib.sh) and removed on exit: containers, daemons, shims, cgroups, mounts, dockerd's
# docker0 and DOCKER iptables chains, berthd's bridge; ip_forward, the FORWARD policy and
# bridge-nf-call-iptables are put back as they were. It refuses to run while another
# dockerd's network (docker0, DOCKER chains) is up: the benchmark's dockerd would share it.
#
# usage: sudo bench/network.sh       (after scripts/build.sh)
#   env: ROUNDS=10 RTT_COUNT=5000 RTT_SIZE=64 CONNECTS=300 STREAM_MIB=512 STREAMS=3
#        ATTACH_RUNS=20 SAMPLES_OUT=file (keeps every sample)
#        BERTHD=path
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berthd=${BERTHD:-$target/bin/berthd}
rounds=${ROUNDS:-10}
rtt_count=${RTT_COUNT:-5000}
rtt_size=${RTT_SIZE:-64}
connects=${CONNECTS:-300}
stream_mib=${STREAM_MIB:-512}
streams=${STREAMS:-3}
attach_runs=${ATTACH_RUNS:-20}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_need_root
bench_need_tools hyperfine python3 docker dockerd docker-proxy rustc iptables ip tar
if [ ! -x "$berthd" ]; then
	echo "error: berthd not found at $berthd: build it with scripts/build.sh, or set BERTHD" >&2
	exit 1
fi
bench_check_berthd
if [ -e /sys/class/net/docker0 ] || iptables -t nat -S DOCKER >/dev/null 2>&1 ||
	iptables -t filter -S DOCKER >/dev/null 2>&1; then
	echo "error: docker0 or dockerd's DOCKER iptables chains are on this host: another dockerd's" \
		"network is up, and the benchmark's dockerd would share it; stop that dockerd and" \
		"remove docker0 and its chains first" >&2
	exit 1
fi

tmp=$(mktemp -d /tmp/bnn.XXXXXX)
tag=$(basename "$tmp")
bench_init
bridge=bb${tag#bnn.}
daemons=(berthd)
declare -A pid=()

ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)
forward_policy=$(iptables -S FORWARD | awk '$1 == "-P" {print $3}')
nf_call=/proc/sys/net/bridge/bridge-nf-call-iptables
nf_call_was=$(cat "$nf_call" 2>/dev/null || true)

# dockerd leaves docker0 and its chains when it stops; they go here.
docker_net_cleanup() {
	local t rule words chains c
	for t in nat filter; do
		iptables -t "$t" -S | grep -E '^-A (PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ' |
			grep -e DOCKER -e docker0 | while read -r rule; do
			read -ra words <<<"${rule#-A }"
			iptables -t "$t" -D "${words[@]}"
		done
		chains=$(iptables -t "$t" -S | awk '$1 == "-N" && $2 ~ /^DOCKER/ {print $2}')
		for c in $chains; do iptables -t "$t" -F "$c"; done
		for c in $chains; do iptables -t "$t" -X "$c"; done
	done
	[ -e /sys/class/net/docker0 ] && ip link delete docker0
	return 0
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	bench_cleanup_daemons
	docker_net_cleanup
	[ -e "/sys/class/net/$bridge" ] && ip link delete "$bridge"
	echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward
	[ -n "$forward_policy" ] && iptables -P FORWARD "$forward_policy"
	[ -n "$nf_call_was" ] && echo "$nf_call_was" >"$nf_call"
	[ -n "${SAMPLES_OUT:-}" ] && cp "$tmp/samples" "$SAMPLES_OUT"
	rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "building bench/tcpbench.rs" >&2
rustc --edition 2021 -O -C target-feature=+crt-static "$repo/bench/tcpbench.rs" -o "$tmp/tcpbench"
bench_busybox_tar

# The host's own loopback, no container: the floor.
host_port=$(free_port)
"$tmp/tcpbench" serve "$host_port" &
pid[host]=$!
declare -A addr=([host]="127.0.0.1:$host_port")

# A daemon's server container (published on a free port), its attach target and a user
# network, and a wait until the published port answers.
setup_daemon() {
	local d=$1 port
	port=$(free_port)
	dk "$d" import "$tmp/busybox.tar" busybox:latest >/dev/null
	dk "$d" network create benchnet >/dev/null
	dk "$d" run -d --name srv -p "$port:5000" -v "$tmp/tcpbench:/tcpbench:ro" busybox \
		/tcpbench serve 5000 >/dev/null
	dk "$d" run -d --name att busybox sleep 100000 >/dev/null
	addr[$d]="127.0.0.1:$port"
	for _ in $(seq 100); do
		"$tmp/tcpbench" connect "${addr[$d]}" 1 >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "error: $d: the published port ${addr[$d]} does not answer" >&2
	exit 1
}

# One round of every measurement against $1, appended to $tmp/samples as `label metric
# value` (label $2, default $1).
measure() {
	local a=${addr[$1]} who=${2:-$1} out
	out=$("$tmp/tcpbench" rtt "$a" "$rtt_count" "$rtt_size")
	echo "$who rtt $(sed 's/.*"median_us": \([0-9.]*\).*/\1/' <<<"$out")" >>"$tmp/samples"
	out=$("$tmp/tcpbench" connect "$a" "$connects")
	echo "$who connect $(sed 's/.*"median_us": \([0-9.]*\).*/\1/' <<<"$out")" >>"$tmp/samples"
	for _ in $(seq "$streams"); do
		out=$("$tmp/tcpbench" stream "$a" "$stream_mib")
		echo "$who stream $(sed 's/.*"mib_s": \([0-9.]*\).*/\1/' <<<"$out")" >>"$tmp/samples"
	done
}

: >"$tmp/samples"
echo "starting a private berthd under $tmp/berthd (bridge $bridge)" >&2
start_daemon berthd --bridge "$bridge"
setup_daemon berthd

for mode in proxy iptables; do
	d=dockerd-$mode
	daemons+=("$d")
	echo "starting a private dockerd ($mode) under $tmp/$d" >&2
	if [ "$mode" = proxy ]; then
		start_daemon "$d" --userland-proxy=true
	else
		start_daemon "$d" --userland-proxy=false
	fi
	setup_daemon "$d"
	for r in $(seq "$rounds"); do
		echo "round $r/$rounds: $d, berthd, host loopback" >&2
		if [ $((r % 2)) -eq 1 ]; then order=("$d" berthd host); else order=(berthd "$d" host); fi
		for who in "${order[@]}"; do
			if [ "$who" = berthd ]; then measure berthd "berthd@$mode"; else measure "$who"; fi
		done
	done
	echo "timing docker network connect ($attach_runs runs each)" >&2
	cmds=()
	for who in "$d" berthd; do
		cli="DOCKER_HOST=unix://$(sock "$who") docker network"
		cmds+=(-n "$who" --prepare "$cli disconnect benchnet att >/dev/null 2>&1 || true"
			"$cli connect benchnet att")
	done
	hyperfine --warmup 2 --runs "$attach_runs" --style basic \
		--export-json "$tmp/attach-$mode.json" "${cmds[@]}" >&2
	stop_daemon "$d"
	docker_net_cleanup
done

python3 - "$rtt_size" "$stream_mib" "$tmp/samples" "$tmp/attach-proxy.json" \
	"$tmp/attach-iptables.json" <<'EOF'
import json, statistics, sys
rtt_size, stream_mib = sys.argv[1:3]
samples = {}
for line in open(sys.argv[3]):
    who, metric, value = line.split()
    samples.setdefault((who, metric), []).append(float(value))
attach = {}
for path, mode in zip(sys.argv[4:], ["proxy", "iptables"]):
    for r in json.load(open(path))["results"]:
        key = r["command"] if r["command"] != "berthd" else f"berthd@{mode}"
        attach.setdefault(key, []).extend(t * 1000 for t in r["times"])
med = lambda v: statistics.median(v) if v else float("nan")
cols = ["host", "dockerd-proxy", "berthd@proxy", "dockerd-iptables", "berthd@iptables"]
rows = [
    (f"rtt {rtt_size} B", "us", "rtt", False),
    ("connect + 1 round trip", "us", "connect", False),
    (f"stream {stream_mib} MiB", "MiB/s", "stream", True),
]
print()
print("from the host to a published port on 127.0.0.1; medians over all rounds; berthd@X is")
print("berthd measured while dockerd ran in mode X, in alternation with it (the ratios use it)")
print(f"{'benchmark':<24} {'unit':<6}" + "".join(f"{c:>17}" for c in cols)
      + f"{'berthd/proxy':>14}{'berthd/iptables':>17}  target met")
verdicts = []
for name, unit, metric, higher in rows:
    v = {c: med(samples.get((c, metric), [])) for c in cols}
    rp = v["berthd@proxy"] / v["dockerd-proxy"]
    ri = v["berthd@iptables"] / v["dockerd-iptables"]
    # No slower than iptables (within 5%, the noise of these machines), faster than the proxy.
    ok = (ri >= 0.95 and rp > 1) if higher else (ri <= 1.05 and rp < 1)
    verdicts.append(ok)
    print(f"{name:<24} {unit:<6}" + "".join(f"{v[c]:>17.1f}" for c in cols)
          + f"{rp:>13.2f}x{ri:>16.2f}x  {'yes' if ok else 'NO'}")
a = {c: med(attach.get(c, [])) for c in cols[1:]}
print(f"{'network connect':<24} {'ms':<6}{'-':>17}" + "".join(f"{a[c]:>17.1f}" for c in cols[1:])
      + f"{a['berthd@proxy'] / a['dockerd-proxy']:>13.2f}x"
      + f"{a['berthd@iptables'] / a['dockerd-iptables']:>16.2f}x")
print("targets (berthd no slower than dockerd's iptables path, faster than its userland proxy):",
      "met" if all(verdicts) else "NOT met")
EOF
