# Shared by the bench/ scripts that drive private daemons with the docker CLI: each daemon
# named NAME lives under $tmp/NAME (socket d.sock, data root, exec root, pid file, log),
# dockerd with its own containerd namespaces and cgroup parent named after $tmp.
#
# The sourcing script sets: repo, tmp (a short temp dir), tag (its basename), berthd (path),
# daemons (array of NAMEs, `dockerd*` or `berthd*`), and `declare -A pid=()`; it calls
# bench_init once, then start_daemon NAME [extra daemon flags...]; bench_cleanup_daemons in
# its EXIT trap takes away every container, daemon, shim, cgroup and mount of the run.

bench_need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "error: the benchmark runs daemons and containers and needs root; run: sudo $0" >&2
		exit 1
	fi
}

bench_need_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || {
			echo "error: $tool not found; run scripts/deps.sh" >&2
			exit 1
		}
	done
}

# A clean docker CLI configuration, and the ids file the cleanup reads.
bench_init() {
	export DOCKER_CONFIG=$tmp/cli
	mkdir -p "$DOCKER_CONFIG"
	echo '{}' >"$DOCKER_CONFIG/config.json"
	unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH DOCKER_API_VERSION DOCKER_HOST
	export DOCKER_CLI_HINTS=false
	: >"$tmp/ids"
}

# berthd and its siblings beside it (scripts/build.sh), or exit 1.
bench_check_berthd() {
	local sib
	for sib in berth-runc berth-shim; do
		[ -x "$(dirname "$berthd")/$sib" ] || {
			echo "error: $sib not found beside $berthd (scripts/build.sh)" >&2
			exit 1
		}
	done
}

sock() { echo "$tmp/$1/d.sock"; }
# The docker CLI against daemon $1.
dk() {
	local d=$1
	shift
	DOCKER_HOST="unix://$(sock "$d")" docker "$@"
}

# Removes daemon $1's containers and networks, then stops it (SIGTERM, SIGKILL after 20 s); any other
# process in pid[] (a stand-in server) is only stopped.
stop_daemon() {
	local d=$1 ids
	if [[ $d == dockerd* || $d == berthd* ]] && [ -S "$(sock "$d")" ]; then
		ids=$(timeout 30 docker -H "unix://$(sock "$d")" ps -aq --no-trunc 2>/dev/null)
		echo "$ids" >>"$tmp/ids"
		[ -n "$ids" ] && echo "$ids" | timeout 120 xargs docker -H "unix://$(sock "$d")" rm -f -v >/dev/null 2>&1
		# User networks: their bridge devices and rules go with them.
		timeout 60 docker -H "unix://$(sock "$d")" network prune -f >/dev/null 2>&1
	fi
	[ -n "${pid[$d]:-}" ] || return 0
	kill "${pid[$d]}" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "${pid[$d]}" 2>/dev/null || break; sleep 0.2; done
	kill -9 "${pid[$d]}" 2>/dev/null || true
	wait "${pid[$d]}" 2>/dev/null || true
	unset "pid[$d]"
}

# shellcheck disable=SC2317 # run from the EXIT trap
bench_cleanup_daemons() {
	set +e
	local d id p cg sub m
	for d in "${!pid[@]}"; do
		stop_daemon "$d"
	done
	# containerd, shims and anything else started with our temp dir in its command line.
	for _ in 1 2 3; do
		grep -l -s -F "$tmp/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | while read -r p; do
			[ "$p" != $$ ] && kill -9 "$p" 2>/dev/null
		done
		sleep 0.2
	done
	# Cgroups: dockerd's parent is named after the temp dir; berthd's are named by container id.
	{
		find /sys/fs/cgroup -maxdepth 3 -type d -name "*$tag*" 2>/dev/null
		while read -r id; do
			[ -n "$id" ] && find /sys/fs/cgroup -maxdepth 5 -type d -name "*$id*" 2>/dev/null
		done <"$tmp/ids"
	} | sort -u | while read -r cg; do
		find "$cg" -depth -type d 2>/dev/null | while read -r sub; do
			while read -r p; do kill -9 "$p" 2>/dev/null; done <"$sub/cgroup.procs"
			rmdir "$sub" 2>/dev/null
		done
	done
	grep -o " $tmp/[^ ]*" /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
}

