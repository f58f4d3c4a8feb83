//! berth-engine: the single-host engine. Containers (each held by a berth-shim, so it
//! outlives the daemon), their exec sessions, images, volumes, events, health checks and
//! restart policies, with metadata in SQLite. Knows nothing of HTTP or of the Docker wire
//! format: berth-server maps requests to [`Engine`] calls and the [`model`] types to JSON.

pub mod build;
pub mod bundle;
pub mod dataplane;
mod db;
mod engine;
pub mod error;
mod events;
mod fsops;
mod health;
mod inner;
pub mod model;
mod names;
mod net;
pub mod spec;
mod store;
mod streams;

/// Log lines' RFC 3339 timestamps as the json-file log writes them, to Unix nanoseconds.
pub use berth_shim::jsonlog::parse_rfc3339;
pub use bundle::{create_bundle, runtime_spec, Bundle, RunOptions};
pub use engine::*;
pub use error::{Error, ErrorKind, Result};
pub use model::*;
pub use streams::demux;

/// Now as RFC 3339 UTC with nanoseconds.
pub fn now_rfc3339() -> String {
    berth_shim::jsonlog::now_rfc3339()
}

/// Now in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 time in Unix nanoseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    berth_shim::jsonlog::parse_rfc3339(s)
}
