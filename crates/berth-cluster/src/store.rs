//! The master's state: in an embedded SQLite database (`<data-root>/swarm/state.db`, one
//! master), or in etcd (masters that share it, one of them leading: see [`crate::etcd`]). Either
//! way it holds the swarm itself, its CA, nodes, services and tasks, each row the JSON of its
//! model type. Every change the master makes is one transaction ([`Batch`]), so a crash leaves
//! either all of a change or none of it, and a restarted master finds exactly what it had (on
//! etcd a batch of more than 128 operations is split into several txns, each atomic on its own).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::etcd::EtcdStore;
pub use crate::etcd::{Fence, Leadership};
use crate::model::{Node, Service, Task};

/// The master's store: SQLite ([`Store::open`]) or etcd ([`Store::open_etcd`]), the same
/// methods on both. Every method is a plain blocking call, safe on any thread, inside an async
/// task too (the etcd client runs on a thread of its own).
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite { db: Connection, path: PathBuf },
    Etcd(EtcdStore),
}

/// Where the masters keep the swarm's state: `--store sqlite` (the default: one master,
/// `<data-root>/swarm/state.db`) or `--store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]`
/// (masters sharing an etcd cluster, one of them leading; keys under `/PREFIX/`, `/berth/`
/// by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreConfig {
    #[default]
    Sqlite,
    Etcd {
        /// `http://HOST:PORT` each.
        endpoints: Vec<String>,
        /// `/berth/`: starts and ends with `/`.
        prefix: String,
    },
}

impl StoreConfig {
    /// Parses `--store`: `sqlite`, or `etcd://` with comma-separated `HOST:PORT`s and an
    /// optional `/PREFIX`.
    pub fn parse(s: &str) -> Result<StoreConfig> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            return Ok(StoreConfig::Sqlite);
        }
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "invalid store {s:?}: {why} (sqlite, or etcd://HOST:PORT[,HOST:PORT...][/PREFIX])"
            ))
        };
        let rest = s
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("unknown kind"))?;
        let (hosts, prefix) = match rest.split_once('/') {
            Some((h, p)) => (h, p.trim_matches('/')),
            None => (rest, ""),
        };
        if prefix
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
        {
            return Err(bad("the prefix may hold only letters, digits, - _ . and /"));
        }
        let mut endpoints = Vec::new();
        for h in hosts.split(',') {
            let h = h.trim();
            let (host, port) = h
                .rsplit_once(':')
                .ok_or_else(|| bad(&format!("{h:?} has no port")))?;
            if host.is_empty()
                || host.chars().any(|c| {
                    !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '[' | ']' | ':'))
                })
            {
                return Err(bad(&format!("{h:?} is not HOST:PORT")));
            }
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(bad(&format!("{h:?} has no valid port")));
            }
            endpoints.push(format!("http://{h}"));
        }
        let prefix = if prefix.is_empty() {
            "/berth/".to_string()
        } else {
            format!("/{prefix}/")
        };
        Ok(StoreConfig::Etcd { endpoints, prefix })
    }

    pub fn is_etcd(&self) -> bool {
        matches!(self, StoreConfig::Etcd { .. })
    }

    /// The store itself: SQLite at `<dir>/state.db`, or the etcd client.
    pub fn open(&self, dir: &Path) -> Result<Store> {
        match self {
            StoreConfig::Sqlite => Store::open(&dir.join("state.db")),
            StoreConfig::Etcd { endpoints, prefix } => Store::open_etcd(endpoints, prefix),
        }
    }
}

impl std::fmt::Display for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Sqlite => write!(f, "sqlite"),
            StoreConfig::Etcd { endpoints, prefix } => {
                let hosts: Vec<&str> = endpoints
                    .iter()
                    .map(|e| e.strip_prefix("http://").unwrap_or(e))
                    .collect();
                write!(
                    f,
                    "etcd://{}{}",
                    hosts.join(","),
                    prefix.trim_end_matches('/')
                )
            }
        }
    }
}

