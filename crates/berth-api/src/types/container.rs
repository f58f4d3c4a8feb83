//! Container bodies: create (`Config` + `HostConfig` + `NetworkingConfig`), ps summaries,
//! inspect, wait, top, changes, prune, and the `Status` text of `docker ps`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Empty, StrSlice, StringMap};

/// `"80/tcp" -> [{"HostIp": "", "HostPort": "8080"}]`. A port that is exposed but not
/// published maps to `null` in inspect's `NetworkSettings.Ports`, as dockerd writes it.
pub type PortMap = BTreeMap<String, Option<Vec<PortBinding>>>;

wire! {
    /// The container's own configuration, the `Config` of inspect and the top level of a
    /// create body.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerConfig {
        pub hostname: String,
        pub domainname: String,
        pub user: String,
        pub attach_stdin: bool,
        pub attach_stdout: bool,
        pub attach_stderr: bool,
        /// `{"80/tcp": {}}`.
        pub exposed_ports: Option<BTreeMap<String, Empty>>,
        pub tty: bool,
        pub open_stdin: bool,
        pub stdin_once: bool,
        /// `["A=1", "PATH=..."]`.
        pub env: Option<Vec<String>>,
        pub cmd: Option<StrSlice>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub healthcheck: Option<HealthConfig>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub args_escaped: bool,
        pub image: String,
        /// `{"/data": {}}`: anonymous volumes.
        pub volumes: Option<BTreeMap<String, Empty>>,
        pub working_dir: String,
        /// A string or an array on input (`--entrypoint ""` sends `[""]`).
        pub entrypoint: Option<StrSlice>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub network_disabled: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mac_address: Option<String>,
        pub on_build: Option<Vec<String>>,
        pub labels: Option<StringMap>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_signal: Option<String>,
        /// Seconds.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_timeout: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub shell: Option<StrSlice>,
    }
}

wire! {
    /// `Healthcheck`: durations in nanoseconds, 0 meaning "inherit".
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HealthConfig {
        /// `[]` inherit, `["NONE"]` disabled, `["CMD", args...]`, `["CMD-SHELL", command]`.
        pub test: Option<Vec<String>>,
        #[serde(skip_serializing_if = "is_zero")]
        pub interval: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub timeout: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub start_period: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub start_interval: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub retries: i64,
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

wire! {
    /// `POST /containers/create`: the config at the top level, plus `HostConfig` and
    /// `NetworkingConfig`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerCreateRequest {
        pub host_config: Option<HostConfig>,
        pub networking_config: Option<NetworkingConfig>,
    }
    flatten {
        /// The container's configuration, at the top level of the body.
        pub config: ContainerConfig,
    }
}

wire! {
    /// `201 {"Id": "...", "Warnings": []}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerCreateResponse {
        pub id: String,
        pub warnings: Vec<String>,
    }
}

wire! {
    /// `{"HostIp": "", "HostPort": "8080"}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct PortBinding {
        pub host_ip: String,
        pub host_port: String,
    }
}

wire! {
    /// `{"Name": "on-failure", "MaximumRetryCount": 3}`; `Name` is `""` or `no` for none.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct RestartPolicy {
        pub name: String,
        pub maximum_retry_count: i64,
    }
}

wire! {
    /// `{"Type": "json-file", "Config": {"max-size": "10m"}}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct LogConfig {
        pub r#type: String,
        pub config: Option<StringMap>,
    }
}

wire! {
    /// `--ulimit nofile=1024:2048`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Ulimit {
        pub name: String,
        pub soft: i64,
        pub hard: i64,
    }
}

wire! {
    /// `--device /dev/fuse:/dev/fuse:rwm`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct DeviceMapping {
        pub path_on_host: String,
        pub path_in_container: String,
        pub cgroup_permissions: String,
    }
}

wire! {
    /// `--blkio-weight-device /dev/sda:200`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct WeightDevice {
        pub path: String,
        pub weight: u16,
    }
}

