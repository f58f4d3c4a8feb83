//! The agent on every node (the manager's too): it holds a session with the master (a
//! heartbeat each period that doubles as a long poll for the node's assignments), runs each
//! assigned task as a container of the local engine, stops what is no longer wanted, and
//! reports every task's state the moment it changes. While the master is away it keeps its
//! containers running and keeps trying; when the master is back, the next session carries
//! the whole truth both ways.
//!
//! A task's container is named `SERVICE.SLOT.TASKID` and labelled as Swarm labels it
//! (`com.docker.swarm.service.id`, `.service.name`, `.task.id`, `.task.name`, `.node.id`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::{ContainerSpec, Engine, HealthStatus, MountKind, MountSpec, Status};
use serde::{Deserialize, Serialize};

use crate::ca::{self, Issued};
use crate::error::{Error, Result};
use crate::model::{NodeDescription, Role, Task, TaskState};
use crate::proto::{
    Client, JoinRequest, JoinResponse, ReportRequest, SessionRequest, SessionResponse, TaskReport,
};
use crate::store::StoreConfig;

pub const LABEL_TASK: &str = "com.docker.swarm.task.id";
pub const LABEL_SERVICE: &str = "com.docker.swarm.service.id";

/// What a node keeps of its membership (`<data-root>/swarm/agent.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Membership {
    pub node_id: String,
    pub swarm_id: String,
    pub role: Role,
    /// The master's address, `HOST:PORT`.
    pub master: String,
    pub ca_pem: String,
    pub cert: Issued,
    pub advertise_addr: String,
    /// Where the node serves its task logs, and a manager the protocol (`--listen-addr`,
    /// default `0.0.0.0:2377`).
    #[serde(default)]
    pub listen: String,
    /// Every manager's address (`HOST:PORT`) as last heard, the leader first: where the
    /// agent goes when its master is lost.
    #[serde(default)]
    pub managers: Vec<String>,
    /// Where the masters keep the state (a manager campaigns there).
    #[serde(default)]
    pub store: StoreConfig,
}

