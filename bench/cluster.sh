#!/usr/bin/env bash
# Benchmark: the cluster.
#   sim     a berthd master with SIM_NODES simulated nodes (berth-cluster-sim: real joins,
#           mutual TLS sessions, heartbeats; tasks are accepted and reported running without
#           containers) and one service of SIM_TASKS replicas: the master's own placement
#           rate (its log: tasks placed / time in the scheduler), the time from `docker
#           service create` to the last task reaching its node and to `service ls` showing
#           all running, and the spread (max - min tasks per node; target: at most 1).
#           Target: at least 5,000 tasks placed per second.
#   single  a one-node swarm of berthd and of dockerd 20.10 (the peer) in the same run, each
#           with REAL_TASKS busybox replicas: create → all running (median of ROUNDS).
#   three   three berthd nodes, each in its own network namespace on a test bridge, formed
#           with the docker CLI: REAL_TASKS replicas spread over them, create → all running.
#   rss     idle VmRSS of a berthd master (with its agent) and of a berthd worker node
#           (agent only), and of dockerd + containerd as a swarm manager.
# Everything (daemons, containers, namespaces, the bridge, temp dirs) is removed on exit.
#
# usage: sudo bench/cluster.sh
#   env: SIM_NODES=1000 SIM_TASKS=30000 REAL_TASKS=30 ROUNDS=3 BERTHD=path
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berthd=${BERTHD:-$target/bin/berthd}
sim=$(dirname "$berthd")/berth-cluster-sim
sim_nodes=${SIM_NODES:-1000}
sim_tasks=${SIM_TASKS:-30000}
real_tasks=${REAL_TASKS:-30}
rounds=${ROUNDS:-3}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_need_root
bench_need_tools python3 docker dockerd ip nsenter unshare curl
[ -x "$berthd" ] && [ -x "$sim" ] || {
	echo "error: $berthd or $sim missing (scripts/build.sh)" >&2
	exit 1
}
bench_check_berthd

tmp=$(mktemp -d /tmp/bcl.XXXXXX)
tag=$(basename "$tmp")
bench_init
declare -A pid=()
net=bcb$$
cleanup() {
	set +e
	bench_netns_down "$net" 3
	bench_cleanup
}
trap cleanup EXIT

