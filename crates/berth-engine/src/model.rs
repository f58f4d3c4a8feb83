//! The engine's own types: what a container is asked to be ([`ContainerSpec`]), what it is
//! ([`Container`]), its exec sessions, volumes, events and statistics. The Docker wire format
//! is mapped to and from these by berth-server; nothing here knows JSON field names of the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `create` is asked for. Empty or `None` fields take the image's value or Docker's
/// default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerSpec {
    /// `--name`; a random `adjective_name` when unset. `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
    pub name: Option<String>,
    /// The image as the user named it.
    pub image: String,
    /// `IMAGE CMD...`; `None` keeps the image's Cmd.
    pub cmd: Option<Vec<String>>,
    /// `--entrypoint`; `Some(vec![])` (or `[""]`) clears the image's. Any override drops the
    /// image's Cmd, as Docker does.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE`, applied after the image's Env.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// `USER[:GROUP]`, names or ids.
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Merged over the image's labels.
    pub labels: BTreeMap<String, String>,
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Close stdin after the first attach that used it ends (`docker run -i`).
    pub stdin_once: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// `--init`: a tiny init (the shim's) reaps zombies as pid 1.
    pub init: bool,
    pub read_only: bool,
    /// `--tmpfs /run:rw,size=64m`: destination → options.
    pub tmpfs: BTreeMap<String, String>,
    /// `-v` and `--mount`.
    pub mounts: Vec<MountSpec>,
    pub resources: Resources,
    /// `CAP_X` or `X`, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--security-opt seccomp=PROFILE`: `None` Docker's default profile, `Some("unconfined")`
    /// none, else the profile's JSON text.
    pub seccomp_profile: Option<String>,
    pub restart_policy: RestartPolicy,
    pub healthcheck: Option<Healthcheck>,
    /// `--stop-signal`, e.g. `SIGTERM` or `15`.
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds.
    pub stop_timeout: Option<i64>,
    /// `--rm`.
    pub auto_remove: bool,
    /// json-file rotation: `max-size` in bytes and `max-file`.
    pub log_max_size: Option<u64>,
    pub log_max_file: Option<u32>,
    /// `default` (the daemon's default bridge), `bridge`, `host`, `none` or a network's
    /// name or id: the network the container is first connected to.
    pub network_mode: String,
    /// Endpoint options per network (`--network-alias`, `--ip`), keyed as the client sent
    /// them (the network's name, `default`, or an id).
    pub endpoints: BTreeMap<String, EndpointSpec>,
    /// `80/tcp` …, from `EXPOSE` and `--expose`.
    pub exposed_ports: Vec<String>,
    /// `-p`: container port (`80/tcp`) → host bindings asked for (an empty host port: one
    /// picked from the ephemeral range).
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// `-P`: every exposed port (the image's and `--expose`) on an ephemeral host port.
    pub publish_all: bool,
    /// `--add-host NAME:IP` lines for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option` for `/etc/resolv.conf`.
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `--ulimit`.
    pub ulimits: Vec<Ulimit>,
    /// Anonymous volumes asked for (`Volumes` of the create body).
    pub volumes: Vec<String>,
    pub oom_score_adj: i64,
    pub sysctls: BTreeMap<String, String>,
    pub shm_size: i64,
    pub group_add: Vec<String>,
    /// `[height, width]` of the tty before the process starts (0: unset).
    pub console_size: [u16; 2],
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// A container's options on one network (create's `EndpointsConfig`, `network connect`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointSpec {
    /// `--network-alias`: more names the container answers to on the network.
    pub aliases: Vec<String>,
    /// `--ip`: a fixed IPv4 address in the network's subnet.
    pub ipv4_address: Option<String>,
}

/// A container's place on a network (inspect's `NetworkSettings.Networks` entry). The
/// addresses are set while the container runs and empty while it does not, as Docker has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    /// The network's id (64 hex digits).
    pub network_id: String,
    /// What was asked for.
    pub spec: EndpointSpec,
    /// 64 hex digits, new for each run.
    pub endpoint_id: String,
    /// The interface inside the container (`eth0`, `eth1` …).
    pub ifname: String,
    pub ip_address: String,
    pub ip_prefix_len: u8,
    pub gateway: String,
    pub mac_address: String,
    /// The names the network's DNS answers for it: its name, aliases and short id.
    pub dns_names: Vec<String>,
}

