//! System bodies: `/_ping` headers, `/version`, `/info`, `/events`, `/system/df`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ContainerSummary, ImageSummary, StringMap, Volume};

/// What `/_ping` says in its headers (its body is just `OK`): `Api-Version`, `Ostype`,
/// `Docker-Experimental`, `Builder-Version`, `Swarm`. A missing `Api-Version` means 1.24.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PingInfo {
    pub api_version: Option<String>,
    pub os_type: Option<String>,
    pub experimental: bool,
    pub builder_version: Option<String>,
    /// `inactive`, `pending`, `error`, `locked`, `active/worker`, `active/manager`.
    pub swarm: Option<String>,
}

wire! {
    /// `Platform` of `/version`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Platform {
        pub name: String,
    }
}

wire! {
    /// A component of `/version`: `Engine`, `containerd`, `runc`, `docker-init`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ComponentVersion {
        pub name: String,
        pub version: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub details: Option<StringMap>,
    }
}

wire! {
    /// `GET /version`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VersionResponse {
        pub platform: Platform,
        pub components: Vec<ComponentVersion>,
        pub version: String,
        pub api_version: String,
        #[serde(rename = "MinAPIVersion")]
        pub min_api_version: String,
        pub git_commit: String,
        pub go_version: String,
        pub os: String,
        pub arch: String,
        pub kernel_version: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub experimental: bool,
        pub build_time: String,
    }
}

wire! {
    /// `Plugins` of `/info`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct PluginsInfo {
        pub volume: Option<Vec<String>>,
        pub network: Option<Vec<String>>,
        pub authorization: Option<Vec<String>>,
        pub log: Option<Vec<String>>,
    }
}

wire! {
    /// An entry of `IndexConfigs`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct IndexInfo {
        pub name: String,
        pub mirrors: Option<Vec<String>>,
        pub secure: bool,
        pub official: bool,
    }
}

wire! {
    /// `RegistryConfig` of `/info` (insecure registries and mirrors in `docker info`).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct RegistryConfig {
        #[serde(rename = "InsecureRegistryCIDRs")]
        pub insecure_registry_cidrs: Option<Vec<String>>,
        pub index_configs: Option<BTreeMap<String, IndexInfo>>,
        pub mirrors: Option<Vec<String>>,
    }
}

wire! {
    /// A runtime of `/info` (keys lowercase in Docker).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct RuntimeInfo {
        pub path: String,
        #[serde(rename = "runtimeArgs", skip_serializing_if = "Option::is_none")]
        pub runtime_args: Option<Vec<String>>,
    }
}

wire! {
    /// `ContainerdCommit`, `RuncCommit`, `InitCommit`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct Commit {
        #[serde(rename = "ID")]
        pub id: String,
        #[serde(rename = "Expected")]
        pub expected: String,
    }
}

wire! {
    /// `Swarm` of `/info`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SwarmInfo {
        #[serde(rename = "NodeID")]
        pub node_id: String,
        pub node_addr: String,
        /// `inactive`, `pending`, `active`, `error`, `locked`.
        pub local_node_state: String,
        pub control_available: bool,
        pub error: String,
        pub remote_managers: Option<Vec<serde_json::Value>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub nodes: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub managers: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cluster: Option<serde_json::Value>,
    }
}

wire! {
    /// `DefaultAddressPools` entries.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct AddressPool {
        pub base: String,
        pub size: i64,
    }
}

