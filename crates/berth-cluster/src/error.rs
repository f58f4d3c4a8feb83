//! Errors of the cluster, each with the Docker status class berth-server gives it.

/// What went wrong; the message is what the docker CLI prints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 503: the node is not in a swarm, or is a worker asked for manager-only state.
    #[error("{0}")]
    Unavailable(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409: a name in use, a stale version, already in a swarm.
    #[error("{0}")]
    Conflict(String),
    /// 400: bad input, named.
    #[error("{0}")]
    InvalidArgument(String),
    /// 403-like refusals of a join (a wrong token).
    #[error("{0}")]
    Refused(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
    /// A peer that could not be reached (no connection, or no TLS session): nothing was sent.
    #[error("{0}")]
    Unreachable(String),
    #[error("store: {0}")]
    Store(String),
    /// This master's leadership (its etcd election key) is gone: the store wrote nothing.
    #[error("not the leader: {0}")]
    NotLeader(String),
    #[error("{0}")]
    Engine(#[from] berth_engine::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Store(e.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Store(format!("json: {e}"))
    }
}

/// The error for the Swarm API calls when this node is not in a swarm.
pub fn not_in_swarm() -> Error {
    Error::Unavailable("This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.".into())
}

/// The error for manager-only calls on a worker.
pub fn not_a_manager() -> Error {
    Error::Unavailable("This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.".into())
}