wire! {
    /// `--device-read-bps /dev/sda:1mb`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ThrottleDevice {
        pub path: String,
        pub rate: u64,
    }
}

wire! {
    /// The resource limits of `HostConfig`, also the body of `POST /containers/{id}/update`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Resources {
        pub cpu_shares: i64,
        /// Bytes.
        pub memory: i64,
        /// CPUs × 10⁹ (`--cpus 0.5` is 500000000).
        pub nano_cpus: i64,
        pub cgroup_parent: String,
        pub blkio_weight: u16,
        pub blkio_weight_device: Option<Vec<WeightDevice>>,
        pub blkio_device_read_bps: Option<Vec<ThrottleDevice>>,
        pub blkio_device_write_bps: Option<Vec<ThrottleDevice>>,
        #[serde(rename = "BlkioDeviceReadIOps")]
        pub blkio_device_read_iops: Option<Vec<ThrottleDevice>>,
        #[serde(rename = "BlkioDeviceWriteIOps")]
        pub blkio_device_write_iops: Option<Vec<ThrottleDevice>>,
        pub cpu_period: i64,
        pub cpu_quota: i64,
        pub cpu_realtime_period: i64,
        pub cpu_realtime_runtime: i64,
        pub cpuset_cpus: String,
        pub cpuset_mems: String,
        pub devices: Option<Vec<DeviceMapping>>,
        pub device_cgroup_rules: Option<Vec<String>>,
        /// GPUs and the like; kept as sent.
        pub device_requests: Option<Vec<serde_json::Value>>,
        #[serde(skip_serializing_if = "is_zero")]
        pub kernel_memory: i64,
        #[serde(rename = "KernelMemoryTCP", skip_serializing_if = "is_zero")]
        pub kernel_memory_tcp: i64,
        pub memory_reservation: i64,
        /// `-1` unlimited swap.
        pub memory_swap: i64,
        pub memory_swappiness: Option<i64>,
        pub oom_kill_disable: Option<bool>,
        /// `null` or `0` unset, `-1` unlimited.
        pub pids_limit: Option<i64>,
        pub ulimits: Option<Vec<Ulimit>>,
        pub cpu_count: i64,
        pub cpu_percent: i64,
        #[serde(rename = "IOMaximumIOps")]
        pub io_maximum_iops: u64,
        #[serde(rename = "IOMaximumBandwidth")]
        pub io_maximum_bandwidth: u64,
    }
}

