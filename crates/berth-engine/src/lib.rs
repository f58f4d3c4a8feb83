//! berth-engine: the single-host engine. Its first piece is [`bundle`]: an OCI bundle (rootfs
//! mounted from the snapshotter, config.json made from the image config) ready for berth-runc.
//!
//! Until berthd exists (issue 4), the daemonless `berth` CLI links this crate directly.

pub mod bundle;

pub use bundle::{create_bundle, runtime_spec, Bundle, Error, RunOptions};
