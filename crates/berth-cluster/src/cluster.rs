//! What one berthd is in the swarm: inactive, or a member: an [`Agent`] (every node), a
//! listener on the node's listen address (task logs for every node; the master protocol on
//! managers) and, on a manager, a [`Seat`] among the masters. Kept under
//! `<data-root>/swarm/`: `agent.json` on every member, `state.db` on a manager over SQLite;
//! a restarted berthd resumes what it was.
//!
//! With the state in SQLite there is one manager and its master always leads. With the state
//! in etcd (`berthd --store etcd://...`) every manager campaigns in the masters' election
//! ([`ELECTION`], leases of [`LEASE_TTL`] seconds); the one elected loads the state and runs
//! the controllers, with every write fenced by its term. The others answer agents with the
//! leader's address (421), and hand Swarm API calls they are given to the leader
//! ([`Cluster::forward`]). A leader that dies is replaced once its lease runs out; one that
//! loses its lease or finds its fence gone stops at once.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use berth_engine::Engine;
use bytes::Bytes;

use crate::agent::{self, Agent, Membership};
use crate::error::{not_a_manager, not_in_swarm, Error, Result};
use crate::master::{Master, MasterConfig};
use crate::model::{Role, SwarmInfo};
use crate::proto::{ForwardRequest, ForwardResponse, RpcError, TlsSource};
use crate::store::{Store, StoreConfig};

pub const DEFAULT_PORT: u16 = 2377;
/// The masters' election in etcd; its value is the leader's `HOST:PORT`.
pub const ELECTION: &str = "masters";
/// The leader's lease, seconds: a leader that dies is replaced about this long after.
pub const LEASE_TTL: i64 = 3;

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `<data-root>/swarm`.
    pub dir: PathBuf,
    pub heartbeat: Duration,
    pub grace: Duration,
    /// Where a swarm made here (`swarm init`) keeps its state.
    pub store: StoreConfig,
}

impl ClusterConfig {
    pub fn new(data_root: &std::path::Path) -> ClusterConfig {
        ClusterConfig {
            dir: data_root.join("swarm"),
            heartbeat: Duration::from_secs(1),
            grace: Duration::from_secs(3),
            store: StoreConfig::Sqlite,
        }
    }
}

/// What runs a Swarm API request another manager forwarded (berth-server registers it),
/// with the id of the manager's node that forwarded it (what `self` names there).
pub type ForwardHandler = Arc<
    dyn Fn(ForwardRequest, String) -> Pin<Box<dyn Future<Output = ForwardResponse> + Send>>
        + Send
        + Sync,
>;

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
    /// The swarm as managers see it (on managers).
    pub swarm: Option<SwarmInfo>,
    pub nodes: usize,
    pub managers: usize,
    /// `(node id, HOST:PORT)` of the managers known.
    pub remote_managers: Vec<(String, String)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a manager that does not lead knows of the swarm, read from the store.
#[derive(Debug, Clone, Default)]
struct View {
    swarm: Option<SwarmInfo>,
    nodes: usize,
    managers: usize,
}

