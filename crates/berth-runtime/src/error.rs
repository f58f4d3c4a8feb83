//! The runtime's error type: what failed, and on which container, path or field.

use std::path::PathBuf;

/// Everything the runtime can fail with. Messages are lowercase and name the id, path or field.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {0:?}: {1}")]
    InvalidId(String, &'static str),
    #[error("container with id {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("read {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {msg}")]
    InvalidConfig { path: PathBuf, msg: String },
    #[error("config field {field}: {msg}")]
    Field { field: String, msg: String },
    #[error("{msg}: {status}")]
    State {
        id: String,
        status: String,
        msg: String,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Sys(String, nix::Error),
    #[error("cgroups: {0}")]
    Cgroup(#[from] berth_cgroups::CgroupError),
    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("capabilities: {0}")]
    Capability(#[from] crate::capabilities::CapabilityError),
    #[error("hook {path}: {msg}")]
    Hook { path: PathBuf, msg: String },
    #[error("container init: {0}")]
    Init(String),
    #[error("state of {id}: {msg}")]
    BadState { id: String, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Shorthand for an I/O error on a path.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let path = path.into();
    move |source| RuntimeError::Io { op, path, source }
}

/// Shorthand for a failed system call with context.
pub(crate) fn sys(ctx: impl Into<String>) -> impl FnOnce(nix::Error) -> RuntimeError {
    let ctx = ctx.into();
    move |e| RuntimeError::Sys(ctx, e)
}
