//! The master: the state (in memory, written through to [`Store`] one transaction per
//! change), the protocol server agents talk to, and the controllers, which run as one
//! reconcile pass whenever something changed and at least every 100 ms:
//! - liveness: a node silent for longer than the grace (3 s by default) is down, and its
//!   tasks are shut down and replaced elsewhere;
//! - orchestration: each replicated service has one live task per slot `1..=replicas`, each
//!   global service one per eligible node; a task that ended is replaced under its restart
//!   policy (condition, delay, max attempts), one on a drained or lost node at once;
//! - scheduling ([`crate::scheduler`]) of new tasks, with `no suitable node (...)` kept in the
//!   task's error until a node fits;
//! - rolling updates: batches of `parallelism`, `delay` between them, stop-first or
//!   start-first, a batch done when its tasks run (healthy, when they have a check), and
//!   pause, continue or rollback when an updated task fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use crate::ca::{self, Ca, Issued};
use crate::error::{Error, Result};
use crate::model::*;
use crate::netstate::{self, NetState};
use crate::proto::{
    self, JoinRequest, JoinResponse, ReportRequest, RpcError, SessionRequest, SessionResponse,
    TaskReport,
};
use crate::scheduler::{self, Scheduler};
use crate::store::{Batch, Store, StoreConfig};
use crate::{now_nanos, random_id};

/// Tasks kept per slot once they ended (Swarm's `TaskHistoryRetentionLimit`).
const HISTORY: usize = 5;

#[derive(Debug, Clone)]
pub struct MasterConfig {
    /// `<data-root>/swarm`.
    pub dir: PathBuf,
    /// Where agents connect: `ADDR:PORT`.
    pub listen: std::net::SocketAddr,
    /// The address shown as the manager's and used in join commands.
    pub advertise: String,
    pub heartbeat: Duration,
    /// A node is down after this long without a heartbeat.
    pub grace: Duration,
    /// This manager's node id (the leader flag goes to it when this master leads).
    pub node_id: String,
    /// Where the state is kept; on etcd, managers can join and nodes be promoted.
    pub store: StoreConfig,
}

struct State {
    swarm: SwarmInfo,
    nodes: BTreeMap<String, Node>,
    services: BTreeMap<String, Service>,
    tasks: HashMap<String, Task>,
    by_node: HashMap<String, BTreeSet<String>>,
    by_service: HashMap<String, BTreeSet<String>>,
    /// Assignment version per node (bumped when its task list changes).
    node_version: HashMap<String, u64>,
    counter: u64,
    /// The version of a node whose assignments have not changed since this master opened.
    base: u64,
    /// Tokens' secrets.
    worker_secret: String,
    manager_secret: String,
    /// Overlay networks by id (kept in the store as one `networks` row).
    networks: BTreeMap<String, Network>,
    /// The networking every agent gets, and its version (bumped when it changes).
    net: Arc<NetState>,
    net_version: u64,
    /// Manager certificates issued at `node promote`, until the node takes them (kv rows
    /// `promote:<node id>`).
    promotions: HashMap<String, Issued>,
}

pub struct Master {
    cfg: MasterConfig,
    ca: Ca,
    state: Mutex<State>,
    /// Heartbeats, kept apart from the state so that a long change never delays them.
    last_seen: Mutex<HashMap<String, Instant>>,
    /// When the last reconcile pass ended: a master that stalled longer than the grace
    /// gives its nodes a fresh one instead of calling them down.
    last_pass: Mutex<Instant>,
    store: Mutex<Store>,
    wake: Notify,
    versions: watch::Sender<u64>,
    /// Scheduler figures: tasks placed and time spent placing.
    pub placed: std::sync::atomic::AtomicU64,
    pub place_nanos: std::sync::atomic::AtomicU64,
    /// Reconcile figures: passes made and time spent in them.
    pub reconciles: std::sync::atomic::AtomicU64,
    pub reconcile_nanos: std::sync::atomic::AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Set when a commit found the leadership gone: this master answers nothing more and its
    /// owner steps it down.
    deposed: std::sync::atomic::AtomicBool,
    /// What `/_ping` and `/info` show, kept apart from the state (whose lock a commit to etcd
    /// may hold for a while): the swarm, and the counts of nodes and managers.
    summary: Mutex<(SwarmInfo, usize, usize)>,
    /// Certificate fingerprint → node id: who a caller is, looked up on every heartbeat, so
    /// apart from the state's lock too.
    peers: Mutex<HashMap<String, String>>,
    /// CPU autoscaling: samples, policies' histories, the event sink.
    autoscale: crate::autoscale::Autoscaler,
}

/// A change made under the lock: rows to write, nodes whose assignments changed.
#[derive(Default)]
struct Change {
    batch: Batch,
    touched_nodes: BTreeSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn put_task(&mut self, ch: &mut Change, mut t: Task, now: i64) {
        t.version += 1;
        t.updated_at = now;
        if let Some(old) = self.tasks.get(&t.id) {
            if old.node_id != t.node_id {
                if let Some(s) = self.by_node.get_mut(&old.node_id) {
                    s.remove(&t.id);
                }
                ch.touched_nodes.insert(old.node_id.clone());
            }
            if old.node_id != t.node_id
                || old.desired_state != t.desired_state
                || old.spec != t.spec
            {
                ch.touched_nodes.insert(t.node_id.clone());
            }
        } else {
            ch.touched_nodes.insert(t.node_id.clone());
        }
        if !t.node_id.is_empty() {
            self.by_node
                .entry(t.node_id.clone())
                .or_default()
                .insert(t.id.clone());
        }
        self.by_service
            .entry(t.service_id.clone())
            .or_default()
            .insert(t.id.clone());
        ch.batch.tasks.push(t.clone());
        self.tasks.insert(t.id.clone(), t);
    }

    fn delete_task(&mut self, ch: &mut Change, id: &str) {
        if let Some(t) = self.tasks.remove(id) {
            if let Some(s) = self.by_node.get_mut(&t.node_id) {
                s.remove(id);
            }
            if let Some(s) = self.by_service.get_mut(&t.service_id) {
                s.remove(id);
            }
            ch.touched_nodes.insert(t.node_id);
            ch.batch.tasks_deleted.push(id.to_string());
        }
    }

    fn put_node(&mut self, ch: &mut Change, mut n: Node, now: i64) {
        n.version += 1;
        n.updated_at = now;
        ch.batch.nodes.push(n.clone());
        self.nodes.insert(n.id.clone(), n);
    }

    fn put_service(&mut self, ch: &mut Change, mut s: Service, now: i64) {
        s.version += 1;
        s.updated_at = now;
        ch.batch.services.push(s.clone());
        self.services.insert(s.id.clone(), s);
    }

    fn compute_net(&self) -> NetState {
        netstate::compute(
            self.networks.values(),
            self.nodes.values(),
            self.services
                .values()
                .filter(|s| !s.networks.is_empty())
                .map(|s| (s, self.service_tasks(&s.id))),
        )
    }

    /// The networks a service's tasks join, by name, and its VIPs on them.
    fn attach(&self, svc: &mut Service) -> Result<()> {
        let others: Vec<&Service> = self.services.values().filter(|s| s.id != svc.id).collect();
        netstate::assign_ports(svc, &others)?;
        let mut names = Vec::new();
        for want in &svc.spec.networks {
            let n = self
                .find_network(want)
                .ok_or_else(|| Error::NotFound(format!("network {want} not found")))?;
            if n.ingress {
                return Err(Error::InvalidArgument(format!(
                    "service {} cannot be attached to the ingress network {}: it joins it when it publishes a port",
                    svc.spec.name, n.name
                )));
            }
            if !names.contains(&n.name) {
                names.push(n.name.clone());
            }
        }
        if svc.spec.ingress_ports().next().is_some() {
            let ingress = self
                .networks
                .values()
                .find(|n| n.ingress)
                .ok_or_else(|| Error::Internal("the swarm has no ingress network".into()))?;
            names.push(ingress.name.clone());
        }
        svc.networks = names;
        netstate::assign_vips(svc, &self.networks, &others)
    }

