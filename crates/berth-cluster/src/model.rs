//! The cluster's own types: nodes, services, tasks. berth-server maps them to and from the
//! Swarm-mode wire types; the master stores them (as JSON) and sends tasks to agents.
//! Durations are nanoseconds and times are nanoseconds since the Unix epoch, as in Swarm.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A manager schedules and keeps state; a worker only runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Manager,
    #[default]
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// `docker node update --availability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    /// Takes new tasks.
    #[default]
    Active,
    /// Keeps its tasks, takes no new ones.
    Pause,
    /// Its tasks are moved elsewhere and it takes none.
    Drain,
}

impl Availability {
    pub fn parse(s: &str) -> Option<Availability> {
        match s {
            "active" => Some(Availability::Active),
            "pause" => Some(Availability::Pause),
            "drain" => Some(Availability::Drain),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

/// What the user may change on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub role: Role,
    pub availability: Availability,
}

/// What a node reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NodeDescription {
    pub hostname: String,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
    pub engine_version: String,
    pub os: String,
    pub arch: String,
}

/// A node's liveness as the master sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    #[default]
    Unknown,
    Down,
    Ready,
    Disconnected,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Unknown => "unknown",
            NodeState::Down => "down",
            NodeState::Ready => "ready",
            NodeState::Disconnected => "disconnected",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    pub id: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub spec: NodeSpec,
    pub description: NodeDescription,
    pub state: NodeState,
    /// The address the node's agent connects from (its advertise address).
    pub addr: String,
    pub message: String,
    /// For a manager: the address agents join (`HOST:2377`) and whether it leads.
    pub manager_addr: Option<String>,
    pub leader: bool,
    /// The port the node serves its task logs on.
    #[serde(default)]
    pub port: u16,
    /// The node's slice of every overlay network (1..; 0: not given yet).
    #[serde(default)]
    pub net_index: u32,
}

/// `--mode replicated --replicas N` or `--mode global`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Replicated { replicas: u64 },
    Global,
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Replicated { replicas: 1 }
    }
}

/// A mount of a task's container (`--mount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Mount {
    /// `volume`, `bind` or `tmpfs`.
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// `--health-cmd` and friends (durations in ns; 0 = the engine's default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Health {
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub retries: i64,
    pub start_period: i64,
}

/// CPU in billionths of a CPU, memory in bytes; 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resources {
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// `--restart-condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCondition {
    None,
    OnFailure,
    #[default]
    Any,
}

impl RestartCondition {
    pub fn parse(s: &str) -> Option<RestartCondition> {
        match s {
            "none" => Some(RestartCondition::None),
            "on-failure" => Some(RestartCondition::OnFailure),
            "any" => Some(RestartCondition::Any),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            RestartCondition::None => "none",
            RestartCondition::OnFailure => "on-failure",
            RestartCondition::Any => "any",
        }
    }
}

/// Swarm's defaults: any, 5 s delay, unlimited attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    pub condition: RestartCondition,
    pub delay: i64,
    /// 0: unlimited.
    pub max_attempts: u64,
    /// 0: attempts are counted over the whole life of the slot.
    pub window: i64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            condition: RestartCondition::Any,
            delay: 5_000_000_000,
            max_attempts: 0,
            window: 0,
        }
    }
}

/// Where a task may go (`--constraint`, `--placement-pref spread=...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Placement {
    pub constraints: Vec<String>,
    /// Spread descriptors, e.g. `node.labels.zone`.
    pub spread: Vec<String>,
    /// Bin-pack instead of spreading: the fullest node that fits.
    pub binpack: bool,
}

/// What each task runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TaskTemplate {
    pub image: String,
    /// `ContainerSpec.Command` (overrides the entrypoint) and `Args`.
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub dir: String,
    pub user: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    pub health: Option<Health>,
    pub stop_signal: String,
    pub stop_grace_period: i64,
    pub init: bool,
    pub tty: bool,
    pub read_only: bool,
    pub limits: Resources,
    pub reservations: Resources,
    pub restart: RestartPolicy,
    pub placement: Placement,
    /// Bumped by `service update --force`: a changed template with the same content.
    pub force_update: u64,
}

/// `--update-failure-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    #[default]
    Pause,
    Continue,
    Rollback,
}

/// `--update-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StopFirst,
    StartFirst,
}

/// `--update-*` / `--rollback-*`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UpdateConfig {
    /// Tasks replaced at once; 0: all at once.
    pub parallelism: u64,
    pub delay: i64,
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure after it starts.
    pub monitor: i64,
    pub max_failure_ratio: f32,
    pub order: UpdateOrder,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay: 0,
            failure_action: FailureAction::Pause,
            monitor: 5_000_000_000,
            max_failure_ratio: 0.0,
            order: UpdateOrder::StopFirst,
        }
    }
}

/// `-p published:target[/proto]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortConfig {
    pub protocol: String,
    pub target: u16,
    pub published: u16,
    /// `ingress` or `host`.
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ServiceSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub mode: Mode,
    pub task: TaskTemplate,
    pub update: UpdateConfig,
    pub rollback: UpdateConfig,
    pub ports: Vec<PortConfig>,
    /// The overlay networks' ids its tasks are attached to (`--network`).
    #[serde(default)]
    pub networks: Vec<String>,
    /// `vip` (a virtual IP balanced over the tasks) or `dnsrr` (the name answers every
    /// task's address).
    #[serde(default)]
    pub endpoint_mode: String,
}

impl ServiceSpec {
    /// Ports published through the routing mesh (every node answers).
    pub fn ingress_ports(&self) -> impl Iterator<Item = &PortConfig> {
        self.ports
            .iter()
            .filter(|p| p.published != 0 && p.mode != "host")
    }