/// `docker network create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSpec {
    pub name: String,
    /// `bridge` (the default; the only driver of user networks).
    pub driver: Option<String>,
    /// `--subnet` (CIDR); one from the default pools when unset.
    pub subnet: Option<String>,
    /// `--gateway`; the subnet's first address when unset.
    pub gateway: Option<String>,
    /// `--ip-range`: only the whole subnet is supported.
    pub ip_range: Option<String>,
    /// `--internal`: no way out of the network.
    pub internal: bool,
    /// `--ipv6`: refused (IPv4 only).
    pub enable_ipv6: bool,
    pub labels: BTreeMap<String, String>,
    /// `-o` driver options (`com.docker.network.bridge.name` …).
    pub options: BTreeMap<String, String>,
    /// This node's piece of a cluster overlay network (made by the cluster's agent, never
    /// from the API): the whole network's subnet (CIDR). Driver `overlay`, the subnet is the
    /// node's slice.
    pub overlay: Option<String>,
}

/// A network as the engine knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// `bridge`, `host`, `null`, or `overlay` (a cluster network's piece on this node).
    pub driver: String,
    /// RFC 3339.
    pub created: String,
    /// Subnet (CIDR) and gateway of a bridge network; empty for `host` and `none`.
    pub subnet: String,
    pub gateway: String,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
    /// Docker's driver options as inspect shows them.
    pub options: BTreeMap<String, String>,
    /// `bridge`, `host` and `none`: made by the daemon, never removed.
    pub builtin: bool,
    /// The containers connected to it now, by container id (running ones have addresses).
    pub containers: BTreeMap<String, NetworkMember>,
}

/// A container on a network, as network inspect lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkMember {
    pub name: String,
    pub endpoint_id: String,
    pub mac_address: String,
    /// `IP/prefix`, or empty while the container is not running.
    pub ipv4_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// A mount of a container: a host path, a named (or anonymous) volume, or a tmpfs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path for binds, volume name for volumes (empty: anonymous), unused for tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// `rprivate` (default), `private`, `rshared`, `shared`, `rslave`, `slave`.
    pub propagation: Option<String>,
    /// tmpfs `size=` in bytes.
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    #[default]
    Bind,
    Volume,
    Tmpfs,
}

impl MountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// Limits; zero or `None` means unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Bytes.
    pub memory: i64,
    pub memory_reservation: i64,
    /// Memory + swap in bytes; -1 unlimited.
    pub memory_swap: i64,
    /// CPUs × 10⁹.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// `None` or `Some(0)` unset, `Some(-1)` unlimited.
    pub pids_limit: Option<i64>,
    pub blkio_weight: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    pub kind: RestartKind,
    /// For `on-failure`: 0 means no limit.
    pub max_retries: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartKind {
    #[default]
    No,
    OnFailure,
    Always,
    UnlessStopped,
}

impl RestartKind {
    /// Docker's names: `""`/`no`, `on-failure`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Option<RestartKind> {
        Some(match s {
            "" | "no" => RestartKind::No,
            "on-failure" => RestartKind::OnFailure,
            "always" => RestartKind::Always,
            "unless-stopped" => RestartKind::UnlessStopped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartKind::No => "no",
            RestartKind::OnFailure => "on-failure",
            RestartKind::Always => "always",
            RestartKind::UnlessStopped => "unless-stopped",
        }
    }
}

/// A health check; durations in nanoseconds, 0 meaning Docker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Healthcheck {
    /// `["CMD", args...]`, `["CMD-SHELL", command]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
}

/// The configuration a container ended up with: the spec merged over the image's config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EffectiveConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub workdir: String,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
    pub healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    /// Docker's `State.Status` words.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthLogEntry {
    /// RFC 3339 with nanoseconds.
    pub start: String,
    pub end: String,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: i64,
    /// The last five results, oldest first.
    pub log: Vec<HealthLogEntry>,
}

/// The container's life; times are RFC 3339 with nanoseconds (`0001-01-01T00:00:00Z` unset).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    pub status: Status,
    /// Host pid of the init while it runs, else 0.
    pub pid: i32,
    pub exit_code: i32,
    pub oom_killed: bool,
    /// Why it could not start, if it could not.
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub health: Option<Health>,
}

impl State {
    pub fn running(&self) -> bool {
        matches!(
            self.status,
            Status::Running | Status::Paused | Status::Restarting
        )
    }
}

/// A mount as the container has it (inspect's `Mounts`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountPoint {
    pub kind: MountKind,
    /// Volume name, for volumes.
    pub name: String,
    /// Host path (the volume's data dir for volumes).
    pub source: String,
    pub destination: String,
    pub read_only: bool,
    pub propagation: String,
}

