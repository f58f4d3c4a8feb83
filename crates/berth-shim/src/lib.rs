//! berth-shim: the per-container supervisor (`server`) and the client the engine uses to talk
//! to it (`client`), with the wire protocol, stream framing and json-file log they share.
//!
//! One shim runs per container, daemonised (its own session, parent init or a subreaper),
//! so the container outlives the engine. Everything needed to find it again is in its state
//! directory: `shim.sock`, `shim.pid`, `json.log` (with `json.log.1`… after rotation) and,
//! once the container has exited, `exit.json`.

pub mod client;
pub mod error;
pub mod frame;
pub mod jsonlog;
pub mod protocol;
mod reaper;
pub mod server;

pub use client::{Shim, ShimOpts};
pub use error::ShimError;
