//! What one berthd is in the swarm: inactive, the manager (a [`Master`] and its own
//! [`Agent`]) or a worker (an agent). Kept under `<data-root>/swarm/`: `state.db` on the
//! manager, `agent.json` on every member; a restarted berthd resumes what it was.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_engine::Engine;

use crate::agent::{self, Agent, Membership};
use crate::error::{not_a_manager, not_in_swarm, Error, Result};
use crate::master::{Master, MasterConfig};
use crate::model::{Role, SwarmInfo};

pub const DEFAULT_PORT: u16 = 2377;

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `<data-root>/swarm`.
    pub dir: PathBuf,
    pub heartbeat: Duration,
    pub grace: Duration,
}

impl ClusterConfig {
    pub fn new(data_root: &std::path::Path) -> ClusterConfig {
        ClusterConfig {
            dir: data_root.join("swarm"),
            heartbeat: Duration::from_secs(1),
            grace: Duration::from_secs(3),
        }
    }
}

/// `docker swarm init`.
#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// `--listen-addr` (default `0.0.0.0:2377`).
    pub listen_addr: String,
    /// `--advertise-addr`: `IP[:PORT]`; default: the address of the default route.
    pub advertise_addr: String,
}

/// `docker swarm join`.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub remote_addrs: Vec<String>,
    pub token: String,
    pub listen_addr: String,
    pub advertise_addr: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalState {
    Inactive,
    Active,
}

/// What `GET /info` shows in its `Swarm` section.
#[derive(Debug, Clone)]
pub struct SwarmStatus {
    pub state: LocalState,
    pub node_id: String,
    pub node_addr: String,
    pub manager: bool,
    /// The manager's own view (only on the manager).
    pub swarm: Option<SwarmInfo>,
    pub nodes: usize,
    pub managers: usize,
    /// `HOST:PORT` of the manager(s).
    pub remote_managers: Vec<(String, String)>,
}

enum Mode {
    Inactive,
    Manager {
        master: Arc<Master>,
        agent: Arc<Agent>,
    },
    Worker {
        agent: Arc<Agent>,
        /// The listener that serves this node's task logs to the manager.
        logs: Option<tokio::task::JoinHandle<()>>,
    },
}

pub struct Cluster {
    engine: Arc<Engine>,
    cfg: ClusterConfig,
    mode: Mutex<Mode>,
    /// Serialises init, join and leave.
    busy: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_port(addr: &str, port: u16) -> String {
    if addr.parse::<SocketAddr>().is_ok() {
        addr.to_string()
    } else if addr.parse::<std::net::IpAddr>().is_ok() {
        format!("{addr}:{port}")
    } else if addr.contains(':') {
        addr.to_string()
    } else {
        format!("{addr}:{port}")
    }
}

/// The address the default route leaves from (no packet is sent).
fn default_addr() -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip().to_string())
}

fn resolve_addrs(listen: &str, advertise: &str) -> Result<(SocketAddr, String)> {
    let listen = if listen.is_empty() {
        format!("0.0.0.0:{DEFAULT_PORT}")
    } else {
        with_port(listen, DEFAULT_PORT)
    };
    let listen: SocketAddr = listen.parse().map_err(|_| {
        Error::InvalidArgument(format!(
            "invalid listen address {listen:?}: IP:PORT expected"
        ))
    })?;
    let advertise = if !advertise.is_empty() {
        with_port(advertise, listen.port())
    } else if !listen.ip().is_unspecified() {
        listen.to_string()
    } else {
        let ip = default_addr().ok_or_else(|| Error::InvalidArgument("could not choose an IP address to advertise since this system has no default route; specify one with --advertise-addr".into()))?;
        format!("{ip}:{}", listen.port())
    };
    if advertise.parse::<SocketAddr>().is_err() {
        return Err(Error::InvalidArgument(format!("advertise address must be a non-zero IP address or network interface (with optional port number): {advertise:?}")));
    }
    Ok((listen, advertise))
}