    fn find_network(&self, name: &str) -> Option<&Network> {
        self.networks.get(name).or_else(|| {
            self.networks.values().find(|n| n.name == name).or_else(|| {
                let m: Vec<&Network> = self
                    .networks
                    .values()
                    .filter(|n| n.id.starts_with(name))
                    .collect();
                (m.len() == 1).then(|| m[0])
            })
        })
    }

    fn networks_row(&self) -> Result<(String, String)> {
        let all: Vec<&Network> = self.networks.values().collect();
        Ok(("networks".into(), serde_json::to_string(&all)?))
    }

    fn service_tasks(&self, id: &str) -> Vec<&Task> {
        self.by_service
            .get(id)
            .map(|ids| ids.iter().filter_map(|i| self.tasks.get(i)).collect())
            .unwrap_or_default()
    }

    fn find_service(&self, name: &str) -> Option<&Service> {
        self.services.get(name).or_else(|| {
            self.services
                .values()
                .find(|s| s.spec.name == name)
                .or_else(|| {
                    let m: Vec<&Service> = self
                        .services
                        .values()
                        .filter(|s| s.id.starts_with(name))
                        .collect();
                    (m.len() == 1).then(|| m[0])
                })
        })
    }

    fn find_node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(name).or_else(|| {
            self.nodes
                .values()
                .find(|n| n.description.hostname == name || n.spec.name == name)
                .or_else(|| {
                    let m: Vec<&Node> = self
                        .nodes
                        .values()
                        .filter(|n| n.id.starts_with(name))
                        .collect();
                    (m.len() == 1).then(|| m[0])
                })
        })
    }
}

fn new_task(svc: &Service, slot: u64, node_id: &str, attempt: u64, now: i64) -> Result<Task> {
    Ok(Task {
        id: random_id(25)?,
        version: 0,
        created_at: now,
        updated_at: now,
        service_id: svc.id.clone(),
        service_name: svc.spec.name.clone(),
        slot,
        node_id: node_id.to_string(),
        spec: svc.spec.task.clone(),
        task_version: svc.task_version,
        desired_state: TaskState::Running,
        status: TaskStatus::new(TaskState::New, "created", now),
        attempt,
        healthy: None,
        restart_at: 0,
        retire: Retire::Keep,
        replaces: String::new(),
        ports: svc.spec.ports.clone(),
        networks: svc.networks.clone(),
        addrs: BTreeMap::new(),
    })
}

impl Master {
    /// Makes a new swarm with this node as its only manager (`docker swarm init`) on SQLite.
    pub fn init(cfg: MasterConfig, me: NodeDescription) -> Result<(Arc<Master>, Issued, String)> {
        if cfg.dir.join("state.db").exists() {
            return Err(Error::Conflict("This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.".into()));
        }
        let mut store = Store::open(&cfg.dir.join("state.db"))?;
        let (issued, node_id) = Master::bootstrap(&cfg, &mut store, me)?;
        let cfg = MasterConfig {
            node_id: node_id.clone(),
            ..cfg
        };
        let m = Master::open_with(cfg, store)?;
        Ok((m, issued, node_id))
    }

    /// Writes a new swarm into `store` (empty, or refused naming what it holds): its CA,
    /// tokens, the ingress network and this node as its first manager. Returns the node's
    /// certificate and id.
    pub fn bootstrap(
        cfg: &MasterConfig,
        store: &mut Store,
        me: NodeDescription,
    ) -> Result<(Issued, String)> {
        if let Some(j) = store.get("swarm")? {
            let id = serde_json::from_str::<SwarmInfo>(&j)
                .map(|s| s.id)
                .unwrap_or_default();
            return Err(Error::Conflict(format!(
                "the store {} already holds swarm {id}: join it with a manager token, or give another prefix",
                cfg.store
            )));
        }
        let ca = Ca::generate()?;
        let digest = ca.digest()?;
        let now = now_nanos();
        let worker_secret = ca::random_hex(16)?;
        let manager_secret = ca::random_hex(16)?;
        let swarm = SwarmInfo {
            id: random_id(25)?,
            created_at: now,
            updated_at: now,
            version: 1,
            worker_token: ca::make_token(&digest, &worker_secret),
            manager_token: ca::make_token(&digest, &manager_secret),
            ca_cert_pem: ca.cert_pem.clone(),
            addr: cfg.advertise.clone(),
            node_grace: cfg.grace.as_nanos() as i64,
            heartbeat_period: cfg.heartbeat.as_nanos() as i64,
        };
        let node_id = random_id(25)?;
        let issued = ca.issue(&node_id, true)?;
        let node = Node {
            id: node_id.clone(),
            version: 0,
            created_at: now,
            updated_at: now,
            spec: NodeSpec {
                role: Role::Manager,
                ..Default::default()
            },
            description: me,
            state: NodeState::Unknown,
            addr: host_of(&cfg.advertise),
            message: String::new(),
            manager_addr: Some(cfg.advertise.clone()),
            leader: true,
            port: cfg.listen.port(),
            net_index: 1,
        };
        let ingress = netstate::ingress_network(now)?;
        let fp = ca::fingerprint_pem(&issued.cert_pem)?;
        let mut b = Batch {
            kv: vec![
                ("swarm".into(), serde_json::to_string(&swarm)?),
                ("ca_key".into(), ca.key_pem.clone()),
                ("worker_secret".into(), worker_secret),
                ("manager_secret".into(), manager_secret),
                ("master_cert".into(), serde_json::to_string(&issued)?),
                (format!("peer:{fp}"), node_id.clone()),
                ("networks".into(), serde_json::to_string(&vec![ingress])?),
            ],
            ..Default::default()
        };
        let mut n = node;
        n.version = 1;
        b.nodes.push(n);
        if !store.commit_if_absent(&b, "swarm")? {
            return Err(Error::Conflict(format!(
                "the store {} already holds a swarm (made at the same moment by another node): join it with a manager token, or give another prefix",
                cfg.store
            )));
        }
        Ok((issued, node_id))
    }

    /// Opens the swarm kept under `cfg.dir` (a restarted master on SQLite).
    pub fn open(cfg: MasterConfig) -> Result<Arc<Master>> {
        let store = Store::open(&cfg.dir.join("state.db"))?;
        Master::open_with(cfg, store)
    }