/// A manager's seat among the masters: its master while it leads.
struct Seat {
    cfg: MasterConfig,
    /// Where a leading master publishes its events (autoscaling decisions).
    engine: Arc<Engine>,
    active: Mutex<Option<Arc<Master>>>,
    view: Mutex<View>,
    /// The store for looking up the leader (etcd; `None` until opened).
    lookup: Mutex<Option<Store>>,
    stop: AtomicBool,
    /// The campaign thread (etcd), and a channel that closes when it ends.
    thread: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Seat {
    /// A master on SQLite: it leads from the start.
    fn sqlite(master: Arc<Master>, engine: Arc<Engine>) -> Arc<Seat> {
        master.set_event_sink(engine.clone());
        Arc::new(Seat {
            cfg: master.config().clone(),
            engine,
            active: Mutex::new(Some(master)),
            view: Mutex::new(View::default()),
            lookup: Mutex::new(None),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// A master on etcd: campaigns on a thread of its own, leads when elected, steps down when
    /// its leadership is lost, and campaigns again.
    fn etcd(
        cfg: MasterConfig,
        engine: Arc<Engine>,
        rt: tokio::runtime::Handle,
    ) -> Result<Arc<Seat>> {
        let seat = Arc::new(Seat {
            cfg,
            engine,
            active: Mutex::new(None),
            view: Mutex::new(View::default()),
            lookup: Mutex::new(None),
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let s = seat.clone();
        std::thread::Builder::new()
            .name("berth-masters".into())
            .spawn(move || {
                s.campaign_loop(&rt);
                drop(done_tx);
            })
            .map_err(|e| Error::Internal(format!("starting the election thread: {e}")))?;
        *lock(&seat.thread) = Some(done_rx);
        Ok(seat)
    }

    /// The master, while it leads.
    fn leading(&self) -> Option<Arc<Master>> {
        lock(&self.active).clone().filter(|m| !m.is_deposed())
    }

    /// Who leads now (`HOST:PORT`), as the store says; blocking.
    fn leader_addr(&self) -> Option<String> {
        if self.leading().is_some() {
            return Some(self.cfg.advertise.clone());
        }
        if !self.cfg.store.is_etcd() {
            return None;
        }
        let mut l = lock(&self.lookup);
        if l.is_none() {
            *l = self.cfg.store.open(&self.cfg.dir).ok();
        }
        l.as_ref()?.leader(ELECTION).ok().flatten()
    }

    fn campaign_loop(self: &Arc<Seat>, rt: &tokio::runtime::Handle) {
        let mut store: Option<Store> = None;
        let mut warned = false;
        let mut viewed: Option<Instant> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let Some(st) = store.as_ref() else {
                match self.cfg.store.open(&self.cfg.dir) {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        if !warned {
                            tracing::warn!("masters: {e}; trying again");
                            warned = true;
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                continue;
            };
            if viewed.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                self.refresh_view(st);
                viewed = Some(Instant::now());
            }
            let lead = match st.campaign_timeout(
                ELECTION,
                &self.cfg.advertise,
                LEASE_TTL,
                Duration::from_secs(2),
            ) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    if !warned {
                        tracing::warn!("masters: campaign: {e}; trying again");
                        warned = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            warned = false;
            // A store of this term alone: a master of an earlier term, still finishing a
            // write, stays fenced by that term's key whatever happens next.
            let opened = self.cfg.store.open(&self.cfg.dir).and_then(|s| {
                s.set_fence(Some(lead.fence()))?;
                Master::open_with(self.cfg.clone(), s)
            });
            let master = match opened {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("masters: elected, but the state does not load: {e}");
                    let _ = lead.resign();
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            master.set_event_sink(self.engine.clone());
            {
                let _g = rt.enter();
                master.start();
            }
            *lock(&self.active) = Some(master.clone());
            tracing::info!("masters: this node leads the swarm");
            loop {
                if lead.wait_lost(Duration::from_millis(200)) {
                    tracing::warn!("masters: the leadership is lost: {}", lead.lost());
                    break;
                }
                if self.stop.load(Ordering::SeqCst) || master.is_deposed() {
                    break;
                }
            }
            *lock(&self.active) = None;
            master.stop();
            if let Err(e) = lead.resign() {
                tracing::debug!("masters: resigning: {e}");
            }
            if !self.stop.load(Ordering::SeqCst) {
                tracing::info!("masters: this node follows again");
            }
        }
    }

    fn refresh_view(&self, st: &Store) {
        let swarm = st
            .get("swarm")
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str::<SwarmInfo>(&j).ok());
        let nodes = st.load_nodes().unwrap_or_default();
        let managers = nodes
            .iter()
            .filter(|n| n.spec.role == Role::Manager)
            .count();
        *lock(&self.view) = View {
            swarm,
            nodes: nodes.len(),
            managers,
        };
    }

    /// Stops campaigning (resigning a leadership held) and the master; waits up to
    /// `wait` for the campaign thread to end.
    fn stop(&self, wait: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        let active = lock(&self.active).take();
        if let Some(m) = active {
            m.stop();
        }
        let done = lock(&self.thread).take();
        if let Some(done) = done {
            let _ = done.recv_timeout(wait);
        }
    }
}

/// This berthd as a member of a swarm.
struct Member {
    agent: Arc<Agent>,
    /// The listener's certificate (replaced when the node is promoted).
    tls: TlsSource,
    listener: Option<tokio::task::JoinHandle<()>>,
    seat: Mutex<Option<Arc<Seat>>>,
    role_task: Option<tokio::task::JoinHandle<()>>,
}

impl Member {
    fn seat(&self) -> Option<Arc<Seat>> {
        lock(&self.seat).clone()
    }
}

enum Mode {
    Inactive,
    Member(Arc<Member>),
}

pub struct Cluster {
    engine: Arc<Engine>,
    cfg: ClusterConfig,
    mode: Mutex<Mode>,
    /// Serialises init, join, leave and role changes.
    busy: tokio::sync::Mutex<()>,
    me: Weak<Cluster>,
    forward: Mutex<Option<ForwardHandler>>,
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

/// Where a member listens: its membership's address, else the file an older berthd kept,
/// else the default.
fn listen_of(dir: &std::path::Path, m: &Membership) -> SocketAddr {
    let saved = if m.listen.is_empty() {
        std::fs::read_to_string(dir.join("listen")).unwrap_or_default()
    } else {
        m.listen.clone()
    };
    saved
        .trim()
        .parse()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))
}

impl Cluster {
    /// Resumes what this node was in the swarm, if anything.
    pub async fn open(engine: Arc<Engine>, cfg: ClusterConfig) -> Result<Arc<Cluster>> {
        let c = Arc::new_cyclic(|me| Cluster {
            engine,
            cfg,
            mode: Mutex::new(Mode::Inactive),
            busy: tokio::sync::Mutex::new(()),
            me: me.clone(),
            forward: Mutex::new(None),
        });
        let Some(m) = Membership::load(&c.cfg.dir)? else {
            return Ok(c);
        };
        let member = c.activate(m, None).await?;
        *lock(&c.mode) = Mode::Member(member);
        Ok(c)
    }

    /// Where this node's masters find the state: the membership's store, or this berthd's
    /// own `--store` when both are etcd (the leader's endpoints may not be reachable from
    /// here as it names them, 127.0.0.1 say).
    fn store_of(&self, m: &Membership) -> StoreConfig {
        if self.cfg.store.is_etcd() && m.store.is_etcd() {
            self.cfg.store.clone()
        } else {
            m.store.clone()
        }
    }

    fn master_config(&self, m: &Membership) -> MasterConfig {
        let listen = listen_of(&self.cfg.dir, m);
        let advertise = if m.advertise_addr.parse::<SocketAddr>().is_ok() {
            m.advertise_addr.clone()
        } else {
            format!("{}:{}", m.advertise_addr, listen.port())
        };
        MasterConfig {
            dir: self.cfg.dir.clone(),
            listen,
            advertise,
            heartbeat: self.cfg.heartbeat,
            grace: self.cfg.grace,
            node_id: m.node_id.clone(),
            store: self.store_of(m),
        }
    }

    /// A manager's seat: its master at once on SQLite, a campaign on etcd.
    fn make_seat(&self, m: &Membership) -> Result<Arc<Seat>> {
        let cfg = self.master_config(m);
        match &cfg.store {
            StoreConfig::Sqlite => {
                let master = Master::open(cfg)?;
                let seat = Seat::sqlite(master.clone(), self.engine.clone());
                master.start();
                Ok(seat)
            }
            StoreConfig::Etcd { .. } => {
                Seat::etcd(cfg, self.engine.clone(), tokio::runtime::Handle::current())
            }
        }
    }

    /// Starts what a member runs: its listener, its seat if it is a manager (`seat`, or a new
    /// one), its agent, and the task that follows its role.
    async fn activate(&self, m: Membership, seat: Option<Arc<Seat>>) -> Result<Arc<Member>> {
        let manager = m.role == Role::Manager;
        let tls: TlsSource = Arc::new(std::sync::RwLock::new(Arc::new(crate::ca::server_config(
            &m.ca_pem, &m.cert,
        )?)));
        let listen = listen_of(&self.cfg.dir, &m);
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => Some(self.serve(l, tls.clone())),
            Err(e) if manager => {
                if let Some(s) = seat {
                    s.stop(Duration::from_secs(3));
                }
                return Err(Error::Io(format!("listen on {listen}: {e}")));
            }
            Err(e) => {
                // A worker that cannot bind keeps working; only its logs are out of reach.
                tracing::warn!("swarm: cannot serve task logs on {listen}: {e}");
                None
            }
        };
        let seat = match (seat, manager) {
            (Some(s), _) => Some(s),
            (None, true)
                if m.store == StoreConfig::Sqlite && !self.cfg.dir.join("state.db").exists() =>
            {
                tracing::warn!("swarm: this manager has no state.db; it runs as a worker");
                None
            }
            (None, true) => match self.make_seat(&m) {
                Ok(s) => Some(s),
                Err(e) => {
                    if let Some(l) = listener {
                        l.abort();
                    }
                    return Err(e);
                }
            },
            (None, false) => None,
        };
        let agent = match Agent::new(self.engine.clone(), m, &self.cfg.dir) {
            Ok(a) => a,
            Err(e) => {
                if let Some(l) = listener {
                    l.abort();
                }
                if let Some(s) = seat {
                    s.stop(Duration::from_secs(3));
                }
                return Err(e);
            }
        };
        agent.start();
        let mut roles = agent.role_watch();
        let me = self.me.clone();
        let role_task = tokio::spawn(async move {
            while roles.changed().await.is_ok() {
                let role = *roles.borrow_and_update();
                let Some(c) = me.upgrade() else { return };
                if let Err(e) = c.follow_role(role).await {
                    tracing::warn!("swarm: becoming a {}: {e}", role.as_str());
                }
            }
        });
        Ok(Arc::new(Member {
            agent,
            tls,
            listener,
            seat: Mutex::new(seat),
            role_task: Some(role_task),
        }))
    }

    /// The master promoted or demoted this node: it takes or leaves its seat.
    async fn follow_role(&self, role: Role) -> Result<()> {
        let _g = self.busy.lock().await;
        let Some(member) = self.member() else {
            return Ok(());
        };
        match (role, member.seat()) {
            (Role::Manager, None) => {
                let m = member.agent.membership();
                let cfg = crate::ca::server_config(&m.ca_pem, &m.cert)?;
                *member.tls.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
                let seat = self.make_seat(&m)?;
                *lock(&member.seat) = Some(seat);
                tracing::info!("swarm: this node is a manager now");
            }
            (Role::Worker, Some(seat)) => {
                *lock(&member.seat) = None;
                tokio::task::spawn_blocking(move || seat.stop(Duration::from_secs(5)))
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?;
                tracing::info!("swarm: this node is a worker now");
            }
            _ => {}
        }
        Ok(())
    }

    fn member(&self) -> Option<Arc<Member>> {
        match &*lock(&self.mode) {
            Mode::Member(m) => Some(m.clone()),
            Mode::Inactive => None,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The master, on the manager that leads; the Swarm API's errors elsewhere
    /// ([`Error::NotLeader`] with the leader's address on a manager that does not lead).
    pub fn master(&self) -> Result<Arc<Master>> {
        let Some(member) = self.member() else {
            return Err(not_in_swarm());
        };
        let Some(seat) = member.seat() else {
            return Err(not_a_manager());
        };
        seat.leading().ok_or_else(|| {
            Error::NotLeader("this manager does not lead the swarm right now".into())
        })
    }

    /// Whether this node is a manager that does not lead (its Swarm API calls go to the
    /// leader).
    pub fn is_follower(&self) -> bool {
        self.member()
            .and_then(|m| m.seat())
            .is_some_and(|s| s.leading().is_none())
    }

    /// Registers what runs Swarm API requests forwarded by other managers.
    pub fn set_forward_handler(&self, h: ForwardHandler) {
        *lock(&self.forward) = Some(h);
    }

    /// Hands a Swarm API request to the leader and returns its answer (a manager that does
    /// not lead). Fails with 503 when nobody leads (an election is under way).
    pub async fn forward(&self, req: ForwardRequest) -> Result<ForwardResponse> {
        let member = self.member().ok_or_else(not_in_swarm)?;
        let seat = member.seat().ok_or_else(not_a_manager)?;
        let m = member.agent.membership();
        let mut last = None;
        for _ in 0..3 {
            let s = seat.clone();
            let leader = tokio::task::spawn_blocking(move || s.leader_addr())
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            let Some(leader) = leader.filter(|l| *l != seat.cfg.advertise) else {
                last = Some(Error::Unavailable(
                    "the swarm has no leader right now (an election is under way); try again in a few seconds".into(),
                ));
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let client =
                crate::proto::Client::new(&leader, crate::ca::client_config(&m.ca_pem, &m.cert)?);
            // Longer than the leader gives a forwarded answer (60 s), so its own error comes
            // back rather than a timeout here. Only a call that never reached a leader is sent
            // again: one that did may have been carried out (a service created).
            match client
                .call::<_, ForwardResponse>("/forward", &req, Duration::from_secs(90))
                .await
            {
                Ok(r) => return Ok(r),
                Err(Error::NotLeader(_)) | Err(Error::Unreachable(_)) => {
                    last = Some(Error::Unavailable(format!(
                        "the swarm's leader at {leader} does not answer; try again in a few seconds"
                    )));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // The leader does not count this node a manager (demoted meanwhile).
                Err(Error::Refused(m)) => return Err(Error::Unavailable(m)),
                Err(Error::Io(m)) => {
                    return Err(Error::Unavailable(format!(
                        "the swarm's leader at {leader} gave no answer ({m}); the call may or may not have been carried out"
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unavailable("no leader".into())))
    }

    /// Serves the node's calls on `listener` until the member stops.
    fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: TlsSource,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.me.clone();
        let handler: crate::proto::Handler = Arc::new(move |fp, path, body| {
            let me = me.clone();
            Box::pin(async move {
                let Some(c) = me.upgrade() else {
                    return Err(RpcError(503, "shutting down".into()));
                };
                c.call(fp, path, body).await
            })
        });
        crate::proto::serve(listener, tls, handler)
    }

    async fn call(
        &self,
        fp: Option<String>,
        path: String,
        body: Bytes,
    ) -> std::result::Result<Vec<u8>, RpcError> {
        let seat = self.member().and_then(|m| m.seat());
        let leading = seat.as_ref().and_then(|s| s.leading());
        match path.as_str() {
            "/logs" => {
                if fp.is_none() {
                    return Err(RpcError(403, "a swarm certificate is required".into()));
                }
                let req: agent::LogsRequest =
                    serde_json::from_slice(&body).map_err(|e| RpcError(400, e.to_string()))?;
                let engine = self.engine.clone();
                let lines =
                    tokio::task::spawn_blocking(move || agent::container_logs(&engine, &req))
                        .await
                        .map_err(|e| RpcError(500, e.to_string()))?
                        .map_err(|e| RpcError(404, e.to_string()))?;
                serde_json::to_vec(&lines).map_err(|e| RpcError(500, e.to_string()))
            }
            "/join" | "/session" | "/report" | "/forward" => {
                let Some(master) = leading else {
                    // Not the leader: say who is, if anyone knows.
                    let hint = match seat {
                        Some(s) => tokio::task::spawn_blocking(move || s.leader_addr())
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or_default(),
                        None => String::new(),
                    };
                    return Err(RpcError(421, hint));
                };
                if path != "/forward" {
                    return master.rpc(fp, &path, body).await;
                }
                let m = master.clone();
                let caller =
                    tokio::task::spawn_blocking(move || fp.as_deref().and_then(|f| m.caller(f)))
                        .await
                        .map_err(|e| RpcError(500, e.to_string()))?;
                let Some((caller, Role::Manager)) = caller else {
                    return Err(RpcError(403, "only a manager forwards API calls".into()));
                };
                let req: ForwardRequest =
                    serde_json::from_slice(&body).map_err(|e| RpcError(400, e.to_string()))?;
                let h = lock(&self.forward)
                    .clone()
                    .ok_or_else(|| RpcError(503, "this node serves no API".into()))?;
                let resp = h(req, caller).await;
                serde_json::to_vec(&resp).map_err(|e| RpcError(500, e.to_string()))
            }
            _ => Err(RpcError(404, format!("no such call {path}"))),
        }
    }

    pub async fn init(&self, req: InitRequest) -> Result<String> {
        let _g = self.busy.lock().await;
        if self.member().is_some() {
            return Err(Error::Unavailable("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.".into()));
        }
        let (listen, advertise) = resolve_addrs(&req.listen_addr, &req.advertise_addr)?;
        // A listen address in use fails here, before anything is written anywhere.
        std::net::TcpListener::bind(listen)
            .map_err(|e| Error::InvalidArgument(format!("listen on {listen}: {e}")))?;
        let engine = self.engine.clone();
        let me = tokio::task::spawn_blocking(move || agent::describe(&engine))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        std::fs::create_dir_all(&self.cfg.dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.cfg.dir.display())))?;
        let undo = |dir: &PathBuf| {
            let _ = std::fs::remove_dir_all(dir);
        };
        let cfg = MasterConfig {
            dir: self.cfg.dir.clone(),
            listen,
            advertise: advertise.clone(),
            heartbeat: self.cfg.heartbeat,
            grace: self.cfg.grace,
            node_id: String::new(),
            store: self.cfg.store.clone(),
        };
        let made = match &self.cfg.store {
            StoreConfig::Sqlite => Master::init(cfg, me).map(|(master, issued, id)| {
                let seat = Seat::sqlite(master.clone(), self.engine.clone());
                master.start();
                (seat, issued, id, master_swarm_id_ca(&self.cfg.dir))
            }),
            StoreConfig::Etcd { .. } => self.init_etcd(cfg, me).await,
        };
        let (seat, issued, node_id, (swarm_id, ca_pem)) = match made {
            Ok(x) => x,
            Err(e) => {
                undo(&self.cfg.dir);
                return Err(e);
            }
        };
        let membership = Membership {
            node_id: node_id.clone(),
            swarm_id,
            role: Role::Manager,
            master: advertise.clone(),
            ca_pem,
            cert: issued,
            advertise_addr: advertise.clone(),
            listen: listen.to_string(),
            managers: vec![advertise],
            store: self.cfg.store.clone(),
        };
        let activated = match membership.save(&self.cfg.dir) {
            Ok(()) => self.activate(membership, Some(seat.clone())).await,
            Err(e) => Err(e),
        };
        let member = match activated {
            Ok(m) => m,
            Err(e) => {
                let s = seat.clone();
                let _ = tokio::task::spawn_blocking(move || s.stop(Duration::from_secs(3))).await;
                self.undo_etcd_init().await;
                undo(&self.cfg.dir);
                return Err(e);
            }
        };
        tracing::info!(
            "swarm initialised: this node ({node_id}) is its manager (state in {})",
            self.cfg.store
        );
        *lock(&self.mode) = Mode::Member(member);
        Ok(node_id)
    }

    /// `swarm init` with the state in etcd: the swarm written there, then this node's
    /// campaign, which it wins unless another swarm's masters use the same prefix.
    async fn init_etcd(
        &self,
        cfg: MasterConfig,
        me: crate::model::NodeDescription,
    ) -> Result<(Arc<Seat>, crate::ca::Issued, String, (String, String))> {
        let c = cfg.clone();
        let (issued, node_id, swarm) = tokio::task::spawn_blocking(move || {
            let mut store = c.store.open(&c.dir)?;
            let (issued, id) = Master::bootstrap(&c, &mut store, me)?;
            let swarm: SwarmInfo = serde_json::from_str(
                &store
                    .get("swarm")?
                    .ok_or_else(|| Error::Store("no swarm in the store".into()))?,
            )?;
            Ok::<_, Error>((issued, id, swarm))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        let cfg = MasterConfig {
            node_id: node_id.clone(),
            ..cfg
        };
        let seat = Seat::etcd(cfg, self.engine.clone(), tokio::runtime::Handle::current())?;
        let t = Instant::now();
        while seat.leading().is_none() {
            if t.elapsed() > Duration::from_secs(15) {
                let s = seat.clone();
                let _ = tokio::task::spawn_blocking(move || s.stop(Duration::from_secs(3))).await;
                self.undo_etcd_init().await;
                return Err(Error::Unavailable(format!(
                    "the swarm was written to {} but this node was not elected its leader within 15 s",
                    self.cfg.store
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok((seat, issued, node_id, (swarm.id, swarm.ca_cert_pem)))
    }

    /// A `swarm init` on etcd that failed after writing the swarm takes it back, so that
    /// init can be tried again.
    async fn undo_etcd_init(&self) {
        if !self.cfg.store.is_etcd() {
            return;
        }
        let (store, dir) = (self.cfg.store.clone(), self.cfg.dir.clone());
        let r = tokio::task::spawn_blocking(move || store.open(&dir)?.delete_all()).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(
                "swarm init: taking back what was written to {}: {e}",
                self.cfg.store
            );
        }
    }

    pub async fn join(&self, req: JoinRequest) -> Result<()> {
        let _g = self.busy.lock().await;
        if self.member().is_some() {
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
        let role = membership.role;
        let member = match self.activate(membership, None).await {
            Ok(m) => m,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&self.cfg.dir);
                return Err(e);
            }
        };
        tracing::info!("joined the swarm at {remote} as a {}", role.as_str());
        *lock(&self.mode) = Mode::Member(member);
        Ok(())
    }

    /// `docker swarm leave [--force]`: a manager needs force.
    pub async fn leave(&self, force: bool) -> Result<()> {
        let _g = self.busy.lock().await;
        let Some(member) = self.member() else {
            return Err(Error::Unavailable(
                "This node is not part of a swarm".into(),
            ));
        };
        if member.seat().is_some() && !force {
            return Err(Error::Unavailable("You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.".into()));
        }
        *lock(&self.mode) = Mode::Inactive;
        let m = member.clone();
        let _ = tokio::task::spawn_blocking(move || {
            m.stop();
            m.agent.leave();
        })
        .await;
        std::fs::remove_dir_all(&self.cfg.dir)
            .map_err(|e| Error::Io(format!("{}: {e}", self.cfg.dir.display())))?;
        tracing::info!("left the swarm");
        Ok(())
    }

    /// Stops the loops (berthd exiting); containers keep running. A leader resigns, so
    /// another manager takes over at once.
    pub fn shutdown(&self) {
        if let Some(m) = self.member() {
            m.stop();
        }
    }

    pub fn status(&self) -> SwarmStatus {
        let Some(member) = self.member() else {
            return SwarmStatus {
                state: LocalState::Inactive,
                node_id: String::new(),
                node_addr: String::new(),
                manager: false,
                swarm: None,
                nodes: 0,
                managers: 0,
                remote_managers: Vec::new(),
            };
        };
        let m = member.agent.membership();
        let node_addr = m
            .advertise_addr
            .parse::<SocketAddr>()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| m.advertise_addr.clone());
        let remote_managers = if m.managers.is_empty() {
            vec![(String::new(), m.master.clone())]
        } else {
            m.managers
                .iter()
                .map(|a| (String::new(), a.clone()))
                .collect()
        };
        let mut st = SwarmStatus {
            state: LocalState::Active,
            node_id: m.node_id.clone(),
            node_addr,
            manager: false,
            swarm: None,
            nodes: 0,
            managers: 0,
            remote_managers,
        };
        if let Some(seat) = member.seat() {
            st.manager = true;
            match seat.leading() {
                Some(master) => {
                    let (nodes, managers) = master.node_counts();
                    st.swarm = Some(master.swarm());
                    st.nodes = nodes;
                    st.managers = managers;
                }
                None => {
                    let v = lock(&seat.view).clone();
                    st.swarm = v.swarm;
                    st.nodes = v.nodes;
                    st.managers = v.managers;
                }
            }
        }
        st
    }
}

impl Member {
    /// Stops the seat (resigning), the agent's loops, the listener and the role task.
    fn stop(&self) {
        // Taken out first: the lock is not held while the campaign thread winds down.
        let seat = lock(&self.seat).take();
        if let Some(seat) = seat {
            seat.stop(Duration::from_secs(3));
        }
        self.agent.stop();
        if let Some(l) = &self.listener {
            l.abort();
        }
        if let Some(t) = &self.role_task {
            t.abort();
        }
    }
}

/// The swarm id and CA of the SQLite swarm just made under `dir`.
fn master_swarm_id_ca(dir: &std::path::Path) -> (String, String) {
    Store::open(&dir.join("state.db"))
        .ok()
        .and_then(|s| s.get("swarm").ok().flatten())
        .and_then(|j| serde_json::from_str::<SwarmInfo>(&j).ok())
        .map(|s| (s.id, s.ca_cert_pem))
        .unwrap_or_default()
}

impl Cluster {
    /// `docker service logs`: every task of the service that has a container, from its
    /// node (this node's own from the local engine), lines ordered by time. On the leader.
    pub async fn service_logs(
        &self,
        service: &str,
        since: i64,
        tail: Option<usize>,
        stdout: bool,
        stderr: bool,
    ) -> Result<Vec<(crate::model::Task, agent::LogLine)>> {
        let master = self.master()?;
        let me = self.member().ok_or_else(not_in_swarm)?.agent.membership();
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
