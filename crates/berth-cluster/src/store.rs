//! The master's state in an embedded SQLite database (`<data-root>/swarm/state.db`): the swarm
//! itself, its CA, nodes, services and tasks, each row the JSON of its model type. Every
//! change the master makes is one transaction ([`Batch`]), so a crash leaves either all of a
//! change or none of it, and a restarted master finds exactly what it had.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{de::DeserializeOwned, Serialize};

use crate::error::Result;
use crate::model::{Node, Service, Task};

pub struct Store {
    db: Connection,
}

/// One transaction's worth of changes.
#[derive(Default)]
pub struct Batch {
    pub kv: Vec<(String, String)>,
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

impl Store {
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
        Ok(Store { db })
    }

    pub fn get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .db
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Certificate fingerprint → node id, for every node that joined.
    pub fn peers(&self) -> Result<Vec<(String, String)>> {
        let mut st = self
            .db
            .prepare("SELECT key, value FROM kv WHERE key LIKE 'peer:%'")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for r in rows {
            let (k, v) = r?;
            out.push((k.trim_start_matches("peer:").to_string(), v));
        }
        Ok(out)
    }

    pub fn delete_peer(&self, node_id: &str) -> Result<()> {
        self.db.execute(
            "DELETE FROM kv WHERE key LIKE 'peer:%' AND value = ?1",
            [node_id],
        )?;
        Ok(())
    }

    pub fn load(&self) -> Result<Loaded> {
        Ok(Loaded {
            nodes: self.all("nodes")?,
            services: self.all("services")?,
            tasks: self.all("tasks")?,
        })
    }

    fn all<T: DeserializeOwned>(&self, table: &str) -> Result<Vec<T>> {
        let mut st = self.db.prepare(&format!("SELECT body FROM {table}"))?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r?)?);
        }
        Ok(out)
    }

    pub fn commit(&mut self, b: &Batch) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        {
            let mut kv =
                tx.prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?;
            for (k, v) in &b.kv {
                kv.execute(params![k, v])?;
            }
            put(&tx, "nodes", b.nodes.iter().map(|n| (&n.id, n)))?;
            put(&tx, "services", b.services.iter().map(|s| (&s.id, s)))?;
            put(&tx, "tasks", b.tasks.iter().map(|t| (&t.id, t)))?;
            del(&tx, "nodes", &b.nodes_deleted)?;
            del(&tx, "services", &b.services_deleted)?;
            del(&tx, "tasks", &b.tasks_deleted)?;
        }
        tx.commit()?;
        Ok(())
    }
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