wire! {
    /// `HostConfig.Mounts[]`: `--mount type=bind,source=/a,target=/b,readonly`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Mount {
        /// `bind`, `volume`, `tmpfs`, `npipe`, `cluster`.
        pub r#type: String,
        pub source: String,
        pub target: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub read_only: bool,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub consistency: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub bind_options: Option<BindOptions>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_options: Option<VolumeOptions>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tmpfs_options: Option<TmpfsOptions>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct BindOptions {
        pub propagation: String,
        pub non_recursive: bool,
        pub create_mountpoint: bool,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VolumeOptions {
        pub no_copy: bool,
        pub labels: Option<StringMap>,
        pub driver_config: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub subpath: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct TmpfsOptions {
        pub size_bytes: i64,
        pub mode: u32,
    }
}

wire! {
    /// How the container runs on the host: `HostConfig` of create and inspect.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HostConfig {
        /// `["vol:/data", "/host:/ctr:ro"]`; a named volume here is created by the daemon.
        pub binds: Option<Vec<String>>,
        #[serde(rename = "ContainerIDFile")]
        pub container_id_file: String,
        pub log_config: LogConfig,
        /// `default`, `bridge`, `host`, `none`, `container:ID` or a network name.
        pub network_mode: String,
        pub port_bindings: Option<PortMap>,
        pub restart_policy: RestartPolicy,
        pub auto_remove: bool,
        pub volume_driver: String,
        pub volumes_from: Option<Vec<String>>,
        /// `[height, width]`.
        pub console_size: [u64; 2],
        #[serde(skip_serializing_if = "Option::is_none")]
        pub annotations: Option<StringMap>,
        pub cap_add: Option<StrSlice>,
        pub cap_drop: Option<StrSlice>,
        pub cgroupns_mode: String,
        pub dns: Option<Vec<String>>,
        pub dns_options: Option<Vec<String>>,
        pub dns_search: Option<Vec<String>>,
        pub extra_hosts: Option<Vec<String>>,
        pub group_add: Option<Vec<String>>,
        pub ipc_mode: String,
        pub cgroup: String,
        pub links: Option<Vec<String>>,
        pub oom_score_adj: i64,
        pub pid_mode: String,
        pub privileged: bool,
        pub publish_all_ports: bool,
        pub readonly_rootfs: bool,
        /// `["no-new-privileges", "seccomp=<json>", "label=disable"]`.
        pub security_opt: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_opt: Option<StringMap>,
        /// `{"/run": "rw,size=64m"}`.
        pub tmpfs: Option<StringMap>,
        #[serde(rename = "UTSMode")]
        pub uts_mode: String,
        pub userns_mode: String,
        pub shm_size: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sysctls: Option<StringMap>,
        pub runtime: String,
        pub isolation: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mounts: Option<Vec<Mount>>,
        pub masked_paths: Option<Vec<String>>,
        pub readonly_paths: Option<Vec<String>>,
        /// `--init`; `null` means the daemon's default.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub init: Option<bool>,
    }
    flatten {
        /// The limits, at the same level as the other fields.
        pub resources: Resources,
    }
}

wire! {
    /// `NetworkingConfig` of create.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkingConfig {
        pub endpoints_config: Option<BTreeMap<String, EndpointSettings>>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct EndpointIpamConfig {
        #[serde(rename = "IPv4Address", skip_serializing_if = "String::is_empty")]
        pub ipv4_address: String,
        #[serde(rename = "IPv6Address", skip_serializing_if = "String::is_empty")]
        pub ipv6_address: String,
        #[serde(rename = "LinkLocalIPs", skip_serializing_if = "Option::is_none")]
        pub link_local_ips: Option<Vec<String>>,
    }
}

wire! {
    /// A container's attachment to one network (create's `EndpointsConfig`, inspect's
    /// `NetworkSettings.Networks`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct EndpointSettings {
        #[serde(rename = "IPAMConfig")]
        pub ipam_config: Option<EndpointIpamConfig>,
        pub links: Option<Vec<String>>,
        pub aliases: Option<Vec<String>>,
        pub mac_address: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub driver_opts: Option<StringMap>,
        /// The network's id, not its name.
        #[serde(rename = "NetworkID")]
        pub network_id: String,
        #[serde(rename = "EndpointID")]
        pub endpoint_id: String,
        pub gateway: String,
        #[serde(rename = "IPAddress")]
        pub ip_address: String,
        #[serde(rename = "IPPrefixLen")]
        pub ip_prefix_len: i64,
        #[serde(rename = "IPv6Gateway")]
        pub ipv6_gateway: String,
        #[serde(rename = "GlobalIPv6Address")]
        pub global_ipv6_address: String,
        #[serde(rename = "GlobalIPv6PrefixLen")]
        pub global_ipv6_prefix_len: i64,
        #[serde(rename = "DNSNames", skip_serializing_if = "Option::is_none")]
        pub dns_names: Option<Vec<String>>,
    }
}

wire! {
    /// A port of a ps line: `{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Port {
        #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
        pub ip: Option<String>,
        pub private_port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub public_port: Option<u16>,
        pub r#type: String,
    }
}

wire! {
    /// A mount as inspect and ps report it.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct MountPoint {
        pub r#type: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub name: String,
        pub source: String,
        pub destination: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub driver: String,
        pub mode: String,
        #[serde(rename = "RW")]
        pub rw: bool,
        pub propagation: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SummaryHostConfig {
        pub network_mode: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub annotations: Option<StringMap>,
    }
}

