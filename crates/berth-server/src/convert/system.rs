//! System-wide shapes: `/version`, `/info`, events, stats samples and volumes.

use std::collections::BTreeMap;

use berth_api::types::{
    BlkioStatEntry, BlkioStats, ComponentVersion, CpuStats, CpuUsage, EventActor, EventMessage,
    MemoryStats, NetworkStats, PidsStats, Platform, RuntimeInfo, StatsResponse, SwarmInfo,
    SystemInfo, VersionResponse, Volume,
};
use berth_api::version::{MAX_API, MIN_API};
use berth_engine::{Event, Info, Stats};

use crate::time::format_rfc3339_nanos;

/// The Docker release whose API Berth advertises ([`MAX_API`] 1.43 is Docker 24).
pub const DOCKER_COMPAT_VERSION: &str = "24.0.0";

/// An engine volume as Docker's.
pub fn volume(v: &berth_engine::Volume) -> Volume {
    Volume {
        name: v.name.clone(),
        driver: if v.driver.is_empty() {
            "local".into()
        } else {
            v.driver.clone()
        },
        mountpoint: v.mountpoint.clone(),
        created_at: v.created_at.clone(),
        status: None,
        labels: v.labels.clone(),
        scope: "local".into(),
        options: v.options.clone(),
        usage_data: None,
    }
}

fn cpu_stats(s: &Stats) -> CpuStats {
    CpuStats {
        cpu_usage: CpuUsage {
            total_usage: s.cpu_total,
            percpu_usage: if s.cpu_per_cpu.is_empty() {
                None
            } else {
                Some(s.cpu_per_cpu.clone())
            },
            usage_in_kernelmode: s.cpu_kernel,
            usage_in_usermode: s.cpu_user,
        },
        system_cpu_usage: s.system_cpu,
        online_cpus: s.online_cpus.into(),
        throttling_data: Default::default(),
    }
}

/// One stats sample, with the previous one as `precpu_stats` (the CLI computes CPU % from the
/// difference).
pub fn stats(id: &str, name: &str, s: &Stats, prev: Option<&Stats>) -> StatsResponse {
    let blk = |op: &str, value: u64| BlkioStatEntry {
        major: 0,
        minor: 0,
        op: op.into(),
        value,
    };
    StatsResponse {
        read: s.read.clone(),
        preread: prev
            .map(|p| p.read.clone())
            .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        pids_stats: PidsStats {
            current: s.pids,
            limit: s.pids_limit.unwrap_or(0),
        },
        blkio_stats: BlkioStats {
            io_service_bytes_recursive: Some(vec![
                blk("read", s.blkio_read),
                blk("write", s.blkio_write),
            ]),
            ..BlkioStats::default()
        },
        num_procs: 0,
        storage_stats: Default::default(),
        cpu_stats: cpu_stats(s),
        precpu_stats: prev.map(cpu_stats).unwrap_or_default(),
        memory_stats: MemoryStats {
            usage: s.memory_usage,
            max_usage: s.memory_max_usage,
            stats: s.memory_stats.clone(),
            failcnt: 0,
            limit: s.memory_limit,
        },
        name: format!("/{name}"),
        id: id.to_string(),
        networks: if s.networks.is_empty() {
            None
        } else {
            Some(
                s.networks
                    .iter()
                    .map(|(k, n)| {
                        (
                            k.clone(),
                            NetworkStats {
                                rx_bytes: n.rx_bytes,
                                rx_packets: n.rx_packets,
                                rx_errors: n.rx_errors,
                                rx_dropped: n.rx_dropped,
                                tx_bytes: n.tx_bytes,
                                tx_packets: n.tx_packets,
                                tx_errors: n.tx_errors,
                                tx_dropped: n.tx_dropped,
                                ..NetworkStats::default()
                            },
                        )
                    })
                    .collect(),
            )
        },
    }
}