wire! {
    /// `GET /info`: everything `docker info` prints.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SystemInfo {
        #[serde(rename = "ID")]
        pub id: String,
        pub containers: i64,
        pub containers_running: i64,
        pub containers_paused: i64,
        pub containers_stopped: i64,
        pub images: i64,
        pub driver: String,
        /// `[["Backing Filesystem", "extfs"], ...]`.
        pub driver_status: Option<Vec<[String; 2]>>,
        pub plugins: PluginsInfo,
        pub memory_limit: bool,
        pub swap_limit: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub kernel_memory: bool,
        #[serde(rename = "KernelMemoryTCP", skip_serializing_if = "std::ops::Not::not")]
        pub kernel_memory_tcp: bool,
        pub cpu_cfs_period: bool,
        pub cpu_cfs_quota: bool,
        #[serde(rename = "CPUShares")]
        pub cpu_shares: bool,
        #[serde(rename = "CPUSet")]
        pub cpu_set: bool,
        pub pids_limit: bool,
        #[serde(rename = "IPv4Forwarding")]
        pub ipv4_forwarding: bool,
        pub bridge_nf_iptables: bool,
        pub bridge_nf_ip6tables: bool,
        pub debug: bool,
        #[serde(rename = "NFd")]
        pub n_fd: i64,
        pub oom_kill_disable: bool,
        #[serde(rename = "NGoroutines")]
        pub n_goroutines: i64,
        /// RFC 3339 with nanoseconds.
        pub system_time: String,
        pub logging_driver: String,
        /// `cgroupfs` or `systemd`.
        pub cgroup_driver: String,
        /// `1` or `2`.
        pub cgroup_version: String,
        #[serde(rename = "NEventsListener")]
        pub n_events_listener: i64,
        pub kernel_version: String,
        pub operating_system: String,
        #[serde(rename = "OSVersion")]
        pub os_version: String,
        #[serde(rename = "OSType")]
        pub os_type: String,
        pub architecture: String,
        pub index_server_address: String,
        pub registry_config: Option<RegistryConfig>,
        #[serde(rename = "NCPU")]
        pub ncpu: i64,
        pub mem_total: i64,
        pub generic_resources: Option<Vec<serde_json::Value>>,
        pub docker_root_dir: String,
        pub http_proxy: String,
        pub https_proxy: String,
        pub no_proxy: String,
        pub name: String,
        pub labels: Option<Vec<String>>,
        pub experimental_build: bool,
        pub server_version: String,
        pub runtimes: BTreeMap<String, RuntimeInfo>,
        pub default_runtime: String,
        pub swarm: SwarmInfo,
        pub live_restore_enabled: bool,
        pub isolation: String,
        pub init_binary: String,
        pub containerd_commit: Commit,
        pub runc_commit: Commit,
        pub init_commit: Commit,
        pub security_options: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_address_pools: Option<Vec<AddressPool>>,
        #[serde(rename = "CDISpecDirs", skip_serializing_if = "Option::is_none")]
        pub cdi_spec_dirs: Option<Vec<String>>,
        pub warnings: Option<Vec<String>>,
    }
}

wire! {
    /// `Actor` of an event: the object's id and its attributes (`name`, `image`, `exitCode`,
    /// labels...).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct EventActor {
        #[serde(rename = "ID")]
        pub id: String,
        #[serde(rename = "Attributes")]
        pub attributes: StringMap,
    }
}

wire! {
    /// One JSON line of `GET /events`. `status`, `id` and `from` are the legacy fields dockerd
    /// still fills for container and image events (`from` is the image).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct EventMessage {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub status: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub id: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub from: String,
        /// `container`, `image`, `volume`, `network`, `daemon`, `plugin`, `node`, `service`...
        #[serde(rename = "Type")]
        pub r#type: String,
        /// `create`, `attach`, `start`, `die`, `destroy`, `health_status: healthy`...
        #[serde(rename = "Action")]
        pub action: String,
        #[serde(rename = "Actor")]
        pub actor: EventActor,
        /// `local` or `swarm`.
        pub scope: String,
        /// Unix seconds.
        pub time: i64,
        #[serde(rename = "timeNano")]
        pub time_nano: i64,
    }
}

wire! {
    /// A build cache record of `/system/df`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct BuildCache {
        #[serde(rename = "ID")]
        pub id: String,
        pub parents: Option<Vec<String>>,
        pub r#type: String,
        pub description: String,
        pub in_use: bool,
        pub shared: bool,
        pub size: i64,
        pub created_at: String,
        pub last_used_at: Option<String>,
        pub usage_count: i64,
    }
}

wire! {
    /// `GET /system/df`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SystemDfResponse {
        pub layers_size: i64,
        pub images: Vec<ImageSummary>,
        pub containers: Vec<ContainerSummary>,
        pub volumes: Vec<Volume>,
        pub build_cache: Vec<BuildCache>,
    }
}

wire! {
    /// `POST /build/prune`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct BuildCachePruneResponse {
        pub caches_deleted: Option<Vec<String>>,
        pub space_reclaimed: u64,
    }
}