impl Membership {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("agent.json")
    }

    pub fn load(dir: &Path) -> Result<Option<Membership>> {
        match std::fs::read(Self::path(dir)) {
            Ok(b) => Ok(Some(serde_json::from_slice(&b)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io(format!("{}: {e}", Self::path(dir).display()))),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
        let tmp = dir.join("agent.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .and_then(|_| std::fs::rename(&tmp, Self::path(dir)))
            .map_err(|e| Error::Io(format!("{}: {e}", Self::path(dir).display())))
    }
}

/// Asks the master at `master` to take this node in (`docker swarm join`).
pub async fn join(
    master: &str,
    token: &str,
    description: NodeDescription,
    advertise_addr: &str,
    listen: &str,
) -> Result<Membership> {
    let (digest, _) = ca::parse_token(token)?;
    let port = listen
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(crate::cluster::DEFAULT_PORT);
    let req = JoinRequest {
        token: token.to_string(),
        description,
        advertise_addr: advertise_addr.to_string(),
        port,
    };
    // A manager that does not lead names the leader (421): the join goes there.
    let mut at = master.to_string();
    let mut answer = Err(Error::Unavailable(format!(
        "no manager at {master} takes joins"
    )));
    for _ in 0..3 {
        let client = Client::new(&at, ca::join_config(&digest)?);
        answer = client
            .call::<_, JoinResponse>("/join", &req, Duration::from_secs(20))
            .await;
        match &answer {
            Err(Error::NotLeader(l)) if !l.trim().is_empty() && l.trim() != at => {
                at = l.trim().to_string();
            }
            Err(Error::NotLeader(_)) => {
                // An election is under way.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => break,
        }
    }
    let resp: JoinResponse = answer.map_err(|e| match e {
            Error::Refused(m) => Error::InvalidArgument(format!("rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster: {m}")),
            Error::Tls(m) => Error::InvalidArgument(format!("could not join the swarm at {master}: {m}")),
            Error::Io(m) | Error::Unreachable(m) => Error::Unavailable(format!("could not reach the manager at {master}: {m}")),
            Error::NotLeader(_) => Error::Unavailable(format!("the swarm at {master} has no leader right now (an election is under way); try again in a few seconds")),
            e => e,
        })?;
    Ok(Membership {
        node_id: resp.node_id,
        swarm_id: resp.swarm_id,
        role: resp.role,
        master: at,
        ca_pem: resp.ca_pem,
        cert: resp.cert,
        advertise_addr: advertise_addr.to_string(),
        listen: listen.to_string(),
        managers: resp.managers,
        store: resp.store,
    })
}

/// After a failed call to the manager at `failed`: the leader it named, else the manager after
/// it among those known (`managers`, and `joined`, the one the node joined through); `None`
/// when there is no other.
pub fn next_manager(
    managers: &[String],
    joined: &str,
    failed: &str,
    leader: Option<&str>,
) -> Option<String> {
    if let Some(l) = leader.filter(|l| !l.is_empty() && *l != failed) {
        return Some(l.to_string());
    }
    let mut all = managers.to_vec();
    if !all.iter().any(|a| a == joined) {
        all.push(joined.to_string());
    }
    if all.len() < 2 {
        return None;
    }
    let i = all.iter().position(|a| a == failed).map_or(0, |i| i + 1);
    Some(all[i % all.len()].clone())
}

/// The node's description as the master wants it.
pub fn describe(engine: &Engine) -> Result<NodeDescription> {
    let info = engine.info()?;
    Ok(NodeDescription {
        hostname: info.hostname,
        nano_cpus: info.ncpu as i64 * 1_000_000_000,
        memory_bytes: info.mem_total as i64,
        engine_version: env!("CARGO_PKG_VERSION").to_string(),
        os: "linux".into(),
        arch: info.architecture,
    })
}

pub struct Agent {
    engine: Arc<Engine>,
    /// Where `agent.json` is kept.
    dir: PathBuf,
    membership: Mutex<Membership>,
    /// The master talked to: (address, session client, report client).
    target: Mutex<Target>,
    /// The role the master wants this node in (and its membership has), for the cluster to
    /// follow.
    role: tokio::sync::watch::Sender<Role>,
    /// Last state reported per task.
    sent: Mutex<HashMap<String, TaskReport>>,
    /// The node's current assignments.
    assigned: Mutex<BTreeMap<String, Task>>,
    /// Tasks whose container is being stopped or started right now.
    busy: Mutex<HashSet<String>>,
    /// A report was set by a start or stop and is still to be sent.
    dirty: std::sync::atomic::AtomicBool,
    handles: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The node's overlays, mesh and service names.
    dataplane: Option<crate::dataplane::Dataplane>,
    /// CPU readings of the task containers, for autoscaling.
    sampler: Mutex<crate::autoscale::Sampler>,
}

/// How long a task that takes traffic stays up after the mesh stopped sending it new
/// connections, before it is told to stop: every node's table has changed by then.
const DRAIN: Duration = Duration::from_millis(1000);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
struct Target {
    addr: String,
    session: Arc<Client>,
    reporter: Arc<Client>,
}

impl Target {
    fn new(addr: &str, m: &Membership) -> Result<Target> {
        let cfg = || ca::client_config(&m.ca_pem, &m.cert);
        Ok(Target {
            addr: addr.to_string(),
            session: Arc::new(Client::new(addr, cfg()?)),
            reporter: Arc::new(Client::new(addr, cfg()?)),
        })
    }
}

impl Agent {
    pub fn new(engine: Arc<Engine>, membership: Membership, dir: &Path) -> Result<Arc<Agent>> {
        let dataplane = match crate::dataplane::Dataplane::new(
            engine.clone(),
            &membership.node_id,
            &membership.advertise_addr,
        ) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!("agent: no overlay networks on this node: {e}");
                None
            }
        };
        let (role, _) = tokio::sync::watch::channel(membership.role);
        Ok(Arc::new(Agent {
            dataplane,
            target: Mutex::new(Target::new(&membership.master, &membership)?),
            dir: dir.to_path_buf(),
            role,
            engine,
            membership: Mutex::new(membership),
            sent: Mutex::new(HashMap::new()),
            assigned: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(HashSet::new()),
            dirty: Default::default(),
            handles: Mutex::new(Vec::new()),
            sampler: Default::default(),
        }))
    }

    /// What this node keeps of its membership, as it is now.
    pub fn membership(&self) -> Membership {
        lock(&self.membership).clone()
    }

    /// The role this node runs as; changes when the master promotes or demotes it.
    pub fn role_watch(&self) -> tokio::sync::watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Changes the master talked to (its clients dial anew).
    fn retarget(&self, addr: &str) {
        let m = self.membership();
        match Target::new(addr, &m) {
            Ok(t) => *lock(&self.target) = t,
            Err(e) => tracing::warn!("agent: {addr}: {e}"),
        }
    }

    /// After a failed call to `failed`: the next manager to try.
    fn next_manager(&self, failed: &str, leader: Option<&str>) -> Option<String> {
        let m = self.membership();
        next_manager(&m.managers, &m.master, failed, leader)
    }

    /// What the master said of the managers and of this node's role.
    fn heard(&self, resp: &SessionResponse) {
        let mut m = lock(&self.membership);
        let mut changed = false;
        if !resp.managers.is_empty() && resp.managers != m.managers {
            m.managers = resp.managers.clone();
            changed = true;
        }
        if let Some(p) = &resp.promotion {
            if m.role == Role::Worker {
                tracing::info!("agent: this node is promoted to manager");
                m.role = Role::Manager;
                m.cert = p.cert.clone();
                m.store = p.store.clone();
                changed = true;
            }
        }
        if resp.role == Some(Role::Worker) && m.role == Role::Manager {
            tracing::info!("agent: this node is demoted to worker");
            m.role = Role::Worker;
            changed = true;
        }
        if changed {
            if let Err(e) = m.save(&self.dir) {
                tracing::warn!("agent: {e}");
            }
            let role = m.role;
            drop(m);
            self.role.send_if_modified(|r| {
                let c = *r != role;
                *r = role;
                c
            });
        }
    }

    /// Starts the session loop and the watcher.
    pub fn start(self: &Arc<Agent>) {
        let me = self.clone();
        let session = tokio::spawn(async move { me.session_loop().await });
        let me = self.clone();
        let watch = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let m = me.clone();
                let changed = tokio::task::spawn_blocking(move || m.observe(true))
                    .await
                    .unwrap_or_default();
                if !changed.is_empty() {
                    let req = ReportRequest { reports: changed };
                    let reporter = lock(&me.target).reporter.clone();
                    if let Err(e) = reporter
                        .call::<_, serde_json::Value>("/report", &req, Duration::from_secs(5))
                        .await
                    {
                        tracing::debug!("agent: report: {e}");
                        // Sent again with the next session.
                        let mut sent = lock(&me.sent);
                        for r in &req.reports {
                            sent.remove(&r.id);
                        }
                    }
                }
            }
        });
        lock(&self.handles).extend([session, watch]);
    }

    pub fn stop(&self) {
        for h in lock(&self.handles).drain(..) {
            h.abort();
        }
    }

    async fn session_loop(self: Arc<Agent>) {
        let mut since = 0u64;
        let mut net_since = 0u64;
        let mut failures = 0u32;
        // The node's description changes rarely: read it again every 30 s, not per heartbeat.
        let mut description = NodeDescription::default();
        let mut described: Option<std::time::Instant> = None;
        loop {
            if described.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
                let me = self.clone();
                if let Ok(Ok(d)) = tokio::task::spawn_blocking(move || describe(&me.engine)).await {
                    description = d;
                    described = Some(std::time::Instant::now());
                }
            }
            let me = self.clone();
            let (reports, usage) = tokio::task::spawn_blocking(move || {
                me.observe(false);
                let usage = lock(&me.sampler).sample_if_due(&me.engine, || me.containers());
                (lock(&me.sent).values().cloned().collect::<Vec<_>>(), usage)
            })
            .await
            .unwrap_or_default();
            let req = SessionRequest {
                description: description.clone(),
                reports,
                since,
                net_since,
                role: Some(self.membership().role),
                usage,
            };
            let target = lock(&self.target).clone();
            match target
                .session
                .call::<_, SessionResponse>("/session", &req, Duration::from_secs(10))
                .await
            {
                Ok(resp) => {
                    if failures > 0 {
                        tracing::info!("agent: the manager at {} answers", target.addr);
                    }
                    failures = 0;
                    since = resp.version;
                    self.heard(&resp);
                    if let Some(net) = resp.net {
                        // Applied on the dataplane's thread (retried there until it holds):
                        // the session, which is our heartbeat, never waits for it.
                        if let Some(d) = &self.dataplane {
                            d.submit(net);
                        }
                        net_since = resp.net_version;
                    }
                    if let Some(tasks) = resp.tasks {
                        let me = self.clone();
                        let _ = tokio::task::spawn_blocking(move || me.apply(tasks)).await;
                    }
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!("agent: session with the manager at {}: {e}", target.addr);
                    }
                    failures += 1;
                    since = 0;
                    net_since = 0;
                    // A manager that does not lead names the leader, if there is one; a lost
                    // one is replaced by the next manager known.
                    let leader = match &e {
                        Error::NotLeader(l) => Some(l.trim()),
                        _ => None,
                    };
                    if let Some(next) = self.next_manager(&target.addr, leader) {
                        if next != target.addr {
                            tracing::debug!("agent: trying the manager at {next}");
                            self.retarget(&next);
                        }
                    }
                    if leader.is_none_or(|l| l.is_empty()) {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    }

    /// Our task containers: task id → container id.
    fn containers(&self) -> HashMap<String, berth_engine::Container> {
        self.engine
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.spec.labels.get(LABEL_TASK).cloned().map(|t| (t, c)))
            .collect()
    }

    /// Makes the node match `tasks`.
    fn apply(self: &Arc<Agent>, tasks: Vec<Task>) {
        let have = self.containers();
        let wanted: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
        {
            let mut a = lock(&self.assigned);
            *a = tasks.iter().map(|t| (t.id.clone(), t.clone())).collect();
        }
        for t in tasks {
            if !lock(&self.busy).insert(t.id.clone()) {
                continue;
            }
            let me = self.clone();
            let existing = have.get(&t.id).cloned();
            std::thread::spawn(move || {
                me.converge(&t, existing);
                lock(&me.busy).remove(&t.id);
            });
        }
        // Containers of tasks the master no longer knows: gone.
        for (task, c) in have {
            if wanted.contains(&task) || !lock(&self.busy).insert(task.clone()) {
                continue;
            }
            let me = self.clone();
            std::thread::spawn(move || {
                if let Err(e) = me.engine.remove(&c.id, true, false) {
                    tracing::warn!("agent: remove {} of task {task}: {e}", c.name);
                }
                lock(&me.sent).remove(&task);
                lock(&me.busy).remove(&task);
            });
        }
    }

    fn converge(&self, t: &Task, existing: Option<berth_engine::Container>) {
        if t.desired_state <= TaskState::Running {
            if existing.is_some()
                || t.status.state.terminal()
                || t.status.state > TaskState::Assigned
                    && self.reported(&t.id).is_some_and(|r| r.state.terminal())
            {
                return;
            }
            self.set(t, TaskState::Accepted, "accepted", "", "", 0, 0);
            self.set(t, TaskState::Preparing, "preparing", "", "", 0, 0);
            let spec = container_spec(t, &lock(&self.membership).node_id);
            let id = match self.engine.create(spec) {
                Ok((id, _)) => id,
                Err(e) => {
                    tracing::warn!("agent: task {}: {e}", t.id);
                    self.set(
                        t,
                        TaskState::Rejected,
                        "preparing",
                        &e.to_string(),
                        "",
                        0,
                        0,
                    );
                    return;
                }
            };
            self.set(t, TaskState::Starting, "starting", "", &id, 0, 0);
            if let Err(e) = self.engine.start(&id) {
                tracing::warn!("agent: task {}: start: {e}", t.id);
                self.set(t, TaskState::Failed, "starting", &e.to_string(), &id, 0, 0);
            }
        } else if let Some(c) = existing {
            if c.state.running() && !t.networks.is_empty() && t.status.state == TaskState::Running {
                // Out of the mesh first; in-flight connections finish meanwhile.
                std::thread::sleep(DRAIN);
            }
            if c.state.running() {
                let grace = if t.spec.stop_grace_period > 0 {
                    t.spec.stop_grace_period / 1_000_000_000
                } else {
                    10
                };
                let sig = (!t.spec.stop_signal.is_empty()).then_some(t.spec.stop_signal.as_str());
                if let Err(e) = self.engine.stop(&c.id, Some(grace), sig) {
                    tracing::warn!("agent: stop {}: {e}", c.name);
                }
            }
            let exit = self
                .engine
                .inspect(&c.id)
                .map(|c| c.state.exit_code as i64)
                .unwrap_or(0);
            if !t.status.state.terminal() || t.status.state == TaskState::Running {
                self.set(t, TaskState::Shutdown, "shutdown", "", &c.id, 0, exit);
            }
        }
    }

    fn reported(&self, id: &str) -> Option<TaskReport> {
        lock(&self.sent).get(id).cloned()
    }

    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        t: &Task,
        state: TaskState,
        message: &str,
        err: &str,
        cid: &str,
        pid: i64,
        exit: i64,
    ) {
        let r = TaskReport {
            id: t.id.clone(),
            state,
            message: message.to_string(),
            err: err.to_string(),
            container_id: cid.to_string(),
            pid,
            exit_code: exit,
            healthy: None,
            addrs: BTreeMap::new(),
        };
        lock(&self.sent).insert(t.id.clone(), r);
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Kills an unhealthy task's container: at once if it takes no traffic, else [`DRAIN`]
    /// after its failure is reported (which takes it out of the mesh), so the connections it
    /// is serving end and no new one reaches a dead replica.
    fn kill_unhealthy(self: &Arc<Agent>, task: &str, container: &str, in_mesh: bool) {
        if !lock(&self.busy).insert(task.to_string()) {
            return;
        }
        let me = self.clone();
        let (task, container) = (task.to_string(), container.to_string());
        std::thread::spawn(move || {
            if in_mesh {
                std::thread::sleep(DRAIN);
            }
            let _ = me.engine.kill(&container, Some("KILL"));
            lock(&me.busy).remove(&task);
        });
    }

    /// Reads every task container's state; returns the reports that changed since last sent
    /// (`diff`), or updates them all. An unhealthy container is killed: its task failed.
    fn observe(self: &Arc<Agent>, diff: bool) -> Vec<TaskReport> {
        let have = self.containers();
        let assigned = lock(&self.assigned).clone();
        let mut out = Vec::new();
        let dirty = self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed);
        for (task, c) in &have {
            let Some(t) = assigned.get(task) else {
                continue;
            };
            let health = c.state.health.as_ref().map(|h| h.status);
            let has_check = t.spec.health.is_some();
            let (state, message, err) = match c.state.status {
                Status::Running | Status::Paused | Status::Restarting => {
                    if health == Some(HealthStatus::Unhealthy) {
                        self.kill_unhealthy(task, &c.id, !t.networks.is_empty());
                        (
                            TaskState::Failed,
                            "started",
                            "task: non-zero exit (137): dockerexec: unhealthy container"
                                .to_string(),
                        )
                    } else if has_check && health != Some(HealthStatus::Healthy) {
                        (TaskState::Starting, "starting", String::new())
                    } else {
                        (TaskState::Running, "started", String::new())
                    }
                }
                Status::Created => continue,
                _ => {
                    if t.desired_state > TaskState::Running {
                        (TaskState::Shutdown, "shutdown", String::new())
                    } else if c.state.exit_code == 0 {
                        (TaskState::Complete, "finished", String::new())
                    } else {
                        (
                            TaskState::Failed,
                            "started",
                            format!("task: non-zero exit ({})", c.state.exit_code),
                        )
                    }
                }
            };
            let r = TaskReport {
                id: task.clone(),
                state,
                message: message.into(),
                err,
                container_id: c.id.clone(),
                pid: c.state.pid as i64,
                exit_code: c.state.exit_code as i64,
                healthy: health.map(|h| h == HealthStatus::Healthy),
                addrs: c
                    .networks
                    .iter()
                    .filter(|(_, e)| !e.ip_address.is_empty())
                    .map(|(n, e)| (n.clone(), e.ip_address.clone()))
                    .collect(),
            };
            let mut sent = lock(&self.sent);
            let prev = sent.get(task);
            // States only move forward: a report never goes back past what was said.
            if prev.is_some_and(|p| p.state > r.state) {
                continue;
            }
            if prev != Some(&r) {
                sent.insert(task.clone(), r.clone());
                out.push(r);
            }
        }
        // A wanted task whose container is gone (removed by hand): it failed.
        let busy = lock(&self.busy).clone();
        for (id, t) in &assigned {
            if t.desired_state > TaskState::Running || have.contains_key(id) || busy.contains(id) {
                continue;
            }
            let mut sent = lock(&self.sent);
            let Some(prev) = sent.get(id).cloned() else {
                continue;
            };
            if matches!(prev.state, TaskState::Starting | TaskState::Running) {
                let r = TaskReport {
                    state: TaskState::Failed,
                    message: "started".into(),
                    err: "task: container removed".into(),
                    exit_code: 137,
                    ..prev
                };
                sent.insert(id.clone(), r.clone());
                out.push(r);
            }
        }
        if dirty || !diff {
            let sent = lock(&self.sent);
            for (id, r) in sent.iter() {
                if !out.iter().any(|o| &o.id == id) && assigned.contains_key(id) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// `docker swarm leave`: stop the loops and take down every task container.
    pub fn leave(&self) {
        self.stop();
        for (_, c) in self.containers() {
            let _ = self.engine.remove(&c.id, true, false);
        }
        if let Some(d) = &self.dataplane {
            d.clear();
        }
    }
}

/// One line of a task container's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    /// Unix nanoseconds.
    pub ts: i64,
    pub text: String,
}

/// `POST /logs` on a node's swarm port: the log of one of its task containers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogsRequest {
    pub container_id: String,
    /// Unix nanoseconds; 0: from the start.
    pub since: i64,
    pub tail: Option<usize>,
    pub stdout: bool,
    pub stderr: bool,
}