/// A zeroed sample for a container that is not running (as dockerd sends).
pub fn empty_stats(id: &str, name: &str) -> StatsResponse {
    StatsResponse {
        read: "0001-01-01T00:00:00Z".into(),
        preread: "0001-01-01T00:00:00Z".into(),
        name: format!("/{name}"),
        id: id.to_string(),
        ..StatsResponse::default()
    }
}

/// An engine event as Docker's JSON line, with the legacy `status`, `id`, `from` for
/// container and image events.
pub fn event(e: &Event) -> EventMessage {
    let legacy = matches!(e.kind.as_str(), "container" | "image");
    EventMessage {
        status: if legacy {
            e.action.clone()
        } else {
            String::new()
        },
        id: if legacy { e.id.clone() } else { String::new() },
        from: if e.kind == "container" {
            e.attributes.get("image").cloned().unwrap_or_default()
        } else {
            String::new()
        },
        r#type: e.kind.clone(),
        action: e.action.clone(),
        actor: EventActor {
            id: e.id.clone(),
            attributes: e.attributes.clone(),
        },
        // The cluster's objects are the swarm's, as dockerd scopes them.
        scope: if matches!(e.kind.as_str(), "service" | "node") {
            "swarm".into()
        } else {
            "local".into()
        },
        time: e.time_nano.div_euclid(1_000_000_000),
        time_nano: e.time_nano,
    }
}