wire! {
    /// `NetworkSettings` of a ps line: only the networks, always an object.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SummaryNetworkSettings {
        pub networks: BTreeMap<String, EndpointSettings>,
    }
}

wire! {
    /// One line of `GET /containers/json` (`docker ps`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerSummary {
        pub id: String,
        /// `["/name"]`, with the leading slash.
        pub names: Vec<String>,
        pub image: String,
        #[serde(rename = "ImageID")]
        pub image_id: String,
        pub command: String,
        /// Unix seconds.
        pub created: i64,
        pub ports: Vec<Port>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size_rw: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size_root_fs: Option<i64>,
        pub labels: StringMap,
        /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
        pub state: String,
        /// See [`status_text`].
        pub status: String,
        pub host_config: SummaryHostConfig,
        pub network_settings: SummaryNetworkSettings,
        pub mounts: Vec<MountPoint>,
    }
}

wire! {
    /// One health check run.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HealthcheckResult {
        pub start: String,
        pub end: String,
        pub exit_code: i64,
        pub output: String,
    }
}

wire! {
    /// `State.Health`: `starting`, `healthy`, `unhealthy` (or `none`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Health {
        pub status: String,
        pub failing_streak: i64,
        pub log: Vec<HealthcheckResult>,
    }
}

wire! {
    /// `State` of inspect. Times are RFC 3339 with nanoseconds, `0001-01-01T00:00:00Z` for never.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerState {
        pub status: String,
        pub running: bool,
        pub paused: bool,
        pub restarting: bool,
        #[serde(rename = "OOMKilled")]
        pub oom_killed: bool,
        pub dead: bool,
        pub pid: i64,
        pub exit_code: i64,
        pub error: String,
        pub started_at: String,
        pub finished_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub health: Option<Health>,
    }
}

wire! {
    /// `GraphDriver` of container and image inspect.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct GraphDriver {
        pub data: Option<StringMap>,
        pub name: String,
    }
}

wire! {
    /// `NetworkSettings` of inspect. `Ports` and `Networks` are always objects.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NetworkSettings {
        pub bridge: String,
        #[serde(rename = "SandboxID")]
        pub sandbox_id: String,
        pub sandbox_key: String,
        pub hairpin_mode: bool,
        #[serde(rename = "LinkLocalIPv6Address")]
        pub link_local_ipv6_address: String,
        #[serde(rename = "LinkLocalIPv6PrefixLen")]
        pub link_local_ipv6_prefix_len: i64,
        pub ports: PortMap,
        #[serde(rename = "SecondaryIPAddresses")]
        pub secondary_ip_addresses: Option<Vec<serde_json::Value>>,
        #[serde(rename = "SecondaryIPv6Addresses")]
        pub secondary_ipv6_addresses: Option<Vec<serde_json::Value>>,
        #[serde(rename = "EndpointID")]
        pub endpoint_id: String,
        pub gateway: String,
        #[serde(rename = "GlobalIPv6Address")]
        pub global_ipv6_address: String,
        #[serde(rename = "GlobalIPv6PrefixLen")]
        pub global_ipv6_prefix_len: i64,
        #[serde(rename = "IPAddress")]
        pub ip_address: String,
        #[serde(rename = "IPPrefixLen")]
        pub ip_prefix_len: i64,
        #[serde(rename = "IPv6Gateway")]
        pub ipv6_gateway: String,
        pub mac_address: String,
        pub networks: BTreeMap<String, EndpointSettings>,
    }
}