# start_daemon NAME [flags...]: a private dockerd (NAME dockerd*) or berthd (NAME berthd*),
# waited for until it answers `docker version`; exits 1 with its log when it does not.
start_daemon() {
	local d=$1 dir=$tmp/$1 host
	shift
	mkdir -p "$dir/data" "$dir/exec"
	host="unix://$(sock "$d")"
	case $d in
	dockerd*)
		dockerd -H "$host" --data-root "$dir/data" --exec-root "$dir/exec" \
			--pidfile "$dir/d.pid" --containerd-namespace="$tag-$d" \
			--containerd-plugins-namespace="$tag-$d-plugins" --cgroup-parent="/$tag" \
			"$@" >"$dir/daemon.log" 2>&1 &
		;;
	berthd*)
		"$berthd" -H "$host" --data-root "$dir/data" --exec-root "$dir/exec" \
			--pidfile "$dir/d.pid" "$@" >"$dir/daemon.log" 2>&1 &
		;;
	esac
	pid[$d]=$!
	for _ in $(seq 300); do
		dk "$d" version >/dev/null 2>&1 && return 0
		kill -0 "${pid[$d]}" 2>/dev/null || break
		sleep 0.2
	done
	echo "error: $d did not start; its log:" >&2
	tail -20 "$dir/daemon.log" >&2
	exit 1
}

# The busybox image as a tar for `docker import` ($tmp/busybox.tar).
bench_busybox_tar() {
	echo "building the busybox image" >&2
	bash "$repo/scripts/busybox-rootfs.sh" "$tmp/rootfs"
	tar -C "$tmp/rootfs" --numeric-owner -cf "$tmp/busybox.tar" .
	rm -rf "$tmp/rootfs"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print 0; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# The flags that start daemon $1 without networking (no default bridge, no rules, no
# ip_forward): for benchmarks of the engine rather than of networks.
no_net_flags() {
	case $1 in
	dockerd*) echo "--bridge=none --iptables=false --ip-masq=false --ip6tables=false --ip-forward=false" ;;
	berthd*) echo "--bridge none" ;;
	esac
}

# Nodes on a private bridge: `bench_netns_up NET PREFIX N` makes bridge NET with PREFIX.1/24
# and namespaces NETn1..NETnN, each with eth0 at PREFIX.(10+i) (lo up, default route via the
# bridge); `bench_netns_down NET N` removes them (for an EXIT trap: errors ignored).
bench_netns_up() {
	local net=$1 prefix=$2 n=$3 i ns
	ip link add "$net" type bridge
	ip addr add "$prefix.1/24" dev "$net"
	ip link set "$net" up
	for i in $(seq 1 "$n"); do
		ns=${net}n$i
		ip netns add "$ns"
		ip link add "${net}h$i" type veth peer name eth0 netns "$ns"
		ip link set "${net}h$i" master "$net" up
		ip -n "$ns" addr add "$prefix.$((10 + i))/24" dev eth0
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
		ip -n "$ns" route add default via "$prefix.1"
	done
}

# shellcheck disable=SC2317 # run by the EXIT trap
bench_netns_down() {
	local net=$1 n=$2 i
	for i in $(seq 1 "$n"); do
		ip link del "${net}h$i" 2>/dev/null
		ip netns del "${net}n$i" 2>/dev/null
	done
	ip link del "$net" 2>/dev/null
}

# An EXIT trap for the scripts: every daemon's leftovers, then the temp dir.
# shellcheck disable=SC2317 # run by the EXIT trap
bench_cleanup() {
	bench_cleanup_daemons
	rm -rf "$tmp"
}
