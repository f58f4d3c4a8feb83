//! berth-server: the Docker Engine API over HTTP (a Unix socket, or TCP with TLS), mapped to
//! berth-engine calls.
//!
//! A request goes through three steps, each in its own module, so that the engine never sees
//! HTTP and only this crate (with berth-api) knows the wire format:
//! - [`route`]: method, path and query become a typed [`route::Action`] (Firecracker style);
//! - [`handlers`]: the action runs against [`berth_engine::Engine`] on a blocking thread;
//! - [`convert`] and [`filter`]: engine types map back to berth-api's wire types, filtered as
//!   the `filters` parameter asks.
//!
//! [`hijack`] splices attach and exec streams with the client's upgraded connection, and
//! [`serve`] accepts connections on Unix and TLS listeners.

pub mod body;
pub mod convert;
pub mod error;
pub mod filter;
pub mod handlers;
pub mod hijack;
pub mod query;
pub mod route;
pub mod serve;
pub mod swarm;
pub mod time;
pub mod tls;

pub use error::{ApiError, Error};
pub use serve::{serve_tls, serve_unix, Server};
