//! The master's state in etcd (v3 API, etcd 3.4 and later), and the masters' leader election
//! through etcd leases. [`crate::store::Store`] wraps this; nothing outside the store uses it
//! directly, except [`Leadership`] and [`Fence`].
//!
//! # Layout
//!
//! Under the store's prefix (`/berth/`, say): `kv/<key>`, `nodes/<id>`, `services/<id>`,
//! `tasks/<id>`, each value the same text as the SQLite row (the JSON of the model type; kv
//! values as they are). Elections live under `election/<name>`: etcd's election API keeps one
//! key per candidate, `election/<name>/<lease id in hex>`, attached to the candidate's lease,
//! and the candidate whose key has the lowest create revision leads.
//!
//! # Threads
//!
//! The client runs on a thread of its own with a current-thread tokio runtime. Every method
//! sends it a job over a channel and waits for the answer on a std channel, so each call is a
//! plain blocking call, safe on a `spawn_blocking` thread and inside an async task alike: it
//! never enters the caller's runtime. Every etcd call gives up after [`TIMEOUT`] with an error
//! that names the endpoints (`etcd at http://a:2379,http://b:2379: ...`); the one exception is
//! [`crate::store::Store::campaign`], which waits for as long as it takes to be elected
//! (`campaign_timeout` bounds the wait).
//!
//! # Transactions and their limits
//!
//! A commit is one etcd txn of puts and deletes. etcd refuses a txn of more than
//! `--max-txn-ops` operations (128 by default) and a request of more than
//! `--max-request-bytes` (1.5 MiB by default), so a larger batch is split, in order, into txns
//! of at most [`MAX_TXN_OPS`] operations and about [`MAX_TXN_BYTES`] bytes each. Each part is
//! atomic, the batch as a whole is not: a crash or a lost leadership between two parts leaves
//! the first ones written. That is acceptable for the master, whose controllers are idempotent
//! per slot (the next pass redoes what is missing). etcd also refuses a txn that names one key
//! twice, so a batch is folded first: the last put of a key wins, and a delete wins over puts
//! (what SQLite does, which runs the deletes after the puts).
//!
//! # Fencing
//!
//! A store can be bound to a leadership ([`Fence`]: the leader's election key and its create
//! revision). Every txn it then sends carries the compare
//! `create_revision(key) == rev`: once the key is gone (resigned, the lease revoked or
//! expired) or belongs to another term, the txn writes nothing and the commit fails with
//! [`Error::NotLeader`]. `campaign` binds the fence of the store it was called on (and of every
//! store made from it by `try_clone`, which share it) as soon as it is elected; resigning does
//! not unbind it, so a deposed master cannot write; `set_fence` binds or unbinds by hand.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KeyValue, LeaderKey,
    LeaseKeepAliveStream, LeaseKeeper, ResignOptions, Txn, TxnOp,
};
use tokio::sync::{mpsc as tmpsc, watch};

use crate::error::{Error, Result};
use crate::model::{Node, Service, Task};
use crate::store::{Batch, Loaded};

/// How long any one etcd call may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Operations per txn: etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;
/// Bytes of keys and values per txn, well under etcd's default `--max-request-bytes`
/// (1.5 MiB). A single value larger than that still goes alone in a txn of its own, and etcd
/// refuses it if it is over its own limit.
pub const MAX_TXN_BYTES: usize = 1024 * 1024;
/// How many times a call that met an unreachable member is tried again.
const RETRIES: u32 = 8;

/// An error of the transport or of a member that is down or without a leader, after which
/// the same call can go again (every call the store makes is idempotent).
fn transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => {
            matches!(
                s.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ) && !s.message().contains("election: no leader")
        }
        _ => false,
    }
}

/// Keys per page of a range read.
const PAGE: i64 = 256;
/// The largest range answer the client accepts (tonic's default is 4 MiB; 256 values of up
/// to 1.5 MiB each can be more).
const MAX_DECODE: usize = 512 << 20;

/// The leadership a store's txns are fenced by: the leader's election key and its create
/// revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub rev: i64,
}

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The channel to the client's thread; the thread ends when the last `Conn` is dropped.
struct Conn {
    jobs: tmpsc::UnboundedSender<Job>,
    /// The endpoints as the errors name them.
    endpoints: String,
}