    pub fn dnsrr(&self) -> bool {
        self.endpoint_mode == "dnsrr"
    }
}

/// A cluster-wide overlay network (`docker network create -d overlay`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: u64,
    /// The whole network's subnet (CIDR); each node has a slice of it.
    pub subnet: String,
    /// The VXLAN network identifier.
    pub vni: u32,
    /// The routing mesh's network: services with published ports join it.
    pub ingress: bool,
    pub attachable: bool,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// A service's virtual IP on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VirtualIp {
    pub network_id: String,
    pub addr: String,
}

impl ServiceSpec {
    pub fn replicas(&self) -> Option<u64> {
        match self.mode {
            Mode::Replicated { replicas } => Some(replicas),
            Mode::Global => None,
        }
    }
}

/// Where a rolling update stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

impl UpdateState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }
    /// A rollout is still replacing tasks.
    pub fn active(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }
    pub fn rolling_back(self) -> bool {
        matches!(
            self,
            UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub state: UpdateState,
    pub started_at: i64,
    pub completed_at: i64,
    pub message: String,
    /// When the next batch may start (after `--update-delay`).
    pub next_batch_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Service {
    pub id: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub spec: ServiceSpec,
    pub previous_spec: Option<ServiceSpec>,
    /// Bumped whenever `spec.task` changes: tasks made from an older one are out of date.
    pub task_version: u64,
    pub update_status: Option<UpdateStatus>,
    /// Its virtual IPs, one per network (VIP endpoint mode).
    #[serde(default)]
    pub vips: Vec<VirtualIp>,
    /// The networks (names) its tasks join: `--network`s, and `ingress` when a port is
    /// published through the mesh.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// Swarm's task states, in order: a task only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    New,
    Pending,
    Assigned,
    Accepted,
    Preparing,
    Ready,
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    Remove,
    Orphaned,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }
    pub fn parse(s: &str) -> Option<TaskState> {
        Some(match s {
            "new" => TaskState::New,
            "pending" => TaskState::Pending,
            "assigned" => TaskState::Assigned,
            "accepted" => TaskState::Accepted,
            "preparing" => TaskState::Preparing,
            "ready" => TaskState::Ready,
            "starting" => TaskState::Starting,
            "running" => TaskState::Running,
            "complete" => TaskState::Complete,
            "shutdown" => TaskState::Shutdown,
            "failed" => TaskState::Failed,
            "rejected" => TaskState::Rejected,
            "remove" => TaskState::Remove,
            "orphaned" => TaskState::Orphaned,
            _ => return None,
        })
    }
    /// Past running: the task's container is gone or never came.
    pub fn terminal(self) -> bool {
        self > TaskState::Running
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub timestamp: i64,
    pub state: TaskState,
    pub message: String,
    pub err: String,
    pub container_id: String,
    pub pid: i64,
    pub exit_code: i64,
}

impl TaskStatus {
    pub fn new(state: TaskState, message: &str, now: i64) -> TaskStatus {
        TaskStatus {
            timestamp: now,
            state,
            message: message.to_string(),
            err: String::new(),
            container_id: String::new(),
            pid: 0,
            exit_code: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
    pub service_id: String,
    pub service_name: String,
    /// 1.. for replicated services; 0 for global ones (one task per node).
    pub slot: u64,
    pub node_id: String,
    pub spec: TaskTemplate,
    /// The service's `task_version` this task was made from.
    pub task_version: u64,
    pub desired_state: TaskState,
    pub status: TaskStatus,
    /// Restarts of its slot before it (for `--restart-max-attempts`).
    pub attempt: u64,
    /// The container's health when it has a check: `Some(true)` healthy.
    pub healthy: Option<bool>,
    /// When this task's replacement may start (`--restart-delay`), once it has ended.
    pub restart_at: i64,
    /// Why it was shut down, which decides its slot's next task.
    #[serde(default)]
    pub retire: Retire,
    /// Start-first updates: the old task this one replaces once it runs.
    #[serde(default)]
    pub replaces: String,
    /// The service's published ports when the task was made: each is bound on the node
    /// that runs the task.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// The networks (by name) the task is attached to, in order.
    #[serde(default)]
    pub networks: Vec<String>,
    /// Its addresses once running: network name → IPv4.
    #[serde(default)]
    pub addrs: BTreeMap<String, String>,
}

/// What happens to a task's slot once the master stops wanting the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Retire {
    /// Still wanted.
    #[default]
    Keep,
    /// Moved away (drain, a lost node): a new task at once, no restart counted.
    Replace,
    /// Ended and the restart policy wants another after `restart_at`.
    Restart,
    /// Ended and the restart policy wants no other.
    Done,
    /// Scaled away, updated or its node left the service: the slot decides anew.
    Removed,
}

impl Task {
    /// The container name Swarm gives a task: `SERVICE.SLOT.TASKID` (or `SERVICE.NODE.TASKID`).
    pub fn container_name(&self) -> String {
        if self.slot > 0 {
            format!("{}.{}.{}", self.service_name, self.slot, self.id)
        } else {
            format!("{}.{}.{}", self.service_name, self.node_id, self.id)
        }
    }
    /// Wanted and not ended: it counts towards its service's replicas.
    pub fn live(&self) -> bool {
        self.desired_state <= TaskState::Running && !self.status.state.terminal()
    }
}

/// The swarm itself: its id, join tokens and CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SwarmInfo {
    pub id: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: u64,
    pub worker_token: String,
    pub manager_token: String,
    pub ca_cert_pem: String,
    /// The master's join address (`HOST:PORT`).
    pub addr: String,
    /// A node is down after this long without a heartbeat (ns).
    pub node_grace: i64,
    pub heartbeat_period: i64,
}