impl Cluster {
    /// Resumes what this node was in the swarm, if anything.
    pub async fn open(engine: Arc<Engine>, cfg: ClusterConfig) -> Result<Arc<Cluster>> {
        let c = Arc::new(Cluster {
            engine,
            cfg,
            mode: Mutex::new(Mode::Inactive),
            busy: tokio::sync::Mutex::new(()),
        });
        let Some(m) = Membership::load(&c.cfg.dir)? else {
            return Ok(c);
        };
        let mode = if m.role == Role::Manager && c.cfg.dir.join("state.db").exists() {
            let master = Master::open(c.master_config(&m.advertise_addr, None)?)?;
            master.set_event_sink(c.engine.clone());
            master.start().await?;
            let agent = Agent::new(c.engine.clone(), m)?;
            agent.start();
            Mode::Manager { master, agent }
        } else {
            let logs = c.serve_logs(&m).await;
            let agent = Agent::new(c.engine.clone(), m)?;
            agent.start();
            Mode::Worker { agent, logs }
        };
        *lock(&c.mode) = mode;
        Ok(c)
    }

    fn master_config(&self, advertise: &str, listen: Option<SocketAddr>) -> Result<MasterConfig> {
        let listen = match listen {
            Some(l) => l,
            None => {
                let saved =
                    std::fs::read_to_string(self.cfg.dir.join("listen")).unwrap_or_default();
                saved
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))
            }
        };
        Ok(MasterConfig {
            dir: self.cfg.dir.clone(),
            listen,
            advertise: advertise.to_string(),
            heartbeat: self.cfg.heartbeat,
            grace: self.cfg.grace,
        })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The master, on the manager; the Swarm API's errors elsewhere.
    pub fn master(&self) -> Result<Arc<Master>> {
        match &*lock(&self.mode) {
            Mode::Manager { master, .. } => Ok(master.clone()),
            Mode::Worker { .. } => Err(not_a_manager()),
            Mode::Inactive => Err(not_in_swarm()),
        }
    }

    pub async fn init(&self, req: InitRequest) -> Result<String> {
        let _g = self.busy.lock().await;
        if !matches!(*lock(&self.mode), Mode::Inactive) {
            return Err(Error::Unavailable("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.".into()));
        }
        let (listen, advertise) = resolve_addrs(&req.listen_addr, &req.advertise_addr)?;
        let engine = self.engine.clone();
        let me = tokio::task::spawn_blocking(move || agent::describe(&engine))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        std::fs::create_dir_all(&self.cfg.dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.cfg.dir.display())))?;
        let cfg = self.master_config(&advertise, Some(listen))?;
        let (master, issued, node_id) = Master::init(cfg, me)?;
        master.set_event_sink(self.engine.clone());
        let undo = |dir: &PathBuf| {
            let _ = std::fs::remove_dir_all(dir);
        };
        if let Err(e) = master.start().await {
            master.stop();
            undo(&self.cfg.dir);
            return Err(e);
        }
        let _ = std::fs::write(self.cfg.dir.join("listen"), listen.to_string());
        let membership = Membership {
            node_id: node_id.clone(),
            swarm_id: master.swarm().id,
            role: Role::Manager,
            master: advertise.clone(),
            ca_pem: master.swarm().ca_cert_pem,
            cert: issued,
            advertise_addr: advertise,
            listen: listen.to_string(),
        };
        let r = membership
            .save(&self.cfg.dir)
            .and_then(|_| Agent::new(self.engine.clone(), membership));
        let agent = match r {
            Ok(a) => a,
            Err(e) => {
                master.stop();
                undo(&self.cfg.dir);
                return Err(e);
            }
        };
        agent.start();
        tracing::info!("swarm initialised: this node ({node_id}) is its manager");
        *lock(&self.mode) = Mode::Manager { master, agent };
        Ok(node_id)
    }

    pub async fn join(&self, req: JoinRequest) -> Result<()> {
        let _g = self.busy.lock().await;
        if !matches!(*lock(&self.mode), Mode::Inactive) {
            return Err(Error::Unavailable("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.".into()));
        }
        let remote = req
            .remote_addrs
            .first()
            .ok_or_else(|| Error::InvalidArgument("a manager address is needed to join".into()))?;
        let remote = with_port(remote, DEFAULT_PORT);
        let advertise = if req.advertise_addr.is_empty() {
            // The address this node reaches the manager from.
            let target: SocketAddr = tokio::net::lookup_host(&remote)
                .await
                .map_err(|e| Error::InvalidArgument(format!("{remote}: {e}")))?
                .next()
                .ok_or_else(|| Error::InvalidArgument(format!("{remote}: no address")))?;
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| Error::Io(e.to_string()))?;
            s.connect(target)
                .map_err(|e| Error::Io(format!("{remote}: {e}")))?;
            s.local_addr()
                .map_err(|e| Error::Io(e.to_string()))?
                .ip()
                .to_string()
        } else {
            req.advertise_addr
                .rsplit_once(':')
                .filter(|(h, _)| h.parse::<std::net::IpAddr>().is_ok())
                .map(|(h, _)| h.to_string())
                .unwrap_or(req.advertise_addr.clone())
        };
        let engine = self.engine.clone();
        let me = tokio::task::spawn_blocking(move || agent::describe(&engine))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        let listen = if req.listen_addr.is_empty() {
            format!("0.0.0.0:{DEFAULT_PORT}")
        } else {
            with_port(&req.listen_addr, DEFAULT_PORT)
        };
        let membership = agent::join(&remote, &req.token, me, &advertise, &listen).await?;
        membership.save(&self.cfg.dir)?;
        let logs = self.serve_logs(&membership).await;
        let agent = Agent::new(self.engine.clone(), membership)?;
        agent.start();
        *lock(&self.mode) = Mode::Worker { agent, logs };
        Ok(())
    }

    /// `docker swarm leave [--force]`: a manager needs force (its swarm ends with it).
    pub async fn leave(&self, force: bool) -> Result<()> {
        let _g = self.busy.lock().await;
        let mode = std::mem::replace(&mut *lock(&self.mode), Mode::Inactive);
        let agent = match mode {
            Mode::Inactive => {
                return Err(Error::Unavailable(
                    "This node is not part of a swarm".into(),
                ))
            }
            Mode::Manager { master, agent } => {
                if !force {
                    *lock(&self.mode) = Mode::Manager { master, agent };
                    return Err(Error::Unavailable("You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".into()));
                }
                master.stop();
                agent
            }
            Mode::Worker { agent, logs } => {
                if let Some(l) = logs {
                    l.abort();
                }
                agent
            }
        };
        let a = agent.clone();
        let _ = tokio::task::spawn_blocking(move || a.leave()).await;
        std::fs::remove_dir_all(&self.cfg.dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.cfg.dir.display())))?;
        tracing::info!("left the swarm");
        Ok(())
    }

    /// Stops the loops (berthd exiting); containers keep running.
    pub fn shutdown(&self) {
        match &*lock(&self.mode) {
            Mode::Manager { master, agent } => {
                master.stop();
                agent.stop();
            }
            Mode::Worker { agent, logs } => {
                agent.stop();
                if let Some(l) = logs {
                    l.abort();
                }
            }
            Mode::Inactive => {}
        }
    }

    pub fn status(&self) -> SwarmStatus {
        match &*lock(&self.mode) {
            Mode::Inactive => SwarmStatus {
                state: LocalState::Inactive,
                node_id: String::new(),
                node_addr: String::new(),
                manager: false,
                swarm: None,
                nodes: 0,
                managers: 0,
                remote_managers: Vec::new(),
            },
            Mode::Manager { master, agent } => {
                let (nodes, managers) = master.node_counts();
                let m = &agent.membership;
                SwarmStatus {
                    state: LocalState::Active,
                    node_id: m.node_id.clone(),
                    node_addr: m
                        .advertise_addr
                        .rsplit_once(':')
                        .map(|(h, _)| h.to_string())
                        .unwrap_or_default(),
                    manager: true,
                    swarm: Some(master.swarm()),
                    managers,
                    nodes,
                    remote_managers: vec![(m.node_id.clone(), m.master.clone())],
                }
            }
            Mode::Worker { agent, .. } => {
                let m = &agent.membership;
                SwarmStatus {
                    state: LocalState::Active,
                    node_id: m.node_id.clone(),
                    node_addr: m.advertise_addr.clone(),
                    manager: false,
                    swarm: None,
                    nodes: 0,
                    managers: 0,
                    remote_managers: vec![(String::new(), m.master.clone())],
                }
            }
        }
    }
}

