//! The metadata database: one SQLite file, `berth.db` in the data root, with a row per
//! container and per volume holding its record as JSON. Every change is one transaction, so a
//! crash leaves a row either as it was or as it became, never half-written.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

pub(crate) struct Db {
    conn: Connection,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_cache (
    key     TEXT PRIMARY KEY,
    image   TEXT NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
";

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let err = |source| Error::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Db {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn encode<T: Serialize>(&self, v: &T) -> Result<String> {
        serde_json::to_string(v).map_err(|e| Error::Internal(format!("encode record: {e}")))
    }

    /// The image a build step with this cache key produced.
    pub fn build_cache_get(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT image FROM build_cache WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn build_cache_put(&self, key: &str, image: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO build_cache (key, image, created) VALUES (?1, ?2, strftime('%s','now'))",
                params![key, image],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forget every cached step; returns the keys dropped.
    pub fn build_cache_clear(&self) -> Result<Vec<String>> {
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let keys = {
            let mut st = tx
                .prepare("SELECT key FROM build_cache")
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            rows.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?
        };
        tx.execute("DELETE FROM build_cache", [])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(keys)
    }

    /// Inserts or replaces a container row. A name held by another container is a conflict.
    pub fn put_container<T: Serialize>(&self, id: &str, name: &str, v: &T) -> Result<()> {
        let data = self.encode(v)?;
        match self.conn.execute(
            "INSERT INTO containers (id, name, data) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
            params![id, name, data],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::Conflict(format!(
                    "Conflict. The container name \"/{name}\" is already in use by another container. You have to remove (or rename) that container to be able to reuse that name."
                )))
            }
            Err(e) => Err(self.err(e)),
        }
    }

    pub fn delete_container(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn containers<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        self.rows("SELECT id, data FROM containers")
    }

    pub fn put_volume<T: Serialize>(&self, name: &str, v: &T) -> Result<()> {
        let data = self.encode(v)?;
        self.conn
            .execute(
                "INSERT INTO volumes (name, data) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET data = excluded.data",
                params![name, data],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn get_volume<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let data: Option<String> = self
            .conn
            .query_row(
                "SELECT data FROM volumes WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        data.map(|d| self.decode(name, &d)).transpose()
    }

    pub fn delete_volume(&self, name: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM volumes WHERE name = ?1", params![name])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn volumes<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        self.rows("SELECT name, data FROM volumes")
    }

    pub fn put_network<T: Serialize>(&self, id: &str, name: &str, v: &T) -> Result<()> {
        let data = self.encode(v)?;
        self.conn
            .execute(
                "INSERT INTO networks (id, name, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name, data = excluded.data",
                params![id, name, data],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn delete_network(&self, id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM networks WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn networks<T: DeserializeOwned>(&self) -> Result<Vec<(String, T)>> {
        self.rows("SELECT id, data FROM networks ORDER BY name")
    }

    fn decode<T: DeserializeOwned>(&self, key: &str, data: &str) -> Result<T> {
        serde_json::from_str(data).map_err(|e| {
            Error::Internal(format!(
                "database {}: record {key}: {e}",
                self.path.display()
            ))
        })
    }

    fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<(String, T)>> {
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (k, d) = row.map_err(|e| self.err(e))?;
            out.push((k.clone(), self.decode(&k, &d)?));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_rows_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        {
            let db = Db::open(&path).unwrap();
            db.put_container("a", "web", &serde_json::json!({"n": 1}))
                .unwrap();
            let e = db
                .put_container("b", "web", &serde_json::json!({"n": 2}))
                .unwrap_err();
            assert!(e.to_string().contains("\"/web\" is already in use"), "{e}");
            db.put_container("a", "web2", &serde_json::json!({"n": 3}))
                .unwrap();
            db.put_volume("v", &serde_json::json!({"x": true})).unwrap();
        }
        let db = Db::open(&path).unwrap();
        let rows: Vec<(String, serde_json::Value)> = db.containers().unwrap();
        assert_eq!(rows, vec![("a".to_string(), serde_json::json!({"n": 3}))]);
        let v: Option<serde_json::Value> = db.get_volume("v").unwrap();
        assert_eq!(v, Some(serde_json::json!({"x": true})));
        db.delete_volume("v").unwrap();
        assert!(db.get_volume::<serde_json::Value>("v").unwrap().is_none());
    }
}