/// `GET /version`.
pub fn version(kernel: &str) -> VersionResponse {
    let arch = go_arch();
    let mut details = BTreeMap::new();
    details.insert("ApiVersion".to_string(), MAX_API.to_string());
    details.insert("MinAPIVersion".to_string(), MIN_API.to_string());
    details.insert("Os".to_string(), "linux".to_string());
    details.insert("Arch".to_string(), arch.to_string());
    details.insert("KernelVersion".to_string(), kernel.to_string());
    details.insert("GitCommit".to_string(), "berth".to_string());
    details.insert("GoVersion".to_string(), "n/a (rust)".to_string());
    details.insert("BuildTime".to_string(), String::new());
    details.insert("Experimental".to_string(), "false".to_string());
    details.insert(
        "BerthVersion".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    VersionResponse {
        platform: Platform {
            name: "Berth Engine".into(),
        },
        components: vec![
            ComponentVersion {
                name: "Engine".into(),
                version: DOCKER_COMPAT_VERSION.into(),
                details: Some(details),
            },
            ComponentVersion {
                name: "berth".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                details: None,
            },
        ],
        version: DOCKER_COMPAT_VERSION.into(),
        api_version: MAX_API.into(),
        min_api_version: MIN_API.into(),
        git_commit: "berth".into(),
        go_version: "n/a (rust)".into(),
        os: "linux".into(),
        arch: arch.into(),
        kernel_version: kernel.into(),
        experimental: false,
        build_time: String::new(),
    }
}

/// Go's name of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// `GET /info`.
pub fn info(i: &Info, now_nanos: i64) -> SystemInfo {
    let runtime = i.runtime.display().to_string();
    let mut runtimes = BTreeMap::new();
    runtimes.insert(
        "runc".to_string(),
        RuntimeInfo {
            path: runtime,
            runtime_args: None,
        },
    );
    SystemInfo {
        id: i.id.clone(),
        containers: i.counts.containers as i64,
        containers_running: i.counts.running as i64,
        containers_paused: i.counts.paused as i64,
        containers_stopped: i.counts.stopped as i64,
        images: i.counts.images as i64,
        driver: if i.storage_driver.is_empty() {
            "overlay2".into()
        } else {
            i.storage_driver.clone()
        },
        driver_status: Some(Vec::new()),
        plugins: berth_api::types::PluginsInfo {
            volume: Some(vec!["local".into()]),
            network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
            authorization: None,
            log: Some(vec!["json-file".into()]),
        },
        memory_limit: true,
        swap_limit: true,
        cpu_cfs_period: true,
        cpu_cfs_quota: true,
        cpu_shares: true,
        cpu_set: true,
        pids_limit: true,
        ipv4_forwarding: true,
        system_time: format_rfc3339_nanos(now_nanos),
        logging_driver: "json-file".into(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: i.cgroup_version.clone(),
        kernel_version: i.kernel_version.clone(),
        operating_system: i.operating_system.clone(),
        os_version: String::new(),
        os_type: if i.os_type.is_empty() {
            "linux".into()
        } else {
            i.os_type.clone()
        },
        architecture: i.architecture.clone(),
        index_server_address: "https://index.docker.io/v1/".into(),
        registry_config: None,
        ncpu: i.ncpu as i64,
        mem_total: i.mem_total as i64,
        docker_root_dir: i.data_root.display().to_string(),
        name: i.hostname.clone(),
        labels: Some(Vec::new()),
        server_version: DOCKER_COMPAT_VERSION.into(),
        runtimes,
        default_runtime: "runc".into(),
        swarm: SwarmInfo {
            local_node_state: "inactive".into(),
            ..SwarmInfo::default()
        },
        isolation: String::new(),
        init_binary: "berth-shim".into(),
        security_options: Some(vec![
            "name=seccomp,profile=builtin".into(),
            format!("name=cgroupns"),
        ]),
        warnings: Some(Vec::new()),
        ..SystemInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_docker_shape() {
        let mut attributes = BTreeMap::new();
        attributes.insert("image".to_string(), "busybox".to_string());
        attributes.insert("name".to_string(), "web".to_string());
        let e = Event {
            kind: "container".into(),
            action: "die".into(),
            id: "abc".into(),
            attributes,
            time_nano: 1_700_000_000_123_456_789,
        };
        let json = serde_json::to_value(event(&e)).unwrap();
        assert_eq!(json["Type"], "container");
        assert_eq!(json["Action"], "die");
        assert_eq!(json["status"], "die");
        assert_eq!(json["id"], "abc");
        assert_eq!(json["from"], "busybox");
        assert_eq!(json["Actor"]["ID"], "abc");
        assert_eq!(json["Actor"]["Attributes"]["name"], "web");
        assert_eq!(json["scope"], "local");
        assert_eq!(json["time"], 1_700_000_000i64);
        assert_eq!(json["timeNano"], 1_700_000_000_123_456_789i64);
        let v = Event {
            kind: "volume".into(),
            ..e
        };
        let json = serde_json::to_value(event(&v)).unwrap();
        assert!(json.get("status").is_none());
        assert_eq!(json["scope"], "local");
        let s = Event {
            kind: "service".into(),
            ..v
        };
        assert_eq!(serde_json::to_value(event(&s)).unwrap()["scope"], "swarm");
    }

    #[test]
    fn stats_carry_the_previous_sample() {
        let a = Stats {
            read: "2024-05-01T10:00:00Z".into(),
            cpu_total: 100,
            system_cpu: 1000,
            online_cpus: 2,
            memory_usage: 4096,
            memory_limit: 8192,
            ..Stats::default()
        };
        let b = Stats {
            read: "2024-05-01T10:00:01Z".into(),
            cpu_total: 300,
            system_cpu: 3000,
            ..a.clone()
        };
        let s = serde_json::to_value(stats("id1", "web", &b, Some(&a))).unwrap();
        assert_eq!(s["name"], "/web");
        assert_eq!(s["id"], "id1");
        assert_eq!(s["cpu_stats"]["cpu_usage"]["total_usage"], 300);
        assert_eq!(s["precpu_stats"]["cpu_usage"]["total_usage"], 100);
        assert_eq!(s["precpu_stats"]["system_cpu_usage"], 1000);
        assert_eq!(s["cpu_stats"]["online_cpus"], 2);
        assert_eq!(s["preread"], "2024-05-01T10:00:00Z");
        assert_eq!(s["memory_stats"]["limit"], 8192);
        let first = serde_json::to_value(stats("id1", "web", &a, None)).unwrap();
        assert_eq!(first["preread"], "0001-01-01T00:00:00Z");
    }
}