/// A container as the engine knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image as named at create.
    pub image: String,
    /// `sha256:…` of the image config.
    pub image_id: String,
    pub spec: ContainerSpec,
    pub config: EffectiveConfig,
    /// argv[0] and the rest.
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub restart_count: u32,
    /// Stopped by the user (`stop`, `kill`): `unless-stopped` and `always` stay down until
    /// started again... for `always`, only until the daemon restarts.
    pub manually_stopped: bool,
    pub mounts: Vec<MountPoint>,
    /// The bundle's rootfs on the host (the overlay mount).
    pub rootfs: String,
    /// The json-file log.
    pub log_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub resolv_conf_path: String,
    /// The graph driver's dirs: `LowerDir`, `UpperDir`, `WorkDir`, `MergedDir`.
    pub graph: BTreeMap<String, String>,
    /// Exec sessions still known.
    pub exec_ids: Vec<String>,
    /// The networks it is connected to, by network name (none for `host`).
    pub networks: BTreeMap<String, Endpoint>,
    /// While it runs: `80/tcp` → the host bindings made (host ports picked).
    pub ports: BTreeMap<String, Vec<PortBinding>>,
    /// While it runs in a network namespace of its own: a path to it (`SandboxKey`).
    pub sandbox_key: String,
}

/// `exec create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
    /// `[height, width]` of the tty, set as soon as the process has one (0: unset).
    pub console_size: [u16; 2],
}

/// An exec session (`GET /exec/{id}/json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub spec: ExecSpec,
    pub running: bool,
    /// Set once it has run and exited.
    pub exit_code: Option<i32>,
    pub pid: i32,
}

/// What the engine tells `events` subscribers; named as Docker names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`, `daemon`.
    pub kind: String,
    /// `create`, `start`, `die`, `stop`, `kill`, `destroy`, `pause`, `unpause`, `rename`,
    /// `restart`, `attach`, `exec_create`, `exec_start`, `exec_die`, `health_status: healthy`,
    /// `oom`, `tag`, `untag`, `delete`, `load`, `import`, `pull`, `save`, `mount`, `unmount`…
    pub action: String,
    /// The object's id (a container id, image id or volume name).
    pub id: String,
    /// `name`, `image`, `exitCode`, `signal` and the labels.
    pub attributes: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub time_nano: i64,
}

/// A named volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Volume {
    pub name: String,
    /// `local`.
    pub driver: String,
    /// The data directory on the host.
    pub mountpoint: String,
    /// RFC 3339.
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// Created for a container without a name (`-v /data`).
    pub anonymous: bool,
}

/// One sample of a container's usage, from its cgroups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// RFC 3339 with nanoseconds.
    pub read: String,
    pub pids: u64,
    pub pids_limit: Option<u64>,
    /// Nanoseconds of CPU time used, in total and per cpu.
    pub cpu_total: u64,
    pub cpu_kernel: u64,
    pub cpu_user: u64,
    pub cpu_per_cpu: Vec<u64>,
    /// Nanoseconds of the host's CPU time (`/proc/stat`), for the percentage.
    pub system_cpu: u64,
    pub online_cpus: u32,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    pub memory_limit: u64,
    /// The memory controller's counters (`cache`, `rss`, `inactive_file`…).
    pub memory_stats: BTreeMap<String, u64>,
    /// Bytes read and written per device `major:minor`.
    pub blkio_read: u64,
    pub blkio_write: u64,
    /// rx/tx bytes and packets of the container's interfaces (none until berth-net).
    pub networks: BTreeMap<String, NetStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// `top`: the titles of `ps` and one row per process of the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// A change of the container's filesystem against its image (`diff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WaitCondition {
    /// The container is not running (now, or when it stops).
    #[default]
    NotRunning,
    /// The next exit from now on, even if not running yet (sent before `start`).
    NextExit,
    /// The container has been removed.
    Removed,
}

/// The result of a wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitResult {
    pub exit_code: i32,
    /// Why the wait could not be satisfied, if it could not.
    pub error: Option<String>,
}

/// `logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    pub follow: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Unix nanoseconds; 0 none.
    pub since: i64,
    pub until: i64,
    pub timestamps: bool,
    /// `None`: all.
    pub tail: Option<usize>,
}

/// `attach`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Replay the log first.
    pub logs: bool,
    /// Stream live output (otherwise only the logs, then the stream ends).
    pub stream: bool,
}

/// A stream to hand to the client: raw with a tty, framed with Docker's 8-byte header without.
pub struct Stream {
    pub conn: std::os::unix::net::UnixStream,
    pub tty: bool,
}

/// `system df` and `info` counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub images: usize,
}

/// Usage of one container's writable layer, for `system df` and `ps -s`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerUsage {
    pub id: String,
    pub size_rw: u64,
}

/// Usage of a volume, for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeUsage {
    pub name: String,
    pub size: u64,
    pub ref_count: usize,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pruned {
    pub deleted: Vec<String>,
    pub space_reclaimed: u64,
}
