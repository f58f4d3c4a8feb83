//! Swarm-mode bodies: `/swarm`, `/nodes`, `/services`, `/tasks`. Times are RFC 3339 strings,
//! durations nanoseconds, CPU in billionths (`NanoCPUs`), as in Docker.

use serde::{Deserialize, Serialize};

use super::StringMap;

wire! {
    /// `POST /swarm/init`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct InitRequest {
        pub listen_addr: String,
        pub advertise_addr: String,
        pub data_path_addr: String,
        pub force_new_cluster: bool,
        pub availability: String,
    }
}

wire! {
    /// `POST /swarm/join`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct JoinRequest {
        pub listen_addr: String,
        pub advertise_addr: String,
        pub data_path_addr: String,
        pub remote_addrs: Vec<String>,
        pub join_token: String,
        pub availability: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Version {
        pub index: u64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct JoinTokens {
        pub worker: String,
        pub manager: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct TlsInfo {
        pub trust_root: String,
        pub cert_issuer_subject: String,
        pub cert_issuer_public_key: String,
    }
}

wire! {
    /// `GET /swarm`. `Spec` is passed through as Docker's defaults.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Swarm {
        #[serde(rename = "ID")]
        pub id: String,
        pub version: Version,
        pub created_at: String,
        pub updated_at: String,
        pub spec: serde_json::Value,
        #[serde(rename = "TLSInfo")]
        pub tls_info: TlsInfo,
        pub root_rotation_in_progress: bool,
        pub default_addr_pool: Vec<String>,
        pub subnet_size: u32,
        pub data_path_port: u32,
        pub join_tokens: JoinTokens,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NodeSpec {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub name: String,
        pub labels: StringMap,
        pub role: String,
        pub availability: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Platform {
        pub architecture: String,
        #[serde(rename = "OS")]
        pub os: String,
    }
}

wire! {
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Resources {
        #[serde(rename = "NanoCPUs", skip_serializing_if = "is_zero")]
        pub nano_cpus: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub memory_bytes: i64,
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct EngineDescription {
        pub engine_version: String,
        pub labels: Option<StringMap>,
        pub plugins: Vec<serde_json::Value>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NodeDescription {
        pub hostname: String,
        pub platform: Platform,
        pub resources: Resources,
        pub engine: EngineDescription,
        #[serde(rename = "TLSInfo")]
        pub tls_info: TlsInfo,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct NodeStatus {
        pub state: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub message: String,
        pub addr: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ManagerStatus {
        pub leader: bool,
        pub reachability: String,
        pub addr: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Node {
        #[serde(rename = "ID")]
        pub id: String,
        pub version: Version,
        pub created_at: String,
        pub updated_at: String,
        pub spec: NodeSpec,
        pub description: NodeDescription,
        pub status: NodeStatus,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub manager_status: Option<ManagerStatus>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Mount {
        #[serde(rename = "Type")]
        pub kind: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub source: String,
        pub target: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub read_only: bool,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct HealthConfig {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub test: Vec<String>,
        #[serde(skip_serializing_if = "is_zero")]
        pub interval: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub timeout: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub start_period: i64,
        #[serde(skip_serializing_if = "is_zero")]
        pub retries: i64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerSpec {
        pub image: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub labels: Option<StringMap>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub command: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub args: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub hostname: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub env: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub dir: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub user: String,
        #[serde(rename = "TTY", skip_serializing_if = "std::ops::Not::not")]
        pub tty: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        pub read_only: bool,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub mounts: Vec<Mount>,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub stop_signal: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_grace_period: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub healthcheck: Option<HealthConfig>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub init: Option<bool>,
        pub isolation: String,
        /// Accepted only empty: Berth has no secrets or configs store yet.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub secrets: Vec<serde_json::Value>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub configs: Vec<serde_json::Value>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ResourceRequirements {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub limits: Option<Resources>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reservations: Option<Resources>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct RestartPolicy {
        pub condition: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub delay: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_attempts: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub window: Option<i64>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct SpreadOver {
        pub spread_descriptor: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct PlacementPreference {
        pub spread: SpreadOver,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Placement {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub constraints: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub preferences: Vec<PlacementPreference>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub platforms: Vec<serde_json::Value>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct TaskSpec {
        pub container_spec: ContainerSpec,
        pub resources: ResourceRequirements,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restart_policy: Option<RestartPolicy>,
        pub placement: Placement,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub networks: Vec<serde_json::Value>,
        pub force_update: u64,
        pub runtime: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Replicated {
        /// Signed on the wire so that a negative count is an error, not a parse failure.
        pub replicas: Option<i64>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ServiceMode {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicated: Option<Replicated>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub global: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicated_job: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub global_job: Option<serde_json::Value>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct UpdateConfig {
        pub parallelism: u64,
        #[serde(skip_serializing_if = "is_zero")]
        pub delay: i64,
        pub failure_action: String,
        #[serde(skip_serializing_if = "is_zero")]
        pub monitor: i64,
        pub max_failure_ratio: f32,
        pub order: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct PortConfig {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub name: String,
        pub protocol: String,
        pub target_port: u32,
        pub published_port: u32,
        pub publish_mode: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct EndpointSpec {
        pub mode: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<PortConfig>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ServiceSpec {
        pub name: String,
        pub labels: StringMap,
        pub task_template: TaskSpec,
        pub mode: ServiceMode,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub update_config: Option<UpdateConfig>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rollback_config: Option<UpdateConfig>,
        pub endpoint_spec: EndpointSpec,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct UpdateStatus {
        pub state: String,
        pub started_at: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub completed_at: String,
        pub message: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ServiceStatus {
        pub running_tasks: u64,
        pub desired_tasks: u64,
        pub completed_tasks: u64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Endpoint {
        pub spec: EndpointSpec,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<PortConfig>,
        #[serde(rename = "VirtualIPs", skip_serializing_if = "Vec::is_empty")]
        pub virtual_ips: Vec<VirtualIp>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct VirtualIp {
        #[serde(rename = "NetworkID")]
        pub network_id: String,
        pub addr: String,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Service {
        #[serde(rename = "ID")]
        pub id: String,
        pub version: Version,
        pub created_at: String,
        pub updated_at: String,
        pub spec: ServiceSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub previous_spec: Option<ServiceSpec>,
        pub endpoint: Endpoint,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub update_status: Option<UpdateStatus>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service_status: Option<ServiceStatus>,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ContainerStatus {
        #[serde(rename = "ContainerID", skip_serializing_if = "String::is_empty")]
        pub container_id: String,
        #[serde(rename = "PID")]
        pub pid: i64,
        pub exit_code: i64,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct TaskStatus {
        pub timestamp: String,
        pub state: String,
        pub message: String,
        #[serde(skip_serializing_if = "String::is_empty")]
        pub err: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub container_status: Option<ContainerStatus>,
        pub port_status: serde_json::Value,
    }
}

wire! {
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct Task {
        #[serde(rename = "ID")]
        pub id: String,
        pub version: Version,
        pub created_at: String,
        pub updated_at: String,
        pub labels: StringMap,
        pub spec: TaskSpec,
        #[serde(rename = "ServiceID")]
        pub service_id: String,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub slot: u64,
        #[serde(rename = "NodeID", skip_serializing_if = "String::is_empty")]
        pub node_id: String,
        pub status: TaskStatus,
        pub desired_state: String,
    }
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

wire! {
    /// `POST /services/create` and `/services/{id}/update` answers.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "PascalCase", default)]
    pub struct ServiceCreateResponse {
        #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
        pub id: String,
        pub warnings: Option<Vec<String>>,
    }
}
