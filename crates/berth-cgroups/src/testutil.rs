//! Test fixtures: recorded cgroupfs trees (v1/hybrid and v2) built in a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};

/// Writes `files` (name, content) into `dir`, creating it.
pub(crate) fn put(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (n, c) in files {
        fs::write(dir.join(n), c).unwrap();
    }
}

pub(crate) fn get(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap()
}

pub(crate) const V1_UNLIMITED: &str = "9223372036854771712\n";

pub(crate) const V1_MEMORY_STAT: &str = "cache 1081344\nrss 258048\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\nswap 0\npgpgin 1091\npgpgout 761\npgfault 1287\npgmajfault 0\ninactive_anon 253952\nactive_anon 0\ninactive_file 1048576\nactive_file 32768\nunevictable 0\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 9223372036854771712\ntotal_cache 1081344\ntotal_rss 258048\n";

pub(crate) const V2_MEMORY_STAT: &str = "anon 2846720\nfile 4096000\nkernel 778240\nkernel_stack 65536\npagetables 98304\nsec_pagetables 0\npercpu 1240\nsock 4096\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 1298432\nfile_dirty 0\nfile_writeback 0\nswapcached 0\nanon_thp 0\ninactive_anon 2785280\nactive_anon 61440\ninactive_file 3956736\nactive_file 139264\nunevictable 0\npgfault 1837\npgmajfault 6\n";

