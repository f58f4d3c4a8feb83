//! The engine's error: what failed, on which container, image, volume or exec, and the kind
//! of failure the API maps to a status code.

use std::path::PathBuf;

/// Any lower layer's error, kept as the source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a caller should see an error (the API's status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404.
    NotFound,
    /// 409: a name in use, a running container removed without force, ...
    Conflict,
    /// 400: bad input, named.
    InvalidArgument,
    /// 304: already started, already stopped.
    NotModified,
    /// 500.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("Could not find the file {0} in container")]
    NoSuchContainerPath(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotModified(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {}: {source}", path.display())]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("container {id}: {source}")]
    Shim {
        id: String,
        #[source]
        source: berth_shim::ShimError,
    },
    #[error("{what}: {source}")]
    Image {
        what: String,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Bundle(#[from] crate::bundle::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoSuchContainer(_)
            | Error::NoSuchExec(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchVolume(_)
            | Error::NoSuchNetwork(_)
            | Error::NoSuchContainerPath(_) => ErrorKind::NotFound,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::Invalid(_) => ErrorKind::InvalidArgument,
            Error::NotModified(_) => ErrorKind::NotModified,
            Error::Bundle(
                crate::bundle::Error::UnknownUser(_)
                | crate::bundle::Error::UnknownGroup(_)
                | crate::bundle::Error::InvalidUser(_)
                | crate::bundle::Error::RelativeWorkdir(_)
                | crate::bundle::Error::InvalidEnv(_)
                | crate::bundle::Error::NoCommand(_),
            ) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `map_err` helper for io errors on a path.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
