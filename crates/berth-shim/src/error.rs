//! The error type of the shim's client and server.

use std::path::PathBuf;

/// What failed, and on which path or container id.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("start shim for container {id}: {msg}")]
    Start { id: String, msg: String },
    #[error("shim at {path}: bad reply: {msg}")]
    Protocol { path: PathBuf, msg: String },
    #[error("shim at {path}: {msg}")]
    Remote { path: PathBuf, msg: String },
}

pub type Result<T> = std::result::Result<T, ShimError>;

/// `map_err(io("connect", &path))`.
pub fn io(op: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ShimError {
    let path = path.to_path_buf();
    move |source| ShimError::Io { op, path, source }
}
