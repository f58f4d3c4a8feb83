#!/usr/bin/env bash
# Benchmark: the routing mesh. Three berthd nodes, each in its own network namespace on a
# private bridge (as the cluster tests run them), form a swarm; one service replica on node2
# serves HTTP (bench/meshbench.rs `serve`, std only, built here as one static binary and
# bind-mounted into a busybox task: a thread per connection answering a fixed 200, so the
# server is cheap next to the path measured; busybox httpd forks per request and would be
# what is measured). wrk on the host measures requests per second and p99 latency along:
#   direct@node2   the replica's own address, routed by node2: no mesh
#   direct@node1   the replica's own address, routed by node1 and over the overlay's VXLAN
#                  to node2, the replies back the same way (a host route and one on node2,
#                  set for these runs only): the same hops as mesh@node1, without the mesh
#   mesh@node2     node2's address:published port: the mesh's DNAT on the replica's node
#   mesh@node1     node1's address:published port: DNAT there, then VXLAN to node2 and back
#   proxy@node2    a userspace TCP proxy (meshbench `proxy`, two copying threads per
#   proxy@node1    connection) in node2's or node1's namespace, to the replica's address
# each with keep-alive connections (CONNS of them) and with a new connection per request
# (`Connection: close`: NAT and conntrack set-up on every request). Every round runs the
# three paths of one node back to back (in a rotating order), then those of the other, so the
# paths compared see the same machine (it is shared: single runs vary by tens of percent).
# Figures are medians over ROUNDS; a ratio is the median of the rounds' own ratios.
# Target (issue 8): the mesh costs at most 15% of direct throughput along the same hops
# (mesh@nodeN >= 0.85 x direct@nodeN).
#
# Everything is private (daemons, sockets, data roots under one temp dir, bench/lib.sh;
# namespaces and a bridge named after this shell's pid, a host route to the replica) and
# removed on exit.
#
# usage: sudo bench/mesh.sh          (after scripts/build.sh; BERTHD=target/debug/berthd
#                                    works as well: the mesh is the kernel's, not berthd's)
#   env: ROUNDS=5 DURATION=8 CLOSE_DURATION=4 CONNS=32 THREADS=2 BERTHD=path
#        SAMPLES_OUT=file (keeps every sample)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
berthd=${BERTHD:-$target/bin/berthd}
rounds=${ROUNDS:-5}
duration=${DURATION:-8}
close_duration=${CLOSE_DURATION:-4}
conns=${CONNS:-32}
threads=${THREADS:-2}

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"
bench_need_root
bench_need_tools wrk docker ip nsenter unshare rustc nft curl python3 tar
if [ ! -x "$berthd" ]; then
	echo "error: berthd not found at $berthd: build it with scripts/build.sh, or set BERTHD" >&2
	exit 1
fi
bench_check_berthd

tmp=$(mktemp -d /tmp/bmb.XXXXXX)
tag=$(basename "$tmp")
bench_init
declare -A pid=()
net=bmb$$
underlay=10.233.8
node_addr() { echo "$underlay.$((10 + $1))"; }
route=""

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	set +e
	[ -n "$route" ] && ip route del "$route" 2>/dev/null
	for i in 1 2 3; do
		[ -S "$(sock "berthd-n$i")" ] && timeout 30 docker -H "unix://$(sock "berthd-n$i")" \
			swarm leave --force >/dev/null 2>&1
	done
	bench_cleanup_daemons
	bench_netns_down "$net" 3
	[ -n "${SAMPLES_OUT:-}" ] && cp "$tmp/samples" "$SAMPLES_OUT"
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building bench/meshbench.rs" >&2
rustc --edition 2021 -O -C target-feature=+crt-static "$repo/bench/meshbench.rs" -o "$tmp/meshbench"
bench_busybox_tar

echo "three berthd nodes in namespaces ${net}n1..3 on bridge $net ($underlay.0/24)" >&2
bench_netns_up "$net" "$underlay" 3
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
dk berthd-n1 swarm init --advertise-addr "$(node_addr 1)" >/dev/null
token=$(dk berthd-n1 swarm join-token -q worker)
for i in 2 3; do dk "berthd-n$i" swarm join --token "$token" "$(node_addr 1):2377" >/dev/null; done
for _ in $(seq 100); do
	[ "$(dk berthd-n1 node ls --format '{{.Status}}' | grep -c Ready)" = 3 ] && break
	sleep 0.2
done

echo "one replica of meshbench serve on node2, published on 8080 through the mesh" >&2
dk berthd-n1 service create -d --name web --replicas 1 --constraint node.hostname==node2 \
	-p 8080:80 --mount "type=bind,src=$tmp/meshbench,dst=/meshbench,readonly" \
	busybox /meshbench serve 80 >/dev/null
replica=""
for _ in $(seq 300); do
	c=$(dk berthd-n2 ps -q --filter label=com.docker.swarm.service.name=web)
	if [ -n "$c" ]; then
		replica=$(dk berthd-n2 inspect -f '{{(index .NetworkSettings.Networks "ingress").IPAddress}}' "$c")
		[ -n "$replica" ] && break
	fi
	sleep 0.1