enum CallError {
    TimedOut(Duration),
    Etcd(etcd_client::Error),
    Gone,
}

impl Conn {
    fn start(endpoints: &[String]) -> Result<Arc<Conn>> {
        let shown = endpoints.join(",");
        if endpoints.is_empty() || endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "etcd: no endpoints given ({shown:?})"
            )));
        }
        let (jobs, mut rx) = tmpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<std::result::Result<(), String>>(1);
        let eps = endpoints.to_vec();
        std::thread::Builder::new()
            .name("berth-etcd".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    // HTTP/2 pings no more often than etcd's --grpc-keepalive-min-time (5 s),
                    // and only while a stream is open (etcd refuses idle pings): a dead
                    // connection under a leader's keep-alive stream is dropped in ~15 s.
                    let opts = ConnectOptions::new()
                        .with_connect_timeout(TIMEOUT)
                        .with_keep_alive(Duration::from_secs(10), TIMEOUT);
                    let client = match Client::connect(eps, Some(opts)).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job(client.clone()));
                    }
                });
            })
            .map_err(|e| Error::Io(format!("etcd at {shown}: start the client thread: {e}")))?;
        match ready_rx.recv_timeout(TIMEOUT + Duration::from_secs(1)) {
            Ok(Ok(())) => Ok(Arc::new(Conn {
                jobs,
                endpoints: shown,
            })),
            Ok(Err(e)) => Err(Error::Store(format!("etcd at {shown}: connect: {e}"))),
            Err(_) => Err(Error::Store(format!(
                "etcd at {shown}: connect: no answer in {TIMEOUT:?}"
            ))),
        }
    }

    /// Runs `f` on the client's thread and waits for its answer, for at most `limit` (no limit
    /// with `None`).
    fn call<T, F, Fut>(&self, limit: Option<Duration>, f: F) -> std::result::Result<T, CallError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let deadline = limit.map(|d| tokio::time::Instant::now() + d);
                let mut attempt = 0u32;
                let r = loop {
                    let r = match deadline {
                        Some(at) => {
                            match tokio::time::timeout_at(at, (f.clone())(client.clone())).await {
                                Ok(r) => r.map_err(CallError::Etcd),
                                Err(_) => Err(CallError::TimedOut(limit.unwrap_or_default())),
                            }
                        }
                        None => (f.clone())(client.clone()).await.map_err(CallError::Etcd),
                    };
                    // A member that is down still has its place in the client's balance:
                    // a call that went to it is tried again (on another, most likely).
                    match r {
                        Err(CallError::Etcd(e)) if transient(&e) && attempt < RETRIES => {
                            attempt += 1;
                            let pause = Duration::from_millis(50 * attempt as u64);
                            if deadline.is_some_and(|at| tokio::time::Instant::now() + pause >= at)
                            {
                                break Err(CallError::Etcd(e));
                            }
                            tokio::time::sleep(pause).await;
                        }
                        r => break r,
                    }
                };
                let _ = tx.send(r);
            })
        });
        self.jobs.send(job).map_err(|_| CallError::Gone)?;
        match limit {
            // The client's thread enforces the limit; the slack covers a stalled thread.
            Some(d) => match rx.recv_timeout(d + Duration::from_secs(1)) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => Err(CallError::TimedOut(d)),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(CallError::Gone),
            },
            None => rx.recv().unwrap_or(Err(CallError::Gone)),
        }
    }

    /// [`Conn::call`] with the usual limit, its failure named by `what`.
    fn run<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>> + Send + 'static,
    {
        self.call(Some(TIMEOUT), f).map_err(|e| self.fail(what, e))
    }

    fn fail(&self, what: &str, e: CallError) -> Error {
        match e {
            CallError::TimedOut(d) => self.err(what, format!("no answer in {d:?}")),
            CallError::Etcd(e) => self.err(what, e),
            CallError::Gone => self.err(what, "the etcd client's thread is gone"),
        }
    }

    fn err(&self, what: &str, e: impl Display) -> Error {
        Error::Store(format!("etcd at {}: {what}: {e}", self.endpoints))
    }
}

/// The etcd backend of [`crate::store::Store`]. Clones share the client's thread and the fence.
#[derive(Clone)]
pub(crate) struct EtcdStore {
    conn: Arc<Conn>,
    prefix: String,
    fence: Arc<Mutex<Option<Fence>>>,
}