/// One transaction's worth of changes.
#[derive(Default)]
pub struct Batch {
    pub kv: Vec<(String, String)>,
    pub kv_deleted: Vec<String>,
    pub nodes: Vec<Node>,
    pub nodes_deleted: Vec<String>,
    pub services: Vec<Service>,
    pub services_deleted: Vec<String>,
    pub tasks: Vec<Task>,
    pub tasks_deleted: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.kv.is_empty()
            && self.kv_deleted.is_empty()
            && self.nodes.is_empty()
            && self.nodes_deleted.is_empty()
            && self.services.is_empty()
            && self.services_deleted.is_empty()
            && self.tasks.is_empty()
            && self.tasks_deleted.is_empty()
    }
}

/// Everything a master starts from.
#[derive(Default)]
pub struct Loaded {
    pub nodes: Vec<Node>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
}

fn etcd_only(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "{what} needs the store on etcd; this one is SQLite"
    ))
}

impl Store {
    /// The SQLite store at `path` (made, with its directory, if missing).
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| crate::Error::Io(format!("{}: {e}", dir.display())))?;
        }
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS services (id TEXT PRIMARY KEY, body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, body TEXT NOT NULL);",
        )?;
        Ok(Store {
            backend: Backend::Sqlite {
                db,
                path: path.to_path_buf(),
            },
        })
    }

    /// The store in the etcd cluster at `endpoints` (`http://host:2379`), every key under
    /// `prefix` (`/berth/`; a `/` is added if missing). Fails, naming the endpoints, if etcd
    /// does not answer within 5 s.
    pub fn open_etcd(endpoints: &[String], prefix: &str) -> Result<Store> {
        Ok(Store {
            backend: Backend::Etcd(EtcdStore::open(endpoints, prefix)?),
        })
    }

    /// Another handle on the same store: on etcd it shares the client (and the fence, so a
    /// leadership won through one fences both); on SQLite it is a second connection.
    pub fn try_clone(&self) -> Result<Store> {
        let backend = match &self.backend {
            Backend::Sqlite { path, .. } => return Store::open(path),
            Backend::Etcd(e) => Backend::Etcd(e.clone()),
        };
        Ok(Store { backend })
    }

    pub fn is_etcd(&self) -> bool {
        matches!(self.backend, Backend::Etcd(_))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>> {
        match &self.backend {
            Backend::Sqlite { db, .. } => Ok(db
                .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
                .optional()?),
            Backend::Etcd(e) => e.get(key),
        }
    }

    /// Certificate fingerprint → node id, for every node that joined.
    pub fn peers(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .kv_prefix("peer:")?
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("peer:").to_string(), v))
            .collect())
    }

    /// Every kv entry whose key starts with `prefix` (plain characters: no `%` or `_`).
    pub fn kv_prefix(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let db = match &self.backend {
            Backend::Sqlite { db, .. } => db,
            Backend::Etcd(e) => return e.kv_prefix(prefix),
        };
        let mut st = db.prepare("SELECT key, value FROM kv WHERE substr(key, 1, ?1) = ?2")?;
        let rows = st.query_map(params![prefix.len() as i64, prefix], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }

    pub fn delete_peer(&self, node_id: &str) -> Result<()> {
        match &self.backend {
            Backend::Sqlite { db, .. } => {
                db.execute(
                    "DELETE FROM kv WHERE key LIKE 'peer:%' AND value = ?1",
                    [node_id],
                )?;
                Ok(())
            }
            Backend::Etcd(e) => e.delete_peer(node_id),
        }
    }

    /// The nodes alone (a follower's view of the swarm).
    pub fn load_nodes(&self) -> Result<Vec<Node>> {
        match &self.backend {
            Backend::Sqlite { db, .. } => all(db, "nodes"),
            Backend::Etcd(e) => e.load_nodes(),
        }
    }

    pub fn load(&self) -> Result<Loaded> {
        let db = match &self.backend {
            Backend::Sqlite { db, .. } => db,
            Backend::Etcd(e) => return e.load(),
        };
        Ok(Loaded {
            nodes: all(db, "nodes")?,
            services: all(db, "services")?,
            tasks: all(db, "tasks")?,
        })
    }

    /// Writes a batch: one SQLite transaction, or etcd txns of at most 128 operations each
    /// (atomic each, not across), fenced by the store's leadership if it is bound to one
    /// ([`Error::NotLeader`] if it is lost).
    pub fn commit(&mut self, b: &Batch) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let db = match &mut self.backend {
            Backend::Sqlite { db, .. } => db,
            Backend::Etcd(e) => return e.commit(b),
        };
        let tx = db.transaction()?;
        {
            let mut kv =
                tx.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?;
            for (k, v) in &b.kv {
                kv.execute(params![k, v])?;
            }
            put(&tx, "nodes", b.nodes.iter().map(|n| (&n.id, n)))?;
            put(&tx, "services", b.services.iter().map(|s| (&s.id, s)))?;
            put(&tx, "tasks", b.tasks.iter().map(|t| (&t.id, t)))?;
            let mut kv_del = tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?;
            for k in &b.kv_deleted {
                kv_del.execute([k])?;
            }
            del(&tx, "nodes", &b.nodes_deleted)?;
            del(&tx, "services", &b.services_deleted)?;
            del(&tx, "tasks", &b.tasks_deleted)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Writes a swarm's first state: on etcd in one txn only if the kv key `key` is absent
    /// (`false`: another wrote it first, nothing written); on SQLite a plain commit.
    pub fn commit_if_absent(&mut self, b: &Batch, key: &str) -> Result<bool> {
        match &self.backend {
            Backend::Etcd(e) => e.commit_if_absent(b, key),
            Backend::Sqlite { .. } => {
                if self.get(key)?.is_some() {
                    return Ok(false);
                }
                self.commit(b)?;
                Ok(true)
            }
        }
    }

    /// Takes back a swarm's first state (a `swarm init` that failed after writing it): on
    /// etcd every key under the prefix goes; SQLite's file is removed by its owner.
    pub fn delete_all(&mut self) -> Result<()> {
        match &self.backend {
            Backend::Etcd(e) => e.delete_all(),
            Backend::Sqlite { .. } => Ok(()),
        }
    }

    /// Sets one kv entry (a batch of one).
    pub fn put_kv(&mut self, key: &str, value: &str) -> Result<()> {
        self.commit(&Batch {
            kv: vec![(key.to_string(), value.to_string())],
            ..Default::default()
        })
    }

    /// Campaigns in the election `name` (etcd only) with `value` (what [`Store::leader`]
    /// tells the others, an address say): grants a lease of `ttl_secs`, keeps it alive every
    /// ttl/3, and blocks until elected, however long that takes. Once elected, this store (and
    /// its clones) is fenced by the leadership: every commit checks that the leader key still
    /// exists with its create revision, and fails with [`Error::NotLeader`] otherwise.
    pub fn campaign(&self, name: &str, value: &str, ttl_secs: i64) -> Result<Leadership> {
        match &self.backend {
            Backend::Etcd(e) => e
                .campaign(name, value, ttl_secs, None)?
                .ok_or_else(|| Error::Internal("campaign ended unelected".into())),
            Backend::Sqlite { .. } => Err(etcd_only("leader election")),
        }
    }

    /// [`Store::campaign`] for at most `wait`: `Ok(None)` if not elected by then (the
    /// candidacy is withdrawn and its lease revoked), so that a thread can campaign in a loop
    /// and stop when asked.
    pub fn campaign_timeout(
        &self,
        name: &str,
        value: &str,
        ttl_secs: i64,
        wait: Duration,
    ) -> Result<Option<Leadership>> {
        match &self.backend {
            Backend::Etcd(e) => e.campaign(name, value, ttl_secs, Some(wait)),
            Backend::Sqlite { .. } => Err(etcd_only("leader election")),
        }
    }

    /// The value the leader of the election `name` campaigned with; `None` if nobody leads.
    pub fn leader(&self, name: &str) -> Result<Option<String>> {
        match &self.backend {
            Backend::Etcd(e) => e.leader(name),
            Backend::Sqlite { .. } => Err(etcd_only("leader election")),
        }
    }

    /// The leadership this store's commits are fenced by, if any (always `None` on SQLite).
    pub fn fence(&self) -> Option<Fence> {
        match &self.backend {
            Backend::Etcd(e) => e.fence(),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Binds (or with `None` unbinds) the fence of this store and its clones by hand, e.g. to
    /// [`Leadership::fence`] of a leadership won through another store. SQLite has no fence.
    pub fn set_fence(&self, fence: Option<Fence>) -> Result<()> {
        match &self.backend {
            Backend::Etcd(e) => {
                e.set_fence(fence);
                Ok(())
            }
            Backend::Sqlite { .. } if fence.is_none() => Ok(()),
            Backend::Sqlite { .. } => Err(etcd_only("fencing")),
        }
    }
}

fn all<T: DeserializeOwned>(db: &Connection, table: &str) -> Result<Vec<T>> {
    let mut st = db.prepare(&format!("SELECT body FROM {table}"))?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(serde_json::from_str(&r?)?);
    }
    Ok(out)
}

fn put<'a, T: Serialize + 'a>(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    rows: impl Iterator<Item = (&'a String, &'a T)>,
) -> Result<()> {
    let mut st = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {table} (id, body) VALUES (?1, ?2)"
    ))?;
    for (id, v) in rows {
        st.execute(params![id, serde_json::to_string(v)?])?;
    }
    Ok(())
}