/// Reads a task container's log (only containers of tasks: others are refused).
pub fn container_logs(engine: &Engine, req: &LogsRequest) -> Result<Vec<LogLine>> {
    let c = engine.inspect(&req.container_id)?;
    if !c.spec.labels.contains_key(LABEL_TASK) {
        return Err(Error::NotFound(format!(
            "no task container {}",
            req.container_id
        )));
    }
    let s = engine.logs(
        &c.id,
        berth_engine::LogsOptions {
            follow: false,
            stdout: req.stdout,
            stderr: req.stderr,
            since: req.since,
            until: 0,
            timestamps: true,
            tail: req.tail,
        },
    )?;
    let (out, err) = if s.tty {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut &s.conn, &mut b).map_err(|e| Error::Io(e.to_string()))?;
        (b, Vec::new())
    } else {
        berth_engine::demux(&s.conn).map_err(|e| Error::Io(e.to_string()))?
    };
    let mut lines = Vec::new();
    for (stream, bytes) in [(1u8, out), (2u8, err)] {
        for l in String::from_utf8_lossy(&bytes).split_inclusive('\n') {
            let (ts, text) = l.split_once(' ').unwrap_or(("", l));
            lines.push(LogLine {
                stream,
                ts: berth_engine::parse_rfc3339(ts).unwrap_or(0),
                text: text.to_string(),
            });
        }
    }
    lines.sort_by_key(|l| l.ts);
    Ok(lines)
}