/// Files a v1 kernel shows in a (non-root) cgroup of each hierarchy.
pub(crate) fn v1_cgroup_files(h: &str) -> Vec<(&'static str, &'static str)> {
    let mut f = vec![
        ("cgroup.procs", ""),
        ("tasks", ""),
        ("notify_on_release", "0\n"),
        ("cgroup.clone_children", "0\n"),
    ];
    f.extend(match h {
        "cpu" => vec![
            ("cpu.shares", "1024\n"),
            ("cpu.cfs_quota_us", "-1\n"),
            ("cpu.cfs_period_us", "100000\n"),
            ("cpu.rt_runtime_us", "0\n"),
            ("cpu.rt_period_us", "1000000\n"),
            ("cpu.idle", "0\n"),
            ("cpu.stat", "nr_periods 120\nnr_throttled 7\nthrottled_time 81234567\nnr_bursts 0\nburst_time 0\n"),
        ],
        "cpuacct" => vec![
            ("cpuacct.usage", "2041234567\n"),
            ("cpuacct.usage_percpu", "1041234567 1000000000 \n"),
            ("cpuacct.usage_percpu_sys", "41234567 0 \n"),
            ("cpuacct.usage_percpu_user", "1000000000 1000000000 \n"),
            ("cpuacct.stat", "user 150\nsystem 12\n"),
        ],
        "cpuset" => vec![("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        "memory" => vec![
            ("memory.limit_in_bytes", V1_UNLIMITED),
            ("memory.soft_limit_in_bytes", V1_UNLIMITED),
            ("memory.memsw.limit_in_bytes", V1_UNLIMITED),
            ("memory.usage_in_bytes", "1339392\n"),
            ("memory.max_usage_in_bytes", "2129920\n"),
            ("memory.failcnt", "0\n"),
            ("memory.memsw.usage_in_bytes", "1339392\n"),
            ("memory.memsw.max_usage_in_bytes", "2129920\n"),
            ("memory.memsw.failcnt", "0\n"),
            ("memory.kmem.limit_in_bytes", V1_UNLIMITED),
            ("memory.kmem.usage_in_bytes", "311296\n"),
            ("memory.kmem.max_usage_in_bytes", "0\n"),
            ("memory.kmem.failcnt", "0\n"),
            ("memory.kmem.tcp.limit_in_bytes", V1_UNLIMITED),
            ("memory.kmem.tcp.usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.max_usage_in_bytes", "0\n"),
            ("memory.kmem.tcp.failcnt", "0\n"),
            ("memory.swappiness", "60\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
            ("memory.stat", V1_MEMORY_STAT),
        ],
        "devices" => vec![("devices.allow", ""), ("devices.deny", ""), ("devices.list", "a *:* rwm\n")],
        "freezer" => vec![("freezer.state", "THAWED\n"), ("freezer.self_freezing", "0\n")],
        "blkio" => vec![
            ("blkio.bfq.weight", "default 100\n"),
            ("blkio.throttle.io_service_bytes_recursive", "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 12288\n8:0 Async 0\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n"),
            ("blkio.throttle.io_serviced_recursive", "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n"),
        ],
        "pids" => vec![("pids.max", "max\n"), ("pids.current", "3\n")],
        _ => vec![],
    });
    f
}

pub(crate) const V1_HIERARCHIES: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];

/// A hybrid host: v1 hierarchies plus `unified` (cgroup2 with only hugetlb), and the container
/// directory `rel` pre-created in every hierarchy as the kernel would show it after mkdir.
pub(crate) fn hybrid_tree(root: &Path, rel: &str) {
    for h in V1_HIERARCHIES {
        let d = root.join(h);
        put(
            &d,
            &[
                ("cgroup.procs", "1\n"),
                ("cgroup.sane_behavior", "0\n"),
                ("release_agent", ""),
            ],
        );
        if *h == "cpuset" {
            put(&d, &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
        }
        if !rel.is_empty() {
            put(&d.join(rel), &v1_cgroup_files(h));
        }
    }
    let u = root.join("unified");
    put(
        &u,
        &[
            ("cgroup.controllers", "hugetlb\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", "1\n"),
        ],
    );
    if !rel.is_empty() {
        put(
            &u.join(rel),
            &[
                ("cgroup.procs", ""),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
            ],
        );
    }
}

/// A pure v2 host root and, if `rel` is not empty, a container cgroup at `rel` with recorded files.
pub(crate) fn v2_tree(root: &Path, rel: &str) -> PathBuf {
    put(
        root,
        &[
            (
                "cgroup.controllers",
                "cpuset cpu io memory hugetlb pids rdma misc\n",
            ),
            ("cgroup.subtree_control", "\n"),
            ("cgroup.procs", "1\n"),
            ("cgroup.max.depth", "max\n"),
            ("cpu.stat", "usage_usec 100\n"),
        ],
    );
    let d = root.join(rel);
    if rel.is_empty() {
        return d;
    }
    put(
        &d,
        &[
            ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"),
            ("cgroup.subtree_control", ""),
            ("cgroup.procs", ""),
            ("cgroup.events", "populated 1\nfrozen 0\n"),
            ("cgroup.freeze", "0\n"),
            ("cgroup.type", "domain\n"),
            ("memory.max", "max\n"),
            ("memory.low", "0\n"),
            ("memory.high", "max\n"),
            ("memory.swap.max", "max\n"),
            ("memory.swap.current", "0\n"),
            ("memory.current", "7028736\n"),
            ("memory.peak", "9244672\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"),
            ("memory.stat", V2_MEMORY_STAT),
            ("cpu.weight", "100\n"),
            ("cpu.max", "max 100000\n"),
            ("cpu.idle", "0\n"),
            ("cpu.stat", "usage_usec 2041234\nuser_usec 1500000\nsystem_usec 541234\ncore_sched.force_idle_usec 0\nnr_periods 120\nnr_throttled 7\nthrottled_usec 81234\nnr_bursts 0\nburst_usec 0\n"),
            ("cpuset.cpus", "\n"),
            ("cpuset.mems", "\n"),
            ("pids.max", "max\n"),
            ("pids.current", "4\n"),
            ("io.weight", "default 100\n"),
            ("io.stat", "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n259:0 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0\n"),
            ("hugetlb.2MB.current", "0\n"),
            ("hugetlb.2MB.max", "max\n"),
            ("hugetlb.2MB.events", "max 0\n"),
        ],
    );
    d
}