fn del(tx: &rusqlite::Transaction<'_>, table: &str, ids: &[String]) -> Result<()> {
    let mut st = tx.prepare_cached(&format!("DELETE FROM {table} WHERE id = ?1"))?;
    for id in ids {
        st.execute([id])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn store_urls() {
        assert_eq!(StoreConfig::parse("").unwrap(), StoreConfig::Sqlite);
        assert_eq!(StoreConfig::parse("sqlite").unwrap(), StoreConfig::Sqlite);
        let e = StoreConfig::parse("etcd://10.0.0.1:2379,etcd2:2379").unwrap();
        assert_eq!(
            e,
            StoreConfig::Etcd {
                endpoints: vec!["http://10.0.0.1:2379".into(), "http://etcd2:2379".into()],
                prefix: "/berth/".into()
            }
        );
        assert_eq!(e.to_string(), "etcd://10.0.0.1:2379,etcd2:2379/berth");
        let e = StoreConfig::parse("etcd://h:1/team/a/").unwrap();
        assert!(matches!(&e, StoreConfig::Etcd { prefix, .. } if prefix == "/team/a/"));
        assert_eq!(StoreConfig::parse(&e.to_string()).unwrap(), e);
        for (bad, why) in [
            ("mysql://x:1", "unknown kind"),
            ("etcd://", "no port"),
            ("etcd://h", "no port"),
            ("etcd://h:0", "no valid port"),
            ("etcd://h:99999", "no valid port"),
            ("etcd://h:1,,k:2", "no port"),
            ("etcd://h x:1", "not HOST:PORT"),
            ("etcd://h:1/a b", "prefix"),
        ] {
            let err = StoreConfig::parse(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn batches_persist_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("swarm/state.db");
        let mut s = Store::open(&path).unwrap();
        let node = Node {
            id: "n1".into(),
            ..Default::default()
        };
        let svc = Service {
            id: "s1".into(),
            spec: ServiceSpec {
                name: "web".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        s.commit(&Batch {
            kv: vec![("swarm".into(), "{}".into())],
            nodes: vec![node.clone()],
            services: vec![svc.clone()],
            ..Default::default()
        })
        .unwrap();
        drop(s);
        let mut s = Store::open(&path).unwrap();
        let l = s.load().unwrap();
        assert_eq!(l.nodes, vec![node]);
        assert_eq!(l.services, vec![svc]);
        assert_eq!(s.get("swarm").unwrap().as_deref(), Some("{}"));
        s.commit(&Batch {
            services_deleted: vec!["s1".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(s.load().unwrap().services.is_empty());
    }
}