impl Cluster {
    /// A worker serves its task containers' logs to the swarm (any node certificate of the
    /// swarm's CA) on its listen address. A node that cannot bind keeps working; only its
    /// logs are out of reach, and it says so.
    async fn serve_logs(&self, m: &Membership) -> Option<tokio::task::JoinHandle<()>> {
        let listen: SocketAddr = m.listen.parse().ok()?;
        let tls = match crate::ca::server_config(&m.ca_pem, &m.cert) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("swarm: no log listener: {e}");
                return None;
            }
        };
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("swarm: cannot serve task logs on {listen}: {e}");
                return None;
            }
        };
        let engine = self.engine.clone();
        let handler: crate::proto::Handler = Arc::new(move |fp, path, body| {
            let engine = engine.clone();
            Box::pin(async move {
                use crate::proto::RpcError;
                if fp.is_none() {
                    return Err(RpcError(403, "a swarm certificate is required".into()));
                }
                if path != "/logs" {
                    return Err(RpcError(404, format!("no such call {path}")));
                }
                let req: agent::LogsRequest =
                    serde_json::from_slice(&body).map_err(|e| RpcError(400, e.to_string()))?;
                let lines =
                    tokio::task::spawn_blocking(move || agent::container_logs(&engine, &req))
                        .await
                        .map_err(|e| RpcError(500, e.to_string()))?
                        .map_err(|e| RpcError(404, e.to_string()))?;
                serde_json::to_vec(&lines).map_err(|e| RpcError(500, e.to_string()))
            })
        });
        Some(crate::proto::serve(listener, Arc::new(tls), handler))
    }

    /// `docker service logs`: every task of the service that has a container, from its
    /// node (the manager's own from the local engine), lines ordered by time.
    pub async fn service_logs(
        &self,
        service: &str,
        since: i64,
        tail: Option<usize>,
        stdout: bool,
        stderr: bool,
    ) -> Result<Vec<(crate::model::Task, agent::LogLine)>> {
        let (master, me) = match &*lock(&self.mode) {
            Mode::Manager { master, agent } => (master.clone(), agent.membership.clone()),
            Mode::Worker { .. } => return Err(not_a_manager()),
            Mode::Inactive => return Err(not_in_swarm()),
        };
        let svc = master.service(service)?;
        let tasks: Vec<crate::model::Task> = master
            .tasks()
            .into_iter()
            .filter(|t| t.service_id == svc.id && !t.status.container_id.is_empty())
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let req = agent::LogsRequest {
                container_id: t.status.container_id.clone(),
                since,
                tail,
                stdout,
                stderr,
            };
            let lines = if t.node_id == me.node_id {
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || agent::container_logs(&engine, &req))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
            } else {
                let node = master.node(&t.node_id)?;
                let addr = format!(
                    "{}:{}",
                    node.addr,
                    if node.port == 0 {
                        DEFAULT_PORT
                    } else {
                        node.port
                    }
                );
                let client = crate::proto::Client::with_name(
                    &addr,
                    crate::ca::client_config(&me.ca_pem, &me.cert)?,
                    &node.id,
                );
                client
                    .call::<_, Vec<agent::LogLine>>("/logs", &req, Duration::from_secs(10))
                    .await
            };
            match lines {
                Ok(lines) => out.extend(lines.into_iter().map(|l| (t.clone(), l))),
                // A gone container or an unreachable node: the other tasks' logs still come.
                Err(e) => tracing::debug!("service logs: task {}: {e}", t.id),
            }
        }
        out.sort_by_key(|(_, l)| l.ts);
        Ok(out)
    }
}