done
[ -n "$replica" ] || {
	echo "error: the web replica did not start on node2" >&2
	exit 1
}
route="$replica/32"
ip route add "$route" via "$(node_addr 2)"
# direct@node1: node1 routes to the replica over the overlay; node2 sends the replies to the
# host back the same way, through node1's VXLAN endpoint.
vtep1=$(ip -n "${net}n1" -4 -o addr show dev bvx4096 | awk '{print $4}' | cut -d/ -f1)
[ -n "$vtep1" ] || {
	echo "error: node1 has no VXLAN device for the ingress network" >&2
	exit 1
}
via_node1() {
	if [ "$1" = on ]; then
		ip route replace "$route" via "$(node_addr 1)"
		ip -n "${net}n2" route replace "$underlay.1/32" via "$vtep1" dev bvx4096 onlink
	else
		ip -n "${net}n2" route del "$underlay.1/32" 2>/dev/null || true
		ip route replace "$route" via "$(node_addr 2)"
	fi
}
for i in 1 2; do
	nsenter --net="/run/netns/${net}n$i" "$tmp/meshbench" proxy "$(node_addr "$i"):9090" "$replica:80" &
	pid[proxy-n$i]=$!
done

declare -A url=(
	[direct@node2]="http://$replica:80/"
	[direct@node1]="http://$replica:80/"
	[mesh@node2]="http://$(node_addr 2):8080/"
	[mesh@node1]="http://$(node_addr 1):8080/"
	[proxy@node2]="http://$(node_addr 2):9090/"
	[proxy@node1]="http://$(node_addr 1):9090/"
)
paths=(direct@node2 direct@node1 mesh@node2 mesh@node1 proxy@node2 proxy@node1)
for p in "${paths[@]}"; do
	ok=""
	[ "$p" = direct@node1 ] && via_node1 on
	for _ in $(seq 50); do
		curl -s -m 2 -o /dev/null "${url[$p]}" && ok=1 && break
		sleep 0.2
	done
	via_node1 off
	[ -n "$ok" ] || {
		echo "error: $p (${url[$p]}) does not answer" >&2
		exit 1
	}
done

# One wrk run: `PATH MODE rps VALUE` and `PATH MODE p99_ms VALUE` into $tmp/samples.
measure() {
	local p=$1 mode=$2 out rps p99
	[ "$p" = direct@node1 ] && via_node1 on
	if [ "$mode" = keepalive ]; then
		out=$(wrk -t "$threads" -c "$conns" -d "${duration}s" --latency "${url[$p]}")
	else
		out=$(wrk -t "$threads" -c "$conns" -d "${close_duration}s" --latency \
			-H "Connection: close" "${url[$p]}")
	fi
	via_node1 off
	if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
		echo "warning: $p $mode: $(grep "Non-2xx\|Socket errors" <<<"$out" | tr -s ' ')" >&2
	fi
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		m = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v; print m}' <<<"$out")
	echo "$r $p $mode rps $rps" >>"$tmp/samples"
	echo "$r $p $mode p99_ms $p99" >>"$tmp/samples"
}

: >"$tmp/samples"
for r in $(seq "$rounds"); do
	kinds=(direct mesh proxy)
	k=$(((r - 1) % 3))
	kinds=("${kinds[@]:$k}" "${kinds[@]:0:$k}")
	if [ $((r % 2)) -eq 1 ]; then nodes=(node2 node1); else nodes=(node1 node2); fi
	order=()
	for n in "${nodes[@]}"; do
		for kind in "${kinds[@]}"; do order+=("$kind@$n"); done
	done
	echo "round $r/$rounds: ${order[*]}" >&2
	for mode in keepalive close; do
		for p in "${order[@]}"; do measure "$p" "$mode"; done
	done
done

python3 - "$tmp/samples" "$conns" <<'EOF'
import statistics, sys
samples, by_round = {}, {}
for line in open(sys.argv[1]):
    r, p, mode, metric, value = line.split()
    samples.setdefault((p, mode, metric), []).append(float(value))
    by_round[(r, p, mode, metric)] = float(value)
rounds = sorted({k[0] for k in by_round})
med = lambda k: statistics.median(samples[k]) if samples.get(k) else float("nan")
def ratio(a, b, mode):
    """The median over rounds of a's requests per second over b's in the same round."""
    v = [by_round[(r, a, mode, "rps")] / by_round[(r, b, mode, "rps")] for r in rounds
         if (r, a, mode, "rps") in by_round and (r, b, mode, "rps") in by_round]
    return statistics.median(v) if v else float("nan")
paths = ["direct@node2", "mesh@node2", "proxy@node2", "direct@node1", "mesh@node1", "proxy@node1"]
print()
print(f"wrk from the host to one replica on node2, {sys.argv[2]} connections, {len(rounds)} rounds;")
print("medians; 'vs direct' is the median of each round's ratio to the direct path over the same")
print("node (node2: the replica's own; node1: one node more, over VXLAN)")
verdicts = []
for mode, title in [("keepalive", "keep-alive"), ("close", "a new connection per request")]:
    print(f"\n{title}:")
    print(f"{'path':<13}{'req/s':>11}{'p99 ms':>9}{'vs direct':>11}")
    for p in paths:
        x = ratio(p, "direct@" + p.split("@")[1], mode)
        print(f"{p:<13}{med((p, mode, 'rps')):>11.0f}{med((p, mode, 'p99_ms')):>9.2f}{x:>10.2f}x")
        if p.startswith("mesh"):
            verdicts.append((f"{p}, {title}", x >= 0.85))
    for n in ["node2", "node1"]:
        print(f"mesh over the userspace proxy via {n}: {ratio('mesh@' + n, 'proxy@' + n, mode):.2f}x"
              " the requests per second")
print()
for name, ok in verdicts:
    print(f"target (mesh >= 0.85 x direct over the same hops) {name}: {'met' if ok else 'NOT met'}")
EOF