impl EtcdStore {
    pub(crate) fn open(endpoints: &[String], prefix: &str) -> Result<EtcdStore> {
        let conn = Conn::start(endpoints)?;
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let s = EtcdStore {
            conn,
            prefix,
            fence: Arc::default(),
        };
        // One round trip, so that an etcd out of reach fails here and not at the first commit.
        let key = s.key("kv/");
        s.conn.run("reach", move |mut c| async move {
            c.get(key, Some(GetOptions::new().with_prefix().with_count_only()))
                .await
                .map(|_| ())
        })?;
        Ok(s)
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    fn text(&self, kv: &KeyValue) -> Result<String> {
        String::from_utf8(kv.value().to_vec()).map_err(|_| {
            self.conn.err(
                "read",
                format!("{}: not UTF-8", String::from_utf8_lossy(kv.key())),
            )
        })
    }

    pub(crate) fn fence(&self) -> Option<Fence> {
        lock(&self.fence).clone()
    }

    pub(crate) fn set_fence(&self, fence: Option<Fence>) {
        *lock(&self.fence) = fence;
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<String>> {
        let k = self.key(&format!("kv/{key}"));
        let what = format!("get {k}");
        let mut kvs = self.conn.run(&what, move |mut c| async move {
            Ok(c.get(k, None).await?.take_kvs())
        })?;
        kvs.pop().map(|kv| self.text(&kv)).transpose()
    }

    /// Every key under `self.prefix + under`, with `under` cut off, read page by page at one
    /// revision: the first page's unless `rev` is already set (and then set to it).
    fn range(&self, under: &str, rev: &mut i64) -> Result<Vec<(String, String)>> {
        let start = self.key(under);
        let end = prefix_end(start.as_bytes());
        let mut from = start.clone().into_bytes();
        let mut out = Vec::new();
        loop {
            let (key, end, at) = (from.clone(), end.clone(), *rev);
            let what = format!("read {start}*");
            let mut resp = self.conn.run(&what, move |c| async move {
                let mut opts = GetOptions::new().with_range(end).with_limit(PAGE);
                if at > 0 {
                    opts = opts.with_revision(at);
                }
                let mut kv = c.kv_client().max_decoding_message_size(MAX_DECODE);
                kv.get(key, Some(opts)).await
            })?;
            if *rev == 0 {
                *rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            let more = resp.more();
            let kvs = resp.take_kvs();
            let Some(last) = kvs.last() else { break };
            from = last.key().to_vec();
            from.push(0);
            for kv in &kvs {
                let k = String::from_utf8_lossy(kv.key());
                let k = k.strip_prefix(start.as_str()).unwrap_or(&k).to_string();
                out.push((k, self.text(kv)?));
            }
            if !more {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) fn peers(&self) -> Result<Vec<(String, String)>> {
        self.range("kv/peer:", &mut 0)
    }

    /// kv entries under `prefix`, with their whole kv keys (`peer:...`).
    pub(crate) fn kv_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        Ok(self
            .range(&format!("kv/{prefix}"), &mut 0)?
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect())
    }

    pub(crate) fn delete_peer(&self, node_id: &str) -> Result<()> {
        let ops = self
            .peers()?
            .into_iter()
            .filter(|(_, id)| id == node_id)
            .map(|(fp, _)| (self.key(&format!("kv/peer:{fp}")), None))
            .collect();
        self.write(ops)
    }

    pub(crate) fn load_nodes(&self) -> Result<Vec<Node>> {
        self.range("nodes/", &mut 0)?
            .iter()
            .map(|(_, v)| Ok(serde_json::from_str(v)?))
            .collect()
    }

    pub(crate) fn load(&self) -> Result<Loaded> {
        fn parse<T: serde::de::DeserializeOwned>(rows: Vec<(String, String)>) -> Result<Vec<T>> {
            rows.iter()
                .map(|(_, v)| Ok(serde_json::from_str(v)?))
                .collect()
        }
        // One revision for the three, so that what loads is one moment's state.
        let mut rev = 0;
        let nodes: Vec<Node> = parse(self.range("nodes/", &mut rev)?)?;
        let services: Vec<Service> = parse(self.range("services/", &mut rev)?)?;
        let tasks: Vec<Task> = parse(self.range("tasks/", &mut rev)?)?;
        Ok(Loaded {
            nodes,
            services,
            tasks,
        })
    }

    pub(crate) fn commit(&self, b: &Batch) -> Result<()> {
        let ops = self.ops(b)?;
        self.write(ops)
    }

    /// Writes `b` in one txn, only if the kv key `key` does not exist yet; `false` (nothing
    /// written) if it does. For a swarm's first state: two `swarm init`s on one prefix never
    /// both write.
    pub(crate) fn commit_if_absent(&self, b: &Batch, key: &str) -> Result<bool> {
        let ops = self.ops(b)?;
        if ops.len() > MAX_TXN_OPS {
            return Err(Error::Internal(format!(
                "a first state of {} operations does not fit one txn",
                ops.len()
            )));
        }
        let guard = self.key(&format!("kv/{key}"));
        self.conn
            .run("write the swarm's first state", move |mut c| async move {
                let then: Vec<TxnOp> = ops
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => TxnOp::put(k, v, None),
                        None => TxnOp::delete(k, None),
                    })
                    .collect();
                let when = vec![Compare::create_revision(guard, CompareOp::Equal, 0)];
                Ok(c.txn(Txn::new().when(when).and_then(then))
                    .await?
                    .succeeded())
            })
    }

    /// Deletes every key under the store's prefix (a `swarm init` that failed after writing
    /// its first state takes it back). Not fenced.
    pub(crate) fn delete_all(&self) -> Result<()> {
        let start = self.prefix.clone().into_bytes();
        let end = prefix_end(&start);
        self.conn
            .run("delete the swarm's state", move |mut c| async move {
                c.delete(
                    start,
                    Some(etcd_client::DeleteOptions::new().with_range(end)),
                )
                .await
                .map(|_| ())
            })
    }

    /// The operations of a batch, folded: one per key.
    fn ops(&self, b: &Batch) -> Result<Vec<(String, Option<String>)>> {
        let mut ops = Ops::default();
        for (k, v) in &b.kv {
            ops.set(self.key(&format!("kv/{k}")), Some(v.clone()));
        }
        for k in &b.kv_deleted {
            ops.set(self.key(&format!("kv/{k}")), None);
        }
        for n in &b.nodes {
            ops.set(self.key(&format!("nodes/{}", n.id)), Some(to_json(n)?));
        }
        for s in &b.services {
            ops.set(self.key(&format!("services/{}", s.id)), Some(to_json(s)?));
        }
        for t in &b.tasks {
            ops.set(self.key(&format!("tasks/{}", t.id)), Some(to_json(t)?));
        }
        for (dir, ids) in [
            ("nodes", &b.nodes_deleted),
            ("services", &b.services_deleted),
            ("tasks", &b.tasks_deleted),
        ] {
            for id in ids {
                ops.set(self.key(&format!("{dir}/{id}")), None);
            }
        }
        Ok(ops.list)
    }

    /// Puts (`Some`) and deletes (`None`), each key once, in txns fenced by the store's fence.
    fn write(&self, ops: Vec<(String, Option<String>)>) -> Result<()> {
        let fence = self.fence();
        let mut parts = split(ops);
        if parts.is_empty() && fence.is_some() {
            // Nothing to write, but a fenced store still answers whether it may.
            parts.push(Vec::new());
        }
        let n = parts.len();
        for (i, part) in parts.into_iter().enumerate() {
            let when: Vec<Compare> = fence
                .iter()
                .map(|f| Compare::create_revision(f.key.clone(), CompareOp::Equal, f.rev))
                .collect();
            let then: Vec<TxnOp> = part
                .into_iter()
                .map(|(k, v)| match v {
                    Some(v) => TxnOp::put(k, v, None),
                    None => TxnOp::delete(k, None),
                })
                .collect();
            let what = if n > 1 {
                format!("commit (txn {} of {n})", i + 1)
            } else {
                "commit".to_string()
            };
            let ok = self.conn.run(&what, move |mut c| async move {
                Ok(c.txn(Txn::new().when(when).and_then(then))
                    .await?
                    .succeeded())
            })?;
            if !ok {
                let key = fence.as_ref().map(|f| f.key.as_str()).unwrap_or_default();
                let written = if i == 0 {
                    "nothing written".to_string()
                } else {
                    format!("{i} of the batch's {n} txns were written before")
                };
                return Err(Error::NotLeader(format!(
                    "lost the leadership (the election key {key} is gone or of another term); {written}"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn leader(&self, name: &str) -> Result<Option<String>> {
        let n = self.key(&format!("election/{name}"));
        let got = self.conn.call(Some(TIMEOUT), move |mut c| async move {
            Ok(c.leader(n).await?.take_kv().map(|kv| kv.value().to_vec()))
        });
        match got {
            Ok(v) => v
                .map(|v| {
                    String::from_utf8(v)
                        .map_err(|_| self.conn.err("leader", "the leader's value is not UTF-8"))
                })
                .transpose(),
            // etcd answers "election: no leader" (gRPC Unknown) when nobody campaigns.
            Err(CallError::Etcd(e)) if e.to_string().contains("no leader") => Ok(None),
            Err(e) => Err(self.conn.fail(&format!("leader of {name}"), e)),
        }
    }

    /// Grants a lease of `ttl` seconds, keeps it alive, and campaigns with it, for at most
    /// `wait` (`None`: until elected). `Ok(None)`: not elected in time, the lease revoked.
    pub(crate) fn campaign(
        &self,
        name: &str,
        value: &str,
        ttl: i64,
        wait: Option<Duration>,
    ) -> Result<Option<Leadership>> {
        if ttl <= 0 {
            return Err(Error::InvalidArgument(format!(
                "a leadership's TTL must be positive, not {ttl}"
            )));
        }
        let election = self.key(&format!("election/{name}"));
        let (lease, granted) = self.conn.run("grant a lease", move |mut c| async move {
            let r = c.lease_grant(ttl, None).await?;
            Ok((r.id(), r.ttl()))
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let (lost_tx, _) = watch::channel(false);
        // From here on, dropping `lead` revokes the lease.
        let mut lead = Leadership {
            conn: self.conn.clone(),
            lease,
            ttl: granted,
            fence: Fence {
                key: String::new(),
                rev: 0,
            },
            key: None,
            session: Arc::new(Session {
                lost: Mutex::new(None),
                cv: Condvar::new(),
                lost_tx,
                leader: Mutex::new(None),
            }),
            stop: Some(stop),
        };
        let session = lead.session.clone();
        self.conn.run("keep the lease alive", move |c| async move {
            tokio::spawn(keep_alive(c, lease, granted, session, stop_rx));
            Ok(())
        })?;

        let session = lead.session.clone();
        let (n, v) = (election.clone(), value.to_string());
        let got = self.conn.call(wait, move |mut c| async move {
            let mut lost = session.lost_tx.subscribe();
            tokio::select! {
                r = c.campaign(n, v, lease) => Ok(Some(r?.take_leader())),
                _ = lost.wait_for(|l| *l) => Ok(None),
            }
        });
        let key = match got {
            Ok(Some(Some(k))) => k,
            Ok(Some(None)) => return Err(self.conn.err("campaign", "no leader key in the answer")),
            Ok(None) => {
                return Err(Error::NotLeader(format!(
                    "lost the lease while campaigning: {}",
                    lead.lost_reason().unwrap_or_default()
                )))
            }
            // Not elected in time: etcd drops the candidate's key when the call is cancelled,
            // and dropping `lead` revokes the lease besides.
            Err(CallError::TimedOut(_)) if wait.is_some() => return Ok(None),
            Err(e) => return Err(self.conn.fail(&format!("campaign for {election}"), e)),
        };
        // etcd's campaign waits for the deletion of the keys before the candidate's, not for
        // its own key's survival: make sure it is still there and ours.
        let (k, rev) = (key.key().to_vec(), key.rev());
        let mine = self
            .conn
            .run("check the leader key", move |mut c| async move {
                let r = c.get(k, None).await?;
                Ok(r.kvs().first().map(|kv| (kv.create_revision(), kv.lease())))
            })?;
        if mine != Some((rev, lease)) || lead.is_lost() {
            return Err(Error::NotLeader(format!(
                "elected, but the leader key is gone (the lease expired): {}",
                lead.lost_reason().unwrap_or_default()
            )));
        }
        let fence = Fence {
            key: String::from_utf8_lossy(key.key()).into_owned(),
            rev,
        };
        *lock(&lead.session.leader) = Some(fence.clone());
        lead.fence = fence.clone();
        lead.key = Some(key);
        self.set_fence(Some(fence));
        Ok(Some(lead))
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string(v)?)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): to the end of the keyspace.
    vec![0]
}

/// A batch folded to one operation per key, in the order keys first appear.
#[derive(Default)]
struct Ops {
    list: Vec<(String, Option<String>)>,
    at: HashMap<String, usize>,
}

impl Ops {
    fn set(&mut self, key: String, value: Option<String>) {
        match self.at.get(&key) {
            Some(&i) => self.list[i].1 = value,
            None => {
                self.at.insert(key.clone(), self.list.len());
                self.list.push((key, value));
            }
        }
    }
}

/// Splits operations, in order, into txns of at most [`MAX_TXN_OPS`] operations and about
/// [`MAX_TXN_BYTES`] bytes.
fn split(ops: Vec<(String, Option<String>)>) -> Vec<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for op in ops {
        // Key, value and a little framing.
        let size = op.0.len() + op.1.as_ref().map_or(0, |v| v.len()) + 16;
        if !cur.is_empty() && (cur.len() == MAX_TXN_OPS || bytes + size > MAX_TXN_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
        bytes += size;
        cur.push(op);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// What the keep-alive task and the [`Leadership`] share.
struct Session {
    /// Why the leadership is lost, once it is.
    lost: Mutex<Option<String>>,
    cv: Condvar,
    /// `true` once lost, for the async side.
    lost_tx: watch::Sender<bool>,
    /// The leader key, once elected: the keep-alive checks that it still exists.
    leader: Mutex<Option<Fence>>,
}

impl Session {
    fn mark_lost(&self, why: &str) {
        let mut l = lock(&self.lost);
        if l.is_none() {
            *l = Some(why.to_string());
        }
        drop(l);
        self.cv.notify_all();
        self.lost_tx.send_replace(true);
    }
}

/// Keeps `lease` alive every ttl/3 until `stop` says so (or its sender is dropped); marks the
/// session lost when etcd says the lease is gone, when no keep-alive got through for a whole
/// TTL, or when the leader key is gone.
async fn keep_alive(
    client: Client,
    lease: i64,
    ttl: i64,
    session: Arc<Session>,
    mut stop: watch::Receiver<bool>,
) {
    use tokio::time::Instant;
    let work = async {
        let ttl_d = Duration::from_secs(ttl.max(1) as u64);
        let every = (ttl_d / 3).max(Duration::from_millis(100));
        let retry = every.min(Duration::from_millis(500));
        let mut deadline = Instant::now() + ttl_d;
        let mut leases = client.lease_client();
        let mut kv = client.kv_client();
        let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
        let mut ok = true;
        loop {
            tokio::time::sleep(if ok { every } else { retry }).await;
            let sent = Instant::now();
            if sent >= deadline {
                return format!("no keep-alive of the lease got through for its TTL ({ttl} s)");
            }
            let left = (deadline - sent).min(TIMEOUT);
            let round = tokio::time::timeout(left, async {
                match stream.as_mut() {
                    None => {
                        // Opening the stream sends one keep-alive and checks its answer.
                        stream = Some(leases.keep_alive(lease).await?);
                        Ok(ttl)
                    }
                    Some((keeper, answers)) => {
                        keeper.keep_alive().await?;
                        match answers.message().await? {
                            Some(r) => Ok(r.ttl()),
                            None => Err(etcd_client::Error::LeaseKeepAliveError(
                                "the keep-alive stream ended".into(),
                            )),
                        }
                    }
                }
            })
            .await;
            ok = match round {
                Ok(Ok(t)) if t > 0 => {
                    deadline = sent + ttl_d;
                    true
                }
                Ok(Ok(_)) => return "the lease expired or was revoked".to_string(),
                Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
                    return "the lease expired or was revoked".to_string()
                }
                _ => {
                    stream = None;
                    false
                }
            };
            let fence = lock(&session.leader).clone();
            if let (true, Some(f)) = (ok, fence) {
                let left = deadline
                    .saturating_duration_since(Instant::now())
                    .min(TIMEOUT);
                if let Ok(Ok(r)) = tokio::time::timeout(left, kv.get(f.key.clone(), None)).await {
                    if r.kvs().first().map(|kv| kv.create_revision()) != Some(f.rev) {
                        return format!("the leader key {} is gone", f.key);
                    }
                }
            }
        }
    };
    tokio::select! {
        why = work => session.mark_lost(&why),
        _ = stop.changed() => {}
    }
}

/// A won election: the lease is kept alive in the background (every ttl/3) until
/// [`Leadership::resign`] or drop, which resign and revoke the lease.
pub struct Leadership {
    conn: Arc<Conn>,
    lease: i64,
    ttl: i64,
    fence: Fence,
    key: Option<LeaderKey>,
    session: Arc<Session>,
    /// Stops the keep-alive; `None` once released.
    stop: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// The election key and its create revision, which the store's txns compare against.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    pub fn lease_id(&self) -> i64 {
        self.lease
    }

    /// The lease's TTL in seconds, as etcd granted it (it may raise a small one).
    pub fn ttl(&self) -> i64 {
        self.ttl
    }

    /// Whether the leadership is lost: the lease expired or was revoked, no keep-alive got
    /// through for a whole TTL, the leader key is gone, or it was resigned.
    pub fn is_lost(&self) -> bool {
        lock(&self.session.lost).is_some()
    }

    /// Why it is lost, once it is.
    pub fn lost_reason(&self) -> Option<String> {
        lock(&self.session.lost).clone()
    }

    /// Blocks until the leadership is lost, and says why.
    pub fn lost(&self) -> String {
        let mut l = lock(&self.session.lost);
        loop {
            if let Some(why) = l.as_ref() {
                return why.clone();
            }
            l = self.session.cv.wait(l).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until the leadership is lost or `timeout` passes; true if lost.
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        let l = lock(&self.session.lost);
        let (l, _) = self
            .session
            .cv
            .wait_timeout_while(l, timeout, |l| l.is_none())
            .unwrap_or_else(|e| e.into_inner());
        l.is_some()
    }

    /// Gives the leadership up: stops the keep-alive, resigns (deletes the election key, so
    /// the next candidate is elected at once) and revokes the lease. The stores fenced by it
    /// stay fenced by it, so they can no longer write.
    pub fn resign(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        let Some(stop) = self.stop.take() else {
            return Ok(());
        };
        let _ = stop.send(true);
        let was_lost = self.is_lost();
        self.session.mark_lost("resigned");
        if let (Some(key), false) = (self.key.take(), was_lost) {
            // Revoking the lease below deletes the key too; this is the polite way. A lost
            // leadership's key is gone already (or etcd is out of reach): no resignation.
            let _ = self.conn.run("resign", move |mut c| async move {
                c.resign(Some(ResignOptions::new().with_leader(key)))
                    .await
                    .map(|_| ())
            });
        }
        let lease = self.lease;
        match self.conn.call(Some(TIMEOUT), move |mut c| async move {
            c.lease_revoke(lease).await.map(|_| ())
        }) {
            Ok(()) => Ok(()),
            Err(CallError::Etcd(e)) if e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(self.conn.fail(&format!("revoke lease {lease:x}"), e)),
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_split_by_count_and_size() {
        let ops: Vec<_> = (0..300)
            .map(|i| (format!("k{i}"), Some("v".to_string())))
            .collect();
        let parts = split(ops);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![128, 128, 44]
        );
        assert_eq!(parts[2][43].0, "k299");
        let big = "x".repeat(400 * 1024);
        let ops: Vec<_> = (0..5)
            .map(|i| (format!("k{i}"), Some(big.clone())))
            .collect();
        assert_eq!(
            split(ops).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert!(split(Vec::new()).is_empty());
    }

    #[test]
    fn a_key_is_named_once() {
        let mut ops = Ops::default();
        ops.set("a".into(), Some("1".into()));
        ops.set("b".into(), Some("1".into()));
        ops.set("a".into(), Some("2".into()));
        ops.set("b".into(), None);
        assert_eq!(
            ops.list,
            vec![("a".into(), Some("2".into())), ("b".into(), None)]
        );
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/berth/kv/"), b"/berth/kv0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