/// The engine's spec for a task's container.
pub fn container_spec(t: &Task, node_id: &str) -> ContainerSpec {
    let s = &t.spec;
    let mut labels = s.labels.clone();
    labels.insert(LABEL_SERVICE.into(), t.service_id.clone());
    labels.insert(
        "com.docker.swarm.service.name".into(),
        t.service_name.clone(),
    );
    labels.insert(LABEL_TASK.into(), t.id.clone());
    labels.insert("com.docker.swarm.task.name".into(), t.container_name());
    labels.insert("com.docker.swarm.node.id".into(), node_id.to_string());
    labels.insert("com.docker.swarm.task".into(), String::new());
    let mut spec = ContainerSpec {
        name: Some(t.container_name()),
        image: s.image.clone(),
        env: s.env.clone(),
        labels,
        tty: s.tty,
        init: s.init,
        read_only: s.read_only,
        network_mode: t
            .networks
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into()),
        endpoints: t
            .networks
            .iter()
            .map(|n| (n.clone(), berth_engine::EndpointSpec::default()))
            .collect(),
        ..Default::default()
    };
    if !s.command.is_empty() {
        spec.entrypoint = Some(s.command.clone());
    }
    if !s.args.is_empty() {
        spec.cmd = Some(s.args.clone());
    }
    if !s.dir.is_empty() {
        spec.workdir = Some(s.dir.clone());
    }
    if !s.user.is_empty() {
        spec.user = Some(s.user.clone());
    }
    if !s.hostname.is_empty() {
        spec.hostname = Some(s.hostname.clone());
    }
    if !s.stop_signal.is_empty() {
        spec.stop_signal = Some(s.stop_signal.clone());
    }
    if s.stop_grace_period > 0 {
        spec.stop_timeout = Some(s.stop_grace_period / 1_000_000_000);
    }
    // Host-mode ports are bound on the node that runs the task; ingress-mode ones answer on
    // every node through the mesh (`dataplane`).
    for p in t
        .ports
        .iter()
        .filter(|p| p.published != 0 && p.mode == "host")
    {
        let key = format!("{}/{}", p.target, p.protocol);
        spec.exposed_ports.push(key.clone());
        spec.port_bindings
            .entry(key)
            .or_default()
            .push(berth_engine::PortBinding {
                host_ip: String::new(),
                host_port: p.published.to_string(),
            });
    }
    spec.resources.nano_cpus = s.limits.nano_cpus;
    spec.resources.memory = s.limits.memory_bytes;
    spec.resources.memory_reservation = s.reservations.memory_bytes;
    for m in &s.mounts {
        spec.mounts.push(MountSpec {
            kind: match m.kind.as_str() {
                "bind" => MountKind::Bind,
                "tmpfs" => MountKind::Tmpfs,
                _ => MountKind::Volume,
            },
            source: m.source.clone(),
            target: m.target.clone(),
            read_only: m.read_only,
            ..Default::default()
        });
    }
    if let Some(h) = &s.health {
        spec.healthcheck = Some(berth_engine::Healthcheck {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            retries: h.retries,
        });
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_manager_is_replaced_by_the_leader_named_or_the_next_one() {
        let all = vec!["a:2377".to_string(), "b:2377".into(), "c:2377".into()];
        assert_eq!(
            next_manager(&all, "a:2377", "a:2377", Some("c:2377")).as_deref(),
            Some("c:2377")
        );
        // No leader named (an election is under way): round the list.
        assert_eq!(
            next_manager(&all, "a:2377", "a:2377", Some("")).as_deref(),
            Some("b:2377")
        );
        assert_eq!(
            next_manager(&all, "a:2377", "c:2377", None).as_deref(),
            Some("a:2377")
        );
        // A leader that names itself is not taken at its word.
        assert_eq!(
            next_manager(&all, "a:2377", "b:2377", Some("b:2377")).as_deref(),
            Some("c:2377")
        );
        // One manager known: nowhere else to go.
        assert_eq!(next_manager(&[], "a:2377", "a:2377", None), None);
        // The manager joined through counts even if the list does not name it.
        assert_eq!(
            next_manager(&all[1..], "a:2377", "c:2377", None).as_deref(),
            Some("a:2377")
        );
    }
}
