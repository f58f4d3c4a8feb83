//! berth-api: the Docker Engine API as Berth speaks it: wire types, stdio stream framing,
//! API version negotiation and a blocking HTTP/1.1 client for the `berth` CLI.
//!
//! Only this crate and `berth-server` know the Docker wire format. Nothing here runs an
//! engine or an async runtime, so clients that link it stay small and start fast.
//!
//! - [`types`]: serde types named and shaped as dockerd sends them (PascalCase, with the
//!   lowercase exceptions Docker has), tolerant of missing, `null` and unknown fields so
//!   that older and newer clients' JSON parses; [`types::filters`] parses the `filters`
//!   query parameter.
//! - [`stream`]: the 8-byte stdout/stderr frame header and the json-file log line.
//! - [`version`]: `/v1.NN/` path prefixes, version comparison and the limits Berth accepts.
//! - [`client`]: HTTP/1.1 over a Unix socket or TCP, typed JSON calls, streaming bodies and
//!   the hijacked (`101 UPGRADED`) streams of attach and exec.

pub mod client;
pub mod stream;
pub mod types;
pub mod version;

pub use client::{ApiError, Client, ClientError};
pub use types::filters::Filters;
pub use version::ApiVersion;