    /// The master over the swarm in `store` (on etcd: a store fenced by this master's
    /// leadership). This master's node becomes the leader, every other manager a follower.
    pub fn open_with(cfg: MasterConfig, mut store: Store) -> Result<Arc<Master>> {
        let swarm: SwarmInfo = serde_json::from_str(
            &store
                .get("swarm")?
                .ok_or_else(|| Error::Store("no swarm in the store".into()))?,
        )?;
        let ca = Ca {
            cert_pem: swarm.ca_cert_pem.clone(),
            key_pem: store.get("ca_key")?.unwrap_or_default(),
        };
        let loaded = store.load()?;
        let mut peers = HashMap::new();
        {
            let db_peers = store.peers()?;
            for (fp, id) in db_peers {
                peers.insert(fp, id);
            }
        }
        let mut promotions = HashMap::new();
        for (key, value) in store.kv_prefix("promote:")? {
            if let Ok(cert) = serde_json::from_str::<Issued>(&value) {
                promotions.insert(key.trim_start_matches("promote:").to_string(), cert);
            }
        }
        let mut st = State {
            worker_secret: store.get("worker_secret")?.unwrap_or_default(),
            manager_secret: store.get("manager_secret")?.unwrap_or_default(),
            swarm,
            nodes: BTreeMap::new(),
            services: BTreeMap::new(),
            tasks: HashMap::new(),
            by_node: HashMap::new(),
            by_service: HashMap::new(),
            node_version: HashMap::new(),
            // Versions start at the clock, so a restarted master never hands out one that
            // an agent already has from before.
            counter: now_nanos() as u64,
            base: 0,
            networks: match store.get("networks")? {
                Some(j) => serde_json::from_str::<Vec<Network>>(&j)?
                    .into_iter()
                    .map(|n| (n.id.clone(), n))
                    .collect(),
                None => BTreeMap::new(),
            },
            net: Arc::new(NetState::default()),
            net_version: 0,
            promotions,
        };
        st.base = st.counter;
        st.net_version = st.counter;
        let start = Instant::now();
        let mut seen = HashMap::new();
        for n in loaded.nodes {
            // A restarted master gives every node a fresh grace before calling it down.
            seen.insert(n.id.clone(), start);
            st.nodes.insert(n.id.clone(), n);
        }
        // Nodes from before overlay networks get their slice now (kept by the next change).
        let unindexed: Vec<String> = st
            .nodes
            .values()
            .filter(|n| n.net_index == 0)
            .map(|n| n.id.clone())
            .collect();
        for id in unindexed {
            let i = netstate::allocate_index(st.nodes.values());
            if let Some(n) = st.nodes.get_mut(&id) {
                n.net_index = i;
            }
        }
        for s in loaded.services {
            st.services.insert(s.id.clone(), s);
        }
        for t in loaded.tasks {
            if !t.node_id.is_empty() {
                st.by_node
                    .entry(t.node_id.clone())
                    .or_default()
                    .insert(t.id.clone());
            }
            st.by_service
                .entry(t.service_id.clone())
                .or_default()
                .insert(t.id.clone());
            st.tasks.insert(t.id.clone(), t);
        }
        if !st.networks.values().any(|n| n.ingress) {
            // A swarm from before overlay networks: its routing mesh's network now.
            let now = now_nanos();
            let ingress = netstate::ingress_network(now)?;
            st.networks.insert(ingress.id.clone(), ingress);
            let all: Vec<&Network> = st.networks.values().collect();
            store.commit(&Batch {
                kv: vec![("networks".into(), serde_json::to_string(&all)?)],
                ..Default::default()
            })?;
        }
        // This master leads: the flag moves to its node.
        let mut leaders = Batch::default();
        for n in st.nodes.values_mut() {
            let lead = n.id == cfg.node_id;
            if n.leader != lead || (lead && n.manager_addr.as_deref() != Some(&cfg.advertise)) {
                n.leader = lead;
                if lead {
                    n.manager_addr = Some(cfg.advertise.clone());
                }
                n.version += 1;
                n.updated_at = now_nanos();
                leaders.nodes.push(n.clone());
            }
        }
        store.commit(&leaders)?;
        st.net = Arc::new(st.compute_net());
        let summary = summary_of(&st);
        let (versions, _) = watch::channel(1);
        Ok(Arc::new(Master {
            cfg,
            ca,
            state: Mutex::new(st),
            last_seen: Mutex::new(seen),
            last_pass: Mutex::new(start),
            store: Mutex::new(store),
            wake: Notify::new(),
            versions,
            placed: Default::default(),
            place_nanos: Default::default(),
            reconciles: Default::default(),
            reconcile_nanos: Default::default(),
            tasks: Mutex::new(Vec::new()),
            deposed: Default::default(),
            summary: Mutex::new(summary),
            peers: Mutex::new(peers),
            autoscale: Default::default(),
        }))
    }

    pub fn config(&self) -> &MasterConfig {
        &self.cfg
    }