rss_kb() { awk '$1 == "VmRSS:" {print $2; f=1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
# Polls `docker service ls` of daemon $1 until service $2 shows $3/$3.
wait_replicas() {
	local d=$1 svc=$2 n=$3
	for _ in $(seq 6000); do
		[ "$(dk "$d" service ls --filter "name=$svc" --format '{{.Replicas}}' 2>/dev/null)" = "$n/$n" ] && return 0
		sleep 0.05
	done
	echo "error: $svc on $d never reached $n/$n" >&2
	exit 1
}

bench_busybox_tar

# ---- sim: the scheduler against simulated nodes -----------------------------------------
echo "sim: a berthd master and $sim_nodes simulated nodes, $sim_tasks tasks" >&2
start_daemon berthd-sim --bridge none
dk berthd-sim import "$tmp/busybox.tar" busybox:latest >/dev/null
dk berthd-sim swarm init --advertise-addr 127.0.0.1:23771 --listen-addr 127.0.0.1:23771 >/dev/null
sleep 1
master_idle=$(rss_kb "${pid[berthd-sim]}")
token=$(dk berthd-sim swarm join-token -q worker)
"$sim" --master 127.0.0.1:23771 --token "$token" --nodes "$sim_nodes" --expect "$sim_tasks" --timeout 600 >"$tmp/sim.out" 2>"$tmp/sim.err" &
pid[sim]=$!
for _ in $(seq 6000); do grep -q joined "$tmp/sim.out" 2>/dev/null && break; kill -0 "${pid[sim]}" || break; sleep 0.1; done
grep -q joined "$tmp/sim.out" || { echo "error: the simulated nodes did not join" >&2; tail "$tmp/sim.err" >&2; exit 1; }
cat "$tmp/sim.out" >&2
sleep 2
master_nodes=$(rss_kb "${pid[berthd-sim]}")
t0=$(now)
dk berthd-sim service create -d --name sim --replicas "$sim_tasks" --constraint node.role==worker busybox sleep 1000 >/dev/null
wait "${pid[sim]}" || { echo "error: the simulated nodes did not get every task" >&2; tail "$tmp/sim.err" >&2; exit 1; }
unset "pid[sim]"
done_ms=$(awk '/done_at_ms/ {print $NF}' "$tmp/sim.out")
wait_replicas berthd-sim sim "$sim_tasks"
t_ls=$(now)
master_loaded=$(rss_kb "${pid[berthd-sim]}")
cat "$tmp/sim.out" >&2
placed=$(grep -o 'scheduler placed [0-9]* tasks on [0-9]* nodes in [0-9.]* ms' "$tmp/berthd-sim/daemon.log" |
	awk '{n += $3; ms += $(NF-1)} END {printf "%d %.1f", n, ms}')
read -r placed_n placed_ms <<<"$placed"
to_nodes=$(awk -v d="$done_ms" -v t="$t0" 'BEGIN {printf "%.2f", d / 1000 - t}')
to_ls=$(awk -v a="$t_ls" -v t="$t0" 'BEGIN {printf "%.2f", a - t}')
spread=$(curl -s --unix-socket "$(sock berthd-sim)" 'http://d/tasks?filters=%7B%22service%22%3A%5B%22sim%22%5D%2C%22desired-state%22%3A%5B%22running%22%5D%7D' |
	python3 -c 'import json,sys,collections; c=collections.Counter(t["NodeID"] for t in json.load(sys.stdin)); print(max(c.values())-min(c.values()), len(c))')
read -r spread_d spread_nodes <<<"$spread"
dk berthd-sim service rm sim >/dev/null
stop_daemon berthd-sim

# ---- single: one-node swarms, berthd and dockerd --------------------------------------------
declare -A single=()
for d in dockerd berthd; do
	echo "single: a one-node $d swarm, $real_tasks replicas x $rounds" >&2
	# shellcheck disable=SC2046 # the flags are words
	start_daemon "$d" $(no_net_flags "$d")
	dk "$d" import "$tmp/busybox.tar" busybox:latest >/dev/null
	port=23772
	[ "$d" = berthd ] && port=23773
	dk "$d" swarm init --advertise-addr "127.0.0.1:$port" --listen-addr "127.0.0.1:$port" >/dev/null
	sleep 2
	times=()
	for r in $(seq "$rounds"); do
		t0=$(now)
		dk "$d" service create -d --name "s$r" --replicas "$real_tasks" --stop-grace-period 1s busybox sleep 1000 >/dev/null 2>&1
		wait_replicas "$d" "s$r" "$real_tasks"
		times+=("$(awk -v a="$(now)" -v t="$t0" 'BEGIN {printf "%.3f", a - t}')")
		dk "$d" service rm "s$r" >/dev/null
		for _ in $(seq 600); do [ -z "$(dk "$d" ps -q)" ] && break; sleep 0.1; done
	done
	single[$d]=$(printf '%s\n' "${times[@]}" | median)
	if [ "$d" = dockerd ]; then
		total=$(rss_kb "${pid[$d]}")
		for p in $(grep -l -s -F "$tmp/dockerd/exec/containerd/containerd.toml" /proc/[0-9]*/cmdline | cut -d/ -f3); do
			total=$((total + $(rss_kb "$p")))
		done
		dockerd_rss=$total
	else
		berthd_rss=$(rss_kb "${pid[$d]}")
	fi
	dk "$d" swarm leave --force >/dev/null 2>&1 || true
	stop_daemon "$d"
done

# ---- three: three berthd nodes in network namespaces -------------------------------------
echo "three: three berthd nodes, $real_tasks replicas x $rounds" >&2
bench_netns_up "$net" 10.232.9 3
for i in 1 2 3; do
	ns=${net}n$i
	d=berthd-n$i
	dir=$tmp/$d
	mkdir -p "$dir/data" "$dir/exec"
	nsenter --net="/run/netns/$ns" unshare --uts sh -c "hostname node$i; exec \"\$0\" \"\$@\"" \
		"$berthd" -H "unix://$(sock "$d")" --data-root "$dir/data" --exec-root "$dir/exec" \
		--pidfile "$dir/d.pid" --bridge none >"$dir/daemon.log" 2>&1 &
	pid[$d]=$!
	for _ in $(seq 300); do dk "$d" version >/dev/null 2>&1 && break; sleep 0.1; done
	dk "$d" import "$tmp/busybox.tar" busybox:latest >/dev/null
done
dk berthd-n1 swarm init --advertise-addr 10.232.9.11 >/dev/null
token=$(dk berthd-n1 swarm join-token -q worker)
for i in 2 3; do dk "berthd-n$i" swarm join --token "$token" 10.232.9.11:2377 >/dev/null; done
for _ in $(seq 100); do
	[ "$(dk berthd-n1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && break
	sleep 0.1
done
sleep 2
rss_manager=$(rss_kb "${pid[berthd-n1]}")
rss_worker=$(rss_kb "${pid[berthd-n2]}")
times=()
for r in $(seq "$rounds"); do
	t0=$(now)
	dk berthd-n1 service create -d --name "t$r" --replicas "$real_tasks" --stop-grace-period 1s busybox sleep 1000 >/dev/null
	wait_replicas berthd-n1 "t$r" "$real_tasks"
	times+=("$(awk -v a="$(now)" -v t="$t0" 'BEGIN {printf "%.3f", a - t}')")
	per_node=$(dk berthd-n1 service ps "t$r" --format '{{.Node}}' | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
	dk berthd-n1 service rm "t$r" >/dev/null
	for i in 1 2 3; do
		for _ in $(seq 600); do [ -z "$(dk "berthd-n$i" ps -q)" ] && break; sleep 0.1; done
	done
done
three=$(printf '%s\n' "${times[@]}" | median)
for i in 3 2 1; do dk "berthd-n$i" swarm leave --force >/dev/null 2>&1 || true; done

echo
echo "benchmark                                   berthd        dockerd   target"
awk -v n="$placed_n" -v ms="$placed_ms" 'BEGIN {printf "sim: placement rate (scheduler)        %9.0f /s                >= 5000 /s\n", n / (ms / 1000)}'
awk -v t="$to_nodes" -v n="$sim_tasks" 'BEGIN {printf "sim: create -> last task on its node   %9.2f s  (%.0f tasks/s end to end)\n", t, n / t}'
printf 'sim: create -> service ls all running  %9.2f s\n' "$to_ls"
printf 'sim: spread over %s nodes               %9s (max - min tasks per node; target <= 1)\n' "$spread_nodes" "$spread_d"
awk -v b="${single[berthd]}" -v d="${single[dockerd]}" -v n="$real_tasks" \
	'BEGIN {printf "single node: create -> %d running      %9.2f s %9.2f s   (%.2fx)\n", n, b, d, b / d}'
printf 'three nodes: create -> %d running      %9.2f s   (per node: %s)\n' "$real_tasks" "$three" "$per_node"
awk -v a="$master_idle" -v b="$master_nodes" -v c="$master_loaded" \
	'BEGIN {printf "master RSS: idle / %s nodes / + tasks %6.1f / %.1f / %.1f MiB\n", "'"$sim_nodes"'", a / 1024, b / 1024, c / 1024}'
awk -v m="$rss_manager" -v w="$rss_worker" -v b="$berthd_rss" -v d="$dockerd_rss" \
	'BEGIN {printf "idle RSS: manager %.1f MiB, worker (agent) %.1f MiB; one-node swarm: berthd %.1f, dockerd+containerd %.1f MiB\n", m / 1024, w / 1024, b / 1024, d / 1024}'
awk -v n="$placed_n" -v ms="$placed_ms" 'BEGIN {r = n / (ms / 1000); printf "placement target (>= 5000 tasks/s): %s (%.0f)\n", (r >= 5000 ? "met" : "NOT met"), r}'
[ "$spread_d" -le 1 ] && echo "spread target (within one task per node): met" || echo "spread target: NOT met ($spread_d)"