wire! {
    /// `GET /containers/{id}/json`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerInspect {
        pub id: String,
        /// RFC 3339 with nanoseconds.
        pub created: String,
        pub path: String,
        pub args: Vec<String>,
        pub state: ContainerState,
        /// The image id (`sha256:...`).
        pub image: String,
        pub resolv_conf_path: String,
        pub hostname_path: String,
        pub hosts_path: String,
        pub log_path: String,
        /// `/name`, with the leading slash.
        pub name: String,
        pub restart_count: i64,
        pub driver: String,
        pub platform: String,
        pub mount_label: String,
        pub process_label: String,
        pub app_armor_profile: String,
        #[serde(rename = "ExecIDs")]
        pub exec_ids: Option<Vec<String>>,
        pub host_config: HostConfig,
        pub graph_driver: GraphDriver,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size_rw: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size_root_fs: Option<i64>,
        pub mounts: Vec<MountPoint>,
        pub config: ContainerConfig,
        pub network_settings: NetworkSettings,
    }
}

wire! {
    /// `Error` of a wait reply.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct WaitExitError {
        pub message: String,
    }
}

wire! {
    /// `POST /containers/{id}/wait`: `{"StatusCode": 0, "Error": null}`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerWaitResponse {
        pub status_code: i64,
        pub error: Option<WaitExitError>,
    }
}

wire! {
    /// `GET /containers/{id}/top`: `ps` columns and rows.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerTopResponse {
        pub titles: Vec<String>,
        pub processes: Vec<Vec<String>>,
    }
}

wire! {
    /// `GET /containers/{id}/changes`: `Kind` 0 modified, 1 added, 2 deleted.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerChange {
        pub path: String,
        pub kind: u8,
    }
}

impl ContainerChange {
    pub const MODIFIED: u8 = 0;
    pub const ADDED: u8 = 1;
    pub const DELETED: u8 = 2;
}

wire! {
    /// `POST /containers/{id}/update` reply.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerUpdateResponse {
        pub warnings: Vec<String>,
    }
}

wire! {
    /// `POST /containers/prune`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainersPruneResponse {
        pub containers_deleted: Option<Vec<String>>,
        pub space_reclaimed: u64,
    }
}

/// What `docker ps` shows in STATUS, from a container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusInput<'a> {
    Created,
    /// `since` is the time since start; `health` the health status if checks are set.
    Running {
        since: Duration,
        paused: bool,
        health: Option<&'a str>,
    },
    /// `since` is the time since the last exit.
    Restarting {
        exit_code: i64,
        since: Duration,
    },
    Exited {
        exit_code: i64,
        since: Duration,
    },
    Removing,
    Dead,
}

/// dockerd's `State.String()`: `Up 2 seconds`, `Up About a minute (unhealthy)`,
/// `Up 3 hours (Paused)`, `Up 5 seconds (health: starting)`, `Exited (0) 3 seconds ago`,
/// `Restarting (1) Less than a second ago`, `Created`, `Removal In Progress`, `Dead`.
pub fn status_text(s: StatusInput<'_>) -> String {
    match s {
        StatusInput::Created => "Created".into(),
        StatusInput::Running {
            since,
            paused: true,
            ..
        } => format!("Up {} (Paused)", human_duration(since)),
        StatusInput::Running {
            since,
            health: Some(h),
            ..
        } => {
            let h = if h == "starting" {
                "health: starting"
            } else {
                h
            };
            format!("Up {} ({h})", human_duration(since))
        }
        StatusInput::Running { since, .. } => format!("Up {}", human_duration(since)),
        StatusInput::Restarting { exit_code, since } => {
            format!("Restarting ({exit_code}) {} ago", human_duration(since))
        }
        StatusInput::Exited { exit_code, since } => {
            format!("Exited ({exit_code}) {} ago", human_duration(since))
        }
        StatusInput::Removing => "Removal In Progress".into(),
        StatusInput::Dead => "Dead".into(),
    }
}

/// go-units' `HumanDuration`, which Docker uses for ps and images.
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    let minutes = seconds / 60;
    let hours = ((d.as_secs_f64() / 3600.0) + 0.5) as u64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", seconds / 3600 / 24 / 365)
    }
}