    /// Starts the controllers (in the calling runtime's context). The protocol is served by
    /// the node's listener ([`crate::cluster`]), which hands calls to [`Master::rpc`].
    pub fn start(self: &Arc<Master>) {
        let me = self.clone();
        let controllers = tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(Duration::from_millis(100), me.wake.notified()).await;
                if me.is_deposed() {
                    return;
                }
                let m = me.clone();
                match tokio::task::spawn_blocking(move || m.reconcile()).await {
                    Ok(Err(e)) => tracing::warn!("cluster reconcile: {e}"),
                    Err(e) => tracing::warn!("cluster reconcile: {e}"),
                    Ok(Ok(())) => {}
                }
            }
        });
        lock(&self.tasks).push(controllers);
    }

    /// Whether a commit found this master's leadership gone.
    pub fn is_deposed(&self) -> bool {
        self.deposed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the controllers (the state stays in the store).
    pub fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }

    /// One call of the master-agent protocol: `/join`, `/session`, `/report`.
    pub async fn rpc(
        self: &Arc<Master>,
        fp: Option<String>,
        path: &str,
        body: Bytes,
    ) -> std::result::Result<Vec<u8>, RpcError> {
        let bad = |e: serde_json::Error| RpcError(400, format!("bad request: {e}"));
        let err = |e: Error| match e {
            Error::Refused(m) => RpcError(403, m),
            Error::InvalidArgument(m) => RpcError(400, m),
            // Deposed: the agent looks for the leader (421, no address known here).
            Error::NotLeader(_) => RpcError(421, String::new()),
            _ if self.is_deposed() => RpcError(421, String::new()),
            e => RpcError(500, e.to_string()),
        };
        match path {
            "/join" => {
                let req: JoinRequest = serde_json::from_slice(&body).map_err(bad)?;
                let me = self.clone();
                let r = tokio::task::spawn_blocking(move || me.join(req))
                    .await
                    .map_err(|e| RpcError(500, e.to_string()))?
                    .map_err(err)?;
                serde_json::to_vec(&r).map_err(|e| RpcError(500, e.to_string()))
            }
            "/session" | "/report" => {
                let node = fp.as_ref().and_then(|f| lock(&self.peers).get(f).cloned());
                let Some(node) = node else {
                    return Err(RpcError(403, "unknown node certificate".into()));
                };
                if path == "/report" {
                    let req: ReportRequest = serde_json::from_slice(&body).map_err(bad)?;
                    let me = self.clone();
                    tokio::task::spawn_blocking(move || me.report(&node, None, &req.reports))
                        .await
                        .map_err(|e| RpcError(500, e.to_string()))?
                        .map_err(err)?;
                    return Ok(b"{}".to_vec());
                }
                lock(&self.last_seen).insert(node.clone(), Instant::now());
                let req: SessionRequest = serde_json::from_slice(&body).map_err(bad)?;
                self.autoscale.record(&node, &req.usage);
                let req_since = req.since;
                let net_since = req.net_since;
                let req_role = req.role;
                let me = self.clone();
                let n = node.clone();
                tokio::task::spawn_blocking(move || {
                    me.report(&n, Some(&req.description), &req.reports)?;
                    match req.role {
                        Some(Role::Manager) => me.promotion_taken(&n)?,
                        Some(Role::Worker) => me.promotion_lost(&n)?,
                        None => {}
                    }
                    Ok(())
                })
                .await
                .map_err(|e| RpcError(500, e.to_string()))?
                .map_err(err)?;
                let mut rx = self.versions.subscribe();
                let deadline = tokio::time::Instant::now() + self.cfg.heartbeat;
                loop {
                    if self.is_deposed() {
                        return Err(RpcError(421, String::new()));
                    }
                    let (me, n) = (self.clone(), node.clone());
                    let found = tokio::task::spawn_blocking(move || {
                        me.assignments(&n, req_since, net_since, req_role)
                    })
                    .await
                    .map_err(|e| RpcError(500, e.to_string()))?;
                    if let Some(resp) = found {
                        return serde_json::to_vec(&resp).map_err(|e| RpcError(500, e.to_string()));
                    }
                    if tokio::time::timeout_at(deadline, rx.changed())
                        .await
                        .is_err()
                    {
                        // A heartbeat with nothing new: no task list to clone or send.
                        let (me, n) = (self.clone(), node.clone());
                        let (managers, role) = tokio::task::spawn_blocking(move || {
                            let st = lock(&me.state);
                            (managers_of(&st), st.nodes.get(&n).map(|n| n.spec.role))
                        })
                        .await
                        .map_err(|e| RpcError(500, e.to_string()))?;
                        let resp = SessionResponse {
                            version: req_since,
                            tasks: None,
                            heartbeat_period: self.cfg.heartbeat.as_nanos() as i64,
                            net_version: net_since,
                            net: None,
                            managers,
                            role,
                            promotion: None,
                        };
                        return serde_json::to_vec(&resp).map_err(|e| RpcError(500, e.to_string()));
                    }
                }
            }
            _ => Err(RpcError(404, format!("no such call {path}"))),
        }
    }

    /// The node's tasks, unless the agent has their version already; the networking, unless
    /// it has that; its manager certificate if it was promoted since.
    fn assignments(
        &self,
        node: &str,
        since: u64,
        net_since: u64,
        role: Option<Role>,
    ) -> Option<SessionResponse> {
        let st = lock(&self.state);
        if self.is_deposed() {
            // What is in memory may not be in the store: nothing of it goes out.
            return None;
        }
        let v = st.node_version.get(node).copied().unwrap_or(st.base);
        let net = (net_since != st.net_version).then(|| st.net.clone());
        let want = st.nodes.get(node).map(|n| n.spec.role);
        let promotion = match (want, role) {
            (Some(Role::Manager), Some(Role::Worker)) => {
                st.promotions.get(node).map(|cert| proto::Promotion {
                    cert: cert.clone(),
                    store: self.cfg.store.clone(),
                })
            }
            _ => None,
        };
        // A promotion or a demotion to deliver is news; anything else waits for the versions.
        let news =
            promotion.is_some() || (want == Some(Role::Worker) && role == Some(Role::Manager));
        if since == v && !news {
            return net.map(|net| SessionResponse {
                version: v,
                tasks: None,
                heartbeat_period: self.cfg.heartbeat.as_nanos() as i64,
                net_version: st.net_version,
                net: Some(net),
                managers: managers_of(&st),
                role: want,
                promotion: None,
            });
        }
        let tasks = st
            .by_node
            .get(node)
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| st.tasks.get(i).cloned())
                    .collect()
            })
            .unwrap_or_default();
        Some(SessionResponse {
            version: v,
            tasks: Some(tasks),
            heartbeat_period: self.cfg.heartbeat.as_nanos() as i64,
            net_version: st.net_version,
            net,
            managers: managers_of(&st),
            role: want,
            promotion,
        })
    }

    fn commit(&self, st: &mut State, ch: Change) -> Result<()> {
        if let Err(e) = lock(&self.store).commit(&ch.batch) {
            // The change is in memory but maybe not in the store (an etcd timeout cannot say
            // whether the txn landed). On etcd this master steps down: it answers no one from
            // now on, and the next term (this node's again, or another's) starts from what
            // the store holds. On SQLite a failed transaction wrote nothing.
            if matches!(e, Error::NotLeader(_)) || self.cfg.store.is_etcd() {
                self.deposed
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                tracing::warn!("master: {e}; stepping down");
            }
            return Err(e);
        }
        if !ch.batch.nodes.is_empty()
            || !ch.batch.nodes_deleted.is_empty()
            || ch.batch.kv.iter().any(|(k, _)| k == "swarm")
        {
            *lock(&self.summary) = summary_of(st);
        }
        if !ch.batch.is_empty() {
            let net = st.compute_net();
            if net != *st.net {
                st.net = Arc::new(net);
                st.counter += 1;
                st.net_version = st.counter;
                self.versions.send_replace(st.counter);
            }
        }
        if !ch.touched_nodes.is_empty() {
            st.counter += 1;
            for n in ch.touched_nodes {
                if !n.is_empty() {
                    st.node_version.insert(n, st.counter);
                }
            }
            self.versions.send_replace(st.counter);
        }
        Ok(())
    }

    fn join(&self, req: JoinRequest) -> Result<JoinResponse> {
        let (digest, secret) = ca::parse_token(&req.token)?;
        let mut st = lock(&self.state);
        let role = if digest != self.ca.digest()? {
            None
        } else if secret == st.worker_secret {
            Some(Role::Worker)
        } else if secret == st.manager_secret {
            Some(Role::Manager)
        } else {
            None
        };
        let Some(role) = role else {
            tracing::warn!(
                "refused a join from {} ({}): invalid join token",
                req.description.hostname,
                req.advertise_addr
            );
            return Err(Error::Refused("invalid join token".into()));
        };
        if role == Role::Manager && !self.cfg.store.is_etcd() {
            tracing::warn!(
                "refused a manager join from {}: needs a shared store",
                req.description.hostname
            );
            return Err(Error::Refused("joining as a second manager needs masters on a shared store (berthd --store etcd://...); this swarm keeps its state in SQLite on its one manager. Join as a worker.".into()));
        }
        let now = now_nanos();
        let id = random_id(25)?;
        let issued = self.ca.issue(&id, role == Role::Manager)?;
        let fp = ca::fingerprint_pem(&issued.cert_pem)?;
        let node = Node {
            id: id.clone(),
            version: 0,
            created_at: now,
            updated_at: now,
            spec: NodeSpec {
                role,
                ..Default::default()
            },
            description: req.description.clone(),
            state: NodeState::Unknown,
            addr: req.advertise_addr.clone(),
            message: String::new(),
            manager_addr: (role == Role::Manager)
                .then(|| format!("{}:{}", req.advertise_addr, req.port)),
            leader: false,
            port: req.port,
            net_index: netstate::allocate_index(st.nodes.values()),
        };
        let mut ch = Change::default();
        ch.batch.kv.push((format!("peer:{fp}"), id.clone()));
        st.put_node(&mut ch, node, now);
        lock(&self.peers).insert(fp, id.clone());
        lock(&self.last_seen).insert(id.clone(), Instant::now());
        self.commit(&mut st, ch)?;
        tracing::info!(
            "node {id} ({}) joined as a {}",
            req.description.hostname,
            role.as_str()
        );
        Ok(JoinResponse {
            node_id: id,
            role,
            cert: issued,
            ca_pem: self.ca.cert_pem.clone(),
            swarm_id: st.swarm.id.clone(),
            heartbeat_period: self.cfg.heartbeat.as_nanos() as i64,
            managers: managers_of(&st),
            store: self.cfg.store.clone(),
        })
    }

    /// A promoted node runs as a manager now: its certificate need not be kept.
    fn promotion_taken(&self, node: &str) -> Result<()> {
        let mut st = lock(&self.state);
        if st.promotions.remove(node).is_none() {
            return Ok(());
        }
        let mut ch = Change::default();
        ch.batch.kv_deleted.push(format!("promote:{node}"));
        self.commit(&mut st, ch)
    }

    /// A node wanted as a manager still runs as a worker and has no certificate waiting (it
    /// took one but did not keep it): it is issued another.
    fn promotion_lost(&self, node: &str) -> Result<()> {
        let mut st = lock(&self.state);
        let wanted = st
            .nodes
            .get(node)
            .is_some_and(|n| n.spec.role == Role::Manager);
        if !wanted || st.promotions.contains_key(node) || !self.cfg.store.is_etcd() {
            return Ok(());
        }
        let cert = self.ca.issue(node, true)?;
        let fp = ca::fingerprint_pem(&cert.cert_pem)?;
        let mut ch = Change::default();
        ch.batch.kv.push((format!("peer:{fp}"), node.to_string()));
        ch.batch
            .kv
            .push((format!("promote:{node}"), serde_json::to_string(&cert)?));
        self.commit(&mut st, ch)?;
        lock(&self.peers).insert(fp, node.to_string());
        st.promotions.insert(node.to_string(), cert);
        Ok(())
    }

    /// A heartbeat (with the node's description) or a report of task states.
    fn report(
        &self,
        node: &str,
        desc: Option<&NodeDescription>,
        reports: &[TaskReport],
    ) -> Result<()> {
        let now = now_nanos();
        let mut st = lock(&self.state);
        let mut ch = Change::default();
        let mut wake = false;
        if let Some(d) = desc {
            if let Some(n) = st.nodes.get(node).cloned() {
                if n.state != NodeState::Ready || n.description != *d {
                    let mut n = n;
                    if n.state != NodeState::Ready {
                        tracing::info!("node {} ({}) is ready", n.id, d.hostname);
                        wake = true;
                    }
                    n.state = NodeState::Ready;
                    n.message.clear();
                    n.description = d.clone();
                    st.put_node(&mut ch, n, now);
                }
            }
        }
        for r in reports {
            let Some(t) = st.tasks.get(&r.id).cloned() else {
                continue;
            };
            if t.node_id != node {
                continue;
            }
            let mut t = t;
            let mut changed = false;
            if !t.status.state.terminal() && r.state > t.status.state {
                t.status.state = r.state;
                t.status.timestamp = now;
                t.status.message = r.message.clone();
                t.status.err = r.err.clone();
                changed = true;
                wake = true;
            }
            if r.container_id != t.status.container_id && !r.container_id.is_empty() {
                t.status.container_id = r.container_id.clone();
                changed = true;
            }
            if r.pid != t.status.pid || r.exit_code != t.status.exit_code {
                t.status.pid = r.pid;
                t.status.exit_code = r.exit_code;
                changed = true;
            }
            if r.healthy != t.healthy {
                t.healthy = r.healthy;
                changed = true;
                wake = true;
            }
            if !r.addrs.is_empty() && r.addrs != t.addrs {
                t.addrs = r.addrs.clone();
                changed = true;
            }
            if changed {
                st.put_task(&mut ch, t, now);
            }
        }
        // Status changes don't change assignments.
        ch.touched_nodes.clear();
        self.commit(&mut st, ch)?;
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// One pass of every controller.
    pub fn reconcile(&self) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let t0 = Instant::now();
        let r = self.reconcile_pass().and_then(|()| self.autoscale_pass());
        self.reconciles.fetch_add(1, Relaxed);
        self.reconcile_nanos
            .fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        r
    }

    fn reconcile_pass(&self) -> Result<()> {
        let now = now_nanos();
        let mut st = lock(&self.state);
        let mut ch = Change::default();
        self.liveness(&mut st, &mut ch, now);
        let ids: Vec<String> = st.services.keys().cloned().collect();
        for id in &ids {
            self.update_service_rollout(&mut st, &mut ch, id, now)?;
            self.orchestrate(&mut st, &mut ch, id, now)?;
        }
        self.schedule(&mut st, &mut ch, now);
        self.commit(&mut st, ch)
    }

    // ---- autoscaling ([`crate::autoscale`]) ------------------------------------------

    /// Where decisions are published (the manager's engine), set by [`crate::Cluster`].
    pub fn set_event_sink(&self, sink: Arc<dyn crate::autoscale::EventSink>) {
        self.autoscale.set_sink(sink);
    }

    /// Every sync period: each service's policy evaluated; a decision is an ordinary
    /// replicas change (stored and versioned like `docker service scale`; the previous spec
    /// stays the user's own), announced once committed.
    fn autoscale_pass(&self) -> Result<()> {
        if !self.autoscale.due() {
            return Ok(());
        }
        let now = now_nanos();
        let mut st = lock(&self.state);
        let decisions = self.autoscale.evaluate(
            st.services.values().map(|s| (s, st.service_tasks(&s.id))),
            now,
        );
        if decisions.is_empty() {
            return Ok(());
        }
        let mut ch = Change::default();
        let mut made = Vec::new();
        for (id, d) in decisions {
            let Some(mut svc) = st.services.get(&id).cloned() else {
                continue;
            };
            svc.spec.mode = Mode::Replicated { replicas: d.to };
            made.push((id.clone(), svc.spec.name.clone(), d));
            st.put_service(&mut ch, svc, now);
            self.orchestrate(&mut st, &mut ch, &id, now)?;
        }
        self.schedule(&mut st, &mut ch, now);
        self.commit(&mut st, ch)?;
        drop(st);
        for (id, name, d) in made {
            self.autoscale.announce(&id, &name, &d);
        }
        Ok(())
    }

    fn liveness(&self, st: &mut State, ch: &mut Change, now: i64) {
        let grace = self.cfg.grace;
        let mut seen = lock(&self.last_seen);
        {
            let mut last = lock(&self.last_pass);
            if last.elapsed() > grace / 2 {
                // This master was stalled: nobody could have been heard. A fresh grace.
                let fresh = Instant::now();
                for t in seen.values_mut() {
                    *t = fresh;
                }
            }
            *last = Instant::now();
        }
        let down: Vec<String> = st
            .nodes
            .values()
            .filter(|n| n.state == NodeState::Ready)
            .filter(|n| seen.get(&n.id).is_none_or(|t| t.elapsed() > grace))
            .map(|n| n.id.clone())
            .collect();
        drop(seen);
        for id in down {
            let Some(mut n) = st.nodes.get(&id).cloned() else {
                continue;
            };
            tracing::warn!(
                "node {id} ({}) is down: no heartbeat for {grace:?}",
                n.description.hostname
            );
            n.state = NodeState::Down;
            n.message = "heartbeat failure".into();
            st.put_node(ch, n, now);
            let ids: Vec<String> = st
                .by_node
                .get(&id)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for tid in ids {
                let Some(mut t) = st.tasks.get(&tid).cloned() else {
                    continue;
                };
                if t.desired_state <= TaskState::Running {
                    t.desired_state = TaskState::Shutdown;
                    t.retire = Retire::Replace;
                    if t.status.state < TaskState::Assigned {
                        t.status = TaskStatus::new(TaskState::Orphaned, "node is down", now);
                    }
                    st.put_task(ch, t, now);
                }
            }
        }
    }

    fn eligible(node: &Node, cons: &[scheduler::Constraint]) -> bool {
        node.state == NodeState::Ready
            && node.spec.availability == Availability::Active
            && cons.iter().all(|c| c.matches(node))
    }

    fn orchestrate(&self, st: &mut State, ch: &mut Change, id: &str, now: i64) -> Result<()> {
        let Some(svc) = st.services.get(id).cloned() else {
            return Ok(());
        };
        // Decisions are made on references; only the tasks that change are cloned.
        enum Act {
            Retire(String, Retire, i64),
            New(u64, String, u64),
            Delete(String),
        }
        let mut acts: Vec<Act> = Vec::new();
        {
            let tasks = st.service_tasks(id);
            // Tasks on drained nodes go; so do tasks that ended while wanted (restart
            // policy). What this pass retires counts as retired below.
            let mut retired: HashMap<&str, Retire> = HashMap::new();
            for t in &tasks {
                if t.desired_state > TaskState::Running {
                    continue;
                }
                let drained = st
                    .nodes
                    .get(&t.node_id)
                    .is_some_and(|n| n.spec.availability == Availability::Drain);
                if drained {
                    acts.push(Act::Retire(t.id.clone(), Retire::Replace, 0));
                    retired.insert(&t.id, Retire::Replace);
                } else if t.status.state.terminal() {
                    let p = t.spec.restart;
                    let failed = t.status.state != TaskState::Complete || t.status.exit_code != 0;
                    let wanted = match p.condition {
                        RestartCondition::None => false,
                        RestartCondition::OnFailure => failed,
                        RestartCondition::Any => true,
                    };
                    let exhausted = p.max_attempts > 0 && t.attempt >= p.max_attempts;
                    let r = if wanted && !exhausted {
                        Retire::Restart
                    } else {
                        Retire::Done
                    };
                    acts.push(Act::Retire(t.id.clone(), r, now + p.delay.max(0)));
                    retired.insert(&t.id, r);
                }
            }
            let live = |t: &Task| t.live() && !retired.contains_key(t.id.as_str());
            let retire_of = |t: &Task| retired.get(t.id.as_str()).copied().unwrap_or(t.retire);
            let restart_at = |t: &Task| {
                if retired.contains_key(t.id.as_str()) {
                    now + t.spec.restart.delay.max(0)
                } else {
                    t.restart_at
                }
            };
            let next_attempt = |last: Option<&&Task>| -> Option<u64> {
                match last {
                    None => Some(0),
                    Some(t) => match retire_of(t) {
                        Retire::Replace | Retire::Removed | Retire::Keep => Some(t.attempt),
                        Retire::Restart if now >= restart_at(t) => Some(t.attempt + 1),
                        Retire::Restart | Retire::Done => None,
                    },
                }
            };
            match svc.spec.mode {
                Mode::Replicated { replicas } => {
                    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
                    for t in &tasks {
                        slots.entry(t.slot).or_default().push(t);
                    }
                    let empty = Vec::new();
                    for slot in 1..=replicas {
                        let in_slot = slots.get(&slot).unwrap_or(&empty);
                        if in_slot.iter().any(|t| live(t)) {
                            continue;
                        }
                        let last = in_slot.iter().max_by_key(|t| (t.created_at, t.version));
                        if let Some(a) = next_attempt(last) {
                            acts.push(Act::New(slot, String::new(), a));
                        }
                    }
                    for in_slot in slots.range(replicas + 1..).map(|(_, v)| v) {
                        for t in in_slot
                            .iter()
                            .filter(|t| t.desired_state <= TaskState::Running)
                        {
                            acts.push(Act::Retire(t.id.clone(), Retire::Removed, 0));
                        }
                    }
                    // History: at most HISTORY ended tasks per slot.
                    for (slot, in_slot) in &slots {
                        let mut ended: Vec<&&Task> = in_slot
                            .iter()
                            .filter(|t| {
                                t.desired_state > TaskState::Running && t.status.state.terminal()
                            })
                            .collect();
                        let keep = if *slot > replicas { 0 } else { HISTORY };
                        if ended.len() > keep {
                            ended.sort_by_key(|t| t.created_at);
                            let n = ended.len() - keep;
                            acts.extend(ended[..n].iter().map(|t| Act::Delete(t.id.clone())));
                        }
                    }
                }
                Mode::Global => {
                    let cons = scheduler::parse_constraints(&svc.spec.task.placement.constraints)
                        .unwrap_or_default();
                    let mut by_node: HashMap<&str, Vec<&Task>> = HashMap::new();
                    for t in &tasks {
                        by_node.entry(t.node_id.as_str()).or_default().push(t);
                    }
                    let empty = Vec::new();
                    for n in st.nodes.values() {
                        let on = by_node.get(n.id.as_str()).unwrap_or(&empty);
                        if Self::eligible(n, &cons) {
                            if on.iter().any(|t| live(t)) {
                                continue;
                            }
                            let last = on.iter().max_by_key(|t| (t.created_at, t.version));
                            if let Some(a) = next_attempt(last) {
                                acts.push(Act::New(0, n.id.clone(), a));
                            }
                        } else if n.spec.availability != Availability::Pause
                            || n.state != NodeState::Ready
                        {
                            for t in on.iter().filter(|t| t.desired_state <= TaskState::Running) {
                                acts.push(Act::Retire(t.id.clone(), Retire::Removed, 0));
                            }
                        }
                    }
                }
            }
        }
        for a in acts {
            match a {
                Act::Retire(tid, r, at) => {
                    if let Some(mut t) = st.tasks.get(&tid).cloned() {
                        t.desired_state = TaskState::Shutdown;
                        t.retire = r;
                        if r == Retire::Restart || r == Retire::Done {
                            t.restart_at = at;
                        }
                        st.put_task(ch, t, now);
                    }
                }
                Act::New(slot, node, attempt) => {
                    let t = new_task(&svc, slot, &node, attempt, now)?;
                    st.put_task(ch, t, now);
                }
                Act::Delete(tid) => st.delete_task(ch, &tid),
            }
        }
        Ok(())
    }

    fn schedule(&self, st: &mut State, ch: &mut Change, now: i64) {
        let mut pending: Vec<&Task> = st
            .tasks
            .values()
            .filter(|t| {
                t.desired_state == TaskState::Running && t.status.state <= TaskState::Pending
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let started = Instant::now();
        pending.sort_by(|a, b| {
            (&a.service_id, a.slot, a.created_at).cmp(&(&b.service_id, b.slot, b.created_at))
        });
        let nodes: Vec<Node> = st.nodes.values().cloned().collect();
        let placed = st
            .tasks
            .values()
            .filter(|t| t.live() && !t.node_id.is_empty() && t.status.state >= TaskState::Assigned);
        let mut s = Scheduler::new(&nodes, placed);
        let decisions: Vec<(String, std::result::Result<String, String>)> = pending
            .iter()
            .filter_map(|t| {
                let d = s.place(t);
                match &d {
                    Err(why) if t.status.state == TaskState::Pending && t.status.err == *why => {
                        None
                    }
                    _ => Some((t.id.clone(), d)),
                }
            })
            .collect();
        drop(s);
        let mut n = 0u64;
        for (tid, d) in decisions {
            let Some(mut t) = st.tasks.get(&tid).cloned() else {
                continue;
            };
            match d {
                Ok(node) => {
                    t.node_id = node;
                    t.status = TaskStatus::new(
                        TaskState::Assigned,
                        "scheduler assigned task to node",
                        now,
                    );
                    n += 1;
                }
                Err(why) => {
                    t.status = TaskStatus::new(TaskState::Pending, "pending task scheduling", now);
                    t.status.err = why;
                }
            }
            st.put_task(ch, t, now);
        }
        use std::sync::atomic::Ordering;
        if n >= 100 {
            tracing::info!(
                "scheduler placed {n} tasks on {} nodes in {:.1} ms",
                nodes.len(),
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        self.placed.fetch_add(n, Ordering::Relaxed);
        self.place_nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }

    fn update_service_rollout(
        &self,
        st: &mut State,
        ch: &mut Change,
        id: &str,
        now: i64,
    ) -> Result<()> {
        let Some(mut svc) = st.services.get(id).cloned() else {
            return Ok(());
        };
        let Some(mut us) = svc.update_status.clone() else {
            return Ok(());
        };
        if !us.state.active() {
            return Ok(());
        }
        let rolling_back = us.state.rolling_back();
        let cfg = if rolling_back {
            svc.spec.rollback
        } else {
            svc.spec.update
        };
        let tasks: Vec<Task> = st.service_tasks(id).into_iter().cloned().collect();
        let current = |t: &Task| t.task_version == svc.task_version;
        // A new task that failed while the update runs.
        let failed = tasks.iter().find(|t| {
            current(t)
                && t.created_at >= us.started_at
                && t.status.state.terminal()
                && t.status.state != TaskState::Shutdown
                && t.retire != Retire::Removed
                && t.retire != Retire::Replace
        });
        if let Some(f) = failed {
            if cfg.failure_action != FailureAction::Continue {
                let why = if f.status.err.is_empty() {
                    f.status.state.as_str().to_string()
                } else {
                    f.status.err.clone()
                };
                if cfg.failure_action == FailureAction::Rollback && !rolling_back {
                    if let Some(prev) = svc.previous_spec.take() {
                        let cur = std::mem::replace(&mut svc.spec, prev);
                        svc.previous_spec = Some(cur);
                        svc.task_version += 1;
                        us = UpdateStatus {
                            state: UpdateState::RollbackStarted,
                            started_at: now,
                            completed_at: 0,
                            message: format!("update rolled back due to failure or early termination of task {}: {why}", f.id),
                            next_batch_at: 0,
                        };
                        tracing::warn!("service {}: {}", svc.spec.name, us.message);
                        svc.update_status = Some(us);
                        st.put_service(ch, svc, now);
                        return Ok(());
                    }
                }
                us.state = if rolling_back {
                    UpdateState::RollbackPaused
                } else {
                    UpdateState::Paused
                };
                us.message = format!(
                    "{} paused due to failure or early termination of task {}: {why}",
                    if rolling_back { "rollback" } else { "update" },
                    f.id
                );
                tracing::warn!("service {}: {}", svc.spec.name, us.message);
                svc.update_status = Some(us);
                st.put_service(ch, svc, now);
                return Ok(());
            }
        }
        // The batch in flight: new tasks not yet running (and healthy).
        let settled = |t: &Task| t.status.state == TaskState::Running && t.healthy != Some(false);
        let in_flight: Vec<&Task> = tasks
            .iter()
            .filter(|t| current(t) && t.live() && !settled(t))
            .collect();
        // Start-first: an old task goes once its replacement runs.
        for t in tasks
            .iter()
            .filter(|t| current(t) && settled(t) && !t.replaces.is_empty())
        {
            if let Some(old) = st.tasks.get(&t.replaces).cloned() {
                if old.desired_state <= TaskState::Running {
                    let mut old = old;
                    old.desired_state = TaskState::Shutdown;
                    old.retire = Retire::Removed;
                    st.put_task(ch, old, now);
                }
            }
        }
        if !in_flight.is_empty() {
            return Ok(());
        }
        let old: Vec<&Task> = tasks
            .iter()
            .filter(|t| {
                !current(t)
                    && t.desired_state <= TaskState::Running
                    && !tasks.iter().any(|n| n.replaces == t.id && n.live())
            })
            .collect();
        if old.is_empty() {
            us.state = if rolling_back {
                UpdateState::RollbackCompleted
            } else {
                UpdateState::Completed
            };
            us.completed_at = now;
            us.message = if rolling_back {
                "rollback completed".into()
            } else {
                "update completed".into()
            };
            svc.update_status = Some(us);
            st.put_service(ch, svc, now);
            return Ok(());
        }
        if us.next_batch_at == 0
            && cfg.delay > 0
            && tasks
                .iter()
                .any(|t| current(t) && t.created_at >= us.started_at)
        {
            us.next_batch_at = now + cfg.delay;
            svc.update_status = Some(us);
            st.put_service(ch, svc, now);
            return Ok(());
        }
        if now < us.next_batch_at {
            return Ok(());
        }
        let n = if cfg.parallelism == 0 {
            old.len()
        } else {
            (cfg.parallelism as usize).min(old.len())
        };
        let mut batch: Vec<Task> = old.into_iter().cloned().collect();
        batch.sort_by_key(|t| (t.slot, t.node_id.clone()));
        batch.truncate(n);
        for t in batch {
            let node = if t.slot == 0 {
                t.node_id.clone()
            } else {
                String::new()
            };
            let mut new = new_task(&svc, t.slot, &node, 0, now)?;
            if cfg.order == UpdateOrder::StartFirst {
                new.replaces = t.id.clone();
            } else {
                let mut old = t.clone();
                old.desired_state = TaskState::Shutdown;
                old.retire = Retire::Removed;
                st.put_task(ch, old, now);
            }
            st.put_task(ch, new, now);
        }
        us.next_batch_at = 0;
        svc.update_status = Some(us);
        st.put_service(ch, svc, now);
        Ok(())
    }

    // ---- the API of the manager (docker node/service/swarm) --------------------------

    pub fn swarm(&self) -> SwarmInfo {
        lock(&self.summary).0.clone()
    }

    /// `docker swarm join-token --rotate ROLE`.
    pub fn rotate_token(&self, role: Role) -> Result<SwarmInfo> {
        let mut st = lock(&self.state);
        let secret = ca::random_hex(16)?;
        let digest = self.ca.digest()?;
        let now = now_nanos();
        let mut ch = Change::default();
        match role {
            Role::Worker => {
                st.worker_secret = secret.clone();
                st.swarm.worker_token = ca::make_token(&digest, &secret);
                ch.batch.kv.push(("worker_secret".into(), secret));
            }
            Role::Manager => {
                st.manager_secret = secret.clone();
                st.swarm.manager_token = ca::make_token(&digest, &secret);
                ch.batch.kv.push(("manager_secret".into(), secret));
            }
        }
        st.swarm.version += 1;
        st.swarm.updated_at = now;
        ch.batch
            .kv
            .push(("swarm".into(), serde_json::to_string(&st.swarm)?));
        self.commit(&mut st, ch)?;
        Ok(st.swarm.clone())
    }

    /// (nodes, managers), without copying them (`/_ping`, `/info`).
    pub fn node_counts(&self) -> (usize, usize) {
        let s = lock(&self.summary);
        (s.1, s.2)
    }

    pub fn nodes(&self) -> Vec<Node> {
        lock(&self.state).nodes.values().cloned().collect()
    }

    pub fn node(&self, name: &str) -> Result<Node> {
        lock(&self.state)
            .find_node(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {name} not found")))
    }

    pub fn update_node(&self, name: &str, version: u64, spec: NodeSpec) -> Result<()> {
        let mut st = lock(&self.state);
        let mut n = st
            .find_node(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {name} not found")))?;
        if version != n.version {
            return Err(Error::Conflict(format!(
                "update out of sequence: node {} is at version {}, not {version}",
                n.id, n.version
            )));
        }
        let now = now_nanos();
        let mut ch = Change::default();
        if spec.role != n.spec.role {
            if !self.cfg.store.is_etcd() {
                return Err(Error::InvalidArgument(
                    "changing a node's role (promote/demote) needs masters on a shared store (berthd --store etcd://...); this swarm keeps its state in SQLite on its one manager".into(),
                ));
            }
            match spec.role {
                Role::Manager => {
                    // The node gets a certificate that names it a manager with its next
                    // heartbeat, then campaigns in the masters' election.
                    let cert = self.ca.issue(&n.id, true)?;
                    let fp = ca::fingerprint_pem(&cert.cert_pem)?;
                    ch.batch.kv.push((format!("peer:{fp}"), n.id.clone()));
                    ch.batch
                        .kv
                        .push((format!("promote:{}", n.id), serde_json::to_string(&cert)?));
                    lock(&self.peers).insert(fp, n.id.clone());
                    st.promotions.insert(n.id.clone(), cert);
                    n.manager_addr = Some(format!(
                        "{}:{}",
                        n.addr,
                        if n.port == 0 {
                            crate::cluster::DEFAULT_PORT
                        } else {
                            n.port
                        }
                    ));
                    tracing::info!(
                        "node {} ({}) promoted to manager",
                        n.id,
                        n.description.hostname
                    );
                }
                Role::Worker => {
                    // Another manager must be able to lead: ready, and running as one (not
                    // still to take its certificate).
                    let others = st
                        .nodes
                        .values()
                        .filter(|m| m.id != n.id && m.spec.role == Role::Manager)
                        .filter(|m| m.state == NodeState::Ready)
                        .filter(|m| !st.promotions.contains_key(&m.id))
                        .count();
                    if others == 0 {
                        return Err(Error::InvalidArgument(format!(
                            "can't demote node {}: no other manager is ready to lead the swarm",
                            n.id
                        )));
                    }
                    n.manager_addr = None;
                    n.leader = false;
                    if st.promotions.remove(&n.id).is_some() {
                        ch.batch.kv_deleted.push(format!("promote:{}", n.id));
                    }
                    tracing::info!(
                        "node {} ({}) demoted to worker",
                        n.id,
                        n.description.hostname
                    );
                }
            }
        }
        n.spec = spec;
        st.put_node(&mut ch, n, now);
        self.commit(&mut st, ch)?;
        self.wake.notify_one();
        Ok(())
    }

    /// `docker node rm`: only a node that is down (or with force).
    pub fn remove_node(&self, name: &str, force: bool) -> Result<()> {
        let mut st = lock(&self.state);
        let n = st
            .find_node(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("node {name} not found")))?;
        if n.spec.role == Role::Manager {
            return Err(Error::Conflict(format!("rpc error: node {} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal", n.id)));
        }
        if n.state == NodeState::Ready && !force {
            return Err(Error::Conflict(format!(
                "node {} is not down and can't be removed",
                n.id
            )));
        }
        let now = now_nanos();
        let mut ch = Change::default();
        let ids: Vec<String> = st
            .by_node
            .get(&n.id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for tid in ids {
            if let Some(mut t) = st.tasks.get(&tid).cloned() {
                if t.desired_state <= TaskState::Running {
                    t.desired_state = TaskState::Shutdown;
                    t.retire = Retire::Replace;
                    st.put_task(&mut ch, t, now);
                }
            }
        }
        st.nodes.remove(&n.id);
        lock(&self.peers).retain(|_, v| *v != n.id);
        ch.batch.nodes_deleted.push(n.id.clone());
        lock(&self.store).delete_peer(&n.id)?;
        self.commit(&mut st, ch)?;
        self.wake.notify_one();
        Ok(())
    }

    pub fn services(&self) -> Vec<Service> {
        lock(&self.state).services.values().cloned().collect()
    }

    pub fn service(&self, name: &str) -> Result<Service> {
        lock(&self.state)
            .find_service(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("service {name} not found")))
    }

    pub fn validate(spec: &ServiceSpec) -> Result<()> {
        crate::validate_spec(spec)
    }

    pub fn create_service(&self, spec: ServiceSpec) -> Result<String> {
        Self::validate(&spec)?;
        let mut st = lock(&self.state);
        if st.services.values().any(|s| s.spec.name == spec.name) {
            return Err(Error::Conflict(format!(
                "service {} already exists",
                spec.name
            )));
        }
        let now = now_nanos();
        let svc = Service {
            id: random_id(25)?,
            version: 0,
            created_at: now,
            updated_at: now,
            spec,
            previous_spec: None,
            task_version: 1,
            update_status: None,
            vips: Vec::new(),
            networks: Vec::new(),
        };
        let mut svc = svc;
        st.attach(&mut svc)?;
        let id = svc.id.clone();
        let mut ch = Change::default();
        st.put_service(&mut ch, svc, now);
        self.orchestrate(&mut st, &mut ch, &id, now)?;
        self.schedule(&mut st, &mut ch, now);
        self.commit(&mut st, ch)?;
        Ok(id)
    }

    /// `docker service update` (and `scale`): a changed task template starts a rolling
    /// update; `rollback` swaps back to the previous spec.
    pub fn update_service(
        &self,
        name: &str,
        version: u64,
        spec: Option<ServiceSpec>,
        rollback: bool,
    ) -> Result<()> {
        let mut st = lock(&self.state);
        let mut svc = st
            .find_service(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("service {name} not found")))?;
        if version != svc.version {
            return Err(Error::Conflict(format!(
                "update out of sequence: service {} is at version {}, not {version}",
                svc.id, svc.version
            )));
        }
        let now = now_nanos();
        let spec = if rollback {
            svc.previous_spec.clone().ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "service {} does not have a previous spec",
                    svc.spec.name
                ))
            })?
        } else {
            spec.ok_or_else(|| Error::InvalidArgument("no spec".into()))?
        };
        Self::validate(&spec)?;
        if spec.name != svc.spec.name && st.services.values().any(|s| s.spec.name == spec.name) {
            return Err(Error::Conflict(format!(
                "service {} already exists",
                spec.name
            )));
        }
        let template_changed = spec.task != svc.spec.task
            || spec.ports != svc.spec.ports
            || spec.networks != svc.spec.networks;
        let old = std::mem::replace(&mut svc.spec, spec);
        st.attach(&mut svc)?;
        if template_changed || rollback {
            svc.previous_spec = Some(old);
            svc.task_version += 1;
            svc.update_status = Some(UpdateStatus {
                state: if rollback {
                    UpdateState::RollbackStarted
                } else {
                    UpdateState::Updating
                },
                started_at: now,
                completed_at: 0,
                message: if rollback {
                    "manually requested rollback".into()
                } else {
                    "update in progress".into()
                },
                next_batch_at: 0,
            });
        } else {
            svc.previous_spec = Some(old);
        }
        let id = svc.id.clone();
        let mut ch = Change::default();
        st.put_service(&mut ch, svc, now);
        self.update_service_rollout(&mut st, &mut ch, &id, now)?;
        self.orchestrate(&mut st, &mut ch, &id, now)?;
        self.schedule(&mut st, &mut ch, now);
        self.commit(&mut st, ch)?;
        Ok(())
    }

    pub fn remove_service(&self, name: &str) -> Result<()> {
        let mut st = lock(&self.state);
        let svc = st
            .find_service(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("service {name} not found")))?;
        let mut ch = Change::default();
        let ids: Vec<String> = st
            .by_service
            .get(&svc.id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for t in ids {
            st.delete_task(&mut ch, &t);
        }
        st.services.remove(&svc.id);
        st.by_service.remove(&svc.id);
        ch.batch.services_deleted.push(svc.id);
        self.commit(&mut st, ch)
    }

    /// The swarm's overlay networks.
    pub fn networks(&self) -> Vec<Network> {
        lock(&self.state).networks.values().cloned().collect()
    }

    pub fn network(&self, name: &str) -> Result<Network> {
        lock(&self.state)
            .find_network(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))
    }

    /// `docker network create -d overlay NAME [--subnet CIDR]`.
    pub fn create_network(
        &self,
        name: &str,
        subnet: Option<&str>,
        labels: BTreeMap<String, String>,
        attachable: bool,
        internal: bool,
    ) -> Result<Network> {
        berth_engine::dataplane::validate_network_name(name)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if matches!(name, "bridge" | "host" | "none") {
            return Err(Error::Conflict(format!(
                "network name {name} is a predefined network on every node: choose another"
            )));
        }
        let mut st = lock(&self.state);
        if st.networks.values().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let taken: Vec<&Network> = st.networks.values().collect();
        let subnet = netstate::allocate_subnet(&taken, subnet)?;
        let vni = netstate::allocate_vni(&taken);
        let now = now_nanos();
        let n = Network {
            id: random_id(25)?,
            name: name.to_string(),
            created_at: now,
            updated_at: now,
            version: 1,
            subnet,
            vni,
            ingress: false,
            attachable,
            internal,
            labels,
        };
        st.networks.insert(n.id.clone(), n.clone());
        let mut ch = Change::default();
        ch.batch.kv.push(st.networks_row()?);
        if let Err(e) = self.commit(&mut st, ch) {
            st.networks.remove(&n.id);
            return Err(e);
        }
        tracing::info!(
            "overlay network {} ({}) created on {}",
            n.name,
            n.id,
            n.subnet
        );
        Ok(n)
    }

    /// `docker network rm`: refused while a service uses it; the ingress network stays.
    pub fn remove_network(&self, name: &str) -> Result<()> {
        let mut st = lock(&self.state);
        let n = st
            .find_network(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))?;
        if n.ingress {
            return Err(Error::Conflict(format!(
                "network {} is the swarm's ingress network (its routing mesh) and stays",
                n.name
            )));
        }
        if let Some(s) = st.services.values().find(|s| s.networks.contains(&n.name)) {
            return Err(Error::Conflict(format!(
                "rpc error: network {} is in use by service {}",
                n.name, s.spec.name
            )));
        }
        st.networks.remove(&n.id);
        let mut ch = Change::default();
        ch.batch.kv.push(st.networks_row()?);
        if let Err(e) = self.commit(&mut st, ch) {
            st.networks.insert(n.id.clone(), n);
            return Err(e);
        }
        Ok(())
    }

    pub fn tasks(&self) -> Vec<Task> {
        lock(&self.state).tasks.values().cloned().collect()
    }

    pub fn task(&self, id: &str) -> Result<Task> {
        let st = lock(&self.state);
        st.tasks
            .get(id)
            .or_else(|| {
                let m: Vec<&Task> = st.tasks.values().filter(|t| t.id.starts_with(id)).collect();
                (m.len() == 1).then(|| m[0])
            })
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("task {id} not found")))
    }

    /// The node whose certificate has fingerprint `fp`, and its role.
    pub fn caller(&self, fp: &str) -> Option<(String, Role)> {
        let id = lock(&self.peers).get(fp)?.clone();
        let st = lock(&self.state);
        st.nodes.get(&id).map(|n| (n.id.clone(), n.spec.role))
    }

    /// The manager's node id (from its own certificate).
    pub fn self_node(&self) -> Option<Node> {
        lock(&self.state).nodes.values().find(|n| n.leader).cloned()
    }
}

/// The swarm and its counts of nodes and managers.
fn summary_of(st: &State) -> (SwarmInfo, usize, usize) {
    let managers = st
        .nodes
        .values()
        .filter(|n| n.spec.role == Role::Manager)
        .count();
    (st.swarm.clone(), st.nodes.len(), managers)
}

/// The managers' addresses, the leader first.
fn managers_of(st: &State) -> Vec<String> {
    let mut out: Vec<(bool, String)> = st
        .nodes
        .values()
        .filter(|n| n.spec.role == Role::Manager)
        .filter_map(|n| n.manager_addr.clone().map(|a| (!n.leader, a)))
        .collect();
    out.sort();
    out.into_iter().map(|(_, a)| a).collect()
}

fn host_of(addr: &str) -> String {
    addr.rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_else(|| addr.to_string())
}
