//! `GET /containers/{id}/stats`: the JSON `docker stats` reads (lowercase keys, as Docker
//! sends them). Counters are cumulative; the CLI computes rates from `cpu_stats` against
//! `precpu_stats`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct PidsStats {
        pub current: u64,
        /// 0 when unlimited.
        #[serde(skip_serializing_if = "is_zero")]
        pub limit: u64,
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

wire! {
    /// One blkio counter: `{"major": 8, "minor": 0, "op": "Read", "value": 4096}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct BlkioStatEntry {
        pub major: u64,
        pub minor: u64,
        pub op: String,
        pub value: u64,
    }
}

wire! {
    /// Block I/O; on cgroup v2 only `io_service_bytes_recursive` and `io_serviced_recursive` are
    /// filled, the others are `null`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct BlkioStats {
        pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_queue_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_service_time_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_wait_time_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_merged_recursive: Option<Vec<BlkioStatEntry>>,
        pub io_time_recursive: Option<Vec<BlkioStatEntry>>,
        pub sectors_recursive: Option<Vec<BlkioStatEntry>>,
    }
}

wire! {
    /// Nanoseconds of CPU time.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct CpuUsage {
        pub total_usage: u64,
        /// Per CPU (cgroup v1 only).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub percpu_usage: Option<Vec<u64>>,
        pub usage_in_kernelmode: u64,
        pub usage_in_usermode: u64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ThrottlingData {
        pub periods: u64,
        pub throttled_periods: u64,
        pub throttled_time: u64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct CpuStats {
        pub cpu_usage: CpuUsage,
        /// Host CPU time in nanoseconds (from /proc/stat), the denominator of CPU %.
        #[serde(skip_serializing_if = "is_zero")]
        pub system_cpu_usage: u64,
        #[serde(skip_serializing_if = "is_zero")]
        pub online_cpus: u64,
        pub throttling_data: ThrottlingData,
    }
}

wire! {
    /// Memory in bytes. `stats` holds the cgroup's `memory.stat` (v1: `total_inactive_file`,
    /// `cache`...; v2: `inactive_file`, `anon`...), from which the CLI subtracts the page cache.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct MemoryStats {
        #[serde(skip_serializing_if = "is_zero")]
        pub usage: u64,
        #[serde(skip_serializing_if = "is_zero")]
        pub max_usage: u64,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub stats: BTreeMap<String, u64>,
        #[serde(skip_serializing_if = "is_zero")]
        pub failcnt: u64,
        #[serde(skip_serializing_if = "is_zero")]
        pub limit: u64,
    }
}

wire! {
    /// One interface's counters.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct NetworkStats {
        pub rx_bytes: u64,
        pub rx_packets: u64,
        pub rx_errors: u64,
        pub rx_dropped: u64,
        pub tx_bytes: u64,
        pub tx_packets: u64,
        pub tx_errors: u64,
        pub tx_dropped: u64,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub endpoint_id: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub instance_id: String,
    }
}

wire! {
    /// One stats sample.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct StatsResponse {
        /// RFC 3339 with nanoseconds; `0001-01-01T00:00:00Z` for the first `preread`.
        pub read: String,
        pub preread: String,
        pub pids_stats: PidsStats,
        pub blkio_stats: BlkioStats,
        pub num_procs: u32,
        pub storage_stats: serde_json::Map<String, serde_json::Value>,
        pub cpu_stats: CpuStats,
        pub precpu_stats: CpuStats,
        pub memory_stats: MemoryStats,
        /// `/name`.
        pub name: String,
        pub id: String,
        /// By interface name; absent without a network namespace of its own.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub networks: Option<BTreeMap<String, NetworkStats>>,
    }
}
